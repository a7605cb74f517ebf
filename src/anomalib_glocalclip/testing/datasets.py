"""Generators of small synthetic anomaly-detection datasets in the on-disk layouts of Anomalib 2.7's datamodules.

Every image shows a textured "product" whose colour and pattern depend on the category; anomalous images carry one
clearly visible defect (a dark blob, a bright scratch or a deep-coloured square) and a mask of exactly the defect
region. Generation is deterministic given the seed and takes milliseconds, so tests and the offline demo need no
downloads.

With ``odd_images=True`` some images are written as grayscale, RGBA, 16-bit grayscale PNG, or at an odd size (masks
always have the size of their own image); most stay plain 8-bit RGB. JPEG layouts (VisA) cannot hold RGBA or 16-bit
data, so there the odd images are grayscale JPEGs and odd sizes only.

Generators write into existing folders without clearing them: files of the same names are replaced, others stay.
"""

import colorsys
import csv
import itertools
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEFECT_KINDS = ("blob", "scratch", "square")
"""Kinds of synthetic defect that :func:`make_image` draws."""

PATTERNS = ("stripes", "checker", "rings", "weave")
"""Textures a category's product may have."""

VISA_CATEGORIES = (
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
"""Category names that Anomalib's VisA datamodule accepts (its split step rejects any other)."""

# Plain RGB leads and makes up the majority of every prefix, so even 2 or 3 images per category stay mostly plain.
_ODD_CYCLE = ("rgb", "rgb", "odd_size", "rgb", "gray", "rgb", "rgba", "rgb", "gray16")
_JPEG_VARIANT = {"rgba": "rgb", "gray16": "gray"}
_ODD_SIZE_GROWTH = (3, 29)  # 64x64 becomes 67x93
# Product pixels stay inside this range in every channel (hence in luminance too); defect pixels lie outside it,
# so a defect changes every pixel of its mask, in colour and in grayscale.
_PRODUCT_RANGE = (60, 210)


@dataclass(frozen=True)
class CategoryStyle:
    """The look of one synthetic product category.

    Attributes:
        colour: Base RGB colour, channels in about [85, 160].
        pattern: One of :data:`PATTERNS`.
        frequency: Pattern cycles across the longer image side.
        angle: Pattern orientation in radians.
    """

    colour: tuple[int, int, int]
    pattern: str
    frequency: float
    angle: float


def category_style(category: str) -> CategoryStyle:
    """Derive a stable style from a category name, so that categories look different from each other."""
    code = zlib.crc32(category.encode("utf-8"))
    red, green, blue = colorsys.hsv_to_rgb((code % 360) / 360.0, 0.45, 0.62)
    return CategoryStyle(
        colour=(round(red * 255), round(green * 255), round(blue * 255)),
        pattern=PATTERNS[(code >> 9) % len(PATTERNS)],
        frequency=float(2 + (code >> 12) % 5),
        angle=float(np.deg2rad((code >> 16) % 180)),
    )


def make_image(
    rng: np.random.Generator,
    size: int | tuple[int, int],
    style: CategoryStyle | str,
    anomalous: bool = False,
    defect: str = "blob",
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one product image and its mask.

    The product is drawn first and the defect after it, so two calls from equal ``rng`` states, one normal and one
    anomalous, give images that differ exactly on the mask.

    Args:
        rng: Source of randomness; advanced by the call.
        size: ``(H, W)``, or one int for a square image.
        style: Category style, or a category name to derive it from.
        anomalous: Whether to draw a defect.
        defect: One of :data:`DEFECT_KINDS`; ignored for normal images.

    Returns:
        Image of shape ``[H, W, 3]``, uint8, and mask of shape ``[H, W]``, uint8 with 255 on the defect and 0
        elsewhere (all 0 for a normal image).
    """
    if defect not in DEFECT_KINDS:
        msg = f"Unknown defect kind {defect!r}; choose one of {DEFECT_KINDS}."
        raise ValueError(msg)
    height, width = _as_size(size)
    style = category_style(style) if isinstance(style, str) else style
    image = _render_product(rng, height, width, style)
    mask = np.zeros((height, width), dtype=bool)
    if anomalous:
        mask = _DEFECT_SHAPES[defect](rng, height, width)
        if not mask.any():  # only possible for images of a few pixels
            mask[height // 2, width // 2] = True
        image[mask] = _defect_pixels(rng, defect, height, width)[mask]
    return image, mask.astype(np.uint8) * 255


def generate_mvtec_ad(
    root: str | Path,
    categories: Sequence[str] = ("bottle", "carpet"),
    n_train: int = 4,
    n_test_good: int = 2,
    n_test_bad: int = 3,
    defects: Sequence[str] = ("scratch",),
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    odd_images: bool = True,
) -> Path:
    """Write an MVTec AD layout that ``anomalib.data.MVTecAD(root=root, category=...)`` reads.

    Layout: ``<cat>/train/good/000.png``, ``<cat>/test/good/000.png``, ``<cat>/test/<defect>/000.png`` and
    ``<cat>/ground_truth/<defect>/000_mask.png``.

    Args:
        root: Dataset root; created if missing.
        categories: Category folders to write (any names; MVTec AD's give familiar looks).
        n_train: Normal training images per category.
        n_test_good: Normal test images per category.
        n_test_bad: Anomalous test images per category and defect type.
        defects: Defect type folders; a name in :data:`DEFECT_KINDS` draws that kind, any other name a fixed kind
            derived from it.
        image_size: ``(H, W)`` or one int.
        seed: Random seed.
        odd_images: Write some images as grayscale, RGBA, 16-bit or at an odd size.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    for category in categories:
        rng = _category_rng(seed, category)
        variants = _variants(odd_images, jpeg=False)
        base = root / category
        for split, count in (("train", n_train), ("test", n_test_good)):
            for index in range(count):
                _write_sample(rng, base / split / "good" / f"{index:03d}.png", None, category, image_size, variants)
        for defect in defects:
            kind = _defect_kind(defect)
            for index in range(n_test_bad):
                image_path = base / "test" / defect / f"{index:03d}.png"
                mask_path = base / "ground_truth" / defect / f"{index:03d}_mask.png"
                _write_sample(rng, image_path, mask_path, category, image_size, variants, defect=kind)
    return root


def generate_visa(
    root: str | Path,
    categories: Sequence[str] = ("candle", "pcb1"),
    n_train: int = 4,
    n_test_good: int = 2,
    n_test_bad: int = 3,
    defects: Sequence[str] = ("blob",),
    pre_split: bool = False,
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    odd_images: bool = True,
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

    Args:
        root: Dataset root; created if missing.
        categories: VisA category names (see :data:`VISA_CATEGORIES`).
        n_train: Normal training images per category.
        n_test_good: Normal test images per category.
        n_test_bad: Anomalous test images per category.
        defects: Defect kinds (see :data:`DEFECT_KINDS`), used in turn by the anomalous images.
        pre_split: Write the split layout instead of the raw one.
        image_size: ``(H, W)`` or one int.
        seed: Random seed.
        odd_images: Write some images as grayscale JPEGs or at an odd size.

    Returns:
        ``root`` as a Path.
    """
    unknown = [category for category in categories if category not in VISA_CATEGORIES]
    if unknown:
        msg = f"Not VisA categories: {unknown}; Anomalib's Visa datamodule accepts only {VISA_CATEGORIES}."
        raise ValueError(msg)
    kinds = _checked_kinds(defects)
    root = Path(root)
    rows: list[tuple[str, str, str, str, str]] = []
    for category in categories:
        rng = _category_rng(seed, category)
        variants = _variants(odd_images, jpeg=True)
        raw = Path(category) / "Data"
        split_base = root / "visa_pytorch" / category
        for index in range(n_train + n_test_good):
            split = "train" if index < n_train else "test"
            name = f"{index:04d}.JPG"
            image_path = split_base / split / "good" / name if pre_split else root / raw / "Images" / "Normal" / name
            _write_sample(rng, image_path, None, category, image_size, variants)
            rows.append((category, split, "normal", (raw / "Images" / "Normal" / name).as_posix(), ""))
        for index, kind in zip(range(n_test_bad), itertools.cycle(kinds), strict=False):
            name = f"{index:03d}"
            image_rel, mask_rel = raw / "Images" / "Anomaly" / f"{name}.JPG", raw / "Masks" / "Anomaly" / f"{name}.png"
            if pre_split:
                image_path = split_base / "test" / "bad" / f"{name}.JPG"
                mask_path = split_base / "ground_truth" / "bad" / f"{name}.png"
            else:
                image_path, mask_path = root / image_rel, root / mask_rel
            _write_sample(rng, image_path, mask_path, category, image_size, variants, defect=kind)
            rows.append((category, "test", "anomaly", image_rel.as_posix(), mask_rel.as_posix()))
    if not pre_split:
        _write_split_csv(root / "split_csv" / "1cls.csv", rows, replaced=set(categories))
    return root


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
    odd_images: bool = True,
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
        defects: Defect kinds (see :data:`DEFECT_KINDS`), used in turn by the anomalous images.
        category: Name whose style the products take (see :func:`category_style`).
        image_size: ``(H, W)`` or one int.
        seed: Random seed.
        odd_images: Write some images as grayscale, RGBA, 16-bit or at an odd size.

    Returns:
        ``root`` as a Path.
    """
    kinds = _checked_kinds(defects)
    root = Path(root)
    rng = _category_rng(seed, category)
    variants = _variants(odd_images, jpeg=False)
    for index in range(n_good):
        _write_sample(rng, root / normal_dir / f"{index:03d}.png", None, category, image_size, variants)
    for index, kind in zip(range(n_bad), itertools.cycle(kinds), strict=False):
        name = f"{index:03d}.png"
        mask_path = root / mask_dir / name if with_masks else None
        _write_sample(rng, root / abnormal_dir / name, mask_path, category, image_size, variants, defect=kind)
    return root


def generate_normal_folder(
    root: str | Path,
    n: int = 8,
    category: str = "bottle",
    image_size: int | tuple[int, int] = 64,
    seed: int = 0,
    odd_images: bool = True,
) -> Path:
    """Write a folder of normal images only, ``root/000.png`` to ``root/<n-1>.png``.

    Args:
        root: Folder to write; created if missing.
        n: Number of images.
        category: Name whose style the products take (see :func:`category_style`).
        image_size: ``(H, W)`` or one int.
        seed: Random seed.
        odd_images: Write some images as grayscale, RGBA or at an odd size.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    rng = _category_rng(seed, category)
    variants = _variants(odd_images, jpeg=False)
    for index in range(n):
        _write_sample(rng, root / f"{index:03d}.png", None, category, image_size, variants)
    return root


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height < 8 or width < 8:
        msg = f"Synthetic images need at least 8x8 pixels, got {height}x{width}."
        raise ValueError(msg)
    return int(height), int(width)


def _category_rng(seed: int, category: str) -> np.random.Generator:
    """A stream per category, so a category's images do not depend on which other categories are generated."""
    return np.random.default_rng([seed, zlib.crc32(category.encode("utf-8"))])


def _variants(odd_images: bool, jpeg: bool) -> Iterator[str]:
    """Endless sequence of storage variants: "rgb", "gray", "rgba", "gray16" or "odd_size"."""
    if not odd_images:
        return itertools.repeat("rgb")
    if jpeg:
        return itertools.cycle([_JPEG_VARIANT.get(variant, variant) for variant in _ODD_CYCLE])
    return itertools.cycle(_ODD_CYCLE)


def _defect_kind(name: str) -> str:
    """The defect kind drawn for a defect type folder: the name itself if it is a kind, else a fixed one."""
    if name in DEFECT_KINDS:
        return name
    return DEFECT_KINDS[zlib.crc32(name.encode("utf-8")) % len(DEFECT_KINDS)]


def _checked_kinds(defects: Sequence[str]) -> tuple[str, ...]:
    unknown = [defect for defect in defects if defect not in DEFECT_KINDS]
    if unknown or not defects:
        msg = f"Unknown defect kinds {unknown}; choose at least one of {DEFECT_KINDS}."
        raise ValueError(msg)
    return tuple(defects)


def _write_sample(
    rng: np.random.Generator,
    image_path: Path,
    mask_path: Path | None,
    category: str,
    image_size: int | tuple[int, int],
    variants: Iterator[str],
    defect: str | None = None,
) -> None:
    """Draw one sample (anomalous when ``defect`` is given) and write its image and, if asked, its mask."""
    variant = next(variants)
    height, width = _as_size(image_size)
    if variant == "odd_size":
        height, width = height + _ODD_SIZE_GROWTH[0], width + _ODD_SIZE_GROWTH[1]
    image, mask = make_image(rng, (height, width), category, anomalous=defect is not None, defect=defect or "blob")
    _save_image(image_path, image, variant)
    if mask_path is not None:
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mask_path)


def _save_image(path: Path, image: np.ndarray, variant: str) -> None:
    """Write an ``[H, W, 3]`` uint8 image in the storage variant; the format follows the file suffix."""
    pil = Image.fromarray(image)
    if variant == "gray":
        pil = pil.convert("L")
    elif variant == "rgba":
        pil = pil.convert("RGBA")
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


def _render_product(rng: np.random.Generator, height: int, width: int, style: CategoryStyle) -> np.ndarray:
    """Textured product: category colour and pattern, low-frequency shading and fine noise.

    Returns:
        Image of shape ``[H, W, 3]``, uint8 with every channel in ``_PRODUCT_RANGE``.
    """
    scale = float(max(height, width))
    v, u = np.mgrid[0:height, 0:width].astype(np.float32) / scale
    pattern = _pattern(rng, u, v, style)
    shading = _smooth_noise(rng, height, width, cells=3)
    colour = np.asarray(style.colour, dtype=np.float32) + rng.uniform(-6.0, 6.0, size=3)
    grain = rng.normal(0.0, 2.5, size=(height, width, 3))
    image = colour * (1.0 + 0.2 * pattern + 0.12 * shading)[..., None] + grain
    return np.clip(np.rint(image), *_PRODUCT_RANGE).astype(np.uint8)


def _pattern(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, style: CategoryStyle) -> np.ndarray:
    """The category's texture at normalised coordinates ``u`` (x) and ``v`` (y), values in [-1, 1], ``[H, W]``."""
    phase, phase2 = rng.uniform(0.0, 2.0 * np.pi, size=2)
    along = u * np.cos(style.angle) + v * np.sin(style.angle)
    across = -u * np.sin(style.angle) + v * np.cos(style.angle)
    cycles = 2.0 * np.pi * style.frequency
    if style.pattern == "stripes":
        return np.sin(cycles * along + phase)
    if style.pattern == "checker":
        return np.sin(cycles * along + phase) * np.sin(cycles * across + phase2)
    if style.pattern == "rings":
        radius = np.hypot(u - u.mean(), v - v.mean())
        return np.sin(cycles * radius + phase)
    return 0.5 * (np.sin(cycles * along + phase) + np.sin(0.5 * cycles * across + phase2))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise: a random ``(cells + 1)^2`` grid, smoothly interpolated to ``[H, W]``, values ~[-2, 2]."""
    grid = rng.normal(0.0, 1.0, size=(cells + 1, cells + 1))
    rows, row_weight = _cell_weights(height, cells)
    cols, col_weight = _cell_weights(width, cells)
    top = grid[rows][:, cols] * (1 - col_weight) + grid[rows][:, cols + 1] * col_weight
    bottom = grid[rows + 1][:, cols] * (1 - col_weight) + grid[rows + 1][:, cols + 1] * col_weight
    return top * (1 - row_weight[:, None]) + bottom * row_weight[:, None]


def _cell_weights(length: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``length`` pixels: its grid cell and its smoothstep weight towards the next grid node."""
    position = np.linspace(0.0, cells, length)
    cell = np.minimum(position.astype(int), cells - 1)
    fraction = position - cell
    return cell, fraction * fraction * (3.0 - 2.0 * fraction)


def _blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Irregular round blob of about 3-9 % of the image, ``[H, W]`` bool."""
    radius = rng.uniform(0.1, 0.17) * min(height, width)
    amplitudes = rng.uniform(0.0, 0.12, size=3)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
    reach = radius * (1.0 + amplitudes.sum()) + 1.0
    centre_y, centre_x = rng.uniform(reach, height - reach), rng.uniform(reach, width - reach)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.arctan2(y - centre_y, x - centre_x)
    waves = zip((2, 3, 4), amplitudes, phases, strict=True)
    outline = radius * (1.0 + sum(a * np.sin(k * angle + p) for k, a, p in waves))
    return np.hypot(y - centre_y, x - centre_x) <= outline


def _scratch(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Thick straight scratch of 40-70 % of the shorter side, about 2-4 % of the image, ``[H, W]`` bool."""
    side = min(height, width)
    half_length = rng.uniform(0.2, 0.35) * side
    half_width = max(1.0, 0.03 * side) * rng.uniform(0.8, 1.2)
    angle = rng.uniform(0.0, np.pi)
    step_x, step_y = half_length * np.cos(angle), half_length * np.sin(angle)
    reach_x, reach_y = abs(step_x) + half_width + 1.0, abs(step_y) + half_width + 1.0
    centre_y, centre_x = rng.uniform(reach_y, height - reach_y), rng.uniform(reach_x, width - reach_x)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    # Distance of every pixel to the segment centre -/+ (step_x, step_y).
    t = np.clip(((x - centre_x) * step_x + (y - centre_y) * step_y) / (half_length**2), -1.0, 1.0)
    return np.hypot(x - centre_x - t * step_x, y - centre_y - t * step_y) <= half_width


def _square(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Axis-aligned rectangle of about 2.5-9 % of the image, ``[H, W]`` bool."""
    side = rng.uniform(0.16, 0.3) * min(height, width)
    aspect = np.sqrt(rng.uniform(0.7, 1.4))
    box_h = int(np.clip(round(side * aspect), 2, height - 2))
    box_w = int(np.clip(round(side / aspect), 2, width - 2))
    top, left = int(rng.integers(1, height - box_h)), int(rng.integers(1, width - box_w))
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + box_h, left : left + box_w] = True
    return mask


_DEFECT_SHAPES = {"blob": _blob, "scratch": _scratch, "square": _square}


def _defect_pixels(rng: np.random.Generator, defect: str, height: int, width: int) -> np.ndarray:
    """Defect colours, different from every product pixel in colour and in luminance, ``[H, W, 3]`` uint8.

    Blobs are near black, scratches near white and squares a deep red or blue (luminance below the product's).
    """
    if defect == "blob":
        return rng.integers(0, 31, size=(height, width, 3), dtype=np.uint8)
    if defect == "scratch":
        return rng.integers(232, 256, size=(height, width, 3), dtype=np.uint8)
    pixels = rng.integers(0, 9, size=(height, width, 3), dtype=np.uint8)
    channel = int(rng.choice([0, 2]))  # red or blue: green would make the luminance too high
    pixels[..., channel] = rng.integers(110, 151, size=(height, width), dtype=np.uint8)
    return pixels


__all__ = [
    "DEFECT_KINDS",
    "PATTERNS",
    "VISA_CATEGORIES",
    "CategoryStyle",
    "category_style",
    "generate_folder",
    "generate_mvtec_ad",
    "generate_normal_folder",
    "generate_visa",
    "make_image",
]
