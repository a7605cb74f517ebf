"""Shared bases and components of the plugin's zero-shot CLIP models (as ``anomalib.models.components``).

``ZeroShotCLIPMixin`` (``base``) is what GlocalCLIP and AnoCLIP share, made of the mixins of ``few_shot``,
``post_processor`` and ``export``; the other modules each hold one component of it (pre-processor, reference
resize, evaluator, visualizer, prediction table).
"""

from .base import ZeroShotCLIPMixin
from .evaluator import zero_shot_evaluator
from .export import ExportRefusedError
from .post_processor import FittedThresholdPostProcessor, set_natural_thresholds
from .pre_processor import PREPROCESSING_MODES, CLIPPreProcessor, clip_pre_processor
from .prediction_table import PredictionTable
from .reference_resize import ReferenceResize

__all__ = [
    "PREPROCESSING_MODES",
    "CLIPPreProcessor",
    "ExportRefusedError",
    "FittedThresholdPostProcessor",
    "PredictionTable",
    "ReferenceResize",
    "ZeroShotCLIPMixin",
    "clip_pre_processor",
    "set_natural_thresholds",
    "zero_shot_evaluator",
]
