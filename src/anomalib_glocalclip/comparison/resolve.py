"""From the model and data entries of a benchmark config to instances, every model with the same evaluator.

Models are built by ``utils/model_config.py`` (shared with the sweep), datamodules by Anomalib's
``get_datamodule``.
"""

from __future__ import annotations

from anomalib.data import AnomalibDataModule, get_datamodule
from anomalib.models import AnomalibModule

from anomalib_glocalclip.components import zero_shot_evaluator
from anomalib_glocalclip.utils.model_config import ClassSpec, class_name, normalise_spec
from anomalib_glocalclip.utils.model_config import build_model as build_configured_model

LABEL_KEY = "name"
"""Optional key of a model entry: the model's name in the results table (default: its class name)."""


def model_label(spec: ClassSpec) -> str:
    """The model's name in the results table: the entry's ``name``, else its class name."""
    normalised = normalise_spec(spec)
    return str(normalised.get(LABEL_KEY) or class_name(normalised))


def build_model(spec: ClassSpec) -> AnomalibModule:
    """Instantiate a model entry with the plugin's zero-shot evaluator (every model logs the same metrics).

    The visualizer is switched off, as a benchmark keeps no images, unless the entry sets ``visualizer`` itself.
    """
    model = build_configured_model(spec)
    model.evaluator = zero_shot_evaluator()
    if "visualizer" not in normalise_spec(spec)["init_args"]:
        model.visualizer = None
    return model


def build_datamodule(spec: ClassSpec) -> AnomalibDataModule:
    """Instantiate a data entry through Anomalib's ``get_datamodule``."""
    return get_datamodule(dict(normalise_spec(spec)))
