"""``ThresholdsFromTest``: a zero-shot model's thresholds fitted on the test pass, for runs without validation.

Where the validation split is the test split, a validation pass only repeats the test pass's forward on the same
files; the plugin's engine path (``evaluation/engine.py``) switches it off (``limit_val_batches=0``) and adds this
callback, which feeds each test batch's raw predictions to the post-processor's threshold metrics through its
public ``on_validation_batch_end`` hook (this trainer callback runs before the model's post-processor sees the
batch), fits the thresholds at the end of the test epoch (``on_validation_epoch_end``: equal to those of the
validation pass it replaces), then thresholds host copies of the predictions for the background
:class:`~anomalib_glocalclip.components.heatmap_writer.HeatmapWriter`. Only for raw scores (no normalisation),
whose metrics thresholds do not change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from anomalib.post_processing import PostProcessor
from lightning.pytorch import Callback

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from lightning.pytorch import LightningModule, Trainer

    from .heatmap_writer import HeatmapWriter


def can_fit_on_test_pass(post_processor: Any) -> bool:
    """Whether ``post_processor`` is Anomalib's and thresholds without normalising (what the test pass can fit)."""
    return (
        isinstance(post_processor, PostProcessor)
        and post_processor.enable_thresholding
        and not post_processor.enable_normalization
    )


def _host_copy(batch: ImageBatch) -> ImageBatch:
    """A host copy of ``batch``'s predictions and ground truth with a 1x1 image (the heatmaps re-read each file).

    Without ``pred_label`` and ``pred_mask``: Anomalib's post-processor keeps those a batch already has.
    """
    changes: dict[str, Any] = {"pred_label": None, "pred_mask": None, "image": torch.zeros(len(batch), 3, 1, 1)}
    for name in ("anomaly_map", "pred_score", "gt_mask", "gt_label"):
        value = getattr(batch, name, None)
        if isinstance(value, torch.Tensor):
            changes[name] = value.detach().to("cpu", copy=True)
    return batch.update(in_place=False, **changes)


class ThresholdsFromTest(Callback):
    """Fit a zero-shot model's thresholds on the test pass itself, then write its heatmaps in the background.

    Acts where :func:`can_fit_on_test_pass` holds for the model's post-processor, else does nothing. ``heatmaps``:
    factory of the run's heatmap writer (called at test start), or ``None`` for no heatmaps.
    """

    def __init__(self, heatmaps: Callable[[], HeatmapWriter] | None = None) -> None:
        self.heatmaps = heatmaps
        self.active = False
        self._kept: list[ImageBatch] = []
        self._writer: HeatmapWriter | None = None

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Decide whether to act; open the heatmap writer if so."""
        del trainer
        self.active = can_fit_on_test_pass(getattr(pl_module, "post_processor", None))
        self._kept = []
        self._writer = self.heatmaps() if self.active and self.heatmaps is not None else None

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        """Feed the batch's raw predictions to the post-processor's threshold metrics; keep a host copy for heatmaps."""
        del batch, batch_idx, dataloader_idx
        if not self.active:
            return
        pl_module.post_processor.on_validation_batch_end(trainer, pl_module, outputs)
        if self._writer is not None:
            self._kept.append(_host_copy(outputs))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the thresholds as validation would have; threshold the kept batches with them and queue their heatmaps.

        The post-processor works on the host meanwhile (the kept copies are there).
        """
        if not self.active:
            return
        post_processor = pl_module.post_processor
        post_processor.on_validation_epoch_end(trainer, pl_module)
        if hasattr(pl_module, "validated_on_data"):
            pl_module.validated_on_data = True  # thresholds from data: a later run without data keeps them
        kept, self._kept = self._kept, []
        if self._writer is None:
            return
        post_processor.to("cpu")
        try:
            for batch in kept:
                post_processor.post_process_batch(batch)
        finally:
            post_processor.to(pl_module.device)
        for batch in kept:
            self._writer.submit(batch)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for the heatmaps; a drawing error fails the test."""
        del trainer, pl_module
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
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
