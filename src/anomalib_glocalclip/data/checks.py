"""Checks of image and mask files before a run: find every file that would be read wrongly or fail, by name.

Anomalib's datasets read images with ``Image.open(path).convert("RGB")`` and masks with ``.convert("L")``. That
clips 16-bit and 32-bit data (mostly white images), truncates float data to black, fails on premultiplied alpha
and reports a truncated file as a bare ``OSError`` naming no file. These checks find such files, and missing or
mis-sized masks, up front, so a run can refuse them with one message listing the files and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd
from PIL import Image

from anomalib_glocalclip.data.io import _DECODE_ERRORS, ImageReadError, load_decoded

# Modes whose ``convert("RGB")`` in Anomalib's reader gives wrong pixels or fails (each checked against
# ``anomalib.data.utils.read_image`` in tests/test_data_checks.py): 16-bit and 32-bit integer data is clipped at
# 255, float data in [0, 1] is truncated to 0, premultiplied "La" raises ValueError.
_ANOMALIB_MISREAD_IMAGE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F", "La"})
# Masks go through ``convert("L")`` then ``> 0``: clipping keeps nonzero pixels nonzero, but float values in (0, 1)
# truncate to 0 and "La" raises.
_ANOMALIB_MISREAD_MASK_MODES = frozenset({"F", "La"})
_EXIF_ORIENTATION_TAG = 0x0112
MISREAD_FIX = (
    "read the dataset with the plugin's reader (anomalib_glocalclip.data.LayoutDataModule with its layout), or "
    "re-export the file as 8-bit"
)


@dataclass(frozen=True)
class ImageFileInfo:
    """What an image file's header says about its pixels.

    Args:
        path: The file.
        format: PIL's name of the file format, such as ``"PNG"``.
        mode: PIL colour mode, such as ``"RGB"``, ``"P"`` or ``"I;16"``.
        bits: Bits per channel as PIL decodes them (16-bit RGB PNGs decode to 8 bits per channel).
        size: ``(H, W)``.
        exif_orientation: EXIF orientation tag (1 to 8), or ``None`` when absent. Readers ignore it.
        has_alpha: Whether the file has an alpha channel or a transparent palette entry.
        is_palette: Whether pixels are palette indices.
    """

    path: Path
    format: str | None
    mode: str
    bits: int
    size: tuple[int, int]
    exif_orientation: int | None
    has_alpha: bool
    is_palette: bool


def inspect_image_file(path: str | Path) -> ImageFileInfo:
    """Read an image file's header (the pixel data is not decoded, so a truncated file is not detected here).

    Args:
        path: Image file.

    Returns:
        The header's description of the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: ``path`` is not a file, or its header is not that of an image format PIL knows.
    """
    path = Path(path)
    if not path.exists():
        msg = f"Image file not found: {path}. Check the dataset root and the image's path."
        raise FileNotFoundError(msg)
    if not path.is_file():
        msg = f"The image path {path} is not a file; point it at an image file."
        raise ImageReadError(msg)
    try:
        with Image.open(path) as img:
            orientation = _exif_orientation(img)
            return ImageFileInfo(
                path=path,
                format=img.format,
                mode=img.mode,
                bits=_bits_per_channel(img.mode),
                size=(img.height, img.width),
                exif_orientation=int(orientation) if orientation is not None else None,
                has_alpha="A" in img.mode or "a" in img.mode or "transparency" in img.info,
                is_palette=img.mode in {"P", "PA"},
            )
    except _DECODE_ERRORS as exc:
        msg = (
            f"Cannot read image {path} ({type(exc).__name__}: {exc}): the file is empty, not an image, or its "
            "header is corrupt; re-export the file or remove it from the dataset."
        )
        raise ImageReadError(msg) from exc


def anomalib_reads_correctly(info: ImageFileInfo, *, as_mask: bool = False) -> bool:
    """Whether Anomalib's own reader (``read_image``, or ``read_mask`` with ``as_mask``) gets this file right.

    Args:
        info: The file's header, from :func:`inspect_image_file`.
        as_mask: Judge Anomalib's mask reader instead of its image reader.

    Returns:
        ``False`` for the colour modes Anomalib clips, truncates or fails on.
    """
    misread = _ANOMALIB_MISREAD_MASK_MODES if as_mask else _ANOMALIB_MISREAD_IMAGE_MODES
    return info.mode not in misread


class ProblemKind(StrEnum):
    """What is wrong with a sample's files."""

    MISSING_FILE = "missing file"
    UNREADABLE = "unreadable file"
    MISSING_MASK = "missing mask"
    MASK_SIZE = "mask size differs from image size"
    ANOMALIB_MISREAD = "file Anomalib's reader gets wrong"
    ORPHAN_MASK = "mask without an image"


