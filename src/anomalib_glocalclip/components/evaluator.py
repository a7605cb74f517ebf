"""The plugin's metric set: one function for the models, the evaluation sweep and the benchmark."""

from __future__ import annotations

from anomalib.metrics import AUPR, AUROC, Evaluator, F1Max

from anomalib_glocalclip.metrics import AUPRO, ReferenceAUPRO


def zero_shot_evaluator(
    image_metrics: bool = True, pixel_metrics: bool = True, reference_aupro: bool = False, compute_on_cpu: bool = False
) -> Evaluator:
    """Image AUROC, AUPR, F1Max and pixel AUROC, AUPRO (FPR <= 0.3), F1Max.

    Pixel metrics are non-strict, so image-level datasets (no masks) skip them. ``pixel_AUPRO`` is the plugin's
    :class:`~anomalib_glocalclip.metrics.AUPRO`: Anomalib's values, its regions labelled exactly once per stack.

    Args:
        image_metrics: include the image metrics (leave out where a test split holds one class only).
        pixel_metrics: include the pixel metrics (leave out for datasets without masks).
        reference_aupro: also the papers' AUPRO, ``pixel_ReferenceAUPRO`` (200 thresholds, FPR < 0.3 rescaled).
        compute_on_cpu: move metric states to the host after every batch.
    """
    test_metrics = []
    if image_metrics:
        test_metrics += [
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            AUPR(fields=["pred_score", "gt_label"], prefix="image_"),
            F1Max(fields=["pred_score", "gt_label"], prefix="image_"),
        ]
    if pixel_metrics:
        test_metrics += [
            AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            *([ReferenceAUPRO(prefix="pixel_", strict=False)] if reference_aupro else []),
            AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False, fpr_limit=0.3),
            F1Max(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        ]
    return Evaluator(test_metrics=test_metrics, compute_on_cpu=compute_on_cpu)
