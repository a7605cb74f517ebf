"""The dataset catalogue is the one list of datasets: entry points, README tables and lookups follow it."""

from __future__ import annotations

import re
from pathlib import Path

import anomalib.data
import pytest
from anomalib.data import AnomalibDataModule

import anomalib_glocalclip
from anomalib_glocalclip.data import DATAMODULES, AuxiliaryTransfer, LayoutDataModule
from anomalib_glocalclip.data.catalogue import (
    CATALOGUE,
    DATASETS,
    GENERIC_LAYOUTS,
    LAYOUTS,
    PLUGIN_DATAMODULES,
    get_dataset,
    get_layout,
    make_datamodule,
    markdown_table,
)
from image_files import write_mvtec_set

REPOSITORY = Path(__file__).resolve().parents[1]
MODELS = {"GlocalCLIP": anomalib_glocalclip.GlocalCLIP, "AnoCLIP": anomalib_glocalclip.AnoCLIP}


def _pyproject_entry_points(group: str) -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    with (REPOSITORY / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["entry-points"][group]


def _load(value: str) -> object:
    module_name, _, attribute = value.partition(":")
    module = __import__(module_name, fromlist=[attribute])
    return getattr(module, attribute)


def test_entries_are_consistent() -> None:
    assert len(CATALOGUE) == len(DATASETS) == 16
    for entry in CATALOGUE:
        assert entry.layout.name == entry.name
        assert issubclass(entry.datamodule, AnomalibDataModule)
        if issubclass(entry.datamodule, LayoutDataModule):
            assert entry.datamodule.default_layout in {entry.layout, None}  # None: LayoutDataModule, entry's layout
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
    assert len(PLUGIN_DATAMODULES) == 14
    datamodule = make_datamodule("mvtec", write_mvtec_set(tmp_path), "bottle")
    assert type(datamodule) is LayoutDataModule
    assert datamodule.layout is DATASETS["mvtec_ad"].layout


def test_layouts_are_the_catalogues_plus_the_generic_ones() -> None:
    assert set(LAYOUTS) == {entry.name for entry in CATALOGUE} | {layout.name for layout in GENERIC_LAYOUTS}
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


def test_pyproject_entry_points_list_every_model_and_datamodule() -> None:
    models = _pyproject_entry_points("anomalib.models")
    datamodules = _pyproject_entry_points("anomalib.data")
    assert set(models) == set(MODELS)
    assert set(datamodules) == {cls.__name__ for cls in DATAMODULES}
    for name, value in models.items():
        assert _load(value) is MODELS[name]
    for name, value in datamodules.items():
        assert _load(value).__name__ == name


def test_data_readme_table_is_the_catalogues() -> None:
    readme = (REPOSITORY / "src" / "anomalib_glocalclip" / "data" / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate it: python -m anomalib_glocalclip.data"
    listed = re.findall(r"^\| `(\w+)` \|", readme.split("## The datasets", 1)[1].split("##", 1)[0], flags=re.M)
    assert listed == [entry.name for entry in CATALOGUE]


def test_readme_names_every_registered_datamodule() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What the plugin registers", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`(\w+)`", section)) >= {cls.__name__ for cls in DATAMODULES} | set(MODELS)
