"""Small datasets in the layout of Anomalib's ``Folder`` datamodule, and folders of normal images, for tests."""

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
    named like their images). ``defects`` (see ``DEFECT_KINDS``) are used in turn by the anomalous images;
    ``category`` names the products' style (see ``category_style``); ``image_size`` is ``(H, W)`` or one int;
    ``odd_images`` writes some images as grayscale, RGBA, palette, 16-bit or at an odd size. Returns ``root``.
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
    """Write ``n`` normal images ``root/000.png`` ...; the arguments are :func:`generate_folder`'s. Returns ``root``."""
    return generate_folder(root, n_good=n, n_bad=0, with_masks=False, normal_dir="", category=category,
                           image_size=image_size, seed=seed, odd_images=odd_images)
