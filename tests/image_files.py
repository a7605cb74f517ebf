"""Small image files of every kind the bad-input tests need (written with PIL, 64 px or less)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64


def rgb_array(seed: int = 0, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Random 8-bit RGB pixels ``[H, W, 3]``."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def gray16_array(seed: int = 0, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Random 16-bit grayscale pixels ``[H, W]`` spanning the whole 16-bit range."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width), dtype=np.uint16)


def gray16_as_8_bit(gray16: np.ndarray) -> np.ndarray:
    """The 8-bit version of 16-bit data (nearest level), replicated to RGB ``[H, W, 3]``."""
    gray8 = np.round(gray16.astype(np.float64) / 257.0).astype(np.uint8)
    return np.repeat(gray8[..., None], 3, axis=-1)


def mask_array(height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Binary 8-bit mask ``[H, W]`` (0 and 255) with a square defect."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4 : height // 2, width // 4 : width // 2] = 255
    return mask


def save(path: Path, image: Image.Image, **kwargs: object) -> Path:
    """Save ``image`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def save_rgb(path: Path, seed: int = 0, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Save random 8-bit RGB pixels to ``path``; returns them ``[H, W, 3]``."""
    array = rgb_array(seed, height, width)
    save(path, Image.fromarray(array))
    return array


def save_mask(path: Path, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Save :func:`mask_array` to ``path``; returns it."""
    array = mask_array(height, width)
    save(path, Image.fromarray(array))
    return array


def truncated_bytes(image: Image.Image, fmt: str, keep: float = 0.6) -> bytes:
    """The first ``keep`` of ``image`` encoded as ``fmt``: the header is whole, pixel data is cut."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    return data[: int(len(data) * keep)]


def exif_rotated_jpeg(path: Path, array: np.ndarray, orientation: int = 6) -> Path:
    """Save ``array`` as a JPEG whose EXIF orientation tag says "rotate for display"."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(path, Image.fromarray(array), format="JPEG", quality=95, exif=exif.tobytes())


def write_folder_set(root: Path, n_good: int = 2, n_bad: int = 2) -> Path:
    """Folder layout ``good/``, ``test_good/``, ``bad/``, ``masks/`` of 8-bit RGB images and binary masks."""
    for index in range(n_good):
        save_rgb(root / "good" / f"{index:03d}.png", seed=index)
    save_rgb(root / "test_good" / "000.png", seed=50)
    for index in range(n_bad):
        save_rgb(root / "bad" / f"{index:03d}.png", seed=100 + index)
        save_mask(root / "masks" / f"{index:03d}.png")
    return root


def write_mvtec_set(root: Path, category: str = "bottle", n_good: int = 2, n_bad: int = 2) -> Path:
    """MVTec AD layout of 8-bit RGB images: train/good, test/good, test/scratch and their masks."""
    base = root / category
    for index in range(n_good):
        save_rgb(base / "train" / "good" / f"{index:03d}.png", seed=index)
        save_rgb(base / "test" / "good" / f"{index:03d}.png", seed=50 + index)
    for index in range(n_bad):
        save_rgb(base / "test" / "scratch" / f"{index:03d}.png", seed=100 + index)
        save_mask(base / "ground_truth" / "scratch" / f"{index:03d}_mask.png")
    return root
