"""``ThresholdsFromTest``: a model's thresholds fitted on the test pass, for runs whose validation split is the test's.

There a validation pass only repeats the test pass's forward on the same files; the plugin's engine path
(``engine.py``) switches it off (``limit_val_batches=0``) and adds this callback. It feeds each test batch's raw
predictions to Anomalib's ``F1AdaptiveThreshold`` metrics (the ones the post-processor fits on validation, so the
thresholds equal those of the validation pass it replaces; gathered over every process under DDP), gives the
fitted thresholds to the post-processor at the end of the test epoch, and thresholds host copies of the predictions
with it for the background :class:`~anomalib_glocalclip.evaluation.heatmap_writer.HeatmapWriter`. Only for a
:class:`~anomalib_glocalclip.components.post_processor.FittedThresholdPostProcessor` on raw scores, which labels at
the thresholds it holds (normalised scores would need the fitted range before the test).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from anomalib.metrics import F1AdaptiveThreshold
from lightning.pytorch import Callback

from anomalib_glocalclip.compat import set_post_processor_thresholds
from anomalib_glocalclip.components.post_processor import FittedThresholdPostProcessor

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from anomalib.models import AnomalibModule
    from lightning.pytorch import Trainer

    from .heatmap_writer import HeatmapWriter


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
    """Fit a model's thresholds on the test pass itself, then write its heatmaps in the background.

    Acts where :func:`can_fit_on_test_pass` holds for the model's post-processor, else does nothing. ``heatmaps``:
    factory of the run's heatmap writer (called at test start), or ``None`` for no heatmaps.
    """

    def __init__(self, heatmaps: Callable[[], HeatmapWriter] | None = None) -> None:
        self.heatmaps = heatmaps
        self.active = False
        self._image = F1AdaptiveThreshold(fields=["pred_score", "gt_label"], strict=False)
        self._pixel = F1AdaptiveThreshold(fields=["anomaly_map", "gt_mask"], strict=False)
        self._kept: list[ImageBatch] = []
        self._writer: HeatmapWriter | None = None

    def on_test_start(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """Decide whether to act; if so, reset the metrics and open the heatmap writer."""
        del trainer
        self.active = can_fit_on_test_pass(pl_module.post_processor)
        self._kept = []
        if self.active:
            for metric in (self._image, self._pixel):
                metric.reset()
                metric.to(pl_module.device)
        self._writer = self.heatmaps() if self.active and self.heatmaps is not None else None

    def on_test_batch_end(self, trainer: Trainer, pl_module: AnomalibModule, outputs: ImageBatch,
                          batch: ImageBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Add the batch's raw predictions to the threshold metrics; keep a host copy for the heatmaps."""
        del trainer, pl_module, batch, batch_idx, dataloader_idx
        if not self.active:
            return
        self._image.update(outputs)
        self._pixel.update(outputs)
        if self._writer is not None:
            self._kept.append(_host_copy(outputs))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """Give the post-processor the fitted thresholds; label the kept batches with it and queue their heatmaps."""
        del trainer
        if not self.active:
            return
        post_processor = pl_module.post_processor
        set_post_processor_thresholds(post_processor, image=_fitted(self._image), pixel=_fitted(self._pixel))
        pl_module.validated_on_data = True  # thresholds from data: a later run without data keeps them
        kept, self._kept = self._kept, []
        if self._writer is None:
            return
        post_processor.to("cpu")  # where the kept copies are
        try:
            for batch in kept:
                post_processor.post_process_batch(batch)
        finally:
            post_processor.to(pl_module.device)
        for batch in kept:
            self._writer.submit(batch)

    def on_test_end(self, trainer: Trainer, pl_module: AnomalibModule) -> None:
        """Wait for the heatmaps; a drawing error fails the test."""
        del trainer, pl_module
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: AnomalibModule, exception: BaseException) -> None:
        """Stop the writer's threads (pictures already drawn stay) when the run fails."""
        del trainer, pl_module, exception
        self._kept = []
        with contextlib.suppress(Exception):  # the run's own error is the one to report
            self._close()

    def _close(self) -> None:
        self.active = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
