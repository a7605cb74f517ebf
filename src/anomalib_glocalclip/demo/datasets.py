"""Small generated datasets in the MVTec AD and VisA layouts, which Anomalib's ``MVTecAD`` and ``Visa`` read.

Used by the demo and the test kit (``anomalib_glocalclip.testing``). Images are plain 8-bit RGB unless
``odd_images=True``: then some are grayscale, RGBA, palette, 16-bit grayscale PNG (which stock Anomalib reads as
all white) or of an odd size (JPEG: grayscale and odd sizes only). Existing files of the same names are replaced.
"""

from __future__ import annotations

import csv
import itertools
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .products import DEFECT_KINDS, as_size, make_image

VISA_CATEGORIES = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3", "pcb4",
    "pipe_fryum",
)
"""Category names that Anomalib's VisA datamodule accepts (its split step rejects any other)."""

STORAGE_VARIANTS = ("rgb", "gray", "rgba", "palette", "gray16", "odd_size")
"""How :func:`save_image` stores an image: 8-bit RGB or gray, RGBA, palette, 16-bit gray, or RGB at an odd size."""

# Plain RGB leads and makes up the majority of every prefix, so even 2 or 3 images per category stay mostly plain.
_ODD_CYCLE = ("rgb", "rgb", "odd_size", "rgb", "gray", "rgb", "rgba", "rgb", "gray16", "rgb", "palette")
_JPEG_VARIANT = {"rgba": "rgb", "palette": "rgb", "gray16": "gray"}
_ODD_SIZE_GROWTH = (3, 29)  # 64x64 becomes 67x93


def generate_mvtec_ad(
    root: str | Path, categories: Sequence[str] = ("bottle", "carpet"), n_train: int = 4, n_test_good: int = 2,
    n_test_bad: int = 3, defects: Sequence[str] = ("scratch",), image_size: int | tuple[int, int] = 64, seed: int = 0,
    odd_images: bool = False, good: str = "good", image_suffix: str = ".png", mask_suffix: str = "_mask.png"
) -> Path:
    """Write an MVTec AD layout that ``anomalib.data.MVTecAD(root=root, category=...)`` reads.

    Layout: ``<cat>/train/<good>/000.png``, ``<cat>/test/<good>/000.png``, ``<cat>/test/<defect>/000.png`` and
    ``<cat>/ground_truth/<defect>/000_mask.png``; ``good`` and the suffixes (which set the formats) give the
    MVTec-style layouts of other datasets (BTAD: ``ok``, ``.bmp`` images, ``.png`` masks). Per category:
    ``n_train`` and ``n_test_good`` normal images, ``n_test_bad`` anomalous ones per defect folder; a folder named
    in :data:`DEFECT_KINDS` draws that kind, any other a fixed kind derived from its name. ``root`` is created.
    """
    root = Path(root)
    for category in categories:
        rng = category_rng(seed, category)
        variants = storage_variants(odd_images, jpeg=image_suffix.lower() in {".jpg", ".jpeg"})
        base = root / category
        for split, count in (("train", n_train), ("test", n_test_good)):
            for index in range(count):
                image_path = base / split / good / f"{index:03d}{image_suffix}"
                write_sample(rng, image_path, None, category, image_size, next(variants))
        for defect in defects:
            kind = defect_kind(defect)
            for index in range(n_test_bad):
                image_path = base / "test" / defect / f"{index:03d}{image_suffix}"
                mask_path = base / "ground_truth" / defect / f"{index:03d}{mask_suffix}"
                write_sample(rng, image_path, mask_path, category, image_size, next(variants), defect=kind)
    return root


def generate_visa(
    root: str | Path, categories: Sequence[str] = ("candle", "pcb1"), n_train: int = 4, n_test_good: int = 2,
    n_test_bad: int = 3, defects: Sequence[str] = ("blob",), pre_split: bool = False,
    image_size: int | tuple[int, int] = 64, seed: int = 0, odd_images: bool = False
) -> Path:
    """Write a VisA layout that ``anomalib.data.Visa(root=root, category=...)`` reads.

    Raw layout (``pre_split=False``), as VisA is distributed: ``<cat>/Data/Images/Normal/0000.JPG``,
    ``<cat>/Data/Images/Anomaly/000.JPG``, ``<cat>/Data/Masks/Anomaly/000.png`` and ``split_csv/1cls.csv``
    (``object,split,label,image,mask``, paths relative to ``root``); Anomalib's ``prepare_data()`` splits it into
    ``visa_pytorch/``. Pre-split layout (``pre_split=True``), as that step leaves it:
    ``visa_pytorch/<cat>/train/good/0000.JPG``, ``test/good/0004.JPG``, ``test/bad/000.JPG`` and
    ``ground_truth/bad/000.png``. Both layouts hold the same images for the same arguments.

    Rows of other categories already in ``split_csv/1cls.csv`` are kept. Anomalib splits a raw root only once (its
    first split creates ``visa_pytorch/<cat>`` for all 12 categories, empty for those not in the csv), so write every
    category of a root before the first ``prepare_data()``.

    Arguments as :func:`generate_mvtec_ad`'s; ``categories`` must be :data:`VISA_CATEGORIES`, ``defects``
    :data:`DEFECT_KINDS` (used in turn by the anomalous images), and ``pre_split`` writes the split layout.
    """
    unknown = [category for category in categories if category not in VISA_CATEGORIES]
    if unknown:
        msg = f"Not VisA categories: {unknown}; Anomalib's Visa datamodule accepts only {VISA_CATEGORIES}."
        raise ValueError(msg)
    kinds = checked_kinds(defects)
    root = Path(root)
    rows: list[tuple[str, str, str, str, str]] = []
    for category in categories:
        rng = category_rng(seed, category)
        variants = storage_variants(odd_images, jpeg=True)
        raw = Path(category) / "Data"
        split_base = root / "visa_pytorch" / category
        for index in range(n_train + n_test_good):
            split = "train" if index < n_train else "test"
            name = f"{index:04d}.JPG"
            image_path = split_base / split / "good" / name if pre_split else root / raw / "Images" / "Normal" / name
            write_sample(rng, image_path, None, category, image_size, next(variants))
            rows.append((category, split, "normal", (raw / "Images" / "Normal" / name).as_posix(), ""))
        for index, kind in zip(range(n_test_bad), itertools.cycle(kinds), strict=False):
            name = f"{index:03d}"
            image_rel, mask_rel = raw / "Images" / "Anomaly" / f"{name}.JPG", raw / "Masks" / "Anomaly" / f"{name}.png"
            if pre_split:
                image_path = split_base / "test" / "bad" / f"{name}.JPG"
                mask_path = split_base / "ground_truth" / "bad" / f"{name}.png"
            else:
                image_path, mask_path = root / image_rel, root / mask_rel
            write_sample(rng, image_path, mask_path, category, image_size, next(variants), defect=kind)
            rows.append((category, "test", "anomaly", image_rel.as_posix(), mask_rel.as_posix()))
    if not pre_split:
        _write_split_csv(root / "split_csv" / "1cls.csv", rows, replaced=set(categories))
    return root


