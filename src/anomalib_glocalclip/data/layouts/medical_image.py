"""Medical datasets with image labels only (``classification`` tables): HeadCT, BrainMRI and Br35H."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from .base import DatasetLayout, DatasetLayoutError, image_files, layout_of, make_table, sample_row
from .discovery import child_folder, find_dataset_folder, one_category

NORMAL_LABEL = "good"


# HeadCT: head_ct/NNN.png and labels.csv with columns "id, hemorrhage" (1 = hemorrhage).
HEADCT_CATEGORY = "headct"
HEADCT_LABELS = "labels.csv"
HEADCT_IMAGE_FOLDER = ("head_ct",)


def _headct_image_folder(folder: Path) -> Path | None:
    """``head_ct/`` next to ``labels.csv``, or ``head_ct/head_ct/`` as Kaggle's archive nests it."""
    images = child_folder(folder, HEADCT_IMAGE_FOLDER)
    while images is not None and not image_files(images):
        images = child_folder(images, HEADCT_IMAGE_FOLDER)
    return images


def _is_headct_folder(folder: Path) -> bool:
    return (folder / HEADCT_LABELS).is_file() and _headct_image_folder(folder) is not None


def headct_root(root: Path) -> Path | None:
    """The folder holding ``labels.csv`` and ``head_ct/``: ``root`` or one level below."""
    return find_dataset_folder(root, _is_headct_folder)


def read_headct_labels(path: Path) -> dict[int, bool]:
    """``labels.csv`` as ``{image id: hemorrhage}``; header names are read with surrounding spaces removed."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = [{key.strip(): value.strip() for key, value in row.items() if key} for row in csv.DictReader(file)]
    if not rows or not {"id", "hemorrhage"} <= set(rows[0]):
        msg = f"{path} must have the columns id, hemorrhage (HeadCT's labels.csv)."
        raise DatasetLayoutError(msg)
    try:
        return {int(row["id"]): bool(int(row["hemorrhage"])) for row in rows}
    except ValueError as exc:
        msg = f"{path} has a non-integer id or hemorrhage value ({exc})."
        raise DatasetLayoutError(msg) from exc


def headct_samples(root: Path, category: str, split: str) -> pd.DataFrame:
    """Every image of ``head_ct/`` (test split), labelled by ``labels.csv`` matched on the image number."""
    base = headct_root(root)
    rows = []
    if split == "test" and base is not None:
        labels = read_headct_labels(base / HEADCT_LABELS)
        images = {}
        for image in image_files(_headct_image_folder(base)):
            if not image.stem.isdigit() or int(image.stem) not in labels:
                msg = f"HeadCT image {image} has no row in {base / HEADCT_LABELS} (its id is the file's number)."
                raise DatasetLayoutError(msg)
            images[int(image.stem)] = image
        missing = sorted(set(labels) - set(images))
        if missing:
            msg = f"{base / HEADCT_LABELS} lists ids {missing[:5]} with no image in {_headct_image_folder(base)}."
            raise DatasetLayoutError(msg)
        for image_id, image in sorted(images.items()):
            label = "hemorrhage" if labels[image_id] else NORMAL_LABEL
            rows.append(sample_row(base, split, label, image, labels[image_id], category=category))
    return make_table(rows, pixel_labels=False)


HEADCT = DatasetLayout(
    name="headct",
    description=(
        "HeadCT hemorrhage (https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage): <root>/labels.csv "
        "(columns id, hemorrhage) and <root>/head_ct/NNN.png (or head_ct/head_ct/NNN.png, as Kaggle nests it); "
        "image labels only."
    ),
    list_categories=partial(one_category, HEADCT_CATEGORY, headct_root),
    make_samples=headct_samples,
    pixel_labels=False,
)


@dataclass(frozen=True)
class YesNoFolders:
    """A single-category dataset with a ``yes/`` folder of anomalous and a ``no/`` folder of normal images.

    Attributes:
        category: the one category, named after the dataset.
        anomaly_label: label of the ``yes`` images.
        prefer: sub-folders read instead of ``root`` when present (Kaggle's BrainMRI archive holds the images
            twice, at its top and in ``brain_tumor_dataset/``; the paper read the latter).
    """

    category: str
    anomaly_label: str = "tumor"
    prefer: tuple[str, ...] = ()

    def folder(self, root: Path) -> Path | None:
        """The folder holding ``yes/`` and ``no/`` (others, such as Br35H's unlabelled ``pred/``, are ignored)."""
        preferred = child_folder(root, self.prefer) if self.prefer else None
        if preferred is not None and self._has_yes_no(preferred):
            return preferred
        return find_dataset_folder(root, self._has_yes_no, self.prefer)

    @staticmethod
    def _has_yes_no(folder: Path) -> bool:
        return child_folder(folder, ("yes",)) is not None and child_folder(folder, ("no",)) is not None

    def list_categories(self, root: Path) -> list[str]:
        """The dataset's one category, if ``yes/`` and ``no/`` are found."""
        return [self.category] if self.folder(root) is not None else []

    def make_samples(self, root: Path, category: str, split: str) -> pd.DataFrame:
        """All images of ``no/`` (normal) and ``yes/`` (anomalous), in the test split."""
        base = self.folder(root)
        rows = []
        if split == "test" and base is not None:
            for name, anomalous in (("no", False), ("yes", True)):
                label = self.anomaly_label if anomalous else NORMAL_LABEL
                images = image_files(child_folder(base, (name,)))
                rows.extend(sample_row(base, split, label, image, anomalous, category=category) for image in images)
        return make_table(rows, pixel_labels=False)


BRAINMRI = layout_of(
    "brainmri",
    "BrainMRI (https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection): "
    "<root>/brain_tumor_dataset/{yes,no}/*.{jpg,jpeg,png} (read instead of the archive's top-level copies), or "
    "<root>/{yes,no}; image labels only.",
    YesNoFolders(category="brainmri", prefer=("brain_tumor_dataset",)),
    pixel_labels=False,
)

BR35H = layout_of(
    "br35h",
    "Br35H (https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection): <root>/yes/yN.jpg and "
    "<root>/no/noN.jpg (the unlabelled pred/ folder is ignored); <root> may also be the folder holding them; "
    "image labels only.",
    YesNoFolders(category="br35h"),
    pixel_labels=False,
)
