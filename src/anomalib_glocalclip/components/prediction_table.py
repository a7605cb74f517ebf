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

from anomalib_glocalclip.utils.errors import PluginError
from anomalib_glocalclip.utils.files import atomic_path

from .predict_input import check_predict_files

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
MAX_LISTED = 5
Row = tuple[str, float | str, int | str, str]
"""A table row: image path, score, label and status (score and label empty for a skipped file)."""


class SkippedImagesError(PluginError, RuntimeError):
    """``predict`` left out unreadable images; the others were predicted and ``predictions.csv`` lists them all.

    Args:
        skipped: ``(path, reason)`` of every image left out.
        table: the ``predictions.csv`` written, or ``None`` when it could not be.
    """

    def __init__(self, skipped: list[tuple[Path, str]], table: Path | None) -> None:
        listed = "".join(f"\n  - {reason}" for _, reason in skipped[:MAX_LISTED])
        more = f"\n  - and {len(skipped) - MAX_LISTED} more" if len(skipped) > MAX_LISTED else ""
        where = f" (status 'skipped: ...' in {table})" if table is not None else ""
        super().__init__(
            f"{len(skipped)} unreadable image(s) skipped{where}; the others were predicted. Replace or remove "
            f"these files and predict again:{listed}{more}"
        )
        self.skipped = skipped
        self.table = table


class PredictionTable(Callback):
    """Check ``predict``'s folders, and write ``predictions.csv`` into the run folder after ``predict``.

    Files of a folder given to ``predict`` are checked first (``predict_input``): an unreadable one is left out and
    listed with status ``skipped: <reason>`` (the others: ``ok``), and after the table the run ends with
    :class:`SkippedImagesError` (exit status 1) unless ``fail_on_skipped`` is off. The table is written atomically
    at the end, so an interrupted run leaves no half table.
    """

    file_name = "predictions.csv"

    def __init__(self, fail_on_skipped: bool = True) -> None:
        self.fail_on_skipped = fail_on_skipped
        self._rows: list[Row] = []
        self.skipped: list[tuple[Path, str]] = []

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Before the first batch: leave unreadable files of the folders out (see ``predict_input``)."""
        del pl_module
        self._rows = []
        self.skipped = check_predict_files(trainer)

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: ImageBatch, *args: object
    ) -> None:
        """Collect the batch's paths, scores, labels (after post-processing) and status ``ok``."""
        del trainer, pl_module, args
        paths = getattr(outputs, "image_path", None) or [""] * len(outputs.pred_score)
        labels = outputs.pred_label if outputs.pred_label is not None else [""] * len(paths)
        for path, score, label in zip(paths, outputs.pred_score.flatten().tolist(), labels, strict=True):
            self._rows.append((str(path), float(score), int(label) if label != "" else "", STATUS_OK))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the table (rank zero only); then fail if images were skipped."""
        del pl_module
        self._finish(trainer)

    def _finish(self, trainer: Trainer) -> None:
        skipped_rows = [(str(path), "", "", f"skipped: {' '.join(reason.split())}") for path, reason in self.skipped]
        rows = gather_rows(trainer, self._rows) + skipped_rows  # every process skipped the same files
        table = None
        if trainer.is_global_zero and rows:
            table = Path(trainer.default_root_dir) / self.file_name
            with atomic_path(table) as temporary, temporary.open("w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow(["image_path", "pred_score", "pred_label", "status"])
                writer.writerows(rows)
            logger.info("Predictions written to %s", table)
        if self.skipped and self.fail_on_skipped:
            raise SkippedImagesError(self.skipped, table)


def gather_rows(trainer: Trainer, rows: list[Row]) -> list[Row]:
    """Every process's ``rows``, rank by rank (``rows`` itself in a single process)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return rows
    gathered: list[list[Row]] = [[] for _ in range(trainer.world_size)]
    torch.distributed.all_gather_object(gathered, rows)
    return [row for part in gathered for row in part]
