"""One builder for a model named in a config: the sweep's ``--model config.yaml`` and the benchmark's model entries.

A model entry is a class name or ``{class_path, init_args}``, as in Anomalib's configs. Class paths may be short
names, matched case-insensitively among the models exposed on ``anomalib.models`` (Anomalib's and this plugin's,
``GlocalCLIP``, ``glocalclip``, ``win_clip``), or dotted paths (``anomalib.models.WinClip``,
``anomalib_glocalclip.AnoCLIP``, a model of your own). The model is built the way Anomalib's CLI builds it
(jsonargparse, which checks and converts the init args against the class's signature). Anomalib is imported only
when a model is built.
"""

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anomalib.models import AnomalibModule


def normalise_spec(spec: str | dict[str, Any]) -> dict[str, Any]:
    """``"WinClip"`` or ``{class_path, init_args, ...}`` as ``{"class_path": ..., "init_args": {...}, ...}``.

    Args:
        spec: a class name, or a mapping with a ``class_path`` string and optional ``init_args``.

    Raises:
        TypeError: ``spec`` has no ``class_path`` string.
    """
    if isinstance(spec, str):
        return {"class_path": spec, "init_args": {}}
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        msg = f"A model or data entry needs a `class_path` (a class name), got {spec!r}."
        raise TypeError(msg)
    return {**spec, "init_args": dict(spec.get("init_args") or {})}


def class_name(spec: str | dict[str, Any]) -> str:
    """The short class name of an entry (``anomalib.models.WinClip`` -> ``WinClip``)."""
    return normalise_spec(spec)["class_path"].rsplit(".", 1)[-1]


def resolve_class_path(class_path: str) -> str:
    """The dotted path of a model class: short names are looked up on ``anomalib.models``, dotted paths kept.

    Args:
        class_path: ``GlocalCLIP``, ``glocalclip``, ``win_clip``, ``anomalib.models.WinClip``, ``my.module.Model``.

    Raises:
        ValueError: no model on ``anomalib.models`` has that short name.
    """
    if "." in class_path:
        return class_path
    import anomalib.models
    from anomalib.models import AnomalibModule

    import anomalib_glocalclip

    anomalib_glocalclip.register()  # the plugin's models, even with the start-up hook off
    key = class_path.replace("_", "").lower()
    models = {
        name: value
        for name, value in vars(anomalib.models).items()
        if isinstance(value, type) and issubclass(value, AnomalibModule) and value is not AnomalibModule
    }
    for name, model in models.items():
        if name.lower() == key:
            return f"{model.__module__}.{model.__qualname__}"
    msg = f"Unknown model {class_path!r}. Known short names: {', '.join(sorted(models))}; or give a dotted class path."
    raise ValueError(msg)


def build_model(spec: str | dict[str, Any]) -> "AnomalibModule":
    """Instantiate a model entry as Anomalib's CLI would (init args checked against the class's signature).

    Args:
        spec: a class name or ``{class_path, init_args}``; other keys (e.g. a table label ``name``) are ignored.

    Returns:
        The model, with the components its own defaults give it.
    """
    from anomalib.models import AnomalibModule
    from jsonargparse import ArgumentParser

    normalised = normalise_spec(spec)
    section = {"class_path": resolve_class_path(normalised["class_path"]), "init_args": normalised["init_args"]}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(AnomalibModule, "model", fail_untyped=False, required=True)
    parsed = parser.parse_object({"model": copy.deepcopy(section)})
    return parser.instantiate_classes(parsed).model
