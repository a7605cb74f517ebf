"""``predict`` on a folder: the files of Anomalib's ``PredictDataset`` checked before the first batch is read.

``anomalib predict --data <folder>`` reads with Anomalib's ``PredictDataset``, whose reader clips 16-bit images and
stops the run at the first unreadable file. Its file list is Anomalib's: rather than change it, every file is
decoded once by the plugin's reader before the first batch, and a folder holding unreadable or misread files is
refused, each named, before anything is predicted.
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
MISREAD = "Anomalib's reader would clip its 16-bit or float data, or cannot convert its colour mode"


class PredictFilesError(PluginError, ValueError):
    """Files of a ``predict`` folder that Anomalib's ``PredictDataset`` cannot read, or would read wrong.

    Args:
        unreadable: each unreadable file and why (the reason names the file).
        misread: the readable files Anomalib's reader would read wrong.
        folder: the folder (or file) given to ``predict``, named in the fix.
    """

    def __init__(self, unreadable: list[tuple[Path, str]], misread: list[Path], folder: Path) -> None:
        lines = [reason for _, reason in unreadable] + [f"{path}: {MISREAD}" for path in misread]
        listed = "".join(f"\n  - {line}" for line in lines[:MAX_LISTED])
        more = f"\n  - and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
        fixes = ["replace or remove the unreadable files"] if unreadable else []
        if misread:
            fixes.append(f"predict 16-bit or float images with the plugin's reader: --data LayoutDataModule "
                         f"--data.layout normal_folder --data.root {folder} (thresholds are then fitted on that "
                         "folder), or re-export them as 8-bit images")
        super().__init__(f"{len(lines)} image(s) of {folder} cannot be predicted with Anomalib's PredictDataset; "
                         f"nothing was predicted:{listed}{more}\nFix: {'; '.join(fixes)}.")
        self.unreadable, self.misread = unreadable, misread


def check_predict_files(trainer: Trainer) -> None:
    """Refuse the unreadable and misread files of each ``PredictDataset`` of ``trainer.predict``, all at once.

    Each file is decoded once by the plugin's reader; other datasets are left alone (``ReaderCheck``'s). Called in
    an ``on_predict_start`` hook.

    Raises:
        PredictFilesError: a file cannot be read, or would be read wrong by Anomalib's reader.
    """
    loaders = trainer.predict_dataloaders
    for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
        dataset = getattr(loader, "dataset", None)
        if not isinstance(dataset, PredictDataset):
            continue
        unreadable, misread = [], []
        for path in map(Path, dataset.image_filenames):
            try:
                read_image(path)
            except (ImageReadError, FileNotFoundError) as error:
                unreadable.append((path, str(error)))
                continue
            if not anomalib_reads_correctly(inspect_image_file(path)):
                misread.append(path)
        if unreadable or misread:
            folder = Path(os.path.commonpath([str(name) for name in dataset.image_filenames]))  # the file for one
            raise PredictFilesError(unreadable, misread, folder)
