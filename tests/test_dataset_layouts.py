"""Every dataset of the paper, read from a miniature of its official download layout: layouts, datamodules, errors."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from anomalib_glocalclip.data import (
    AuxiliarySource,
    AuxiliaryTransfer,
    DatasetLayoutError,
    LayoutDataModule,
    get_layout,
)
from anomalib_glocalclip.data.catalogue import DATASETS, get_dataset, list_categories, make_datamodule
from anomalib_glocalclip.testing import (
    OFFICIAL_LAYOUT_GENERATORS,
    generate_brainmri,
    generate_btad,
    generate_cvc_clinicdb,
    generate_headct,
    generate_isic2016,
    generate_kvasir_seg,
    generate_mpdd,
    generate_tn3k,
)


@dataclass(frozen=True)
class Expected:
    """What the default miniature of a dataset holds: categories, and per category its test images."""

    categories: tuple[str, ...]
    normal: int
    anomalous: int
    task: str = "segmentation"


EXPECTED = {
    "mvtec_ad": Expected(("bottle", "carpet"), normal=2, anomalous=2),
    "visa": Expected(("candle", "pcb1"), normal=2, anomalous=2),
    "mpdd": Expected(("bracket_black", "metal_plate"), normal=2, anomalous=2),
    "btad": Expected(("01", "02", "03"), normal=2, anomalous=2),
    "ksdd": Expected(("ksdd",), normal=7, anomalous=2),
    "dtd_synthetic": Expected(("Blotchy_099", "Woven_001"), normal=2, anomalous=2),
    "dagm": Expected(("Class1", "Class2"), normal=2, anomalous=2),
    "isic2016": Expected(("isic2016",), normal=0, anomalous=3),
    "cvc_colondb": Expected(("cvc_colondb",), normal=0, anomalous=3),
    "cvc_clinicdb": Expected(("cvc_clinicdb",), normal=0, anomalous=3),
    "kvasir_seg": Expected(("kvasir_seg",), normal=0, anomalous=3),
    "endotect": Expected(("endotect",), normal=0, anomalous=3),
    "tn3k": Expected(("tn3k",), normal=0, anomalous=3),
    "headct": Expected(("headct",), normal=2, anomalous=2, task="classification"),
    "brainmri": Expected(("brainmri",), normal=2, anomalous=3, task="classification"),
    "br35h": Expected(("br35h",), normal=2, anomalous=2, task="classification"),
}
PIXEL_DATASETS = [name for name, expected in EXPECTED.items() if expected.task == "segmentation"]


@pytest.fixture(scope="module")
def miniatures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every dataset's miniature, generated once (tests that change files copy theirs first)."""
    base = tmp_path_factory.mktemp("official")
    return {name: generate(base / name) for name, generate in OFFICIAL_LAYOUT_GENERATORS.items()}


def _copy(miniatures: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(miniatures[name], tmp_path / name))


def _mask_named_like_image(image_path: str, mask_path: str) -> bool:
    """KolektorSDD ``Part0``/``Part0_label``, ISIC ``X``/``X_Segmentation``, MVTec ``000``/``000_mask``, ..."""
    return Path(mask_path).stem.lower().startswith(Path(image_path).stem.lower())


# Registry


def test_registry_covers_every_dataset() -> None:
    assert set(DATASETS) == set(EXPECTED) == set(OFFICIAL_LAYOUT_GENERATORS)
    assert sum(entry.paper_table != "8.6" for entry in DATASETS.values()) == 15  # GlocalCLIP's 15, plus DAGM
    for entry in DATASETS.values():
        assert get_layout(entry.name) is entry.layout
        assert entry.level in {"pixel", "image"}
        assert entry.domain in {"industrial", "medical"}
        assert entry.download.startswith("http")
        assert (entry.level == "image") == (EXPECTED[entry.name].task == "classification")
    assert DATASETS["kvasir_seg"].pixel_metrics
    assert not DATASETS["kvasir_seg"].image_metrics
    assert DATASETS["headct"].image_metrics
    assert not DATASETS["headct"].pixel_metrics
    assert DATASETS["btad"].image_metrics
    assert DATASETS["btad"].pixel_metrics


