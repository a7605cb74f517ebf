"""Miniatures of the paper's datasets in their official download layouts, for tests.

Each ``generate_<dataset>(root, ...)`` writes a few tiny synthetic 8-bit images (``demo.products``; MVTec-style sets
by the demo's ``generate_mvtec_ad``) with the folder names, file names and formats of the dataset's official
archive extracted into ``root`` (under the archive's top-level folder where it has one), and returns ``root``. All
images of one miniature have one size. Where the official layout was not verifiable offline, the generator follows
the assumption the matching layout in ``data/layouts`` documents (e.g. DTD-Synthetic's ``<stem>_mask.png`` masks).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from anomalib_glocalclip.demo.datasets import category_rng, generate_mvtec_ad, generate_visa, write_sample
from anomalib_glocalclip.demo.products import DEFECT_KINDS

SIZE = 48


def _write_pair(rng: np.random.Generator, image: Path, mask: Path | None, style: str, *, anomalous: bool,
                gray: bool = False, size: int | tuple[int, int] = SIZE) -> None:
    """One image (with a defect of a random kind when ``anomalous``) in the suffix's format, and its mask if asked.

    A normal image's mask, when asked for, is all zero (KolektorSDD labels every image).
    """
    defect = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))] if anomalous else None
    write_sample(rng, image, mask, style, size, "gray" if gray else "rgb", defect=defect)


def _under(root: str | Path, top_folder: str | None) -> tuple[Path, Path]:
    """``(root, folder the dataset's files go to)``."""
    return Path(root), Path(root) / top_folder if top_folder else Path(root)


def _mvtec_style(root: str | Path, top_folder: str | None, categories: Sequence[str], defect: str,
                 **suffixes: str) -> Path:
    """Two normal train and test images and two anomalous ones per category, MVTec-style."""
    root, base = _under(root, top_folder)
    generate_mvtec_ad(base, categories, n_train=2, n_test_good=2, n_test_bad=2, defects=(defect,), image_size=SIZE,
                      **suffixes)
    return root


def _image_mask_folders(base: Path, image_folder: str, mask_folder: str, names: Sequence[str], style: str, *,
                        mask_names: Sequence[str] | None = None, gray: bool = False) -> None:
    """Anomalous images ``<base>/<image_folder>/<name>`` with masks ``<base>/<mask_folder>/<mask name>``."""
    rng = category_rng(0, f"{style}/{image_folder}")
    for name, mask_name in zip(names, mask_names or names, strict=True):
        _write_pair(rng, base / image_folder / name, base / mask_folder / mask_name, style, anomalous=True, gray=gray)


def _yes_no(base: Path, yes_names: Sequence[str], no_names: Sequence[str], style: str) -> None:
    rng = category_rng(0, style)
    for folder, names, anomalous in (("yes", yes_names, True), ("no", no_names, False)):
        for name in names:
            _write_pair(rng, base / folder / name, None, style, anomalous=anomalous)


# Industrial


def generate_mvtec_ad_miniature(root: str | Path) -> Path:
    """MVTec AD (``bottle``, ``carpet``): plain RGB PNGs of one size; see ``generate_mvtec_ad``."""
    return generate_mvtec_ad(root, n_train=2, n_test_good=2, n_test_bad=2, image_size=SIZE)


def generate_visa_miniature(root: str | Path) -> Path:
    """Raw VisA (``candle``, ``pcb1``) with ``split_csv/1cls.csv``; see ``generate_visa``."""
    return generate_visa(root, n_train=2, n_test_good=2, n_test_bad=2, image_size=SIZE)


def generate_mpdd(root: str | Path, top_folder: str | None = None) -> Path:
    """MPDD: ``<cat>/{train,test}/good/000.png``, ``test/hole/000.png``, ``ground_truth/hole/000_mask.png``."""
    return _mvtec_style(root, top_folder, ("bracket_black", "metal_plate"), "hole")


def generate_btad(root: str | Path, top_folder: str | None = "BTech_Dataset_transformed") -> Path:
    """BTAD as ``btad.zip`` extracts: ``BTech_Dataset_transformed/{01,02,03}/...``.

    Each category has ``train/ok``, ``test/ok``, ``test/ko`` and ``ground_truth/ko``; images and masks are
    ``.bmp``/``.png`` for 01, ``.png``/``.png`` for 02 and ``.bmp``/``.bmp`` for 03.
    """
    for category, image_suffix, mask_suffix in (("01", ".bmp", ".png"), ("02", ".png", ".png"), ("03", ".bmp", ".bmp")):
        _mvtec_style(root, top_folder, (category,), "ko", good="ok", image_suffix=image_suffix, mask_suffix=mask_suffix)
    return Path(root)


def generate_dtd_synthetic(root: str | Path, top_folder: str | None = "DTD-Synthetic") -> Path:
    """DTD-Synthetic: ``<texture>/{train,test}/good/000.png``, ``test/bad/000.png``, ``ground_truth/bad/000_mask.png``.

    The mask suffix ``_mask`` is an assumption (the layout accepts masks named exactly like the images too).
    """
    return _mvtec_style(root, top_folder, ("Woven_001", "Blotchy_099"), "bad")


def generate_ksdd(root: str | Path) -> Path:
    """KolektorSDD: ``kos01/Part0.jpg`` (grayscale) with ``kos01/Part0_label.bmp`` for every image.

    Items ``kos01`` and ``kos02`` of three have one defective part (``Part<item>``), whose label is the defect's
    mask; every other label is all zero.
    """
    root = Path(root)
    for item in range(3):
        folder = root / f"kos{item + 1:02d}"
        rng = category_rng(0, folder.name)
        for part in range(3):
            _write_pair(rng, folder / f"Part{part}.jpg", folder / f"Part{part}_label.bmp", "commutator",
                        anomalous=item < 2 and part == item, gray=True, size=(SIZE, SIZE // 2))
    return root


def generate_dagm(root: str | Path, top_folder: str | None = "DAGM_KaggleUpload") -> Path:
    """DAGM 2007 (Kaggle upload): ``DAGM_KaggleUpload/Class{1,2}/{Train,Test}/0001.PNG`` (grayscale).

    Two defective images follow two normal ones and have masks ``{Train,Test}/Label/<stem>_label.PNG``, listed with
    the others in ``Label/Labels.txt``.
    """
    root, base = _under(root, top_folder)
    for name in ("Class1", "Class2"):
        rng = category_rng(0, name)
        for split in ("Train", "Test"):
            folder = base / name / split
            lines = ["1"]
            for index in range(4):
                defective = index >= 2
                image_name = f"{index + 1:04d}.PNG"
                label_name = f"{index + 1:04d}_label.PNG" if defective else "0"
                mask_path = folder / "Label" / label_name if defective else None
                _write_pair(rng, folder / image_name, mask_path, name, anomalous=defective, gray=True)
                lines.append(f"{index + 1}\t{int(defective)}\t{image_name}\t0\t{label_name}")
            (folder / "Label").mkdir(parents=True, exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# Medical, pixel level


def generate_isic2016(root: str | Path, n_train: int = 0) -> Path:
    """ISIC 2016 task 1, both test archives extracted into ``root``.

    Three images ``ISBI2016_ISIC_Part1_Test_Data/ISIC_0000000.jpg``, masks
    ``ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000000_Segmentation.png``; ``n_train`` images go to the
    ``..._Training_Data`` / ``..._Training_GroundTruth`` pair.
    """
    root = Path(root)
    for kind, count, first in (("Test", 3, 0), ("Training", n_train, 1000)):
        stems = [f"ISIC_{first + index * 3:07d}" for index in range(count)]
        _image_mask_folders(root, f"ISBI2016_ISIC_Part1_{kind}_Data", f"ISBI2016_ISIC_Part1_{kind}_GroundTruth",
                            [f"{stem}.jpg" for stem in stems], "skin",
                            mask_names=[f"{stem}_Segmentation.png" for stem in stems])
    return root


def generate_cvc_colondb(root: str | Path, top_folder: str | None = "CVC-ColonDB") -> Path:
    """CVC-ColonDB as in the polyp collection: ``CVC-ColonDB/images/1.png`` and ``CVC-ColonDB/masks/1.png``."""
    root, base = _under(root, top_folder)
    _image_mask_folders(base, "images", "masks", ["1.png", "2.png", "3.png"], "colon")
    return root


def generate_cvc_clinicdb(root: str | Path, kaggle: bool = False, top_folder: str | None = "CVC-ClinicDB") -> Path:
    """CVC-ClinicDB: ``Original/1.tif`` and ``Ground Truth/1.tif``.

    With ``kaggle=True``, the Kaggle copy's ``PNG/{Original,Ground Truth}/1.png`` and
    ``TIF/{Original,Ground Truth}/1.tif`` instead.
    """
    root, base = _under(root, top_folder)
    for folder, suffix in (("PNG", ".png"), ("TIF", ".tif")) if kaggle else (("", ".tif"),):
        names = [f"{index + 1}{suffix}" for index in range(3)]
        _image_mask_folders(base / folder, "Original", "Ground Truth", names, "clinic")
    return root


def generate_kvasir_seg(root: str | Path, top_folder: str | None = "Kvasir-SEG") -> Path:
    """Kvasir-SEG as ``kvasir-seg.zip`` extracts: ``Kvasir-SEG/{images,masks}/<id>.jpg``, ``kavsir_bboxes.json``."""
    root, base = _under(root, top_folder)
    names = [f"cju{zlib.crc32(str(index).encode()):08x}.jpg" for index in range(3)]
    _image_mask_folders(base, "images", "masks", names, "kvasir")
    (base / "kavsir_bboxes.json").write_text("{}\n", encoding="utf-8")
    return root


def generate_endotect(root: str | Path) -> Path:
    """EndoTect 2021 segmentation test set: ``images/<uuid>.jpg`` and ``masks/<uuid>.jpg``."""
    names = [f"{zlib.crc32(f'endo{index}'.encode()):08x}-0000-4000-8000-{index:012d}.jpg" for index in range(3)]
    _image_mask_folders(Path(root), "images", "masks", names, "endo")
    return Path(root)


def generate_tn3k(root: str | Path, top_folder: str | None = "tn3k") -> Path:
    """TN3K: ``tn3k/test-image/0000.jpg`` with ``tn3k/test-mask/0000.jpg`` (grayscale), and the ``trainval-*`` pair."""
    root, base = _under(root, top_folder)
    for split, count in (("test", 3), ("trainval", 2)):
        names = [f"{index:04d}.jpg" for index in range(count)]
        _image_mask_folders(base, f"{split}-image", f"{split}-mask", names, "thyroid", gray=True)
    return root


# Medical, image level


def generate_headct(root: str | Path, nested: bool = True) -> Path:
    """HeadCT (Kaggle): ``labels.csv`` (header ``id, hemorrhage``) and grayscale ``head_ct/head_ct/000.png``.

    ``nested=False`` writes ``head_ct/000.png``. The first two of four ids are hemorrhages, as in the original.
    """
    root = Path(root)
    folder = root / "head_ct" / "head_ct" if nested else root / "head_ct"
    rng = category_rng(0, "headct")
    for image_id in range(4):
        _write_pair(rng, folder / f"{image_id:03d}.png", None, "head", anomalous=image_id < 2, gray=True)
    with (root / "labels.csv").open("w", encoding="utf-8", newline="") as file:
        file.write("id, hemorrhage\n")
        csv.writer(file).writerows((image_id, int(image_id < 2)) for image_id in range(4))
    return root


def generate_brainmri(root: str | Path, top_level_copies: bool = True) -> Path:
    """BrainMRI (Kaggle): ``brain_tumor_dataset/yes/Y1.jpg``, ``brain_tumor_dataset/no/1 no.jpeg``, ...

    Names and extensions vary as in the original; ``top_level_copies`` also writes the archive's second copy of
    the images in ``yes/`` and ``no/``.
    """
    root = Path(root)
    yes_names = [f"Y{index + 1}{('.jpg', '.JPG', '.png')[index % 3]}" for index in range(3)]
    no_names = [(f"{index + 1} no.jpeg" if index % 2 else f"No{index + 11}.jpg") for index in range(2)]
    for base in [root / "brain_tumor_dataset", root] if top_level_copies else [root / "brain_tumor_dataset"]:
        _yes_no(base, yes_names, no_names, "brain")
    return root


def generate_br35h(root: str | Path) -> Path:
    """Br35H (Kaggle): ``yes/y0.jpg``, ``no/no0.jpg`` (two each) and the unlabelled ``pred/pred0.jpg``."""
    root = Path(root)
    _yes_no(root, ["y0.jpg", "y1.jpg"], ["no0.jpg", "no1.jpg"], "br35h")
    _write_pair(category_rng(0, "pred"), root / "pred" / "pred0.jpg", None, "br35h", anomalous=True)
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
