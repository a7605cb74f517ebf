"""Shared bases and components of the plugin's zero-shot CLIP models (as ``anomalib.models.components``).

* ``ZeroShotCLIPMixin`` (``base``): what GlocalCLIP and AnoCLIP share, mixed in before ``AnomalibModule``.
* ``clip_pre_processor``, ``CLIPPreProcessor`` (``pre_processor``): resize and CLIP normalisation,
  torchvision's tensor bicubic (``preprocessing="anomalib"``) or the model's reference's PIL resize (``"reference"``).
* ``ReferenceResize`` (``reference_resize``): PIL's 8-bit bicubic or bilinear (images) and bilinear > 0.5 (masks)
  in torch.
* ``zero_shot_evaluator`` (``evaluator``): the metric set of every model, sweep and benchmark of the plugin.
* ``PredictionTable`` (``prediction_table``): ``predictions.csv`` written by ``predict``, with a status per image.
* ``ThresholdsFromTest`` (``one_pass``): thresholds fitted on the test pass of the plugin's commands
  where validation would score the same files again (see ``evaluation/engine.py``).
* ``ReaderCheck`` (``reader_check``): refuses, by name, the files Anomalib's own datasets would read wrong, and a
  test split without anomalous images; ``check_predict_files`` (``predict_input``): the same for ``predict`` on a
  folder, whose unreadable files are left out.
"""

from .base import ExportRefusedError, ZeroShotCLIPMixin, no_validation_data, set_natural_thresholds
from .evaluator import zero_shot_evaluator
from .pre_processor import PREPROCESSING_MODES, CLIPPreProcessor, clip_pre_processor
from .predict_input import check_predict_files
from .prediction_table import PredictionTable, SkippedImagesError
from .reader_check import ReaderCheck
from .reference_resize import ReferenceResize

__all__ = [
    "PREPROCESSING_MODES",
    "CLIPPreProcessor",
    "ExportRefusedError",
    "PredictionTable",
    "ReaderCheck",
    "ReferenceResize",
    "SkippedImagesError",
    "ZeroShotCLIPMixin",
    "check_predict_files",
    "clip_pre_processor",
    "no_validation_data",
    "set_natural_thresholds",
    "zero_shot_evaluator",
]