def category_rng(seed: int, category: str) -> np.random.Generator:
    """A stream per category, so a category's images do not depend on which other categories are generated."""
    return np.random.default_rng([seed, zlib.crc32(category.encode("utf-8"))])


def storage_variants(odd_images: bool, jpeg: bool) -> Iterator[str]:
    """Endless sequence of :data:`STORAGE_VARIANTS`: all ``"rgb"``, or a cycle with odd ones mixed in."""
    if not odd_images:
        return itertools.repeat("rgb")
    if jpeg:
        return itertools.cycle([_JPEG_VARIANT.get(variant, variant) for variant in _ODD_CYCLE])
    return itertools.cycle(_ODD_CYCLE)


def defect_kind(name: str) -> str:
    """The defect kind drawn for a defect type folder: the name itself if it is a kind, else a fixed one."""
    if name in DEFECT_KINDS:
        return name
    return DEFECT_KINDS[zlib.crc32(name.encode("utf-8")) % len(DEFECT_KINDS)]


def checked_kinds(defects: Sequence[str]) -> tuple[str, ...]:
    """``defects`` as a tuple, or a clear error if one is no kind of :data:`DEFECT_KINDS` or there are none."""
    unknown = [defect for defect in defects if defect not in DEFECT_KINDS]
    if unknown or not defects:
        msg = f"Unknown defect kinds {unknown}; choose at least one of {DEFECT_KINDS}."
        raise ValueError(msg)
    return tuple(defects)


def write_sample(
    rng: np.random.Generator, image_path: Path, mask_path: Path | None, style: str, image_size: int | tuple[int, int],
    variant: str = "rgb", defect: str | None = None
) -> None:
    """Draw one sample (anomalous when ``defect`` is given) and write its image and, if asked, its 0/255 mask.

    ``style`` is the category whose look the product takes, ``variant`` one of :data:`STORAGE_VARIANTS`; the
    files' suffixes set their formats.
    """
    height, width = as_size(image_size)
    if variant == "odd_size":
        height, width = height + _ODD_SIZE_GROWTH[0], width + _ODD_SIZE_GROWTH[1]
    image, mask = make_image(rng, (height, width), style, anomalous=defect is not None, defect=defect or "blob")
    save_image(image_path, image, variant)
    if mask_path is not None:
        save_image(mask_path, mask)


def save_image(path: Path, image: np.ndarray, variant: str = "rgb") -> None:
    """Write an ``[H, W, 3]`` or ``[H, W]`` uint8 image as one of :data:`STORAGE_VARIANTS` (``"odd_size"``: RGB).

    The format follows the file suffix; the folder is created.
    """
    pil = Image.fromarray(image)
    if variant == "gray":
        pil = pil.convert("L")
    elif variant == "rgba":
        pil = pil.convert("RGBA")
    elif variant == "palette":
        pil = pil.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    elif variant == "gray16":
        # 257 maps 8-bit 255 to 16-bit 65535, so the image reads back unchanged once scaled by 65535.
        pil = Image.fromarray(np.asarray(pil.convert("L")).astype(np.uint16) * 257)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in {".jpg", ".jpeg"}:
        pil.save(path, format="JPEG", quality=95)
    else:
        pil.save(path)


def _write_split_csv(path: Path, rows: list[tuple[str, str, str, str, str]], replaced: set[str]) -> None:
    """Write VisA's ``1cls.csv`` with ``rows``, keeping the rows of categories not in ``replaced`` already there."""
    kept: list[list[str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as file:
            kept = [row for row in itertools.islice(csv.reader(file), 1, None) if row and row[0] not in replaced]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(("object", "split", "label", "image", "mask"))
        writer.writerows(kept)
        writer.writerows(rows)
