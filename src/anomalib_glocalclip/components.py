"""Anomalib components both models configure the same way: CLIP pre-processing, evaluator, prediction table."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Max
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from lightning.pytorch import Callback, LightningModule, Trainer
from torchvision.transforms.v2 import Compose, InterpolationMode, Normalize, Resize

from .backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from .metrics import ReferenceAUPRO
from .utils.files import atomic_path

logger = logging.getLogger(__name__)


class CLIPPreProcessor(PreProcessor):
    """Anomalib's ``PreProcessor``, except that training batches without images pass untouched.

    GlocalCLIP can train on cached encoder outputs (``CachedBatch``), which were pre-processed when they
    were encoded and carry no image.
    """

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:  # noqa: ANN401
        """Transform image batches; leave batches of cached features alone."""
        if getattr(batch, "image", None) is not None:
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)


def clip_pre_processor(image_size: int | tuple[int, int]) -> PreProcessor:
    """Bicubic resize to the backbone's input size and CLIP normalisation.

    Anomalib copies this ``Resize`` into the datasets' augmentations, so images of different native
    sizes collate, and masks are resized with their images.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return CLIPPreProcessor(
        transform=Compose([
            Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=True),
            Normalize(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD),
        ]),
    )


def zero_shot_evaluator(
    image_metrics: bool = True,
    pixel_metrics: bool = True,
    reference_aupro: bool = False,
    compute_on_cpu: bool = False,
) -> Evaluator:
    """Image AUROC, AUPR, F1Max and pixel AUROC, AUPRO (FPR <= 0.3), F1Max.

    Pixel metrics are non-strict, so image-level datasets (no masks) skip them. The same metric names are
    used by every model of this plugin, and by WinCLIP in its benchmark, so results tables line up. By default
    metric states stay on the model's device (no copy to the host after every batch).

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


class PredictionTable(Callback):
    """Write ``predictions.csv`` (image path, score, label) into the run folder after ``predict``.

    Anomalib's visualizer writes heatmaps; this gives the labels in a file a line can read. The table is
    written once, at the end, to a temporary name and renamed, so an interrupted run leaves no half table.
    """

    file_name = "predictions.csv"

    def __init__(self) -> None:
        self._rows: list[tuple[str, float, int | str]] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start a new table."""
        del trainer, pl_module
        self._rows = []

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, *args: Any) -> None:  # noqa: ANN401
        """Collect the batch's paths, scores and labels (after post-processing)."""
        del trainer, pl_module, args
        paths = getattr(outputs, "image_path", None) or [""] * len(outputs.pred_score)
        labels = outputs.pred_label if outputs.pred_label is not None else [""] * len(paths)
        for path, score, label in zip(paths, outputs.pred_score.flatten().tolist(), labels, strict=True):
            self._rows.append((str(path), float(score), int(label) if label != "" else ""))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the table (rank zero only)."""
        del pl_module
        if not trainer.is_global_zero or not self._rows:
            return
        path = Path(trainer.default_root_dir) / self.file_name
        with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["image_path", "pred_score", "pred_label"])
            writer.writerows(self._rows)
        logger.info("Predictions written to %s", path)


def set_natural_thresholds(post_processor: Any, pixel_scale: float = 1.0) -> None:  # noqa: ANN401
    """Thresholds and ranges for runs without validation data, for scores that are probabilities.

    An image or pixel is anomalous when its anomalous probability exceeds 0.5; scores range over [0, 1] (pixel
    scores over ``[0, pixel_scale]`` when a map sums ``pixel_scale`` probabilities). Validation on the target,
    when there is one, replaces all of them.
    """
    if not isinstance(post_processor, PostProcessor):
        return
    for name, value in (
        ("_image_threshold", 0.5),
        ("image_min", 0.0),
        ("image_max", 1.0),
        ("_pixel_threshold", 0.5 * pixel_scale),
        ("pixel_min", 0.0),
        ("pixel_max", pixel_scale),
    ):
        getattr(post_processor, name).fill_(value)


def no_validation_data(model_name: str) -> list:
    """What a zero-shot model's own ``val_dataloader`` returns: nothing, with a warning.

    Anomalib validates zero-shot models before ``test``/``predict`` to set thresholds. Without a datamodule
    (e.g. ``anomalib predict`` on a folder) Lightning falls back to the model's ``val_dataloader``; an empty
    one skips validation, so the natural thresholds of ``set_natural_thresholds`` apply.
    """
    logger.warning(
        "No validation data: %s uses natural thresholds (anomalous probability 0.5). Pass a datamodule of the "
        "target to set thresholds and normalisation from its validation split.",
        model_name,
    )
    return []
