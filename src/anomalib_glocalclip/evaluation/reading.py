"""How the sweep reads a category: its files checked by name first, then every image and mask read right.

Anomalib's readers clip 16-bit images, drop float masks and report a truncated file as a bare ``OSError``; its
``MVTecAD`` fails on a missing mask with an error naming no file. Before a category is tested,

* an MVTec AD layout is checked for anomalous images without masks (and masks without images) before setup
  (:func:`~anomalib_glocalclip.data.checks.check_mvtec_layout`);
* after setup, the test samples' files are checked from their headers (missing or unreadable files, missing
  masks, masks of another size than their image unless masks may be resized);
* the test and validation datasets are wrapped in :class:`~anomalib_glocalclip.data.safe_datasets.SafeImageDataset`,
  so 16-bit, float, palette and grayscale files are read right and a file that fails mid-run is named; the
  :class:`SafeReading` callback wraps them again when the trainer sets the datamodule up anew.

A problem is a :class:`~anomalib_glocalclip.data.checks.DataCheckError` listing the files and the fix; the
sweep records it as that category's failure and goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Callback

from anomalib_glocalclip.data.checks import (
    ProblemKind,
    check_mvtec_layout,
    check_samples,
    raise_for_problems,
)
from anomalib_glocalclip.data.safe_datasets import read_safely

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

RESIZE_MASKS_FIX = "pass --resize-masks (resize_masks=True) to resize masks to their images' size"


def check_layout(datamodule: Any, category: str) -> None:
    """Before setup: name anomalous images without masks (and masks without images) of an MVTec AD layout.

    Other layouts are checked after setup by :func:`check_and_wrap`.

    Raises:
        DataCheckError: the layout has such files.
    """
    from anomalib.data import MVTecAD

    if isinstance(datamodule, MVTecAD):
        problems = check_mvtec_layout(Path(datamodule.root), category)
        raise_for_problems(problems, what=f"Category {category} under {datamodule.root}")


def check_and_wrap(datamodule: Any, category: str, resize_masks: bool = False) -> None:
    """After setup: check the test samples' files, then read test and validation data with the plugin's reader.

    Args:
        datamodule: a set-up Anomalib datamodule.
        category: named in the error.
        resize_masks: masks of another size than their image are resized to it (nearest neighbour) instead of
            being an error. Defaults to ``False``.

    Raises:
        DataCheckError: a test image or mask is missing or unreadable, an anomalous image of a pixel-level set has
            no mask, or a mask's size differs from its image's (without ``resize_masks``); the message names the
            files and the fix.
    """
    problems = check_samples(datamodule.test_data.samples, full_decode=False, anomalib_reader=False)
    if resize_masks:
        problems = [problem for problem in problems if problem.kind != ProblemKind.MASK_SIZE]
    else:
        problems = [_with_resize_fix(problem) for problem in problems]
    raise_for_problems(problems, what=f"Category {category}")
    read_safely(datamodule, resize_masks=resize_masks)


class SafeReading(Callback):
    """Keep the datamodule's test and validation data read by the plugin's reader for a whole ``Engine.test``.

    An Anomalib datamodule set up outside a trainer is set up again by the trainer's first run (its datasets
    rebuilt from the folder), which would drop the wrappers of :func:`check_and_wrap`; this callback wraps the
    rebuilt datasets again, after the datamodule's ``setup`` and before any batch.

    Args:
        resize_masks: see :func:`check_and_wrap`. Defaults to ``False``.
    """

    def __init__(self, resize_masks: bool = False) -> None:
        self.resize_masks = resize_masks

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Wrap the datamodule's datasets (Lightning calls this after the datamodule's own ``setup``)."""
        del pl_module, stage
        if trainer.datamodule is not None:
            read_safely(trainer.datamodule, resize_masks=self.resize_masks)


def _with_resize_fix(problem: Any) -> Any:
    """A mask-size problem whose fix names the sweep's option."""
    import dataclasses

    if problem.kind != ProblemKind.MASK_SIZE:
        return problem
    return dataclasses.replace(problem, fix=f"re-export the mask at its image's size, or {RESIZE_MASKS_FIX}")
