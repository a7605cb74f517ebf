"""Anomalib components both models configure the same way: CLIP pre-processing and the zero-shot evaluator."""

from __future__ import annotations

from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Max
from anomalib.pre_processing import PreProcessor
from torchvision.transforms.v2 import Compose, InterpolationMode, Normalize, Resize

from .backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


def clip_pre_processor(image_size: int | tuple[int, int]) -> PreProcessor:
    """Bicubic resize to the backbone's input size and CLIP normalisation.

    Anomalib copies this ``Resize`` into the datasets' augmentations, so images of different native
    sizes collate, and masks are resized with their images.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return PreProcessor(
        transform=Compose([
            Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=True),
            Normalize(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD),
        ]),
    )


def zero_shot_evaluator() -> Evaluator:
    """Image AUROC, AUPR, F1Max and pixel AUROC, AUPRO (FPR <= 0.3), F1Max.

    Pixel metrics are non-strict, so image-level datasets (no masks) skip them. The same metric names are
    used by every model of this plugin, and by WinCLIP in its benchmark, so results tables line up.
    """
    test_metrics = [
        AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
        AUPR(fields=["pred_score", "gt_label"], prefix="image_"),
        F1Max(fields=["pred_score", "gt_label"], prefix="image_"),
        AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False, fpr_limit=0.3),
        F1Max(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
    ]
    return Evaluator(test_metrics=test_metrics)
