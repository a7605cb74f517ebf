"""Finding a dataset's folders inside an official download, which may come with an extra top-level folder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from PIL import Image

from .base import DatasetLayoutError, image_files, subfolders

SKIPPED_FOLDERS = {"__macosx"}
"""Folders never searched for datasets: zip archives made on macOS carry a ``__MACOSX`` copy of every folder."""


def child_folder(folder: Path, patterns: Iterable[str]) -> Path | None:
    """The first sub-folder of ``folder`` whose name matches one of ``patterns`` (case-insensitive, in order)."""
    names = subfolders(folder)
    for pattern in patterns:
        for name in names:
            if fnmatch(name.lower(), pattern.lower()):
                return folder / name
    return None


def find_dataset_folder(
    root: Path, is_dataset_folder: Callable[[Path], bool], prefer: Iterable[str] = (), depth: int = 1,
) -> Path | None:
    """``root`` if it is the dataset folder, else the dataset folder found up to ``depth`` levels below it.

    The shallowest level with a match wins. Several matches on that level are settled by ``prefer`` (folder
    names, case-insensitive, in order of preference, compared with the path below ``root``); otherwise they
    are an error, since guessing could silently test the wrong data.

    Raises:
        DatasetLayoutError: several folders qualify and ``prefer`` does not pick one.
    """
    level = [root]
    for _ in range(depth + 1):
        found = [folder for folder in level if is_dataset_folder(folder)]
        if len(found) == 1:
            return found[0]
        if found:
            return _preferred(root, found, tuple(prefer))
        level = [
            folder / name for folder in level for name in subfolders(folder) if name.lower() not in SKIPPED_FOLDERS
        ]
    return None


def _preferred(root: Path, found: list[Path], prefer: tuple[str, ...]) -> Path:
    for name in prefer:
        chosen = [
            folder for folder in found if name.lower() in (part.lower() for part in folder.relative_to(root).parts)
        ]
        if len(chosen) == 1:
            return chosen[0]
    listed = ", ".join(str(folder) for folder in found)
    msg = f"Several dataset folders found under {root}: {listed}. Point the dataset root at one of them."
    raise DatasetLayoutError(msg)


def one_category(category: str, find_root: Callable[[Path], Path | None], root: Path) -> list[str]:
    """``[category]`` if ``find_root`` finds the dataset under ``root``, else ``[]`` (with ``partial``: a lister)."""
    return [category] if find_root(root) is not None else []


def index_by_stem(folder: Path | None) -> dict[str, Path]:
    """Image files of ``folder`` by lower-case stem (the first in sorted order wins for equal stems)."""
    index: dict[str, Path] = {}
    for path in image_files(folder) if folder is not None else []:
        index.setdefault(path.stem.lower(), path)
    return index


def mask_for(index: dict[str, Path], image: Path, suffixes: Iterable[str]) -> Path | None:
    """The mask of ``image``: the indexed file named ``<image stem><suffix>`` for the first suffix that exists."""
    for suffix in suffixes:
        mask = index.get(f"{image.stem}{suffix}".lower())
        if mask is not None:
            return mask
    return None


def mask_has_defect(path: Path) -> bool:
    """Whether any pixel of the mask at ``path`` is nonzero (datasets that label every image with a mask)."""
    try:
        with Image.open(path) as mask:
            return bool(np.asarray(mask).any())
    except OSError as exc:
        msg = f"Cannot read mask {path} ({exc}); re-extract the dataset archive."
        raise DatasetLayoutError(msg) from exc
