"""From the model and data entries of a benchmark config to instances, every model with the same evaluator.

Models are resolved by Anomalib's ``get_model``: short names (``GlocalCLIP``, ``AnoCLIP``, ``WinClip``,
case-insensitive) and ``anomalib.models.*`` paths. The plugin's own dotted paths (``anomalib_glocalclip.GlocalCLIP``)
become short names, because ``get_model`` refuses modules outside Anomalib's whitelist and the plugin registers
its classes in ``anomalib.models``. Datamodules are resolved by Anomalib's ``get_datamodule`` (``anomalib.data``,
where the plugin's datamodules are registered too).
"""

from __future__ import annotations

from typing import Any

from anomalib.data import AnomalibDataModule, get_datamodule
from anomalib.models import AnomalibModule, get_model

from anomalib_glocalclip.components import zero_shot_evaluator

PLUGIN_MODULE = "anomalib_glocalclip"
LABEL_KEY = "name"
"""Optional key of a model entry: the model's name in the results table (default: its class name)."""


def normalise_spec(spec: str | dict[str, Any]) -> dict[str, Any]:
    """``"WinClip"`` or ``{class_path, init_args, name}`` as ``{"class_path": ..., "init_args": {...}, ...}``."""
    if isinstance(spec, str):
        return {"class_path": spec, "init_args": {}}
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        msg = f"A model or data entry needs a `class_path` (a class name), got {spec!r}."
        raise TypeError(msg)
    return {**spec, "init_args": dict(spec.get("init_args") or {})}


def class_name(spec: str | dict[str, Any]) -> str:
    """The short class name of a model or data entry (``anomalib.models.WinClip`` -> ``WinClip``)."""
    return normalise_spec(spec)["class_path"].rsplit(".", 1)[-1]


def model_label(spec: str | dict[str, Any]) -> str:
    """The model's name in the results table: the entry's ``name``, else its class name."""
    normalised = normalise_spec(spec)
    return str(normalised.get(LABEL_KEY) or class_name(normalised))


def build_model(spec: str | dict[str, Any]) -> AnomalibModule:
    """Instantiate a model entry through ``get_model``, then give it the plugin's zero-shot evaluator.

    The shared evaluator makes every model log the same metrics (image AUROC/AUPR/F1Max, pixel
    AUROC/AUPRO/F1Max). It is set on the instance: a config holds plain data only, and ``get_model`` passes
    dotted-path init args through OmegaConf. The visualizer is switched off, as a benchmark keeps no images,
    unless the entry sets ``visualizer`` itself.
    """
    normalised = normalise_spec(spec)
    class_path, init_args = normalised["class_path"], normalised["init_args"]
    if class_path.startswith(f"{PLUGIN_MODULE}."):
        class_path = class_path.rsplit(".", 1)[-1]
    if "." in class_path:  # anomalib.models.X: Anomalib's whitelisted import
        model = get_model({"class_path": class_path, "init_args": init_args})
    else:  # a short name, matched case-insensitively; init args are passed as they are
        model = get_model(class_path, **init_args)
    model.evaluator = zero_shot_evaluator()
    if "visualizer" not in init_args:
        model.visualizer = None
    return model


def build_datamodule(spec: str | dict[str, Any]) -> AnomalibDataModule:
    """Instantiate a data entry through Anomalib's ``get_datamodule``."""
    normalised = normalise_spec(spec)
    return get_datamodule({"class_path": normalised["class_path"], "init_args": normalised["init_args"]})
