"""Metrics of the GlocalCLIP papers that Anomalib computes differently, and Anomalib's AUPRO labelled exactly."""

from .aupro import AUPRO
from .reference_aupro import ReferenceAUPRO, reference_aupro, reference_pro_curve, reference_thresholds
from .regions import label_regions

__all__ = ["AUPRO", "ReferenceAUPRO", "label_regions", "reference_aupro", "reference_pro_curve", "reference_thresholds"]
