"""``predictions.csv``: image path, score and label of every image of a ``predict`` run, in the run folder."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from anomalib.data import ImageBatch
from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_glocalclip.data.predict_input import check_predict_files
from anomalib_glocalclip.utils.files import atomic_path

logger = logging.getLogger(__name__)


class PredictionTable(Callback):
    """Check ``predict``'s folders, and write ``predictions.csv`` into the run folder after ``predict``.

    Files of a folder given to ``predict`` are checked first (``data/predict_input``): unreadable or misread files
    stop the run before its first batch, each named. The table is written atomically at the end, so an interrupted
    run leaves no half table.
    """

    file_name = "predictions.csv"

    def __init__(self) -> None:
        self._rows: list[tuple[str, float, int | str]] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Before the first batch: refuse the folders' unreadable and misread files (see ``predict_input``)."""
        del pl_module
        self._rows = []
        check_predict_files(trainer)

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: ImageBatch, *args: object
    ) -> None:
        """Collect the batch's paths, scores and labels (after post-processing)."""
        del trainer, pl_module, args
        paths = getattr(outputs, "image_path", None) or [""] * len(outputs.pred_score)
        labels = outputs.pred_label if outputs.pred_label is not None else [""] * len(paths)
        for path, score, label in zip(paths, outputs.pred_score.flatten().tolist(), labels, strict=True):
            self._rows.append((str(path), float(score), int(label) if label != "" else ""))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the table (rank zero only)."""
        del pl_module
        self._finish(trainer)

    def _finish(self, trainer: Trainer) -> None:
        if not trainer.is_global_zero or not self._rows:
            return
        table = Path(trainer.default_root_dir) / self.file_name
        with atomic_path(table) as temporary, temporary.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["image_path", "pred_score", "pred_label"])
            writer.writerows(self._rows)
        logger.info("Predictions written to %s", table)
