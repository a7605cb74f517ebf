"""The catalogue of datasets: one entry per dataset of the paper's cross-dataset protocol.

Everything else about the datasets is derived from :data:`CATALOGUE`: the package's exports, the ``evaluate --help``
list, the table of ``data/README.md`` (:func:`markdown_table`) and the sweep's dataset choice. A new dataset is a
layout (``data/layouts``, under the entry's name), one entry here and, where the entry names one, a class in
``data/datamodules.py`` (tests check that the classes are the catalogue's). This module imports neither torch nor
Anomalib (command-line help reads it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from anomalib.data import AnomalibDataModule

    from .layouts import DatasetLayout

PLUGIN_PACKAGE = "anomalib_glocalclip.data"
"""Where the plugin's datamodules live: ``data/datamodules.py`` defines a class for each entry naming one there."""
LAYOUT_DATAMODULE = "anomalib_glocalclip.data.LayoutDataModule"
"""The datamodule of datasets whose layout needs no class of its own (``layout=`` the entry's name)."""


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the evaluation sweep.

    Attributes:
        name: catalogue key (``"mvtec_ad"``, ``"headct"``, ...), also the name of the layout that reads its
            official download (``data/layouts``).
        title: the dataset's name as the paper writes it.
        datamodule_path: the plugin datamodule that tests on it: :data:`LAYOUT_DATAMODULE` (over the entry's
            layout) or a class of its own in :data:`PLUGIN_PACKAGE` (``anomalib_glocalclip.data.BTAD``).
        aliases: other names, among them the reference code's (``"SDD"``, ``"colondb"``, ...), lower case.
        level: ``"pixel"`` (masks: pixel metrics) or ``"image"`` (image labels only: image metrics).
        domain: ``"industrial"`` or ``"medical"``.
        paper_table: section of ``spec/glocalclip.md`` with the reported numbers (``"8.1/8.2"``, ...).
        download: where to download the dataset.
    """

    name: str
    title: str
    datamodule_path: str
    aliases: tuple[str, ...]
    level: Literal["pixel", "image"]
    domain: Literal["industrial", "medical"]
    paper_table: str
    download: str

    @property
    def image_metrics(self) -> bool:
        """Whether the paper reports image metrics (not on the anomalous-only pixel-level medical sets)."""
        return self.level == "image" or self.domain == "industrial"

    @property
    def pixel_metrics(self) -> bool:
        """Whether the paper reports pixel metrics (every dataset with masks)."""
        return self.level == "pixel"

    @property
    def layout(self) -> DatasetLayout:
        """The layout that reads its official download."""
        from .layouts import get_layout

        return get_layout(self.name)

    @property
    def datamodule_name(self) -> str:
        """The datamodule's class name (``MVTecAD``, ``BTAD``, ...)."""
        return self.datamodule_path.rpartition(".")[2]

    @property
    def plugin_datamodule(self) -> bool:
        """Whether the datamodule is the plugin's (defined from this entry), not Anomalib's."""
        return self.datamodule_path.rpartition(".")[0] == PLUGIN_PACKAGE and self.datamodule_path != LAYOUT_DATAMODULE

    @property
    def datamodule(self) -> type[AnomalibDataModule]:
        """The datamodule class, imported (on first use) from its path as a config's ``class_path`` is."""
        module, _, name = self.datamodule_path.rpartition(".")
        return getattr(importlib.import_module(module), name)


_IND = "8.1/8.2"  # industrial tables
_PLUGIN = f"{PLUGIN_PACKAGE}."

