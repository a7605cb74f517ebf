"""A flat folder of normal images (``<root>/*.png``; sub-folders not read), the usual ``SyntheticSource`` input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .base import DatasetLayout, image_files, make_table, sample_row


def normal_folder_categories(root: Path) -> list[str]:
    """The folder itself is the only category, if it holds images."""
    return [root.name] if image_files(root) else []


def normal_folder_samples(root: Path, category: str, split: str) -> pd.DataFrame:
    """Every image directly inside ``root``, as a normal sample."""
    rows = [sample_row(root, split, "good", image, anomalous=False, category=category) for image in image_files(root)]
    return make_table(rows, pixel_labels=True)


NORMAL_FOLDER = DatasetLayout(
    name="normal_folder",
    description="a flat folder of normal images (png, jpg, bmp, tif, webp), sub-folders not read.",
    list_categories=normal_folder_categories,
    make_samples=normal_folder_samples,
)
