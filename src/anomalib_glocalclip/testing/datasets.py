"""Generators of small datasets in the layout of Anomalib's ``Folder`` datamodule, and folders of normal images.

The MVTec AD and VisA layouts are written by the demo's generator (``anomalib_glocalclip.demo.datasets``), which
this test kit re-exports; the paper's other datasets are in :mod:`.official_layouts`. Images are plain 8-bit RGB
unless ``odd_images=True`` asks for grayscale, RGBA, palette, 16-bit or odd-sized ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

from anomalib_glocalclip.demo.datasets import category_rng, checked_kinds, storage_variants, write_sample


def generate_folder(
    root: str | Path,
    n_good: int = 6,
    n_bad: int = 4,
    with_masks: bool = True,
    normal_dir: str = "good",
    abnormal_dir: str = "bad",
    mask_dir: str = "masks",
    defects: Sequence[str] = ("blob",),
    category: str = "bottle",
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    odd_images: bool = False,
) -> Path:
    """Write a layout for ``anomalib.data.Folder(root=root, normal_dir=..., abnormal_dir=..., mask_dir=...)``.

    Layout: ``<normal_dir>/000.png``, ``<abnormal_dir>/000.png`` and, with masks, ``<mask_dir>/000.png`` (masks are
    named like their images).

    Args:
        root: Dataset root; created if missing.
        n_good: Normal images.
        n_bad: Anomalous images.
        with_masks: Write masks of the anomalous images.
        normal_dir: Folder of normal images, relative to ``root``.
        abnormal_dir: Folder of anomalous images, relative to ``root``.
        mask_dir: Folder of masks, relative to ``root``.
        defects: Defect kinds (see ``DEFECT_KINDS``), used in turn by the anomalous images.
        category: Name whose style the products take (see ``category_style``).
        image_size: ``(H, W)`` or one int.
        seed: Random seed.
        odd_images: Write some images as grayscale, RGBA, palette, 16-bit or at an odd size. Defaults to ``False``.

    Returns:
        ``root`` as a Path.
    """
    kinds = checked_kinds(defects)
    root = Path(root)
    rng = category_rng(seed, category)
    variants = storage_variants(odd_images, jpeg=False)
    for index in range(n_good):
        write_sample(rng, root / normal_dir / f"{index:03d}.png", None, category, image_size, next(variants))
    for index, kind in zip(range(n_bad), itertools.cycle(kinds), strict=False):
        name = f"{index:03d}.png"
        mask_path = root / mask_dir / name if with_masks else None
        write_sample(rng, root / abnormal_dir / name, mask_path, category, image_size, next(variants), defect=kind)
    return root


def generate_normal_folder(
    root: str | Path,
    n: int = 8,
    category: str = "bottle",
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    odd_images: bool = False,
) -> Path:
    """Write a folder of normal images only, ``root/000.png`` to ``root/<n-1>.png``.

    Args:
        root: Folder to write; created if missing.
        n: Number of images.
        category: Name whose style the products take (see ``category_style``).
        image_size: ``(H, W)`` or one int.
        seed: Random seed.
        odd_images: Write some images as grayscale, RGBA, palette, 16-bit or at an odd size. Defaults to ``False``.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    rng = category_rng(seed, category)
    variants = storage_variants(odd_images, jpeg=False)
    for index in range(n):
        write_sample(rng, root / f"{index:03d}.png", None, category, image_size, next(variants))
    return root


__all__ = ["generate_folder", "generate_normal_folder"]