CATALOGUE: tuple[DatasetEntry, ...] = (
    DatasetEntry("mvtec_ad", "MVTec AD", LAYOUT_DATAMODULE, ("mvtec",), "pixel", "industrial", _IND,
                 "https://www.mvtec.com/company/research/datasets/mvtec-ad"),
    DatasetEntry("visa", "VisA", LAYOUT_DATAMODULE, (), "pixel", "industrial", _IND,
                 "https://github.com/amazon-science/spot-diff"),
    DatasetEntry("mpdd", "MPDD", LAYOUT_DATAMODULE, (), "pixel", "industrial", _IND,
                 "https://github.com/stepanje/MPDD"),
    DatasetEntry("btad", "BTAD", _PLUGIN + "BTAD", ("btech",), "pixel", "industrial", _IND,
                 "http://avires.dimi.uniud.it/papers/btad/btad.zip"),
    DatasetEntry("ksdd", "SDD (KolektorSDD)", _PLUGIN + "KolektorSDD", ("sdd", "kolektorsdd", "kolektor"),
                 "pixel", "industrial", _IND, "https://www.vicos.si/resources/kolektorsdd/"),
    DatasetEntry("dtd_synthetic", "DTD-Synthetic", _PLUGIN + "DTDSynthetic", ("dtd",), "pixel", "industrial", _IND,
                 "https://drive.google.com/drive/folders/10OyPzvI3H6llCZBxKxFlKWt1Pw1tkMK1"),
    DatasetEntry("dagm", "DAGM 2007 (AnomalyCLIP's table only)", _PLUGIN + "DAGM", ("dagm_kaggleupload",),
                 "pixel", "industrial", "8.6",
                 "https://www.kaggle.com/datasets/mhskjelvareid/dagm-2007-competition-dataset-optical-inspection"),
    DatasetEntry("headct", "HeadCT", _PLUGIN + "HeadCT", ("head_ct",), "image", "medical", "8.3",
                 "https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage"),
    DatasetEntry("brainmri", "BrainMRI", _PLUGIN + "BrainMRI", ("brain_mri",), "image", "medical", "8.3",
                 "https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection"),
    DatasetEntry("br35h", "Br35H", _PLUGIN + "Br35H", (), "image", "medical", "8.3",
                 "https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection"),
    DatasetEntry("isic2016", "ISIC", _PLUGIN + "ISIC2016", ("isic",), "pixel", "medical", "8.4",
                 "https://challenge.isic-archive.com/data/#2016"),
    DatasetEntry("cvc_colondb", "CVC-ColonDB", _PLUGIN + "CVCColonDB", ("colondb",), "pixel", "medical", "8.4",
                 "https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579"),
    DatasetEntry("cvc_clinicdb", "CVC-ClinicDB", _PLUGIN + "CVCClinicDB", ("clinicdb",), "pixel", "medical", "8.4",
                 "https://polyp.grand-challenge.org/CVCClinicDB/"),
    DatasetEntry("kvasir_seg", "Kvasir", _PLUGIN + "KvasirSEG", ("kvasir",), "pixel", "medical", "8.4",
                 "https://datasets.simula.no/kvasir-seg/"),
    DatasetEntry("endotect", "Endo", _PLUGIN + "EndoTect", ("endo",), "pixel", "medical", "8.4",
                 "https://endotect.com"),
    DatasetEntry("tn3k", "TN3K", _PLUGIN + "TN3K", (), "pixel", "medical", "8.4",
                 "https://github.com/haifangong/TRFE-Net-for-thyroid-nodule-segmentation"),
)
"""Every dataset of the sweep: GlocalCLIP's 15 plus DAGM 2007, which only AnomalyCLIP reports."""

DATASETS: dict[str, DatasetEntry] = {entry.name: entry for entry in CATALOGUE}
"""The catalogue by name."""

PLUGIN_DATAMODULE_NAMES: tuple[str, ...] = tuple(e.datamodule_name for e in CATALOGUE if e.plugin_datamodule)
"""Class names of the catalogue's datamodules that this plugin defines (the others are Anomalib's)."""

_BY_ANY_NAME: dict[str, DatasetEntry] = {name: entry for entry in CATALOGUE for name in (entry.name, *entry.aliases)}


def get_dataset(name: str | DatasetEntry) -> DatasetEntry:
    """The entry of ``name`` (case-insensitive, ``-`` and ``_`` alike, aliases allowed)."""
    if isinstance(name, DatasetEntry):
        return name
    entry = _BY_ANY_NAME.get(name.lower().replace("-", "_"))
    if entry is None:
        msg = f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}."
        raise ValueError(msg)
    return entry


def list_categories(name: str | DatasetEntry, root: str | Path) -> list[str]:
    """The categories of dataset ``name`` found under ``root`` (one, named after the dataset, for single-set ones)."""
    return get_dataset(name).layout.categories(root)


def make_datamodule(
    entry_or_name: str | DatasetEntry, root: str | Path, category: str | None = None, **kwargs: object,
) -> AnomalibDataModule:
    """The datamodule (not yet set up) testing on ``category`` (optional for single-category sets) of a dataset.

    ``kwargs`` are further datamodule arguments (``eval_batch_size``, ``num_workers``, ...).

    Raises:
        DatasetLayoutError: ``root`` holds no such dataset.
        ValueError: unknown dataset or category, or no category given for a dataset with several.
    """
    entry = get_dataset(entry_or_name)
    layout = {"layout": entry.name} if entry.datamodule_path == LAYOUT_DATAMODULE else {}
    return entry.datamodule(root=str(root), category=category, **layout, **kwargs)


def _paper_metrics(entry: DatasetEntry) -> str:
    if entry.paper_table == "8.6":
        return f"AnomalyCLIP only ({entry.paper_table})"
    if entry.image_metrics and entry.pixel_metrics:
        return f"image + pixel ({entry.paper_table})"
    return f"{'image' if entry.image_metrics else 'pixel'} only ({entry.paper_table})"


def markdown_table() -> str:
    """The table of ``data/README.md``: one row per catalogue entry."""
    lines = [
        "| name | dataset | domain, level | metrics in the paper | datamodule | aliases | download |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in CATALOGUE:
        aliases = ", ".join(f"`{alias}`" for alias in entry.aliases)
        lines.append(
            f"| `{entry.name}` | {entry.title} | {entry.domain}, {entry.level} | {_paper_metrics(entry)} | "
            f"`{entry.datamodule_path}` | {aliases} | <{entry.download}> |"
        )
    return "\n".join(lines)
