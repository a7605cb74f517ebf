"""``predict`` on a folder: the files of Anomalib's ``PredictDataset`` checked before the first batch is read.

``anomalib predict --data <folder>`` reads with Anomalib's ``PredictDataset``, whose reader clips 16-bit images and
stops the run at the first unreadable file. Every file is decoded once by the plugin's reader before the first batch;
unreadable and misread files are left out (``compat.leave_out_predict_files``) and named in a warning with the fix,
and the others are predicted (for MuSc: scored as a set without them). A folder with no file left is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from anomalib.data import PredictDataset
from torch.utils.data import DistributedSampler

from anomalib_glocalclip.compat import leave_out_predict_files
from anomalib_glocalclip.data.checks import anomalib_reads_correctly, inspect_image_file
from anomalib_glocalclip.data.io import ImageReadError, read_image
from anomalib_glocalclip.utils.errors import PluginError

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

logger = logging.getLogger(__name__)

MAX_LISTED = 10
MISREAD = "Anomalib's reader would clip its 16-bit or float data, or cannot convert its colour mode"


class PredictFilesError(PluginError, ValueError):
    """Files of a ``predict`` folder that cannot be left out: all of them, or any in a distributed or worker loader.

    Args:
        left_out: each file that cannot be predicted and why (the reason names the file).
        folder: the folder (or file) given to ``predict``, named in the fix.
        why: why nothing was predicted.
    """

    def __init__(self, left_out: list[tuple[Path, str]], folder: Path, why: str) -> None:
        super().__init__(f"{len(left_out)} image(s) of {folder} cannot be predicted with Anomalib's PredictDataset; "
                         f"nothing was predicted ({why}):{describe(left_out, folder)}")
        self.left_out = left_out


def describe(left_out: list[tuple[Path, str]], folder: Path) -> str:
    """The files of ``left_out`` with their reasons, one a line (the first ``MAX_LISTED``), then the fix."""
    listed = "".join(f"\n  - {reason}" for _, reason in left_out[:MAX_LISTED])
    more = f"\n  - and {len(left_out) - MAX_LISTED} more" if len(left_out) > MAX_LISTED else ""
    misread = sum(reason.endswith(MISREAD) for _, reason in left_out)
    fixes = ["replace or remove the unreadable files"] if misread < len(left_out) else []
    if misread:
        fixes.append(f"predict 16-bit or float images with the plugin's reader: --data LayoutDataModule "
                     f"--data.layout normal_folder --data.root {folder} (thresholds are then fitted on that "
                     "folder), or re-export them as 8-bit images")
    return f"{listed}{more}\nFix: {'; '.join(fixes)}."


def check_predict_files(trainer: Trainer) -> list[tuple[Path, str]]:
    """Leave the unreadable and misread files out of each ``PredictDataset`` of ``trainer.predict``, with a warning.

    Each file is decoded once by the plugin's reader; other datasets are left alone (``ReaderCheck``'s). Called in
    an ``on_predict_start`` hook, before the model's own (MuSc scores its set there).

    Returns:
        ``(path, reason)`` of every file left out, in the folders' order.

    Raises:
        PredictFilesError: no file of a folder can be predicted, or its loader has workers or runs distributed.
    """
    loaders = trainer.predict_dataloaders
    left_out: list[tuple[Path, str]] = []
    for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
        dataset = getattr(loader, "dataset", None)
        if not isinstance(dataset, PredictDataset):
            continue
        paths = [Path(name) for name in dataset.image_filenames]
        bad = [(path, reason) for path in paths if (reason := _unpredictable_reason(path)) is not None]
        if not bad:
            continue
        folder = Path(os.path.commonpath([str(path) for path in paths]))  # the file itself for one
        if len(bad) == len(paths):
            raise PredictFilesError(bad, folder, "no image of it can be read right")
        if loader.num_workers > 0 or isinstance(loader.sampler, DistributedSampler):
            raise PredictFilesError(bad, folder, "its DataLoader's workers or distributed sampler have the file list "
                                    "already; predict with num_workers=0 on one device to leave these out")
        leave_out_predict_files(dataset, [path for path, _ in bad])
        logger.warning("%d image(s) of %s left out of predict, named with status 'left out' in predictions.csv; the "
                       "other %d are predicted (a set-level model such as MuSc scores them as a set without these, "
                       "which changes their scores):%s", len(bad), folder, len(paths) - len(bad),
                       describe(bad, folder))
        left_out += bad
    return left_out


def _unpredictable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be predicted through Anomalib's reader (the reason names it), or ``None``."""
    try:
        read_image(path)
    except (ImageReadError, FileNotFoundError) as error:
        return str(error)
    return None if anomalib_reads_correctly(inspect_image_file(path)) else f"{path}: {MISREAD}"
