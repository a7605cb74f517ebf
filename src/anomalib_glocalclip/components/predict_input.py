"""``predict`` on a folder: the files of Anomalib's ``PredictDataset`` checked before the first batch is read.

``anomalib predict --data <folder>`` reads with ``PredictDataset``, whose reader clips 16-bit images and stops the
run at the first unreadable file; here unreadable files leave its public ``image_filenames`` (the caller reports
them) and misread ones are refused by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from anomalib.data import PredictDataset

from anomalib_glocalclip.data.checks import anomalib_reads_correctly, inspect_image_file
from anomalib_glocalclip.data.io import ImageReadError, read_image
from anomalib_glocalclip.utils.errors import PluginError

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

MAX_LISTED = 10


class MisreadPredictFilesError(PluginError, ValueError):
    """``predict`` on a folder holds files that Anomalib's ``PredictDataset`` would read wrong.

    Args:
        paths: the files, in the folder's order.
        folder: the folder (or file) given to ``predict``, named in the fix.
    """

    def __init__(self, paths: list[Path], folder: Path) -> None:
        listed = "".join(f"\n  - {path}" for path in paths[:MAX_LISTED])
        more = f"\n  - and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
        super().__init__(
            f"{len(paths)} image(s) of {folder} would be read wrong by Anomalib's PredictDataset (16-bit or float "
            f"data clipped, or a colour mode it cannot convert):{listed}{more}\nPredict them with the plugin's "
            f"reader: --data LayoutDataModule --data.layout normal_folder --data.root {folder} (thresholds are then "
            "fitted on that folder), or re-export them as 8-bit images."
        )
        self.paths = paths


class UnreadablePredictFilesError(PluginError, ValueError):
    """Files of a ``predict`` dataloader with worker processes cannot be read (they cannot be left out there)."""


def check_predict_files(trainer: Trainer) -> list[tuple[Path, str]]:
    """Leave the unreadable files out of each ``PredictDataset`` of ``trainer.predict``; refuse misread ones.

    Each file is decoded once by the plugin's reader; other datasets are left alone (``ReaderCheck``'s). Called in
    an ``on_predict_start`` hook.

    Returns:
        ``(path, reason)`` of every file left out, in the folders' order.

    Raises:
        MisreadPredictFilesError: a readable file would be read wrong by Anomalib's reader.
        UnreadablePredictFilesError: a loader with worker processes has unreadable files (its workers hold their
            own copy of the file list, so none can be left out).
    """
    loaders = trainer.predict_dataloaders
    skipped: list[tuple[Path, str]] = []
    for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
        dataset = getattr(loader, "dataset", None)
        if not isinstance(dataset, PredictDataset):
            continue
        kept, misread, unreadable = [], [], []
        for filename in dataset.image_filenames:
            reason = _unreadable_reason(Path(filename))
            if reason is not None:
                unreadable.append((Path(filename), reason))
            elif not anomalib_reads_correctly(inspect_image_file(filename)):
                misread.append(Path(filename))
            else:
                kept.append(filename)
        if misread:
            folder = Path(os.path.commonpath([str(name) for name in dataset.image_filenames]))  # the file for one
            raise MisreadPredictFilesError(misread, folder)
        if unreadable and loader.num_workers > 0:
            listed = "".join(f"\n  - {reason}" for _, reason in unreadable[:MAX_LISTED])
            msg = f"{len(unreadable)} unreadable image(s) in the predict data; replace or remove them:{listed}"
            raise UnreadablePredictFilesError(msg)
        dataset.image_filenames = kept
        skipped.extend(unreadable)
    return skipped


def _unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be read (fully decoded), or ``None`` when it can."""
    try:
        read_image(path)
    except (ImageReadError, FileNotFoundError) as exc:
        return str(exc)
    return None
