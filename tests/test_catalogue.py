"""The dataset catalogue is the one list of datasets: entry points, README tables and lookups follow it."""

from __future__ import annotations

import re
from pathlib import Path

import anomalib.data
from anomalib.data import AnomalibDataModule

import anomalib_glocalclip
from anomalib_glocalclip.data import DATAMODULES, AuxiliaryTransfer, LayoutDataModule
from anomalib_glocalclip.data.catalogue import (
    CATALOGUE,
    DATASETS,
    PLUGIN_DATAMODULE_NAMES,
    get_dataset,
    make_datamodule,
    markdown_table,
)
from anomalib_glocalclip.data.datamodules import PLUGIN_DATAMODULES
from anomalib_glocalclip.data.layouts import LAYOUTS, get_layout
from image_files import write_mvtec_set

REPOSITORY = Path(__file__).resolve().parents[1]
MODELS = {"GlocalCLIP": anomalib_glocalclip.GlocalCLIP, "AnoCLIP": anomalib_glocalclip.AnoCLIP}


def test_entries_are_consistent() -> None:
    assert len(CATALOGUE) == len(DATASETS) == 16
    for entry in CATALOGUE:
        assert entry.layout.name == entry.name
        assert issubclass(entry.datamodule, AnomalibDataModule)
        assert entry.datamodule.__name__ == entry.datamodule_name
        if entry.plugin_datamodule:
            assert entry.datamodule.default_layout is entry.layout
        assert all(alias == alias.lower() for alias in entry.aliases)
    names = [name for entry in CATALOGUE for name in (entry.name, *entry.aliases)]
    assert len(names) == len(set(names))  # no alias names two datasets


def test_every_dataset_is_read_by_the_plugins_datamodules(tmp_path: Path) -> None:
    """MVTec AD, VisA and MPDD through ``LayoutDataModule`` with their layouts; the others by named subclasses."""
    assert all(issubclass(entry.datamodule, LayoutDataModule) for entry in CATALOGUE)
    generic = {entry.name for entry in CATALOGUE if entry.datamodule is LayoutDataModule}
    assert generic == {"mvtec_ad", "visa", "mpdd"}
    assert DATASETS["mvtec_ad"].datamodule_path == "anomalib_glocalclip.data.LayoutDataModule"
    assert DATASETS["btad"].datamodule_path == "anomalib_glocalclip.data.BTAD"
    assert len(PLUGIN_DATAMODULES) == 13
    assert [cls.__name__ for cls in PLUGIN_DATAMODULES] == list(PLUGIN_DATAMODULE_NAMES)
    datamodule = make_datamodule("mvtec", write_mvtec_set(tmp_path), "bottle")
    assert type(datamodule) is LayoutDataModule
    assert datamodule.layout is DATASETS["mvtec_ad"].layout


def test_plugin_datamodules_are_their_entries_classes() -> None:
    import pickle

    from anomalib_glocalclip.data import BTAD

    assert BTAD is DATASETS["btad"].datamodule
    assert BTAD.__module__ == "anomalib_glocalclip.data.datamodules"
    assert "``btad``" in BTAD.__doc__  # names the layout it reads with (the entry's name)
    assert pickle.loads(pickle.dumps(BTAD)) is BTAD  # noqa: S301 - found by name, as by spawned dataloader workers


def test_reading_the_catalogue_imports_neither_torch_nor_anomalib(cli) -> None:
    code = (
        "import sys; from anomalib_glocalclip.data.catalogue import DATASETS; "
        "print(sorted(n for n in ('torch', 'anomalib', 'lightning') if n in sys.modules), len(DATASETS))"
    )
    result = cli("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "16"]


def test_layouts_are_the_catalogues_plus_the_generic_ones() -> None:
    assert set(LAYOUTS) == {entry.name for entry in CATALOGUE} | {"folder", "normal_folder"}
    assert get_layout("DTD-Synthetic") is DATASETS["dtd_synthetic"].layout
    assert get_layout("normal_folder").name == "normal_folder"


def test_aliases_find_their_entry() -> None:
    for entry in CATALOGUE:
        for alias in entry.aliases:
            assert get_dataset(alias.upper()) is entry


def test_every_plugin_datamodule_is_registered_with_anomalib() -> None:
    assert {AuxiliaryTransfer, LayoutDataModule, *PLUGIN_DATAMODULES} <= set(DATAMODULES)
    for cls in DATAMODULES:
        assert getattr(anomalib.data, cls.__name__) is cls


def test_data_readme_table_is_the_catalogues() -> None:
    readme = (REPOSITORY / "src" / "anomalib_glocalclip" / "data" / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate it: python -m anomalib_glocalclip.data"
    listed = re.findall(r"^\| `(\w+)` \|", readme.split("## The datasets", 1)[1].split("##", 1)[0], flags=re.M)
    assert listed == [entry.name for entry in CATALOGUE]


def test_readme_names_the_registered_classes_or_the_table_listing_them() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What the plugin registers", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`(\w+)`", section)) >= {"AuxiliaryTransfer", "LayoutDataModule", *MODELS}
    assert "data/README.md" in section  # whose table, from the catalogue, names every dataset's datamodule
    assert all(f"`anomalib_glocalclip.data.{name}`" in markdown_table() for name in PLUGIN_DATAMODULE_NAMES)
