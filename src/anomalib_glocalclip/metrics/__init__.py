"""Metrics of the GlocalCLIP papers that Anomalib computes differently."""

from .reference_aupro import ReferenceAUPRO, reference_aupro, reference_pro_curve, reference_thresholds

__all__ = ["ReferenceAUPRO", "reference_aupro", "reference_pro_curve", "reference_thresholds"]
