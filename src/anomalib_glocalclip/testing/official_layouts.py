"""Miniatures of the paper's datasets in their official download layouts, for tests.

Each ``generate_<dataset>(root, ...)`` writes a few tiny synthetic 8-bit images (drawn by
``anomalib_glocalclip.demo.products``; MVTec-style sets written by the demo's ``generate_mvtec_ad``) with the folder
names, file names and formats of the dataset's official archive, extracted into ``root`` (a top-level folder is
written where the archive has one, e.g. ``BTech_Dataset_transformed/``), and returns ``root``. All images of one
miniature have the same size, so batches need no resizing.

Where the official layout was not verifiable offline, the generator follows the assumption that the matching
layout in ``anomalib_glocalclip.data.layouts`` documents (e.g. DTD-Synthetic's ``<stem>_mask.png`` masks).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from anomalib_glocalclip.demo.datasets import category_rng, generate_mvtec_ad, generate_visa, write_sample
from anomalib_glocalclip.demo.products import DEFECT_KINDS

DEFAULT_SIZE = 48


def _write_pair(
    rng: np.random.Generator,
    image_path: Path,
    mask_path: Path | None,
    style: str,
    size: int | tuple[int, int],
    *,
    anomalous: bool,
    gray: bool = False,
) -> None:
    """Draw one image (with a defect of a random kind when ``anomalous``) and write it and, if asked, its mask.

    Formats follow the suffixes (``.PNG``, ``.bmp``, ``.tif``, ``.jpg``...); ``gray`` writes 8-bit grayscale images.
    A normal image's mask, when asked for, is all zero (KolektorSDD labels every image).
    """
    defect = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))] if anomalous else None
    write_sample(rng, image_path, mask_path, style, size, "gray" if gray else "rgb", defect=defect)


def _under(root: str | Path, top_folder: str | None) -> tuple[Path, Path]:
    """``(root, folder the dataset's files go to)``."""
    root = Path(root)
    return root, root / top_folder if top_folder else root


# Industrial


def generate_mvtec_ad_miniature(root: str | Path, image_size: int = DEFAULT_SIZE, seed: int = 0) -> Path:
    """MVTec AD (``bottle``, ``carpet``): plain RGB PNGs of one size; see ``generate_mvtec_ad``."""
    return generate_mvtec_ad(root, n_train=2, n_test_good=2, n_test_bad=2, image_size=image_size, seed=seed)


def generate_visa_miniature(root: str | Path, image_size: int = DEFAULT_SIZE, seed: int = 0) -> Path:
    """Raw VisA (``candle``, ``pcb1``) with ``split_csv/1cls.csv``; see ``generate_visa``."""
    return generate_visa(root, n_train=2, n_test_good=2, n_test_bad=2, image_size=image_size, seed=seed)


def _mvtec_style(
    root: str | Path,
    top_folder: str | None,
    categories: Sequence[str],
    n_test_bad: int,
    defect: str,
    image_size: int | tuple[int, int],
    seed: int,
    **suffixes: str,
) -> Path:
    """Two normal train and test images and ``n_test_bad`` anomalous ones per category, MVTec-style."""
    root, base = _under(root, top_folder)
    generate_mvtec_ad(
        base,
        categories,
        n_train=2,
        n_test_good=2,
        n_test_bad=n_test_bad,
        defects=(defect,),
        image_size=image_size,
        seed=seed,
        **suffixes,
    )
    return root


def generate_mpdd(
    root: str | Path,
    categories: Sequence[str] = ("bracket_black", "metal_plate"),
    n_test_bad: int = 2,
    top_folder: str | None = None,
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """MPDD: ``<cat>/{train,test}/good/000.png``, ``test/hole/000.png``, ``ground_truth/hole/000_mask.png``."""
    return _mvtec_style(root, top_folder, categories, n_test_bad, "hole", image_size, seed)


def generate_btad(
    root: str | Path,
    n_test_bad: int = 2,
    top_folder: str | None = "BTech_Dataset_transformed",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """BTAD as ``btad.zip`` extracts: ``BTech_Dataset_transformed/{01,02,03}/...``.

    Each category has ``train/ok``, ``test/ok``, ``test/ko`` and ``ground_truth/ko``; images and masks are
    ``.bmp``/``.png`` for 01, ``.png``/``.png`` for 02 and ``.bmp``/``.bmp`` for 03.
    """
    for category, image_suffix, mask_suffix in (("01", ".bmp", ".png"), ("02", ".png", ".png"), ("03", ".bmp", ".bmp")):
        _mvtec_style(
            root,
            top_folder,
            (category,),
            n_test_bad,
            "ko",
            image_size,
            seed,
            good="ok",
            image_suffix=image_suffix,
            mask_suffix=mask_suffix,
        )
    return Path(root)


def generate_dtd_synthetic(
    root: str | Path,
    categories: Sequence[str] = ("Woven_001", "Blotchy_099"),
    n_test_bad: int = 2,
    top_folder: str | None = "DTD-Synthetic",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """DTD-Synthetic: ``<texture>/{train,test}/good/000.png``, ``test/bad/000.png``, ``ground_truth/bad/000_mask.png``.

    The mask suffix ``_mask`` is an assumption (the layout accepts masks named exactly like the images too).
    """
    return _mvtec_style(root, top_folder, categories, n_test_bad, "bad", image_size, seed)


def generate_ksdd(
    root: str | Path,
    n_items: int = 3,
    parts_per_item: int = 3,
    n_defective: int = 2,
    top_folder: str | None = None,
    image_size: int | tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE // 2),
    seed: int = 0,
) -> Path:
    """KolektorSDD: ``kos01/Part0.jpg`` (grayscale) with ``kos01/Part0_label.bmp`` for every image.

    The first ``n_defective`` items have one defective part (``Part<item % parts_per_item>``), whose label is
    the defect's mask; every other label is all zero.
    """
    root, base = _under(root, top_folder)
    for item in range(n_items):
        folder = base / f"kos{item + 1:02d}"
        rng = category_rng(seed, folder.name)
        for part in range(parts_per_item):
            defective = item < n_defective and part == item % parts_per_item
            image_path, mask_path = folder / f"Part{part}.jpg", folder / f"Part{part}_label.bmp"
            _write_pair(rng, image_path, mask_path, "commutator", image_size, anomalous=defective, gray=True)
    return root


def generate_dagm(
    root: str | Path,
    classes: Sequence[str] = ("Class1", "Class2"),
    n_good: int = 2,
    n_defect: int = 2,
    top_folder: str | None = "DAGM_KaggleUpload",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """DAGM 2007 (Kaggle upload): ``DAGM_KaggleUpload/ClassN/{Train,Test}/0001.PNG`` (grayscale).

    Defective images follow the normal ones and have masks ``{Train,Test}/Label/<stem>_label.PNG``, listed with
    the others in ``Label/Labels.txt``.
    """
    root, base = _under(root, top_folder)
    for name in classes:
        rng = category_rng(seed, name)
        for split in ("Train", "Test"):
            folder = base / name / split
            lines = ["1"]
            for index in range(n_good + n_defect):
                defective = index >= n_good
                image_name = f"{index + 1:04d}.PNG"
                label_name = f"{index + 1:04d}_label.PNG" if defective else "0"
                mask_path = folder / "Label" / label_name if defective else None
                _write_pair(rng, folder / image_name, mask_path, name, image_size, anomalous=defective, gray=True)
                lines.append(f"{index + 1}\t{int(defective)}\t{image_name}\t0\t{label_name}")
            (folder / "Label").mkdir(parents=True, exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# Medical, pixel level


def _image_mask_folders(
    base: Path,
    image_folder: str,
    mask_folder: str,
    image_names: Sequence[str],
    mask_names: Sequence[str],
    style: str,
    image_size: int | tuple[int, int],
    seed: int,
    *,
    gray: bool = False,
) -> None:
    """Anomalous images ``<base>/<image_folder>/<image name>`` with masks ``<base>/<mask_folder>/<mask name>``."""
    rng = category_rng(seed, f"{style}/{image_folder}")
    for image_name, mask_name in zip(image_names, mask_names, strict=True):
        _write_pair(
            rng,
            base / image_folder / image_name,
            base / mask_folder / mask_name,
            style,
            image_size,
            anomalous=True,
            gray=gray,
        )


def generate_isic2016(
    root: str | Path,
    n: int = 3,
    n_train: int = 0,
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """ISIC 2016 task 1, both test archives extracted into ``root``.

    Images ``ISBI2016_ISIC_Part1_Test_Data/ISIC_0000000.jpg``, masks
    ``ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000000_Segmentation.png``; ``n_train`` images go to the
    ``..._Training_Data`` / ``..._Training_GroundTruth`` pair.
    """
    root = Path(root)
    for kind, count, first in (("Test", n, 0), ("Training", n_train, 1000)):
        stems = [f"ISIC_{first + index * 3:07d}" for index in range(count)]
        image_folder, mask_folder = f"ISBI2016_ISIC_Part1_{kind}_Data", f"ISBI2016_ISIC_Part1_{kind}_GroundTruth"
        image_names = [f"{stem}.jpg" for stem in stems]
        mask_names = [f"{stem}_Segmentation.png" for stem in stems]
        _image_mask_folders(root, image_folder, mask_folder, image_names, mask_names, "skin", image_size, seed)
    return root


def generate_cvc_colondb(
    root: str | Path,
    n: int = 3,
    top_folder: str | None = "CVC-ColonDB",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """CVC-ColonDB as in the polyp collection: ``CVC-ColonDB/images/1.png`` and ``CVC-ColonDB/masks/1.png``."""
    root, base = _under(root, top_folder)
    names = [f"{index + 1}.png" for index in range(n)]
    _image_mask_folders(base, "images", "masks", names, names, "colon", image_size, seed)
    return root


def generate_cvc_clinicdb(
    root: str | Path,
    n: int = 3,
    kaggle: bool = False,
    top_folder: str | None = "CVC-ClinicDB",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """CVC-ClinicDB: ``Original/1.tif`` and ``Ground Truth/1.tif``.

    With ``kaggle=True``, the Kaggle copy's ``PNG/{Original,Ground Truth}/1.png`` and
    ``TIF/{Original,Ground Truth}/1.tif`` instead.
    """
    root, base = _under(root, top_folder)
    variants = (("PNG", ".png"), ("TIF", ".tif")) if kaggle else (("", ".tif"),)
    for folder, suffix in variants:
        names = [f"{index + 1}{suffix}" for index in range(n)]
        _image_mask_folders(base / folder, "Original", "Ground Truth", names, names, "clinic", image_size, seed)
    return root


def generate_kvasir_seg(
    root: str | Path,
    n: int = 3,
    top_folder: str | None = "Kvasir-SEG",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """Kvasir-SEG as ``kvasir-seg.zip`` extracts: ``Kvasir-SEG/{images,masks}/<id>.jpg``, ``kavsir_bboxes.json``."""
    root, base = _under(root, top_folder)
    names = [f"cju{zlib.crc32(str(index).encode()):08x}.jpg" for index in range(n)]
    _image_mask_folders(base, "images", "masks", names, names, "kvasir", image_size, seed)
    (base / "kavsir_bboxes.json").write_text("{}\n", encoding="utf-8")
    return root


def generate_endotect(
    root: str | Path,
    n: int = 3,
    top_folder: str | None = None,
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """EndoTect 2021 segmentation test set: ``images/<uuid>.jpg`` and ``masks/<uuid>.jpg``."""
    root, base = _under(root, top_folder)
    names = [f"{zlib.crc32(f'endo{index}'.encode()):08x}-0000-4000-8000-{index:012d}.jpg" for index in range(n)]
    _image_mask_folders(base, "images", "masks", names, names, "endo", image_size, seed)
    return root


def generate_tn3k(
    root: str | Path,
    n: int = 3,
    n_trainval: int = 2,
    top_folder: str | None = "tn3k",
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """TN3K: ``tn3k/test-image/0000.jpg`` with ``tn3k/test-mask/0000.jpg`` (grayscale), and the ``trainval-*`` pair."""
    root, base = _under(root, top_folder)
    for split, count in (("test", n), ("trainval", n_trainval)):
        names = [f"{index:04d}.jpg" for index in range(count)]
        _image_mask_folders(
            base, f"{split}-image", f"{split}-mask", names, names, "thyroid", image_size, seed, gray=True
        )
    return root


# Medical, image level


def generate_headct(
    root: str | Path,
    n_normal: int = 2,
    n_hemorrhage: int = 2,
    nested: bool = True,
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """HeadCT (Kaggle): ``labels.csv`` (header ``id, hemorrhage``) and grayscale ``head_ct/head_ct/000.png``.

    ``nested=False`` writes ``head_ct/000.png``. The first ``n_hemorrhage`` ids are hemorrhages, as in the original.
    """
    root = Path(root)
    folder = root / "head_ct" / "head_ct" if nested else root / "head_ct"
    rng = category_rng(seed, "headct")
    rows = []
    for image_id in range(n_hemorrhage + n_normal):
        hemorrhage = image_id < n_hemorrhage
        _write_pair(rng, folder / f"{image_id:03d}.png", None, "head", image_size, anomalous=hemorrhage, gray=True)
        rows.append((image_id, int(hemorrhage)))
    root.mkdir(parents=True, exist_ok=True)
    with (root / "labels.csv").open("w", encoding="utf-8", newline="") as file:
        file.write("id, hemorrhage\n")
        csv.writer(file).writerows(rows)
    return root


def _yes_no(
    base: Path,
    yes_names: Sequence[str],
    no_names: Sequence[str],
    style: str,
    image_size: int | tuple[int, int],
    seed: int,
) -> None:
    rng = category_rng(seed, style)
    for folder, names, anomalous in (("yes", yes_names, True), ("no", no_names, False)):
        for name in names:
            _write_pair(rng, base / folder / name, None, style, image_size, anomalous=anomalous)


def generate_brainmri(
    root: str | Path,
    n_yes: int = 3,
    n_no: int = 2,
    top_level_copies: bool = True,
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """BrainMRI (Kaggle): ``brain_tumor_dataset/yes/Y1.jpg``, ``brain_tumor_dataset/no/1 no.jpeg``, ...

    Names and extensions vary as in the original; ``top_level_copies`` also writes the archive's second copy of
    the images in ``yes/`` and ``no/``.
    """
    root = Path(root)
    yes_names = [f"Y{index + 1}{('.jpg', '.JPG', '.png')[index % 3]}" for index in range(n_yes)]
    no_names = [(f"{index + 1} no.jpeg" if index % 2 else f"No{index + 11}.jpg") for index in range(n_no)]
    folders = [root / "brain_tumor_dataset", root] if top_level_copies else [root / "brain_tumor_dataset"]
    for base in folders:
        _yes_no(base, yes_names, no_names, "brain", image_size, seed)
    return root


def generate_br35h(
    root: str | Path,
    n_yes: int = 2,
    n_no: int = 2,
    n_pred: int = 1,
    image_size: int | tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
) -> Path:
    """Br35H (Kaggle): ``yes/y0.jpg``, ``no/no0.jpg`` and the unlabelled ``pred/pred0.jpg``."""
    root = Path(root)
    yes_names = [f"y{index}.jpg" for index in range(n_yes)]
    no_names = [f"no{index}.jpg" for index in range(n_no)]
    _yes_no(root, yes_names, no_names, "br35h", image_size, seed)
    rng = category_rng(seed, "pred")
    for index in range(n_pred):
        _write_pair(rng, root / "pred" / f"pred{index}.jpg", None, "br35h", image_size, anomalous=index % 2 == 0)
    return root


OFFICIAL_LAYOUT_GENERATORS: dict[str, Callable[..., Path]] = {
    "mvtec_ad": generate_mvtec_ad_miniature,
    "visa": generate_visa_miniature,
    "mpdd": generate_mpdd,
    "btad": generate_btad,
    "ksdd": generate_ksdd,
    "dtd_synthetic": generate_dtd_synthetic,
    "dagm": generate_dagm,
    "isic2016": generate_isic2016,
    "cvc_colondb": generate_cvc_colondb,
    "cvc_clinicdb": generate_cvc_clinicdb,
    "kvasir_seg": generate_kvasir_seg,
    "endotect": generate_endotect,
    "tn3k": generate_tn3k,
    "headct": generate_headct,
    "brainmri": generate_brainmri,
    "br35h": generate_br35h,
}
"""Generator of each dataset's miniature, by registry name; each takes ``root`` and returns it."""