@dataclass(frozen=True)
class Problem:
    """One problem with a sample's files.

    Args:
        kind: What is wrong.
        paths: The files concerned (image first, then mask).
        detail: One line on what was found.
        fix: One line on how to fix it.
    """

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
    samples: pd.DataFrame,
    *,
    full_decode: bool = False,
    pixel_level: bool | None = None,
    anomalib_reader: bool = True,
    misread_fix: str = MISREAD_FIX,
) -> list[Problem]:
    """Find every problem with the files of an Anomalib samples table.

    Args:
        samples: Table with ``image_path``, ``label_index`` (0 normal, 1 anomalous, other values unknown) and
            optionally ``mask_path``, as in ``AnomalibDataset.samples``.
        full_decode: Decode every file completely, which finds truncated and corrupt pixel data but costs a full
            read; otherwise only headers are read. Defaults to ``False``.
        pixel_level: Whether anomalous images must have masks. ``None`` takes it from ``samples.attrs["task"]``
            (``"segmentation"``), or else from whether any mask path is set. Defaults to ``None``.
        anomalib_reader: Whether the files will be read by Anomalib's own readers, so that files they get wrong
            (16-bit, float, premultiplied alpha) are problems too. Defaults to ``True``.
        misread_fix: The fix named for a file Anomalib's reader gets wrong. Defaults to :data:`MISREAD_FIX`.

    Returns:
        The problems, in the order of the table, image problems before mask problems.
    """
    has_masks = "mask_path" in samples.columns
    mask_paths = samples["mask_path"] if has_masks else pd.Series([""] * len(samples), index=samples.index)
    if pixel_level is None:
        task = samples.attrs.get("task")
        pixel_level = str(task) == "segmentation" if task is not None else bool(mask_paths.map(_is_set).any())
    problems: list[Problem] = []
    for image_path, mask_value, label in zip(samples["image_path"], mask_paths, samples["label_index"], strict=True):
        image = _check_file(
            Path(image_path),
            full_decode=full_decode,
            misread_fix=misread_fix if anomalib_reader else None,
            problems=problems,
        )
        if not pixel_level or int(label) != 1:
            continue
        if not _is_set(mask_value):
            problems.append(
                Problem(
                    ProblemKind.MISSING_MASK,
                    (Path(image_path),),
                    "anomalous image of a pixel-level dataset has no mask",
                    "add its mask, or use image-level data (a folder layout without masks) for this dataset",
                ),
            )
            continue
        mask = _check_file(
            Path(mask_value),
            full_decode=full_decode,
            misread_fix=misread_fix if anomalib_reader else None,
            problems=problems,
            image_path=Path(image_path),
        )
        if image is not None and mask is not None and image.size != mask.size:
            problems.append(
                Problem(
                    ProblemKind.MASK_SIZE,
                    (Path(image_path), Path(mask_value)),
                    f"image is {image.size[0]}x{image.size[1]} (HxW) but its mask is {mask.size[0]}x{mask.size[1]}",
                    "re-export the mask at its image's size (or let the plugin resize masks, where offered)",
                ),
            )
    return problems


