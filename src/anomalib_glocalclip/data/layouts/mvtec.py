"""MVTec AD and every dataset that copies its folder layout (MPDD, pre-split VisA, DTD-Synthetic, ...)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import DatasetLayout, find_mask, image_files, make_table, require_mask, sample_row, subfolders


def mvtec_style_categories(root: Path) -> list[str]:
    """Sub-folders of ``root`` that have a ``test`` folder."""
    return [name for name in subfolders(root) if (root / name / "test").is_dir()]


def mvtec_style_samples(
    root: Path, category: str, split: str, good_labels: tuple[str, ...] = ("good",),
    mask_suffixes: tuple[str, ...] = ("_mask", ""),
) -> pd.DataFrame:
    """Samples of ``<root>/<category>/<split>/<label>/``; masks from ``ground_truth/<label>/``."""
    category_dir = root / category
    rows = []
    for label in subfolders(category_dir / split):
        anomalous = label not in good_labels
        for image in image_files(category_dir / split / label):
            mask = None
            if anomalous:
                mask_folder = category_dir / "ground_truth" / label
                found = find_mask(mask_folder, image, mask_suffixes)
                mask = require_mask(found, image, mask_folder / f"{image.stem}{mask_suffixes[0]}.png")
            rows.append(sample_row(category_dir, split, label, image, anomalous, mask))
    return make_table(rows, pixel_labels=True)


MVTEC_AD = DatasetLayout(
    name="mvtec_ad",
    description=(
        "MVTec AD (https://www.mvtec.com/company/research/datasets/mvtec-ad): <root>/<category>/train/good, "
        "test/<defect>, ground_truth/<defect>/<stem>_mask.png, as extracted from mvtec_anomaly_detection.tar.xz."
    ),
    list_categories=mvtec_style_categories,
    make_samples=mvtec_style_samples,
)
