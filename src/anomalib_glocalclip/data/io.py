"""Reading images and masks of any common colour mode or bit depth, with errors naming the file and the fix.

Unlike Anomalib's ``convert("RGB")`` reader, 16-bit and float data is scaled into [0, 1], not clipped. EXIF
orientation is not applied, as in Anomalib, so masks stay aligned with pixels.
"""

import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2.functional import to_dtype

from anomalib_glocalclip.utils.errors import PluginError

_MAX_16_BIT = 65535.0
# Errors PIL raises for files that exist but cannot be decoded: unknown format (UnidentifiedImageError is an
# OSError), truncated data ("image file is truncated"), broken chunks (SyntaxError), and, from some format plugins
# on malformed headers, struct, index and key errors.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)
_CORRUPT_FIX = (
    "the file is corrupt, truncated, not an image, or a variant PIL cannot decode (such as float RGB TIFF); "
    "re-export the file or remove it from the dataset"
)


class ImageReadError(PluginError, ValueError):
    """An image or mask that cannot be used; the message names the file and says how to fix it."""


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image of any common mode and bit depth as RGB.

    Grayscale images are replicated to 3 channels, alpha is dropped, 16-bit data is divided by 65535 and float
    data is kept if it lies in [0, 1] and min-max scaled otherwise.

    Returns:
        Image of shape ``[3, H, W]``, float32 in [0, 1].

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: ``path`` is not a file, or is corrupt, truncated or not an image.
    """
    path = Path(path)
    if not path.exists():
        msg = f"Image file not found: {path}. Check the dataset root and the image's path."
        raise FileNotFoundError(msg)
    img = load_decoded(path, what="image")
    if _is_high_depth(img):
        gray = torch.from_numpy(_scale_high_depth(img))
        return gray.unsqueeze(0).expand(3, -1, -1).contiguous()
    rgb = torch.from_numpy(np.asarray(_to_rgb8(img, path)).copy()).permute(2, 0, 1).contiguous()
    # Scaled like Anomalib's reader (a multiplication by 1/255), so 8-bit files give bit-identical tensors.
    return to_dtype(rgb, torch.float32, scale=True)


def read_mask(
    path: str | Path, expected_size: tuple[int, int] | None = None, image_path: str | Path | None = None,
) -> torch.Tensor:
    """Read a ground-truth mask; every nonzero pixel (any colour channel, any bit depth) is anomalous.

    Args:
        path: Mask file.
        expected_size: ``(H, W)`` of the image the mask belongs to; checked when given.
        image_path: The image the mask belongs to, named in error messages.

    Returns:
        Mask of shape ``[H, W]``, uint8 with values 0 and 1.

    Raises:
        ImageReadError: The mask is missing, corrupt, or its size differs from ``expected_size``.
    """
    path = Path(path)
    for_image = f" of image {image_path}" if image_path is not None else ""
    if not path.exists():
        msg = (
            f"Mask file not found: {path}{for_image}. Add the mask, or move the image to a folder of image-level "
            "data (images without masks)."
        )
        raise ImageReadError(msg)
    img = load_decoded(path, what="mask", context=for_image)
    mask = torch.from_numpy(_nonzero(img, path).astype(np.uint8))
    if expected_size is not None and tuple(mask.shape) != tuple(expected_size):
        height, width = mask.shape
        image = f"its image {image_path}" if image_path is not None else "its image"
        msg = (
            f"Mask {path} is {height}x{width} (HxW) but {image} is {expected_size[0]}x{expected_size[1]}; masks must "
            "have the size of their image. Re-export the mask at the image's size, or let the plugin resize masks "
            "(resize_masks=True of its datamodules; --resize-masks of anomalib-glocalclip evaluate)."
        )
        raise ImageReadError(msg)
    return mask


def load_decoded(path: Path, what: str = "image", context: str = "") -> Image.Image:
    """Open and fully decode ``path`` (in its file's mode), so that truncated files fail here, not in a worker.

    ``what`` (``"image"`` or ``"mask"``) and ``context`` (e.g. ``" of image <path>"``) are named in the error.

    Raises:
        ImageReadError: ``path`` is not a file, is corrupt or truncated, or is over PIL's size limit.
    """
    if not path.is_file():
        msg = f"The {what} path {path}{context} is not a file; point it at an image file."
        raise ImageReadError(msg)
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except Image.DecompressionBombError as exc:
        # Not broken, just larger than PIL allows by default (a guard against decompression bombs).
        msg = (
            f"The {what} {path}{context} is too large to read safely ({exc}). Downscale it, or, if you trust the "
            "file, lift PIL's limit with `PIL.Image.MAX_IMAGE_PIXELS = None` before the run."
        )
        raise ImageReadError(msg) from exc
    except _DECODE_ERRORS as exc:
        msg = f"Cannot read {what} {path}{context} ({type(exc).__name__}: {exc}): {_CORRUPT_FIX}."
        raise ImageReadError(msg) from exc


def _scale_high_depth(img: Image.Image) -> np.ndarray:
    """Scale a single-channel 16-bit, 32-bit integer or float image into [0, 1].

    Returns:
        Array of shape ``[H, W]``, float32 in [0, 1].
    """
    data = np.asarray(img).astype(np.float32)
    if img.mode.startswith("I;16"):
        return data / _MAX_16_BIT
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(data.min()), float(data.max())
    # Older PIL versions open 16-bit PNGs as mode "I": values in the 16-bit range are read as 16-bit data.
    if img.mode == "I" and low >= 0.0 and high <= _MAX_16_BIT:
        return data / _MAX_16_BIT
    if img.mode == "F" and low >= 0.0 and high <= 1.0:
        return data
    if high > low:
        return (data - low) / (high - low)
    return np.clip(data, 0.0, 1.0)


def _is_high_depth(img: Image.Image) -> bool:
    """Whether ``img`` is single-channel 16-bit, 32-bit integer or float data, which PIL would clip to 8 bits."""
    return img.mode.startswith("I;16") or img.mode in {"I", "F"}


def _to_rgb8(img: Image.Image, path: Path) -> Image.Image:
    """Convert an 8-bit image of any other mode (L, LA, P, RGBA, CMYK, 1, ...) to RGB, dropping alpha."""
    try:
        if img.mode == "La":  # premultiplied LA: PIL converts it to LA only
            img = img.convert("LA")
        return img.convert("RGB")
    except ValueError as exc:
        msg = (
            f"Cannot convert {path} from PIL colour mode {img.mode!r} to RGB ({exc}); re-export it as 8-bit RGB or "
            "grayscale, or 16-bit grayscale."
        )
        raise ImageReadError(msg) from exc


def _nonzero(img: Image.Image, path: Path) -> np.ndarray:
    """Pixels where any colour channel (alpha excluded) is nonzero.

    Returns:
        Boolean array of shape ``[H, W]``.
    """
    if _is_high_depth(img) or img.mode in {"1", "L"}:
        data = np.asarray(img)
        if data.dtype.kind == "f":
            data = np.nan_to_num(data, nan=0.0)
        return data != 0
    return np.asarray(_to_rgb8(img, path)).any(axis=-1)