def check_mvtec_layout(
    root: str | Path,
    category: str,
    extensions: tuple[str, ...] = (".png", ".PNG"),
) -> list[Problem]:
    """Find anomalous test images without a mask, and masks without an image, in an MVTec AD layout.

    Anomalib's ``MVTecAD`` pairs the sorted masks with the sorted anomalous images at setup and fails on any
    mismatch with ``ValueError: Must have equal len keys and value ...`` (or a ``MisMatchError``), naming no file;
    run this first to name them. Image ``test/<defect>/<stem>.png`` takes ``ground_truth/<defect>/<stem>_mask.png``
    (or ``<stem>.png``).

    Args:
        root: Dataset root (the folder holding the category folders).
        category: Category folder name.
        extensions: File name endings Anomalib's MVTec AD dataset reads. Defaults to ``(".png", ".PNG")``.

    Returns:
        The problems, sorted by path; empty when every anomalous image has its mask and every mask its image.
    """
    base = Path(root) / category
    problems: list[Problem] = []
    defects = sorted(path for path in (base / "test").glob("*") if path.is_dir() and path.name != "good")
    for defect in defects:
        mask_dir = base / "ground_truth" / defect.name
        masks = {path.stem: path for path in _files(mask_dir, extensions)}
        images = _files(defect, extensions)
        stems = {image.stem for image in images}
        for image in images:
            if f"{image.stem}_mask" not in masks and image.stem not in masks:
                expected = mask_dir / f"{image.stem}_mask{image.suffix}"
                problems.append(
                    Problem(
                        ProblemKind.MISSING_MASK,
                        (image,),
                        f"anomalous image has no mask (expected {expected})",
                        "add the mask; for image-level data (no masks at all) use the folder layout, not MVTec AD's",
                    ),
                )
        for stem, mask in masks.items():
            if stem.removesuffix("_mask") not in stems and stem not in stems:
                problems.append(
                    Problem(
                        ProblemKind.ORPHAN_MASK,
                        (mask,),
                        f"mask has no image in {defect}",
                        "remove the mask or add its image",
                    ),
                )
    return sorted(problems, key=lambda problem: problem.paths)


def raise_for_problems(problems: list[Problem], *, what: str = "The dataset", limit: int = 5) -> None:
    """Raise one error listing the first problems, if there are any.

    Args:
        problems: From :func:`check_samples`.
        what: Name of the data in the message. Defaults to ``"The dataset"``.
        limit: How many problems the message lists. Defaults to ``5``.

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
    path: Path,
    *,
    full_decode: bool,
    misread_fix: str | None,
    problems: list[Problem],
    image_path: Path | None = None,
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
        info = inspect_image_file(path)
        if full_decode:
            load_decoded(path, what=what)
    except ImageReadError as exc:
        fix = "re-export the file, or remove the sample from the dataset"
        problems.append(Problem(ProblemKind.UNREADABLE, paths, f"cannot read {what} ({_first_line(exc)})", fix))
        return None
    if misread_fix is not None and not anomalib_reads_correctly(info, as_mask=as_mask):
        problems.append(
            Problem(
                ProblemKind.ANOMALIB_MISREAD,
                paths,
                f"{what} has PIL mode {info.mode!r}, which Anomalib's reader clips, truncates or fails on",
                misread_fix,
            ),
        )
    return info


def _exif_orientation(img: Image.Image) -> int | None:
    """The EXIF orientation tag found in the header, without decoding pixels.

    ``Image.getexif`` would decode a whole PNG to look for a late eXIf chunk: only EXIF data read with the header
    (JPEG APP1, an early PNG eXIf chunk, WebP) and TIFF tags are used.
    """
    tags = getattr(img, "tag_v2", None)
    if tags is not None and _EXIF_ORIENTATION_TAG in tags:
        return int(tags[_EXIF_ORIENTATION_TAG])
    exif_bytes = img.info.get("exif")
    if not exif_bytes:
        return None
    exif = Image.Exif()
    exif.load(exif_bytes)
    orientation = exif.get(_EXIF_ORIENTATION_TAG)
    return int(orientation) if orientation is not None else None


def _files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` (not recursive) whose names end in one of ``extensions``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and path.name.endswith(extensions))


def _bits_per_channel(mode: str) -> int:
    if mode.startswith("I;16"):
        return 16
    if mode in {"I", "F"}:
        return 32
    return 1 if mode == "1" else 8


def _is_set(value: object) -> bool:
    """Whether a samples-table cell holds a path (not NaN, None or an empty string)."""
    return isinstance(value, str | Path) and str(value) != ""


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
