"""Synthetic products with defects: the images of the demo's and the tests' generated datasets.

A textured "product" whose colour and pattern depend on the category; anomalous images carry one clearly visible
defect (a dark blob, a bright scratch or a deep-coloured square) and a mask of exactly the defect region.
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass

import numpy as np

DEFECT_KINDS = ("blob", "scratch", "square")
"""Kinds of synthetic defect that :func:`make_image` draws."""

PATTERNS = ("stripes", "checker", "rings", "weave")
"""Textures a category's product may have."""

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
        colour=(round(red * 255), round(green * 255), round(blue * 255)), pattern=PATTERNS[(code >> 9) % len(PATTERNS)],
        frequency=float(2 + (code >> 12) % 5), angle=float(np.deg2rad((code >> 16) % 180))
    )


def make_image(
    rng: np.random.Generator, size: int | tuple[int, int], style: CategoryStyle | str, anomalous: bool = False,
    defect: str = "blob"
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one product image and its mask.

    The product is drawn first and the defect (one of :data:`DEFECT_KINDS`) after it, so two calls from equal
    ``rng`` states, one normal and one anomalous, give images that differ exactly on the mask. ``size`` is
    ``(H, W)`` or one int; ``style`` a category style or name.

    Returns:
        Image of shape ``[H, W, 3]``, uint8, and mask of shape ``[H, W]``, uint8 with 255 on the defect and 0
        elsewhere (all 0 for a normal image).
    """
    if defect not in DEFECT_KINDS:
        msg = f"Unknown defect kind {defect!r}; choose one of {DEFECT_KINDS}."
        raise ValueError(msg)
    height, width = as_size(size)
    style = category_style(style) if isinstance(style, str) else style
    image = _render_product(rng, height, width, style)
    mask = np.zeros((height, width), dtype=bool)
    if anomalous:
        mask = _DEFECT_SHAPES[defect](rng, height, width)
        if not mask.any():  # only possible for images of a few pixels
            mask[height // 2, width // 2] = True
        image[mask] = _defect_pixels(rng, defect, height, width)[mask]
    return image, mask.astype(np.uint8) * 255


def as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of ``size`` (one int: a square), at least 8x8 pixels."""
    height, width = (size, size) if isinstance(size, int) else size
    if height < 8 or width < 8:
        msg = f"Synthetic images need at least 8x8 pixels, got {height}x{width}."
        raise ValueError(msg)
    return int(height), int(width)


def _render_product(rng: np.random.Generator, height: int, width: int, style: CategoryStyle) -> np.ndarray:
    """Textured product (category colour and pattern, shading, noise), ``[H, W, 3]`` uint8 in ``_PRODUCT_RANGE``."""
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
