"""Industrial datasets besides MVTec AD and VisA: MPDD, BTAD, KolektorSDD, DTD-Synthetic and DAGM 2007."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from .base import DatasetLayout, image_files, make_table, require_mask, sample_row, subfolders
from .discovery import child_folder, find_dataset_folder, index_by_stem, mask_for, mask_has_defect, one_category
from .mvtec import mvtec_style_categories, mvtec_style_samples


def mvtec_style_root(root: Path) -> Path:
    """The folder holding the categories of an MVTec-style dataset: ``root`` or the one sub-folder that does."""
    found = find_dataset_folder(root, lambda folder: bool(mvtec_style_categories(folder)))
    return found if found is not None else root


def _mvtec_style_categories_below(root: Path) -> list[str]:
    return mvtec_style_categories(mvtec_style_root(root))


def _mvtec_style_samples_below(root: Path, category: str, split: str, **options: tuple[str, ...]) -> pd.DataFrame:
    return mvtec_style_samples(mvtec_style_root(root), category, split, **options)


MPDD = DatasetLayout(
    name="mpdd",
    description=(
        "MPDD (https://github.com/stepanje/MPDD): <root>/<category>/train/good, test/good, test/<defect>, "
        "ground_truth/<defect>/<stem>_mask.png, e.g. <root>/bracket_black/...; <root> may also be the folder "
        "holding MPDD/."
    ),
    list_categories=_mvtec_style_categories_below,
    make_samples=_mvtec_style_samples_below,
)

BTAD = DatasetLayout(
    name="btad",
    description=(
        "BTAD (http://avires.dimi.uniud.it/papers/btad/btad.zip): <root>/{01,02,03}/train/ok, test/ok, test/ko, "
        "ground_truth/ko/<stem>.{png,bmp} (images and masks are .bmp or .png depending on the category), as "
        "extracted: <root> is BTech_Dataset_transformed/ or the folder holding it."
    ),
    list_categories=_mvtec_style_categories_below,
    make_samples=partial(_mvtec_style_samples_below, good_labels=("ok",), mask_suffixes=("", "_mask")),
)

DTD_SYNTHETIC = DatasetLayout(
    name="dtd_synthetic",
    description=(
        "DTD-Synthetic (Aota et al., WACV 2023; https://drive.google.com/drive/folders/"
        "10OyPzvI3H6llCZBxKxFlKWt1Pw1tkMK1): <root>/<texture>/train/good, test/good, test/bad, "
        "ground_truth/bad/<stem>_mask.png (or <stem>.png), e.g. <root>/Woven_001/...; <root> may also be the "
        "folder holding DTD-Synthetic/."
    ),
    list_categories=_mvtec_style_categories_below,
    make_samples=_mvtec_style_samples_below,
)


# KolektorSDD: every image PartN.jpg of a kosNN folder comes with PartN_label.bmp, empty for defect-free parts.
KSDD_CATEGORY = "ksdd"
LABEL_SUFFIX = "_label"  # masks of KolektorSDD and DAGM: <image stem>_label.<ext>


def _is_ksdd_folder(folder: Path) -> bool:
    return any(name.lower().startswith("kos") for name in subfolders(folder))


def ksdd_root(root: Path) -> Path | None:
    """The folder holding ``kos01`` ... ``kos50``: ``root`` or one level below."""
    return find_dataset_folder(root, _is_ksdd_folder)


def ksdd_samples(root: Path, category: str, split: str) -> pd.DataFrame:
    """Every image is a test image (no official split; ``train`` is empty); defective when its mask is not empty."""
    base = ksdd_root(root)
    rows = []
    if split == "test" and base is not None:
        for folder in [base / name for name in subfolders(base) if name.lower().startswith("kos")]:
            masks = index_by_stem(folder)
            for image in image_files(folder):
                if image.stem.lower().endswith(LABEL_SUFFIX):
                    continue
                mask = mask_for(masks, image, (LABEL_SUFFIX,))
                mask = require_mask(mask, image, folder / f"{image.stem}{LABEL_SUFFIX}.bmp")
                defective = mask_has_defect(mask)
                label = "defect" if defective else "good"
                rows.append(sample_row(base, split, label, image, defective, mask if defective else None, category))
    return make_table(rows, pixel_labels=True)


KSDD = DatasetLayout(
    name="ksdd",
    description=(
        "KolektorSDD (https://www.vicos.si/resources/kolektorsdd/, KolektorSDD.zip): <root>/kos01 ... kos50, each "
        "with PartN.jpg and its mask PartN_label.bmp (empty for defect-free parts); one category 'ksdd', all "
        "images in the test split."
    ),
    list_categories=partial(one_category, KSDD_CATEGORY, ksdd_root),
    make_samples=ksdd_samples,
)


# DAGM 2007: <ClassN>/{Train,Test}/NNNN.PNG, defective images have Label/NNNN_label.PNG.
DAGM_SPLIT_FOLDERS = {"train": ("Train",), "test": ("Test",)}
DAGM_LABEL_FOLDER = ("Label",)


def _is_dagm_class(folder: Path) -> bool:
    return child_folder(folder, DAGM_SPLIT_FOLDERS["test"]) is not None


def dagm_root(root: Path) -> Path:
    """The folder holding ``Class1`` ... ``Class10``: ``root`` or one level below."""
    found = find_dataset_folder(root, lambda folder: any(_is_dagm_class(folder / name) for name in subfolders(folder)))
    return found if found is not None else root


def dagm_categories(root: Path) -> list[str]:
    """Class folders that have a ``Test`` folder."""
    base = dagm_root(root)
    return [name for name in subfolders(base) if _is_dagm_class(base / name)]


def dagm_samples(root: Path, category: str, split: str) -> pd.DataFrame:
    """Images of ``<class>/Test`` (or ``Train``); an image is defective when ``Label/<stem>_label.*`` exists."""
    category_dir = dagm_root(root) / category
    folder = child_folder(category_dir, DAGM_SPLIT_FOLDERS[split])
    rows = []
    if folder is not None:
        masks = index_by_stem(child_folder(folder, DAGM_LABEL_FOLDER))
        for image in image_files(folder):
            mask = mask_for(masks, image, (LABEL_SUFFIX,))
            label = "defect" if mask is not None else "good"
            rows.append(sample_row(category_dir, split, label, image, mask is not None, mask))
    return make_table(rows, pixel_labels=True)


DAGM = DatasetLayout(
    name="dagm",
    description=(
        "DAGM 2007 (https://www.kaggle.com/datasets/mhskjelvareid/dagm-2007-competition-dataset-optical-inspection"
        "): <root>/Class1 ... Class10/{Train,Test}/NNNN.PNG with masks of the defective images in "
        "{Train,Test}/Label/NNNN_label.PNG; <root> may also be the folder holding DAGM_KaggleUpload/."
    ),
    list_categories=dagm_categories,
    make_samples=dagm_samples,
)
