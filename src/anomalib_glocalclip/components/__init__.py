"""Shared bases and components of the plugin's zero-shot CLIP models (as ``anomalib.models.components``).

``ZeroShotCLIPMixin`` (``base``) is what GlocalCLIP and AnoCLIP share; the other modules each hold one component
of it (pre-processor, reference resize, evaluator, visualizer, prediction table, few-shot references) or of the
plugin's engine path (``one_pass``, ``heatmap_writer``), and ``ReaderCheck`` (``reader_check``), which refuses by name
the files Anomalib's own datasets would read wrong.
"""

from .base import ExportRefusedError, ZeroShotCLIPMixin, no_validation_data, set_natural_thresholds
from .evaluator import zero_shot_evaluator
from .pre_processor import PREPROCESSING_MODES, CLIPPreProcessor, clip_pre_processor
from .prediction_table import PredictionTable
from .reader_check import ReaderCheck
from .reference_resize import ReferenceResize

__all__ = [
    "PREPROCESSING_MODES",
    "CLIPPreProcessor",
    "ExportRefusedError",
    "PredictionTable",
    "ReaderCheck",
    "ReferenceResize",
    "ZeroShotCLIPMixin",
    "clip_pre_processor",
    "no_validation_data",
    "set_natural_thresholds",
    "zero_shot_evaluator",
]
