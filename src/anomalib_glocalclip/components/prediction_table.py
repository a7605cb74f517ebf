"""``predictions.csv``: image path, score and label of every predicted image, in the run folder."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_glocalclip.utils.files import atomic_path

logger = logging.getLogger(__name__)


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
