"""``predictions.csv``: image path, score, label and status of every image of a ``predict`` run, in the run folder.

Under DDP every process predicts its share; the table gathers them all (rank by rank) and rank zero writes it.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from anomalib.data import ImageBatch
from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_glocalclip.data.predict_input import check_predict_files
from anomalib_glocalclip.utils.files import atomic_path

logger = logging.getLogger(__name__)

Row = tuple[str, float | str, int | str, str]
"""A table row: image path, score, label (empty without thresholds or when left out) and status."""


class PredictionTable(Callback):
    """Check ``predict``'s folders, and write ``predictions.csv`` into the run folder after ``predict``.

    Files of a folder given to ``predict`` are checked first (``data/predict_input``): unreadable or misread files
    are left out before the first batch, each listed with status ``left out: <reason>`` (the others: ``ok``). The
    table is written atomically at the end, so an interrupted run leaves no half table.
    """

    file_name = "predictions.csv"

    def __init__(self) -> None:
        self._rows: list[Row] = []
        self._left_out: list[Row] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Before the first batch: leave the folders' unreadable and misread files out (see ``predict_input``)."""
        del pl_module
        self._rows = []
        left_out = check_predict_files(trainer)
        self._left_out = [(str(path), "", "", f"left out: {' '.join(reason.split())}") for path, reason in left_out]

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: ImageBatch, *args: object
    ) -> None:
        """Collect the batch's paths, scores, labels (after post-processing) and status ``ok``."""
        del trainer, pl_module, args
        paths = getattr(outputs, "image_path", None) or [""] * len(outputs.pred_score)
        labels = outputs.pred_label if outputs.pred_label is not None else [""] * len(paths)
        for path, score, label in zip(paths, outputs.pred_score.flatten().tolist(), labels, strict=True):
            self._rows.append((str(path), float(score), int(label) if label != "" else "", "ok"))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the table (rank zero only)."""
        del pl_module
        self._finish(trainer)

    def _finish(self, trainer: Trainer) -> None:
        rows = gather_rows(trainer, self._rows) + self._left_out  # none left out under DDP: refused there
        if not trainer.is_global_zero or not rows:
            return
        table = Path(trainer.default_root_dir) / self.file_name
        with atomic_path(table) as temporary, temporary.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["image_path", "pred_score", "pred_label", "status"])
            writer.writerows(rows)
        logger.info("Predictions written to %s", table)


def gather_rows(trainer: Trainer, rows: list[Row]) -> list[Row]:
    """Every process's ``rows``, rank by rank (``rows`` itself in a single process)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return rows
    gathered: list[list[Row]] = [[] for _ in range(trainer.world_size)]
    torch.distributed.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part]
