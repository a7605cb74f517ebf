"""``ThresholdsFromTest``: a zero-shot test in one pass where the validation split is the test split.

Anomalib validates a zero-shot model before ``test`` to fit its post-processor's thresholds (and normalisation)
on the validation split. Where that split *is* the test split (MVTec AD's and the plugin's default,
``val_split_mode="same_as_test"``) and scores are not normalised, the validation pass only repeats the test
pass's forward on the same files: the metrics are computed on raw scores, which thresholds do not change. This
callback lets the test pass do both jobs. Run the test with validation switched off (``limit_val_batches=0``)
and this callback in the trainer's callbacks; it

* feeds every test batch's raw predictions to the post-processor's threshold metrics, exactly as its
  ``on_validation_batch_end`` does during validation;
* at the end of the test epoch fits the thresholds (the post-processor's ``on_validation_epoch_end``), so
  they equal those of the validation pass it replaces, then thresholds the kept predictions (``pred_label``,
  ``pred_mask``) and hands them to a :class:`~anomalib_glocalclip.components.heatmap_writer.HeatmapWriter`,
  which draws them in the background while the metrics are computed.

Predictions are kept on the host without their input images (the visualizer re-reads each file by path).
With normalisation enabled the callback does nothing: normalised metrics need the fitted ranges before the
first test batch, so such runs keep Anomalib's validation pass.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
from anomalib.post_processing import PostProcessor
from lightning.pytorch import Callback

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from lightning.pytorch import LightningModule, Trainer

    from .heatmap_writer import HeatmapWriter


def _host_copy(batch: ImageBatch) -> ImageBatch:
    """``batch`` on the host with a 1x1 placeholder image (the heatmaps re-read each image from its path)."""
    changes: dict[str, Any] = {}
    for name in ("anomaly_map", "pred_score", "gt_mask", "gt_label"):
        value = getattr(batch, name, None)
        if isinstance(value, torch.Tensor):
            changes[name] = value.detach().to("cpu", non_blocking=False)
    changes["image"] = torch.zeros(len(batch), 3, 1, 1)
    return batch.update(in_place=False, **changes)


class ThresholdsFromTest(Callback):
    """Fit a zero-shot model's thresholds on the test pass itself, then write its heatmaps in the background.

    It acts on a test that no validation pass preceded (on the same trainer), for a post-processor that
    thresholds without normalising; otherwise it does nothing, heatmaps included.

    Args:
        heatmaps: factory of the heatmap writer of a run (called with the trainer at test start), or ``None``
            for no heatmaps. Defaults to ``None``.
    """

    def __init__(self, heatmaps: Any = None) -> None:  # noqa: ANN401 - a callable (Trainer) -> HeatmapWriter
        self.heatmaps = heatmaps
        self.active = False
        self._validated = False
        self._kept: list[ImageBatch] = []
        self._writer: HeatmapWriter | None = None

    @staticmethod
    def applies(post_processor: Any) -> bool:  # noqa: ANN401 - any post-processor
        """Whether ``post_processor`` is Anomalib's and thresholds without normalising."""
        return (
            isinstance(post_processor, PostProcessor)
            and post_processor.enable_thresholding
            and not post_processor.enable_normalization
        )

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A validation pass ran: its thresholds stand, the test pass leaves them alone."""
        del trainer, pl_module
        self._validated = True

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Switch on where no validation pass ran before this test and the post-processor does not normalise."""
        self.active = not self._validated and self.applies(getattr(pl_module, "post_processor", None))
        self._kept = []
        self._writer = self.heatmaps(trainer) if (self.active and self.heatmaps is not None) else None

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,  # noqa: ANN401 - the test step's batch
        batch: Any,  # noqa: ANN401
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Feed the batch's raw predictions to the threshold metrics; keep them for the heatmaps."""
        del batch, batch_idx, dataloader_idx
        if not self.active:
            return
        pl_module.post_processor.on_validation_batch_end(trainer, pl_module, outputs)
        if self._writer is not None:
            self._kept.append(_host_copy(outputs))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the thresholds as validation would have; threshold the kept batches and queue their heatmaps."""
        if not self.active:
            return
        post_processor = pl_module.post_processor
        post_processor.on_validation_epoch_end(trainer, pl_module)
        if self._writer is None:
            return
        post_processor.to("cpu")
        try:
            for kept in self._kept:
                post_processor.post_process_batch(kept)
                self._writer.submit(kept)
        finally:
            post_processor.to(pl_module.device)
            self._kept = []

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for the heatmaps; a drawing error fails the test."""
        del trainer, pl_module
        self._validated = False
        self._close_writer()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Stop the writer's threads (pictures already drawn stay) when the run fails."""
        del trainer, pl_module, exception
        self._kept = []
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):  # the run's own error is the one to report
                writer.close()

    def _close_writer(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
