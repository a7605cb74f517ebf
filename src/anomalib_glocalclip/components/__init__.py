"""Shared bases and components of the plugin's zero-shot CLIP models (as ``anomalib.models.components``).

* ``ZeroShotCLIPMixin`` (``base``): what GlocalCLIP and AnoCLIP share, mixed in before ``AnomalibModule``.
* ``clip_pre_processor`` (``pre_processor``): bicubic resize and CLIP normalisation.
* ``zero_shot_evaluator`` (``evaluator``): the metric set of every model, sweep and benchmark of the plugin.
* ``PredictionTable`` (``prediction_table``): ``predictions.csv`` written by ``predict``.
"""

from .base import ZeroShotCLIPMixin, no_validation_data, set_natural_thresholds
from .evaluator import zero_shot_evaluator
from .pre_processor import clip_pre_processor
from .prediction_table import PredictionTable

__all__ = [
    "PredictionTable",
    "ZeroShotCLIPMixin",
    "clip_pre_processor",
    "no_validation_data",
    "set_natural_thresholds",
    "zero_shot_evaluator",
]

# Importing this subpackage directly (before the plugin's package names) must register the plugin too: the
# start-up hook leaves it to the plugin while one of its modules is still being imported.
from anomalib_glocalclip import register

register(__name__)
