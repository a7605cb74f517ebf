"""One test pass where the validation split is the test split: thresholds fitted on the test predictions.

Anomalib validates a zero-shot model before ``test`` to fit its post-processor's thresholds (and normalisation)
on the validation split. Where that split *is* the test split (MVTec AD's and the plugin's default,
``val_split_mode="same_as_test"``), the validation pass only repeats the test pass's forward on the same files.
The callbacks here let the test pass do both jobs; with validation skipped they

* feed every test batch's raw predictions to the post-processor's threshold and range metrics, exactly as its
  ``on_validation_batch_end`` does during validation (they run before the post-processor's test hook);
* at the end of the test epoch fit the thresholds and ranges (the post-processor's ``on_validation_epoch_end``),
  so they equal those of the validation pass they replace;
* where the post-processor normalises (Anomalib's default), feed the evaluator's test metrics again with the
  kept predictions normalised by the fitted ranges (the metrics are computed after this callback), so the
  metrics are those of the two-pass run; without normalisation the metrics are computed on raw scores, which
  thresholds do not change;
* threshold the kept predictions (``pred_label``, ``pred_mask``) and hand them to a
  :class:`~anomalib_glocalclip.components.heatmap_writer.HeatmapWriter`, which draws them in the background.

Two callbacks share that work:

* :class:`ThresholdsFromTest`, a trainer callback for runs that switch validation off themselves
  (``limit_val_batches=0``), as the ``evaluate`` sweep does for any Anomalib model;
* :class:`DeferredValidation`, which the plugin's models add to every run: ``Engine.test`` (``anomalib test``)
  and ``Engine.predict`` validate before testing or predicting on the same datamodule, and the model skips
  that pass where it would score the same files again (see ``ZeroShotCLIPMixin.setup``); this callback then
  fits the thresholds on the test or predict pass, and post-processes and draws its predictions after it.

Predictions are kept without their input images (the visualizer re-reads each file by path): on the host for
heatmaps, on the device where the evaluator is fed again. ``ThresholdsFromTest`` acts only without
normalisation (the sweep normalises nothing by default and validates where asked to normalise).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from anomalib.metrics import Evaluator
from anomalib.post_processing import PostProcessor
from lightning.pytorch import Callback

from .heatmap_writer import HeatmapWriter
from .prediction_table import PredictionTable

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from lightning.pytorch import LightningModule, Trainer


def thresholds_from_test_apply(post_processor: Any) -> bool:
    """Whether ``post_processor`` is Anomalib's and thresholds without normalising (as the ``evaluate`` sweep needs)."""
    return (
        isinstance(post_processor, PostProcessor)
        and post_processor.enable_thresholding
        and not post_processor.enable_normalization
    )


def test_pass_can_fit(post_processor: Any, evaluator: Any) -> bool:
    """Whether a test pass can fit ``post_processor`` itself, in place of a validation pass.

    It can for Anomalib's post-processor; where that normalises, only with Anomalib's evaluator (whose metrics
    are fed again with the rightly normalised predictions) or none.
    """
    if not isinstance(post_processor, PostProcessor):
        return False
    return not post_processor.enable_normalization or evaluator is None or isinstance(evaluator, Evaluator)


def validation_is_test_split(datamodule: Any) -> bool:
    """Whether ``datamodule``'s validation items are its test items: same files, same augmentations.

    True for Anomalib datamodules with ``val_split_mode="same_as_test"`` whose validation and test
    augmentations are the same object (both ``None`` by default).
    """
    from anomalib.data.utils import ValSplitMode

    return (
        datamodule is not None
        and getattr(datamodule, "val_split_mode", None) == ValSplitMode.SAME_AS_TEST
        and getattr(datamodule, "val_augmentations", None) is getattr(datamodule, "test_augmentations", None)
    )


def predicts_test_split(datamodule: Any) -> bool:
    """Whether ``datamodule``'s predict data is its test split (Anomalib's ``predict_dataloader``, not overridden)."""
    from anomalib.data import AnomalibDataModule

    return isinstance(datamodule, AnomalibDataModule) and (
        type(datamodule).predict_dataloader is AnomalibDataModule.predict_dataloader
    )


def _copy(batch: ImageBatch, device: torch.device | str | None = None, thresholded: bool = False) -> ImageBatch:
    """A copy of ``batch``'s predictions and ground truth (on ``device``, default their own), with a 1x1 image.

    Without ``thresholded``, ``pred_label`` and ``pred_mask`` are dropped, so that thresholding the copy sets
    them afresh (Anomalib's post-processor keeps labels and masks a batch already has). The heatmaps re-read
    each image from its path.
    """
    names = ("anomaly_map", "pred_score", "gt_mask", "gt_label", "pred_label", "pred_mask")
    changes: dict[str, Any] = {} if thresholded else {"pred_label": None, "pred_mask": None}
    for name in names if thresholded else names[:4]:
        value = getattr(batch, name, None)
        if isinstance(value, torch.Tensor):
            changes[name] = value.detach().to(device or value.device, copy=True)
    changes["image"] = torch.zeros(len(batch), 3, 1, 1)
    return batch.update(in_place=False, **changes)


