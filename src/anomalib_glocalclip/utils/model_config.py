"""One builder for a model named in a config: the sweep's ``--model config.yaml`` and the benchmark's model entries.

A model entry is a class name or ``{class_path, init_args}``, as in Anomalib's configs: short names are matched
case-insensitively among the models on ``anomalib.models`` (Anomalib's and this plugin's), dotted paths imported.
Anomalib is imported only when a model is built.
"""

import copy
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from anomalib.models import AnomalibModule

ClassSpec = str | dict[str, object]


class ClassEntry(TypedDict):
    """A ``ClassSpec`` (a config's model or data entry) normalised; its other keys (a model's ``name``) are kept."""

    class_path: str
    init_args: dict[str, object]


def normalise_spec(spec: ClassSpec) -> ClassEntry:
    """``"WinClip"`` or ``{class_path, init_args, ...}`` as ``{"class_path": ..., "init_args": {...}, ...}``.

    Raises:
        TypeError: ``spec`` has no ``class_path`` string.
    """
    if isinstance(spec, str):
        return {"class_path": spec, "init_args": {}}
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        msg = f"A model or data entry needs a `class_path` (a class name), got {spec!r}."
        raise TypeError(msg)
    return {**spec, "init_args": dict(spec.get("init_args") or {})}


def class_name(spec: ClassSpec) -> str:
    """The short class name of an entry (``anomalib.models.WinClip`` -> ``WinClip``)."""
    return normalise_spec(spec)["class_path"].rsplit(".", 1)[-1]


def resolve_class_path(class_path: str) -> str:
    """The dotted path of a model class: short names are looked up on ``anomalib.models``, dotted paths kept.

    Raises:
        UnknownModelError: no model on ``anomalib.models`` has that short name (Anomalib's error, as from
            ``get_model``).
    """
    if "." in class_path:
        return class_path
    import anomalib.models
    from anomalib.models import AnomalibModule, UnknownModelError

    from anomalib_glocalclip.registry import register_with_anomalib

    register_with_anomalib()  # the plugin's models, even with the start-up hook off
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
    raise UnknownModelError(msg)


def _has_nested_classes(value: object) -> bool:
    if isinstance(value, dict):
        return "class_path" in value or any(_has_nested_classes(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nested_classes(item) for item in value)
    return False


def build_model(spec: ClassSpec) -> "AnomalibModule":
    """Instantiate a model entry.

    Init args are passed as they are, as Anomalib's ``get_model`` does, so that an error of the model's constructor
    reaches the caller unchanged; init args holding components in config form (``{class_path, init_args}``) are
    built as Anomalib's CLI builds them (jsonargparse). Keys of ``spec`` other than those two are ignored.

    Raises:
        TypeError: the class is not an Anomalib model.
        UnknownModelError: an unknown short name.
    """
    import importlib

    from anomalib.models import AnomalibModule

    normalised = normalise_spec(spec)
    class_path, init_args = resolve_class_path(normalised["class_path"]), normalised["init_args"]
    if _has_nested_classes(init_args):
        from jsonargparse import ArgumentParser

        parser = ArgumentParser(exit_on_error=False)
        parser.add_subclass_arguments(AnomalibModule, "model", fail_untyped=False, required=True)
        parsed = parser.parse_object({"model": {"class_path": class_path, "init_args": copy.deepcopy(init_args)}})
        return parser.instantiate_classes(parsed).model
    module_name, _, name = class_path.rpartition(".")
    model_class = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(model_class, type) and issubclass(model_class, AnomalibModule)):
        msg = f"{class_path} is not an Anomalib model (a subclass of AnomalibModule)."
        raise TypeError(msg)
    return model_class(**copy.deepcopy(init_args))