def test_registry_names_and_aliases() -> None:
    assert get_dataset("SDD") is DATASETS["ksdd"]
    assert get_dataset("CVC-ColonDB") is DATASETS["cvc_colondb"]
    assert get_dataset("endo") is DATASETS["endotect"]
    with pytest.raises(ValueError, match=r"Unknown dataset 'nope'.*mvtec_ad.*tn3k"):
        get_dataset("nope")


# (a) layouts: categories, counts, labels, masks paired by name, task


@pytest.mark.parametrize("name", list(EXPECTED))
def test_layout_reads_official_miniature(name: str, miniatures: dict[str, Path]) -> None:
    expected, layout = EXPECTED[name], get_layout(name)
    assert tuple(layout.categories(miniatures[name])) == expected.categories
    assert tuple(list_categories(name, miniatures[name])) == expected.categories
    for category in expected.categories:
        samples = layout.samples(miniatures[name], category, "test")
        assert samples.attrs["task"] == expected.task
        assert (samples["category"] == category).all()
        assert int((samples["label_index"] == 0).sum()) == expected.normal
        assert int((samples["label_index"] == 1).sum()) == expected.anomalous
        assert samples["image_path"].map(lambda path: Path(path).is_file()).all()
        anomalous = samples[samples["label_index"] == 1]
        if expected.task == "segmentation":
            assert samples["pixel_labels"].all()
            assert all(map(_mask_named_like_image, anomalous["image_path"], anomalous["mask_path"]))
            assert anomalous["mask_path"].map(lambda path: Path(path).is_file()).all()
        else:
            assert not samples["pixel_labels"].any()
            assert (samples["mask_path"] == "").all()


# (b) the registry's datamodule sets up and yields a batch


@pytest.mark.parametrize("name", list(EXPECTED))
def test_registry_datamodule_yields_a_batch(name: str, miniatures: dict[str, Path]) -> None:
    expected = EXPECTED[name]
    category = expected.categories[-1]
    datamodule = make_datamodule(name, miniatures[name], category, eval_batch_size=2, num_workers=0)
    assert type(datamodule) is DATASETS[name].datamodule
    datamodule.prepare_data()  # finds the data (Anomalib's Visa splits its raw layout here)
    datamodule.setup()
    assert len(datamodule.test_data) == expected.normal + expected.anomalous
    batch = next(iter(datamodule.test_dataloader()))
    assert batch.image.shape[:2] == (2, 3)
    if expected.task == "segmentation":
        assert batch.gt_mask.shape[-2:] == batch.image.shape[-2:]
    else:
        assert batch.gt_mask is None


def test_single_category_datamodules_need_no_category(miniatures: dict[str, Path]) -> None:
    datamodule = make_datamodule("headct", miniatures["headct"], num_workers=0)
    datamodule.setup()
    assert datamodule.category == "headct"
    assert isinstance(datamodule, LayoutDataModule)
    with pytest.raises(DatasetLayoutError, match="no train split"):
        datamodule.train_dataloader()


def test_categories_are_named_when_the_category_is_missing_or_unknown(
    miniatures: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(DatasetLayoutError, match="choose one of: bracket_black, metal_plate"):
        make_datamodule("mpdd", miniatures["mpdd"]).setup()
    with pytest.raises(DatasetLayoutError, match=r"category 'botle' under .*Categories found: bottle, carpet"):
        make_datamodule("mvtec_ad", miniatures["mvtec_ad"], "botle").setup()
    with pytest.raises(DatasetLayoutError, match="No mvtec_ad categories"):
        make_datamodule("mvtec_ad", tmp_path, "bottle").setup()


def test_mpdd_is_found_below_the_extraction_folder(tmp_path: Path) -> None:
    root = generate_mpdd(tmp_path / "download", top_folder="MPDD")
    datamodule = make_datamodule("mpdd", root, "metal_plate", num_workers=0)
    datamodule.setup()
    assert len(datamodule.test_data) == 4
    assert all(Path(path).is_relative_to(root / "MPDD") for path in datamodule.test_data.samples.image_path)


# (c) auxiliary training on every dataset


@pytest.mark.parametrize("name", list(EXPECTED))
def test_auxiliary_transfer_pools_all_categories(name: str, miniatures: dict[str, Path]) -> None:
    expected = EXPECTED[name]
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource(layout=name, root=str(miniatures[name])), num_workers=0)
    datamodule.setup()
    per_category = expected.normal + expected.anomalous
    assert len(datamodule.train_data) == per_category * len(expected.categories)
    assert datamodule.train_data.task == expected.task
    assert set(datamodule.train_data.samples["category"]) == set(expected.categories)