def _post_process_on_host(post_processor: PostProcessor, kept: list[ImageBatch], device: torch.device) -> None:
    """Normalise and threshold host copies of batches, the post-processor on the host meanwhile."""
    post_processor.to("cpu")
    try:
        for batch in kept:
            post_processor.post_process_batch(batch)
    finally:
        post_processor.to(device)


class _TestPassThresholds(Callback):
    """Fit the thresholds on the test pass and draw heatmaps in the background, when :meth:`acts` says so."""

    def __init__(self) -> None:
        self.active = False
        self._kept: list[ImageBatch] = []
        self._writer: HeatmapWriter | None = None

    def acts(self, trainer: Trainer, pl_module: LightningModule) -> bool:
        """Whether this test pass fits the thresholds (asked at test start)."""
        raise NotImplementedError

    def heatmap_writer(self, trainer: Trainer, pl_module: LightningModule) -> HeatmapWriter | None:
        """The writer of this test's heatmaps, or ``None`` for none (asked at test start when acting)."""
        raise NotImplementedError

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Decide whether to act; open the heatmap writer if so."""
        self.active = self.acts(trainer, pl_module)
        self._kept = []
        self._writer = self.heatmap_writer(trainer, pl_module) if self.active else None

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Feed the batch's raw predictions to the post-processor's metrics, as validation would; keep what is needed.

        Runs before the post-processor's own ``on_test_batch_end`` (this callback comes first), so the
        predictions are still raw.
        """
        del batch, batch_idx, dataloader_idx
        if not self.active:
            return
        post_processor = pl_module.post_processor
        post_processor.on_validation_batch_end(trainer, pl_module, outputs)
        if post_processor.enable_normalization:
            self._kept.append(_copy(outputs))  # on the device: the evaluator's metrics are fed again
        elif self._writer is not None:
            self._kept.append(_copy(outputs, "cpu"))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the thresholds (and ranges) as validation would have; post-process the kept batches with them.

        Where the post-processor normalises, the evaluator's test metrics saw scores normalised by unfitted
        ranges during the pass: they are reset and fed the rightly normalised batches before the evaluator
        computes them (it comes after this callback). Then the heatmaps are queued.
        """
        if not self.active:
            return
        post_processor = pl_module.post_processor
        post_processor.on_validation_epoch_end(trainer, pl_module)
        if hasattr(pl_module, "validated_on_data"):
            pl_module.validated_on_data = True  # thresholds from data: a later run without data keeps them
        kept, self._kept = self._kept, []
        if post_processor.enable_normalization:
            self._refeed_evaluator(pl_module, kept)
        if self._writer is None:
            return
        if post_processor.enable_normalization:  # kept on the device, post-processed by _refeed_evaluator
            for batch in kept:
                self._writer.submit(_copy(batch, "cpu", thresholded=True))
            return
        _post_process_on_host(post_processor, kept, pl_module.device)
        for batch in kept:
            self._writer.submit(batch)

    @staticmethod
    def _refeed_evaluator(pl_module: LightningModule, kept: list[ImageBatch]) -> None:
        post_processor = pl_module.post_processor
        metrics = list(getattr(getattr(pl_module, "evaluator", None), "test_metrics", None) or [])
        for metric in metrics:
            metric.reset()
        for batch in kept:
            post_processor.post_process_batch(batch)
            for metric in metrics:
                metric.update(batch)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for the heatmaps; a drawing error fails the test."""
        del trainer, pl_module
        self.active = False
        self._close_writer()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Stop the writer's threads (pictures already drawn stay) when the run fails."""
        del trainer, pl_module, exception
        self.active = False
        self._kept = []
        if self._writer is not None:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):  # the run's own error is the one to report
                writer.close()

    def _close_writer(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


class ThresholdsFromTest(_TestPassThresholds):
    """Fit a zero-shot model's thresholds on the test pass itself, then write its heatmaps in the background.

    A trainer callback for runs that switch validation off (``limit_val_batches=0``) where the validation split
    is the test split. It acts on a test that no validation pass preceded (on the same trainer), for a
    post-processor that thresholds without normalising; otherwise it does nothing, heatmaps included.

    Args:
        heatmaps: factory of the heatmap writer of a run (called with the trainer at test start), or ``None``
            for no heatmaps. Defaults to ``None``.
    """

    def __init__(self, heatmaps: Any = None) -> None:
        super().__init__()
        self.heatmaps = heatmaps
        self._validated = False

    applies = staticmethod(thresholds_from_test_apply)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A validation pass ran: its thresholds stand, the test pass leaves them alone."""
        del trainer, pl_module
        self._validated = True

    def acts(self, trainer: Trainer, pl_module: LightningModule) -> bool:
        """Where no validation pass ran before this test and the post-processor does not normalise."""
        del trainer
        return not self._validated and self.applies(getattr(pl_module, "post_processor", None))

    def heatmap_writer(self, trainer: Trainer, pl_module: LightningModule) -> HeatmapWriter | None:
        """The run's factory's writer."""
        del pl_module
        return self.heatmaps(trainer) if self.heatmaps is not None else None

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for the heatmaps; the next test on this trainer decides afresh."""
        self._validated = False
        super().on_test_end(trainer, pl_module)


class DeferredValidation(_TestPassThresholds):
    """The plugin models' side of a one-pass ``Engine.test`` or ``Engine.predict``: thresholds from that pass.

    Acts when the model skipped the validation pass before this test or predict run (its ``validation_deferred``
    flag, set in ``ZeroShotCLIPMixin.setup``). The model's visualizer, a ``PluginImageVisualizer``, draws nothing
    during such a run, nor does ``PredictionTable`` collect rows; at the end of the run this callback fits the
    thresholds (and ranges), then

    * test: feeds the evaluator again where scores are normalised (see ``_TestPassThresholds``);
    * predict: post-processes the kept predictions and writes them into the predictions Lightning returns, and
      hands them to the ``PredictionTable``;

    and draws the visualizer's pictures, thresholded, under its ``output_dir`` (default ``<trainer root>/images``)
    with Anomalib's file names.
    """

    def __init__(self) -> None:
        super().__init__()
        self._positions: list[tuple[int, int]] = []  # (dataloader, batch) of each kept predict batch
        self._counts: dict[int, int] = {}

    def acts(self, trainer: Trainer, pl_module: LightningModule) -> bool:
        """Where the model deferred its validation to this run."""
        del trainer
        return bool(getattr(pl_module, "validation_deferred", False))

    def heatmap_writer(self, trainer: Trainer, pl_module: LightningModule) -> HeatmapWriter | None:
        """A background writer with the model's visualizer, or ``None`` for a model without one."""
        visualizer = getattr(pl_module, "visualizer", None)
        if visualizer is None:
            return None
        if visualizer.output_dir is None:
            visualizer.output_dir = Path(trainer.default_root_dir) / "images"
        datamodule = getattr(trainer, "datamodule", None)
        return HeatmapWriter(
            visualizer,
            visualizer.output_dir,
            dataset_name=getattr(datamodule, "name", None),
            category=getattr(datamodule, "category", None),
        )

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for the heatmaps; the model validates again before its next run unless it defers anew."""
        pl_module.validation_deferred = False
        super().on_test_end(trainer, pl_module)

    # ----- predict -----
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Decide whether to act; open the heatmap writer if so."""
        self.on_test_start(trainer, pl_module)
        self._positions = []
        self._counts = {}

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Feed the raw predictions to the post-processor's metrics (as validation would) and keep a host copy."""
        del batch, batch_idx
        if not self.active:
            return
        pl_module.post_processor.on_validation_batch_end(trainer, pl_module, outputs)
        self._kept.append(_copy(outputs, "cpu"))
        position = self._counts.get(dataloader_idx, 0)
        self._positions.append((dataloader_idx, position))
        self._counts[dataloader_idx] = position + 1

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fit the thresholds; post-process the kept predictions; hand them to the returned list, table, heatmaps."""
        if not self.active:
            return
        post_processor = pl_module.post_processor
        post_processor.on_validation_epoch_end(trainer, pl_module)
        pl_module.validated_on_data = True
        kept, self._kept = self._kept, []
        _post_process_on_host(post_processor, kept, pl_module.device)
        returned = _returned_predictions(trainer)
        tables = [callback for callback in trainer.callbacks if isinstance(callback, PredictionTable)]
        for prediction, (loader, position) in zip(kept, self._positions, strict=True):
            if loader < len(returned) and position < len(returned[loader]):
                _set_predictions(returned[loader][position], prediction)
            for table in tables:
                table.add_batch(prediction)
            if self._writer is not None:
                self._writer.submit(prediction)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for the heatmaps; the model validates again before its next run unless it defers anew."""
        pl_module.validation_deferred = False
        super().on_test_end(trainer, pl_module)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Stop the writer; the model validates again before its next run unless it defers anew."""
        pl_module.validation_deferred = False
        super().on_exception(trainer, pl_module, exception)


PREDICTION_FIELDS = ("pred_score", "anomaly_map", "pred_label", "pred_mask")


def _returned_predictions(trainer: Trainer) -> list[list[Any]]:
    """The batches ``Trainer.predict`` returns, per dataloader (empty lists when it returns none)."""
    predictions = trainer.predict_loop.predictions
    if not predictions:
        return []
    return predictions if isinstance(predictions[0], list) else [predictions]


def _set_predictions(returned: Any, prediction: ImageBatch) -> None:
    """Give a returned batch the post-processed scores, maps, labels and masks of ``prediction``."""
    for name in PREDICTION_FIELDS:
        value = getattr(prediction, name, None)
        if value is not None and hasattr(returned, name):
            setattr(returned, name, value)
