"""A plain folder of images: ``good/`` (normal), optional ``bad/`` (anomalous) and ``masks/`` (named as the images).

The folder is one category (its name); ``train`` and ``test`` are the same images. Without ``masks/`` the
anomalies carry image labels only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import DatasetLayout, find_mask, image_files, make_table, require_mask, sample_row

NORMAL_DIR, ABNORMAL_DIR, MASK_DIR = "good", "bad", "masks"


def folder_categories(root: Path) -> list[str]:
    """The folder itself is the only category, if it holds a ``good`` or ``bad`` folder."""
    return [root.name] if (root / NORMAL_DIR).is_dir() or (root / ABNORMAL_DIR).is_dir() else []


def folder_samples(root: Path, category: str, split: str) -> pd.DataFrame:
    """All images of ``good/`` and ``bad/`` (with masks from ``masks/`` when that folder exists)."""
    pixel_labels = (root / MASK_DIR).is_dir()
    rows = [
        sample_row(root, split, NORMAL_DIR, image, anomalous=False, category=category)
        for image in image_files(root / NORMAL_DIR)
    ]
    for image in image_files(root / ABNORMAL_DIR):
        mask = None
        if pixel_labels:
            mask = require_mask(find_mask(root / MASK_DIR, image, ("", "_mask")), image, root / MASK_DIR / image.name)
        rows.append(sample_row(root, split, ABNORMAL_DIR, image, anomalous=True, mask=mask, category=category))
    return make_table(rows, pixel_labels=pixel_labels)


FOLDER = DatasetLayout(
    name="folder",
    description="a folder with good/ (normal images), optionally bad/ (anomalous) and masks/ (same file names).",
    list_categories=folder_categories,
    make_samples=folder_samples,
)
