"""Medical datasets with pixel labels: ISIC 2016, CVC-ColonDB, CVC-ClinicDB, Kvasir-SEG, EndoTect and TN3K.

Each is one category (named after the dataset) of anomalous images only, in a folder with a sibling folder of
masks, found by name up to two levels below the root (archives add a top folder, Kaggle's ClinicDB ``PNG/``, ``TIF/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .base import image_files, layout_of, make_table, require_mask, sample_row
from .discovery import child_folder, find_dataset_folder, index_by_stem, mask_for

SEARCH_DEPTH = 2


@dataclass(frozen=True)
class FolderPair:
    """Name patterns (shell-style, case-insensitive, first match wins) of one split's image and mask folders."""

    images: tuple[str, ...]
    masks: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ImageMaskFolders:
    """A single-category dataset of anomalous images whose masks lie in a sibling folder.

    Attributes:
        category: the one category, named after the dataset.
        splits: folder patterns per split (``"test"``, optionally ``"train"``).
        mask_suffixes: a mask is named ``<image stem><suffix>.<any image extension>``, suffixes tried in order.
        anomaly_label: label of the images (``polyp``, ``lesion``, ...).
        prefer: when several folders qualify, prefer the one below a folder of this name (e.g. ``TIF``).
        skip_suffixes: image stems ending with one of these are not images of the dataset (ISIC's superpixels).
    """

    category: str
    splits: Mapping[str, FolderPair]
    mask_suffixes: tuple[str, ...] = ("", "_mask")
    anomaly_label: str = "lesion"
    prefer: tuple[str, ...] = ()
    skip_suffixes: tuple[str, ...] = ()

    def folders(self, root: Path, split: str) -> tuple[Path, Path] | None:
        """The image and mask folders of ``split``, or ``None`` if the dataset has no such split under ``root``."""
        pair = self.splits.get(split)
        if pair is None:
            return None

        def has_pair(folder: Path) -> bool:
            return child_folder(folder, pair.images) is not None and child_folder(folder, pair.masks) is not None

        parent = find_dataset_folder(root, has_pair, self.prefer, depth=SEARCH_DEPTH)
        if parent is None:
            return None
        return child_folder(parent, pair.images), child_folder(parent, pair.masks)

    def list_categories(self, root: Path) -> list[str]:
        """The dataset's one category, if its test folders are found."""
        return [self.category] if self.folders(root, "test") is not None else []

    def make_samples(self, root: Path, category: str, split: str) -> pd.DataFrame:
        """Every image of the split, anomalous, with its mask (a clear error names an image without one)."""
        folders = self.folders(root, split)
        rows = []
        if folders is not None:
            image_dir, mask_dir = folders
            masks = index_by_stem(mask_dir)
            for image in image_files(image_dir):
                if image.stem.lower().endswith(tuple(suffix.lower() for suffix in self.skip_suffixes)):
                    continue
                expected = mask_dir / f"{image.stem}{self.mask_suffixes[0]}.png"
                mask = require_mask(mask_for(masks, image, self.mask_suffixes), image, expected)
                folder, label = image_dir.parent, self.anomaly_label
                rows.append(sample_row(folder, split, label, image, anomalous=True, mask=mask, category=category))
        return make_table(rows, pixel_labels=True)


POLYP_FOLDERS = FolderPair(("images", "image", "Original"), ("masks", "mask", "Ground Truth", "GroundTruth"))

ISIC2016 = layout_of(
    "isic2016",
    "ISIC 2016 lesion segmentation, task 1 (https://challenge.isic-archive.com/data/#2016): the test set's two "
    "archives extracted side by side, <root>/ISBI2016_ISIC_Part1_Test_Data/ISIC_NNNNNNN.jpg and "
    "<root>/ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_NNNNNNN_Segmentation.png (folders named *Test*Data* / "
    "*Test*GroundTruth*, or images/ and masks/, are accepted; the training archives, if present, are the train split).",
    ImageMaskFolders(
        category="isic2016",
        splits={
            "test": FolderPair(images=("*test*data*", "images"), masks=("*test*groundtruth*", "*test*gt*", "masks")),
            "train": FolderPair(images=("*train*data*",), masks=("*train*groundtruth*", "*train*gt*")),
        },
        mask_suffixes=("_Segmentation", "", "_mask"),
        anomaly_label="lesion",
        skip_suffixes=("_superpixels",),
    ),
)

CVC_COLONDB = layout_of(
    "cvc_colondb",
    "CVC-ColonDB (380 images; https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579, the polyp "
    "collection AnomalyCLIP and GlocalCLIP link): <root>/images/N.png and <root>/masks/N.png (same names); "
    "<root> may also be the folder holding CVC-ColonDB/.",
    ImageMaskFolders(category="cvc_colondb", splits={"test": POLYP_FOLDERS}, anomaly_label="polyp"),
)

CVC_CLINICDB = layout_of(
    "cvc_clinicdb",
    "CVC-ClinicDB (612 images; https://polyp.grand-challenge.org/CVCClinicDB/): <root>/Original/N.tif and "
    "<root>/Ground Truth/N.tif (same names); also the Kaggle copy's PNG/ and TIF/ sub-folders (TIF preferred) "
    "and images/ + masks/ folders.",
    ImageMaskFolders(category="cvc_clinicdb", splits={"test": POLYP_FOLDERS}, anomaly_label="polyp", prefer=("TIF",)),
)

KVASIR_SEG = layout_of(
    "kvasir_seg",
    "Kvasir-SEG (1000 images; https://datasets.simula.no/kvasir-seg/, kvasir-seg.zip): <root>/Kvasir-SEG/images/"
    "<id>.jpg and <root>/Kvasir-SEG/masks/<id>.jpg (same names), or <root> = Kvasir-SEG/ itself.",
    ImageMaskFolders(category="kvasir_seg", splits={"test": POLYP_FOLDERS}, anomaly_label="polyp"),
)

ENDOTECT = layout_of(
    "endotect",
    "EndoTect 2021 segmentation test set (200 images; https://endotect.com, or the copy AnomalyCLIP links: "
    "https://drive.google.com/file/d/1LNpLkv5ZlEUzr_RPN5rdOHaqk0SkZa3m/view): <root>/images/<id>.jpg and "
    "<root>/masks/<id>.{jpg,png} (same names); <root> may also be a folder above them.",
    ImageMaskFolders(category="endotect", splits={"test": POLYP_FOLDERS}, anomaly_label="polyp"),
)

TN3K = layout_of(
    "tn3k",
    "TN3K thyroid nodules (https://github.com/haifangong/TRFE-Net-for-thyroid-nodule-segmentation): "
    "<root>/test-image/NNNN.jpg and <root>/test-mask/NNNN.jpg (same names; 614 test images), "
    "trainval-image/ and trainval-mask/ as the train split; <root> may also be the folder holding tn3k/.",
    ImageMaskFolders(
        category="tn3k",
        splits={
            "test": FolderPair(images=("test-image",), masks=("test-mask",)),
            "train": FolderPair(images=("trainval-image",), masks=("trainval-mask",)),
        },
        anomaly_label="nodule",
    ),
)
