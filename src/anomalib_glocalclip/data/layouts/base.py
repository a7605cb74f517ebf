"""What a dataset layout is: how to list a dataset's categories and its samples from the official folders.

The samples table has Anomalib's columns plus ``category`` and ``pixel_labels`` (whether the row's anomalies come
with masks); ``samples.attrs["task"]`` is ``"segmentation"`` or ``"classification"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "test")
SAMPLE_COLUMNS = ["path", "split", "label", "image_path", "mask_path", "label_index", "category", "pixel_labels"]


class DatasetLayoutError(ValueError):
    """A dataset folder that does not match its layout: the message names the path and the fix."""


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset is laid out on disk.

    Attributes:
        name: registry name (``"mvtec_ad"``, ``"visa"``, ...).
        description: one line: the dataset, where to get it, the folders expected.
        list_categories: ``root -> sorted category names``.
        make_samples: ``(root, category, split) -> samples table`` for split ``"train"`` or ``"test"``.
        pixel_labels: whether the anomalies of this dataset come with masks.
    """

    name: str
    description: str
    list_categories: Callable[[Path], list[str]]
    make_samples: Callable[[Path, str, str], pd.DataFrame]
    pixel_labels: bool = True

    def categories(self, root: str | Path) -> list[str]:
        """Categories found under ``root``; a clear error if there are none."""
        root = check_root(root, self)
        categories = self.list_categories(root)
        if not categories:
            msg = f"No {self.name} categories found under {root}. Expected: {self.description}"
            raise DatasetLayoutError(msg + _unrecognised_folders(root))
        return categories

    def samples(self, root: str | Path, category: str | None, split: str) -> pd.DataFrame:
        """Samples of one category (``None``: the only/whole dataset) and split, checked for emptiness."""
        root = check_root(root, self)
        if split not in SPLITS:
            msg = f"Unknown split {split!r}; use one of {SPLITS}."
            raise ValueError(msg)
        known = self.categories(root)
        category = category if category is not None else known[0] if len(known) == 1 else None
        if category is None:
            msg = f"{self.name} under {root} has several categories; choose one of: {', '.join(known)}."
            raise DatasetLayoutError(msg)
        if category not in known:
            if (root / category).is_dir():
                msg = (
                    f"{root / category} is not laid out as a {self.name} category. Expected: {self.description} "
                    f"Categories found: {', '.join(known)}."
                )
                raise DatasetLayoutError(msg)
            msg = f"Unknown {self.name} category {category!r} under {root}. Categories found: {', '.join(known)}."
            raise DatasetLayoutError(msg)
        samples = self.make_samples(root, category, split)
        if samples.empty:
            msg = f"No {split} images for {self.name} category {category!r} under {root}. Expected: {self.description}"
            raise DatasetLayoutError(msg)
        return samples


class _LayoutReader(Protocol):
    """What ``layout_of`` makes a layout of: an object with the layout's ``list_categories`` and ``make_samples``."""

    def list_categories(self, root: Path) -> list[str]: ...
    def make_samples(self, root: Path, category: str, split: str) -> pd.DataFrame: ...


def layout_of(name: str, description: str, reader: _LayoutReader, pixel_labels: bool = True) -> DatasetLayout:
    """A layout listing its categories and samples with ``reader.list_categories`` and ``reader.make_samples``."""
    return DatasetLayout(name, description, reader.list_categories, reader.make_samples, pixel_labels)


def _unrecognised_folders(root: Path, shown: int = 10) -> str:
    """A sentence naming the sub-folders of ``root``, none of which is a category (empty if there are none)."""
    folders = sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not folders:
        return ""
    more = f" and {len(folders) - shown} more" if len(folders) > shown else ""
    return (
        f" Sub-folders of {root} not laid out so: {', '.join(folders[:shown])}{more}"
        f" (e.g. {root / folders[0]} lacks the folders above)."
    )


def check_root(root: str | Path, layout: DatasetLayout) -> Path:
    """The dataset root as a ``Path``, or a clear error if it does not exist."""
    root = Path(root).expanduser()
    if not root.is_dir():
        msg = f"Dataset folder {root} does not exist. {layout.name}: {layout.description}"
        raise DatasetLayoutError(msg)
    return root


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def subfolders(folder: Path) -> list[str]:
    """Names of the non-hidden sub-folders of ``folder``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_mask(mask_folder: Path, image: Path, suffixes: Iterable[str] = ("_mask", "")) -> Path | None:
    """The mask of ``image`` in ``mask_folder``: ``<stem><suffix>.<any image extension>``, first match wins."""
    for suffix in suffixes:
        for candidate in image_files(mask_folder):
            if candidate.stem == f"{image.stem}{suffix}":
                return candidate
    return None


def make_table(rows: list[dict], pixel_labels: bool) -> pd.DataFrame:
    """A samples table from rows with keys ``path, split, label, image_path, mask_path, label_index, category``."""
    table = pd.DataFrame(rows, columns=SAMPLE_COLUMNS[:-1])
    table["mask_path"] = table["mask_path"].fillna("").astype(str)
    table["label_index"] = table["label_index"].astype(int)
    table["pixel_labels"] = pixel_labels
    table.attrs["task"] = "segmentation" if pixel_labels else "classification"
    return table


def sample_row(
    category_dir: Path, split: str, label: str, image: Path, anomalous: bool, mask: Path | None = None,
    category: str | None = None,
) -> dict:
    """One row of a samples table."""
    return {
        "path": str(category_dir),
        "split": split,
        "label": label,
        "image_path": str(image),
        "mask_path": str(mask) if mask is not None else "",
        "label_index": int(anomalous),
        "category": category if category is not None else category_dir.name,
    }


def require_mask(mask: Path | None, image: Path, expected: Path) -> Path:
    """``mask`` if found, else a clear error naming the image and where its mask was looked for."""
    if mask is None:
        msg = (
            f"Mask missing for anomalous image {image}: expected a file like {expected}. Add the mask, or move "
            "the image to a dataset used with image labels only."
        )
        raise DatasetLayoutError(msg)
    return mask
