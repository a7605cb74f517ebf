"""``ThresholdsFromTest``: a model's thresholds fitted on the test pass, for runs whose validation split is the test's.

There validation would repeat the test's forward on the same files; the plugin's engine path (``engine.py``) turns
it off and adds this callback. It feeds the test batches' raw predictions to Anomalib's ``F1AdaptiveThreshold``
metrics (the post-processor's own on validation, so the thresholds are those validation would fit; synced over the
processes under DDP), sets the fitted thresholds on the post-processor, labels host copies of the predictions with
them and draws their heatmaps on a few threads. Only for a ``FittedThresholdPostProcessor`` on raw scores.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from anomalib.metrics import F1AdaptiveThreshold
from lightning.pytorch import Callback

from anomalib_glocalclip.compat import set_post_processor_thresholds
from anomalib_glocalclip.components.post_processor import FittedThresholdPostProcessor
from anomalib_glocalclip.components.visualizer import save_pictures

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from anomalib.models import AnomalibModule
    from anomalib.visualization import ImageVisualizer
    from lightning.pytorch import Trainer

DRAWING_THREADS = min(4, os.cpu_count() or 1)


def can_fit_on_test_pass(post_processor: object) -> bool:
    """Whether ``post_processor`` labels raw scores at the thresholds it holds (which the test pass can fit)."""
    return (
        isinstance(post_processor, FittedThresholdPostProcessor)
        and post_processor.enable_thresholding
        and not post_processor.enable_normalization
    )


def _host_copy(batch: ImageBatch) -> ImageBatch:
    """A host copy of ``batch``'s predictions and ground truth with a 1x1 image (the heatmaps re-read each file).

    Without ``pred_label`` and ``pred_mask``: Anomalib's post-processor keeps those a batch already has.
    """
    changes: dict[str, torch.Tensor | None] = {"pred_label": None, "pred_mask": None,
                                               "image": torch.zeros(len(batch), 3, 1, 1)}
    for name in ("anomaly_map", "pred_score", "gt_mask", "gt_label"):
        value = getattr(batch, name, None)
        if isinstance(value, torch.Tensor):
            changes[name] = value.detach().to("cpu", copy=True)
    return batch.update(in_place=False, **changes)


def _fitted(metric: F1AdaptiveThreshold) -> float:
    """The metric's threshold, or NaN when no batch had its fields (e.g. no masks)."""
    return float(metric.compute()) if metric.update_called else math.nan


class ThresholdsFromTest(Callback):
    """Fit a model's thresholds on the test pass itself, then draw its heatmaps with ``visualizer`` (if given).

    Acts where :func:`can_fit_on_test_pass` holds for the model's post-processor, else does nothing. The pictures go
    to the visualizer's ``output_dir``, under Anomalib's file names.
    """

    def __init__(self, visualizer: ImageVisualizer | None = None) -> None:
        self.visualizer = visualizer
        self.active = False
        self._image = F1AdaptiveThreshold(fields=["pred_score", "gt_label"], strict=False)
        self._pixel = F1AdaptiveThreshold(fields=["anomaly_map", "gt_mask"], strict=False)
        self._kept: list[ImageBatch] = []

    def on_test_start(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """Decide whether to act; if so, reset the metrics."""
        del trainer
        self.active = can_fit_on_test_pass(pl_module.post_processor)
        self._kept = []
        for metric in (self._image, self._pixel):
            metric.reset()
            metric.to(pl_module.device)

    def on_test_batch_end(self, trainer: Trainer, pl_module: AnomalibModule, outputs: ImageBatch,
                          batch: ImageBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Add the batch's raw predictions to the threshold metrics; keep a host copy for the heatmaps."""
        del trainer, pl_module, batch, batch_idx, dataloader_idx
        if not self.active:
            return
        self._image.update(outputs)
        self._pixel.update(outputs)
        if self.visualizer is not None:
            self._kept.append(_host_copy(outputs))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """Give the post-processor the fitted thresholds; label the kept batches with it and draw their heatmaps."""
        if not self.active:
            return
        post_processor = pl_module.post_processor
        set_post_processor_thresholds(post_processor, image=_fitted(self._image), pixel=_fitted(self._pixel))
        pl_module.validated_on_data = True  # thresholds from data: a later run without data keeps them
        kept, self._kept = self._kept, []
        if self.visualizer is None:
            return
        post_processor.to("cpu")  # where the kept copies are
        try:
            for each in kept:
                post_processor.post_process_batch(each)
        finally:
            post_processor.to(pl_module.device)
        datamodule = getattr(trainer, "datamodule", None)
        name, category = getattr(datamodule, "name", None), getattr(datamodule, "category", None)
        output = Path(self.visualizer.output_dir or Path(trainer.default_root_dir) / "images")
        with ThreadPoolExecutor(DRAWING_THREADS, thread_name_prefix="heatmaps") as pool:
            for _ in pool.map(lambda each: save_pictures(self.visualizer, each, output, name, category), kept):
                pass  # re-raises the first drawing error

    def on_exception(self, trainer: Trainer, pl_module: AnomalibModule, exception: BaseException) -> None:
        """Drop the kept predictions when the run fails."""
        del trainer, pl_module, exception
        self._kept = []
