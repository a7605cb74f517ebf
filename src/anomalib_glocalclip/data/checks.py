"""Checks of image and mask files before a run: find every file that would be read wrongly or fail, by name.

Anomalib's datasets read with ``Image.open(path).convert("RGB")`` (masks ``.convert("L")``): these checks find the
files that clips, truncates or fails on, and missing or mis-sized masks, so that ``ReaderCheck`` can refuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd
from PIL import Image

from anomalib_glocalclip.data.io import _CORRUPT_FIX, _DECODE_ERRORS, ImageReadError

# Modes whose ``convert("RGB")`` in Anomalib's reader gives wrong pixels or fails (each checked against
# ``anomalib.data.utils.read_image`` in tests/test_data_checks.py): 16-bit and 32-bit integer data is clipped at
# 255, float data in [0, 1] is truncated to 0, premultiplied "La" raises ValueError.
_ANOMALIB_MISREAD_IMAGE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F", "La"})
# Masks go through ``convert("L")`` then ``> 0``: clipping keeps nonzero pixels nonzero, but float values in (0, 1)
# truncate to 0 and "La" raises.
_ANOMALIB_MISREAD_MASK_MODES = frozenset({"F", "La"})
MISREAD_FIX = (
    "read the dataset with the plugin's reader (anomalib_glocalclip.data.LayoutDataModule with its layout), or "
    "re-export the file as 8-bit"
)


@dataclass(frozen=True)
class ImageFileInfo:
    """What an image file's header says: PIL's ``format`` (``"PNG"``), colour ``mode`` (``"I;16"``), ``size`` (H, W)."""

    path: Path
    format: str | None
    mode: str
    size: tuple[int, int]


def inspect_image_file(path: str | Path, *, verify: bool = False, what: str = "image") -> ImageFileInfo:
    """Read an image file's header; with ``verify``, check that its pixel data is whole, at a fraction of a decode.

    A PNG's chunk checksums are compared (PIL's ``verify``, nothing inflated: 1 ms for 900 x 900 pixels that take
    10-30 ms to decode); a JPEG is decoded at 1/8 scale (PIL's ``draft``, all its data read); other formats in full.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: ``path`` is not a file, its header is not that of an image format PIL knows, or (``verify``)
            its pixel data is truncated or corrupt.
    """
    path = Path(path)
    if not path.exists():
        msg = f"Image file not found: {path}. Check the dataset root and the image's path."
        raise FileNotFoundError(msg)
    if not path.is_file():
        msg = f"The {what} path {path} is not a file; point it at an image file."
        raise ImageReadError(msg)
    try:
        with Image.open(path) as img:
            info = ImageFileInfo(path=path, format=img.format, mode=img.mode, size=(img.height, img.width))
            if verify and img.format == "PNG":
                img.verify()
            elif verify:
                img.draft(img.mode, (1, 1))  # a no-op but for JPEG
                img.load()
            return info
    except _DECODE_ERRORS as exc:
        msg = f"Cannot read {what} {path} ({type(exc).__name__}: {exc}): {_CORRUPT_FIX}."
        raise ImageReadError(msg) from exc


def anomalib_reads_correctly(info: ImageFileInfo, *, as_mask: bool = False) -> bool:
    """Whether Anomalib's ``read_image`` (``read_mask`` with ``as_mask``) gets the file of header ``info`` right."""
    misread = _ANOMALIB_MISREAD_MASK_MODES if as_mask else _ANOMALIB_MISREAD_IMAGE_MODES
    return info.mode not in misread


class ProblemKind(StrEnum):
    """What is wrong with a sample's files."""

    MISSING_FILE = "missing file"
    UNREADABLE = "unreadable file"
    MISSING_MASK = "missing mask"
    MASK_SIZE = "mask size differs from image size"
    ANOMALIB_MISREAD = "file Anomalib's reader gets wrong"


@dataclass(frozen=True)
class Problem:
    """One problem with a sample's files (``paths``: image first, then mask), what was found and the fix."""

    kind: ProblemKind
    paths: tuple[Path, ...]
    detail: str
    fix: str

    def __str__(self) -> str:
        """``"<paths>: <detail>. Fix: <fix>"``."""
        return f"{', '.join(str(path) for path in self.paths)}: {self.detail}. Fix: {self.fix}"


class DataCheckError(ImageReadError):
    """A dataset has files that cannot be used; the message lists them and how to fix them."""


def check_samples(
    samples: pd.DataFrame, *, verify: bool = False, anomalib_reader: bool = True, misread_fix: str = MISREAD_FIX,
) -> list[Problem]:
    """Find every problem with the files of an Anomalib samples table.

    Anomalous images need masks where ``samples.attrs["task"]`` is ``"segmentation"`` (without a task: where any
    mask path is set).

    Args:
        samples: Table with ``image_path``, ``label_index`` (0 normal, 1 anomalous, other values unknown) and
            optionally ``mask_path``, as in ``AnomalibDataset.samples``.
        verify: Also check that each file's pixel data is whole (:func:`inspect_image_file`); else headers only.
        anomalib_reader: Whether files Anomalib's readers get wrong (16-bit, float, premultiplied alpha) are
            problems too.
        misread_fix: The fix named for a file Anomalib's reader gets wrong.

    Returns:
        The problems, in the order of the table, image problems before mask problems.
    """
    no_masks = pd.Series([""] * len(samples), index=samples.index)
    mask_paths = samples["mask_path"] if "mask_path" in samples.columns else no_masks
    task = samples.attrs.get("task")
    pixel_level = str(task) == "segmentation" if task is not None else bool(mask_paths.map(_is_set).any())
    fix = misread_fix if anomalib_reader else None
    problems: list[Problem] = []
    for image_path, mask_value, label in zip(samples["image_path"], mask_paths, samples["label_index"], strict=True):
        image = _check_file(Path(image_path), verify=verify, misread_fix=fix, problems=problems)
        if not pixel_level or int(label) != 1:
            continue
        if not _is_set(mask_value):
            detail = "anomalous image of a pixel-level dataset has no mask"
            mask_fix = "add its mask, or use image-level data (a folder layout without masks) for this dataset"
            problems.append(Problem(ProblemKind.MISSING_MASK, (Path(image_path),), detail, mask_fix))
            continue
        mask = _check_file(
            Path(mask_value), verify=verify, misread_fix=fix, problems=problems, image_path=Path(image_path)
        )
        if image is not None and mask is not None and image.size != mask.size:
            detail = f"image is {image.size[0]}x{image.size[1]} (HxW) but its mask is {mask.size[0]}x{mask.size[1]}"
            size_fix = "re-export the mask at its image's size (or let the plugin resize masks, where offered)"
            problems.append(Problem(ProblemKind.MASK_SIZE, (Path(image_path), Path(mask_value)), detail, size_fix))
    return problems


def raise_for_problems(problems: list[Problem], *, what: str = "The dataset", limit: int = 5) -> None:
    """Raise one error listing the first ``limit`` problems of the data named ``what``, if there are any.

    Raises:
        DataCheckError: ``problems`` is not empty; the message gives their count, the first ``limit`` with their
            paths and fixes.
    """
    if not problems:
        return
    lines = [f"{what} has {len(problems)} file problem(s):"]
    lines += [f"  - {problem}" for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more.")
    raise DataCheckError("\n".join(lines))


def _check_file(
    path: Path, *, verify: bool, misread_fix: str | None, problems: list[Problem], image_path: Path | None = None,
) -> ImageFileInfo | None:
    """Inspect one image (or, with ``image_path``, a mask), append its problems and return its header or None.

    ``misread_fix`` is the fix named for a file Anomalib's reader gets wrong, ``None`` not to judge that.
    """
    as_mask = image_path is not None
    paths = (image_path, path) if image_path is not None else (path,)
    what = "mask" if as_mask else "image"
    if not path.exists():
        fix = "add the mask or correct its path" if as_mask else "check the dataset root and the image's path"
        problems.append(Problem(ProblemKind.MISSING_FILE, paths, f"{what} file not found", fix))
        return None
    try:
        info = inspect_image_file(path, verify=verify, what=what)
    except ImageReadError as exc:
        fix = "re-export the file, or remove the sample from the dataset"
        problems.append(Problem(ProblemKind.UNREADABLE, paths, f"cannot read {what} ({_first_line(exc)})", fix))
        return None
    if misread_fix is not None and not anomalib_reads_correctly(info, as_mask=as_mask):
        detail = f"{what} has PIL mode {info.mode!r}, which Anomalib's reader clips, truncates or fails on"
        problems.append(Problem(ProblemKind.ANOMALIB_MISREAD, paths, detail, misread_fix))
    return info


def _is_set(value: object) -> bool:
    """Whether a samples-table cell holds a path (not NaN, None or an empty string)."""
    return isinstance(value, str | Path) and str(value) != ""


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
