"""Choosing the ``k`` normal reference images: from a datamodule's train split or from a folder.

The choice is seeded and stable: candidates sorted by path, the first ``k`` of one seeded permutation, so a larger
``k`` keeps the images of a smaller one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from anomalib.data import AnomalibDataModule

from anomalib_glocalclip.data.io import read_image
from anomalib_glocalclip.data.layouts.base import IMAGE_SUFFIXES, image_files

logger = logging.getLogger(__name__)

REFERENCE_IMAGE_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES))  # the image suffixes every dataset layout reads
"""Files of a reference folder that are read as images (case-insensitive)."""


def select_reference_indices(num_samples: int, k: int, seed: int = 0) -> list[int]:
    """The first ``k`` indices of a seeded permutation of ``range(num_samples)``, sorted (all when fewer).

    Raises:
        ValueError: ``k`` is not positive or ``num_samples`` is negative.
    """
    if k < 1:
        msg = f"The number of reference images k must be positive, got {k}."
        raise ValueError(msg)
    if num_samples < 0:
        msg = f"num_samples must not be negative, got {num_samples}."
        raise ValueError(msg)
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(num_samples, generator=generator)
    return sorted(permutation[:k].tolist())


def reference_images_from_folder(
    folder: str | Path, k: int | None, seed: int = 0, read: Callable[[Path], object] = read_image
) -> list[Path]:
    """``k`` seeded images of a flat folder of normal images, each checked by reading it.

    Only files directly inside ``folder`` with an image suffix (``REFERENCE_IMAGE_SUFFIXES``) count; hidden
    files are skipped. With fewer than ``k`` images all are taken, with a warning.

    Args:
        folder: folder of normal images of the product.
        k: number of references; ``None`` takes every image of the folder.
        seed: seed of the choice.
        read: reader each chosen image goes through, raising an error that names a file it cannot use.

    Returns:
        The chosen image paths, in sorted order.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
        ValueError: ``folder`` holds no image.
        anomalib_glocalclip.data.io.ImageReadError: a chosen image is corrupt or not an image (from ``read``).
    """
    folder = Path(folder)
    if not folder.exists():
        msg = f"Reference image folder not found: {folder}. Point reference_images at a folder of normal images."
        raise FileNotFoundError(msg)
    if not folder.is_dir():
        msg = f"reference_images must be a folder of normal images, but {folder} is a file."
        raise NotADirectoryError(msg)
    candidates = [path for path in image_files(folder) if path.is_file()]
    if not candidates:
        msg = (
            f"Reference image folder {folder} holds no image ({', '.join(REFERENCE_IMAGE_SUFFIXES)}; sub-folders "
            "are not read). Put a few normal images of the product directly in it."
        )
        raise ValueError(msg)
    chosen = candidates if k is None else _choose(candidates, k, seed, str(folder))
    for path in chosen:
        read(path)
    return chosen


def reference_images_from_datamodule(datamodule: AnomalibDataModule, k: int, seed: int = 0) -> list[Path]:
    """``k`` seeded normal images (label index 0, sorted) of a datamodule's train split (set up here if needed).

    Raises:
        ValueError: the train split holds no normal image.
    """
    if getattr(datamodule, "train_data", None) is None:
        datamodule.setup("fit")
    samples = datamodule.train_data.samples
    normal = samples[samples["label_index"] == 0]
    if normal.empty:
        where = getattr(datamodule, "root", None) or type(datamodule).__name__
        msg = (
            f"The train split of {where} holds no normal image to take few-shot references from. Pass a folder of "
            "normal images as reference_images instead."
        )
        raise ValueError(msg)
    candidates = sorted(Path(path) for path in normal["image_path"])
    return _choose(candidates, k, seed, f"the train split of {getattr(datamodule, 'root', type(datamodule).__name__)}")


def read_reference_images(paths: Sequence[Path], transform: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``[K, 3, S, S]`` reference images through the model's ``transform`` of one ``[3, H, W]`` image in ``[0, 1]``."""
    return torch.stack([transform(read_image(path)) for path in paths])


def _choose(candidates: list[Path], k: int, seed: int, source: str) -> list[Path]:
    """The seeded choice of ``k`` of the sorted ``candidates``; a warning names ``source`` if it has fewer."""
    if len(candidates) < k:
        msg = "Few-shot: %s holds %d normal images, fewer than k = %d; all of them are used."
        logger.warning(msg, source, len(candidates), k)
    return [candidates[index] for index in select_reference_indices(len(candidates), k, seed)]
