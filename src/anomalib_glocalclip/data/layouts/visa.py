"""VisA, raw (as downloaded, split by ``split_csv/1cls.csv``, read in place) or pre-split (``visa_pytorch``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from .base import DatasetLayout, DatasetLayoutError, make_table, sample_row
from .mvtec import mvtec_style_categories, mvtec_style_samples

SPLIT_CSV = Path("split_csv") / "1cls.csv"
PRE_SPLIT_FOLDER = "visa_pytorch"


def _split_rows(root: Path) -> list[dict[str, str]]:
    with (root / SPLIT_CSV).open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    required = {"object", "split", "label", "image", "mask"}
    if rows and not required <= set(rows[0]):
        msg = f"{root / SPLIT_CSV} must have the header object,split,label,image,mask (VisA's 1cls.csv)."
        raise DatasetLayoutError(msg)
    return rows


def _pre_split_root(root: Path) -> Path | None:
    if (root / PRE_SPLIT_FOLDER).is_dir():
        return root / PRE_SPLIT_FOLDER
    return root if mvtec_style_categories(root) else None


def visa_categories(root: Path) -> list[str]:
    """Categories named in ``1cls.csv`` whose folders exist, else those of the pre-split layout."""
    if (root / SPLIT_CSV).is_file():
        return sorted({row["object"] for row in _split_rows(root) if (root / row["object"]).is_dir()})
    pre_split = _pre_split_root(root)
    return mvtec_style_categories(pre_split) if pre_split is not None else []


def visa_samples(root: Path, category: str, split: str) -> pd.DataFrame:
    """Samples of one category and split, from the raw layout if its CSV is there, else pre-split."""
    if not (root / SPLIT_CSV).is_file():
        pre_split = _pre_split_root(root)
        return mvtec_style_samples(pre_split, category, split)
    rows = []
    for row in _split_rows(root):
        if row["object"] != category or row["split"] != split:
            continue
        image = root / row["image"]
        if not image.is_file():
            msg = f"{root / SPLIT_CSV} lists {image}, which does not exist. Is the VisA download complete?"
            raise DatasetLayoutError(msg)
        anomalous = row["label"] == "anomaly"
        mask = root / row["mask"] if anomalous and row["mask"] else None
        if anomalous and (mask is None or not mask.is_file()):
            msg = f"Mask missing for anomalous VisA image {image}: {root / SPLIT_CSV} names {mask or 'no mask'}."
            raise DatasetLayoutError(msg)
        label = "bad" if anomalous else "good"
        rows.append(sample_row(root / category, split, label, image, anomalous, mask))
    return make_table(rows, pixel_labels=True)


VISA = DatasetLayout(
    name="visa",
    description=(
        "VisA (https://github.com/amazon-science/spot-diff): the raw download with split_csv/1cls.csv and "
        "<category>/Data/{Images,Masks}, or Anomalib's pre-split visa_pytorch/<category>/{train,test,ground_truth}."
    ),
    list_categories=visa_categories,
    make_samples=visa_samples,
)