# (d) clear errors


@pytest.mark.parametrize("name", list(EXPECTED))
def test_empty_folder_is_a_clear_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=f"No {name} categories found under {tmp_path}"):
        get_layout(name).categories(tmp_path)


def test_missing_folder_and_unknown_category_are_clear_errors(miniatures: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        get_layout("btad").categories(tmp_path / "missing")
    with pytest.raises(DatasetLayoutError, match=r"Unknown btad category '04'.*Categories found: 01, 02, 03"):
        get_layout("btad").samples(miniatures["btad"], "04", "test")
    with pytest.raises(DatasetLayoutError, match="Unknown kvasir_seg category"):
        get_layout("kvasir_seg").samples(miniatures["kvasir_seg"], "polyps", "test")
    datamodule = make_datamodule("tn3k", tmp_path, num_workers=0)
    with pytest.raises(DatasetLayoutError, match="No tn3k categories"):
        datamodule.setup()


def test_category_folder_of_another_layout_is_named(miniatures: dict[str, Path], tmp_path: Path) -> None:
    """A category folder without the layout's folders (here MVTec AD's test/) is named, not called unknown."""
    root = _copy(miniatures, "mvtec_ad", tmp_path)
    (root / "cable" / "train" / "good").mkdir(parents=True)
    layout = get_layout("mvtec_ad")
    with pytest.raises(DatasetLayoutError, match=re.escape(f"{root / 'cable'} is not laid out as a mvtec_ad category")):
        layout.samples(root, "cable", "test")
    only = tmp_path / "only"
    (only / "cable" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=re.escape(f"Sub-folders of {only} not laid out so: cable")):
        layout.categories(only)


@pytest.mark.parametrize("name", [name for name in PIXEL_DATASETS if name not in {"dagm", "visa"}])
def test_missing_mask_names_the_image(name: str, miniatures: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(miniatures, name, tmp_path)
    layout = get_layout(name)
    category = EXPECTED[name].categories[0]
    samples = layout.samples(root, category, "test")
    row = samples[samples["label_index"] == 1].iloc[0]
    Path(row["mask_path"]).unlink()
    with pytest.raises(DatasetLayoutError, match=f"Mask missing for anomalous image {re.escape(row['image_path'])}"):
        layout.samples(root, category, "test")


def test_dagm_images_without_label_file_are_normal(miniatures: dict[str, Path], tmp_path: Path) -> None:
    """DAGM marks defects only by the presence of ``Label/<stem>_label.PNG``: no label file, no defect."""
    root = _copy(miniatures, "dagm", tmp_path)
    samples = get_layout("dagm").samples(root, "Class1", "test")
    Path(samples[samples["label_index"] == 1].iloc[0]["mask_path"]).unlink()
    assert int(get_layout("dagm").samples(root, "Class1", "test")["label_index"].sum()) == 1


# Variants of the official archives


def test_masks_are_paired_by_name_not_position(tmp_path: Path) -> None:
    root = generate_kvasir_seg(tmp_path / "kvasir")
    masks = root / "Kvasir-SEG" / "masks"
    shutil.copy(next(masks.iterdir()), masks / "000-extra-mask-first.jpg")  # sorts first, has no image
    for folder in ("images", "masks"):  # macOS zips carry a copy of every folder; it must not make the root ambiguous
        (root / "__MACOSX" / folder).mkdir(parents=True)
    samples = get_layout("kvasir_seg").samples(root, None, "test")
    assert len(samples) == 3
    assert all(
        Path(image).name == Path(mask).name
        for image, mask in zip(samples["image_path"], samples["mask_path"], strict=True)
    )


def test_btad_reads_each_category_in_its_own_formats(miniatures: dict[str, Path]) -> None:
    layout = get_layout("btad")
    suffixes = {}
    for category in ("01", "02", "03"):
        anomalous = layout.samples(miniatures["btad"], category, "test").query("label_index == 1")
        suffixes[category] = (Path(anomalous["image_path"].iloc[0]).suffix, Path(anomalous["mask_path"].iloc[0]).suffix)
    assert suffixes == {"01": (".bmp", ".png"), "02": (".png", ".png"), "03": (".bmp", ".bmp")}
    inner = miniatures["btad"] / "BTech_Dataset_transformed"
    assert layout.categories(inner) == layout.categories(miniatures["btad"])
    assert len(layout.samples(miniatures["btad"], "01", "train")) == 2


def test_ambiguous_root_lists_the_candidates(tmp_path: Path) -> None:
    generate_btad(tmp_path / "a", top_folder=None)
    generate_btad(tmp_path / "b", top_folder=None)
    with pytest.raises(DatasetLayoutError, match="Several dataset folders found"):
        get_layout("btad").categories(tmp_path)


def test_clinicdb_kaggle_copy_prefers_tif(tmp_path: Path) -> None:
    root = generate_cvc_clinicdb(tmp_path / "clinic", kaggle=True)
    samples = get_layout("cvc_clinicdb").samples(root, None, "test")
    assert len(samples) == 3
    assert {Path(path).suffix for path in samples["image_path"]} == {".tif"}
    assert all(Path(path).parent.name == "Ground Truth" for path in samples["mask_path"])


def test_isic_and_tn3k_train_splits_from_their_official_folders(tmp_path: Path) -> None:
    isic = generate_isic2016(tmp_path / "isic", n_train=2)
    train = get_layout("isic2016").samples(isic, None, "train")
    assert len(train) == 2
    assert all("Training_Data" in path for path in train["image_path"])
    datamodule = make_datamodule("isic2016", isic, num_workers=0)
    datamodule.setup()
    assert len(datamodule.train_data) == 2
    assert len(datamodule.test_data) == 3
    tn3k = generate_tn3k(tmp_path / "tn3k", top_folder=None)
    assert len(get_layout("tn3k").samples(tn3k, None, "train")) == 2


def test_brainmri_reads_brain_tumor_dataset_once(tmp_path: Path) -> None:
    root = generate_brainmri(tmp_path / "brainmri", top_level_copies=True)
    samples = get_layout("brainmri").samples(root, None, "test")
    assert len(samples) == 5
    assert all("brain_tumor_dataset" in path for path in samples["image_path"])
    flat = generate_brainmri(tmp_path / "flat", top_level_copies=False) / "brain_tumor_dataset"
    assert len(get_layout("brainmri").samples(flat, None, "test")) == 5


def test_br35h_ignores_unlabelled_pred_folder(miniatures: dict[str, Path]) -> None:
    samples = get_layout("br35h").samples(miniatures["br35h"], None, "test")
    assert not any("pred" in Path(path).parent.name for path in samples["image_path"])


def test_headct_layout_variants_and_label_errors(tmp_path: Path) -> None:
    root = generate_headct(tmp_path / "flat", nested=False)
    samples = get_layout("headct").samples(root, None, "test")
    assert samples["label_index"].tolist() == [1, 1, 0, 0]
    assert [Path(path).name for path in samples["image_path"]] == ["000.png", "001.png", "002.png", "003.png"]
    shutil.copy(root / "head_ct" / "000.png", root / "head_ct" / "017.png")
    with pytest.raises(DatasetLayoutError, match=r"017\.png has no row in .*labels\.csv"):
        get_layout("headct").samples(root, None, "test")
    (root / "head_ct" / "017.png").unlink()
    (root / "head_ct" / "003.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"lists ids \[3\] with no image"):
        get_layout("headct").samples(root, None, "test")
