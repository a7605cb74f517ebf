"""The catalogue of datasets: one entry per dataset of the paper's cross-dataset protocol.

Everything else about the datasets is derived from :data:`CATALOGUE`: the plugin's datamodule classes
(``data/datamodules.py`` defines one per entry with a :data:`PLUGIN_PACKAGE` path), the package's exports, the
``anomalib-glocalclip evaluate --help`` list, the table of ``data/README.md`` (:func:`markdown_table`, printed by
``python -m anomalib_glocalclip.data``) and the evaluation sweep's dataset choice. A new dataset is a layout
(``data/layouts``, under the entry's name) and one entry here; the tests then ask for its entry point in
pyproject.toml (which Python packaging needs written out) and its row in the README table.

This module imports neither torch nor Anomalib (the command-line help reads it): an entry names its layout and
datamodule, which are imported when first used.

Each entry names the layout that reads the dataset's official download (for category listing and auxiliary
training through ``AuxiliaryTransfer``) and the datamodule that tests on it, always the plugin's, so that every
file is read by the plugin's reader: ``LayoutDataModule`` with the entry's layout where Anomalib has a datamodule
of the same samples and splits (MVTec AD, VisA, MPDD), a named subclass otherwise.

Example::

    from anomalib_glocalclip.data.catalogue import list_categories, make_datamodule

    for category in list_categories("btad", "./datasets/btad"):
        datamodule = make_datamodule("btad", "./datasets/btad", category, eval_batch_size=8)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from anomalib.data import AnomalibDataModule

    from .layouts import DatasetLayout

PLUGIN_PACKAGE = "anomalib_glocalclip.data"
LAYOUT_DATAMODULE = "anomalib_glocalclip.data.LayoutDataModule"
"""The datamodule of datasets whose layout needs no class of its own (``layout=`` the entry's name)."""
"""Where the plugin's datamodules live: an entry whose ``datamodule_path`` is in it names a class that
``data/datamodules.py`` defines from the entry (a ``LayoutDataModule`` over the entry's layout)."""


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the evaluation sweep.

    Attributes:
        name: catalogue key (``"mvtec_ad"``, ``"headct"``, ...), also the name of the layout that reads its
            official download (``data/layouts``).
        title: the dataset's name as the paper writes it.
        datamodule_path: the plugin datamodule that tests on it, as the user writes it: :data:`LAYOUT_DATAMODULE`
            (over the entry's layout) or a class of its own (``anomalib_glocalclip.data.BTAD``, see
            :data:`PLUGIN_PACKAGE`).
        aliases: other names, among them the reference code's (``"SDD"``, ``"colondb"``, ...), lower case.
        level: ``"pixel"`` (masks: pixel metrics) or ``"image"`` (image labels only: image metrics).
        domain: ``"industrial"`` or ``"medical"``.
        download: where to download the dataset.
        paper_table: section of ``spec/glocalclip.md`` with the reported numbers (``"8.1/8.2"``, ...).
    """

    name: str
    title: str
    datamodule_path: str
    aliases: tuple[str, ...]
    level: Literal["pixel", "image"]
    domain: Literal["industrial", "medical"]
    download: str
    paper_table: str

    @property
    def image_metrics(self) -> bool:
        """Whether the paper reports image metrics: industrial sets and image-level medical sets.

        The pixel-level medical sets have anomalous images only, so image AUROC/AP are undefined there.
        """
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
        """The datamodule class, imported from its path as a config's ``class_path`` is.

        Imported on first use: the catalogue itself imports neither Anomalib nor torch (command-line help reads it).
        """
        module, _, name = self.datamodule_path.rpartition(".")
        return getattr(importlib.import_module(module), name)


_INDUSTRIAL_TABLES = "8.1/8.2"

CATALOGUE: tuple[DatasetEntry, ...] = (
    DatasetEntry(
        name="mvtec_ad",
        title="MVTec AD",
        datamodule_path=LAYOUT_DATAMODULE,
        aliases=("mvtec",),
        level="pixel",
        domain="industrial",
        download="https://www.mvtec.com/company/research/datasets/mvtec-ad",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="visa",
        title="VisA",
        datamodule_path=LAYOUT_DATAMODULE,
        aliases=(),
        level="pixel",
        domain="industrial",
        download="https://github.com/amazon-science/spot-diff",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="mpdd",
        title="MPDD",
        datamodule_path=LAYOUT_DATAMODULE,
        aliases=(),
        level="pixel",
        domain="industrial",
        download="https://github.com/stepanje/MPDD",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="btad",
        title="BTAD",
        datamodule_path="anomalib_glocalclip.data.BTAD",
        aliases=("btech",),
        level="pixel",
        domain="industrial",
        download="http://avires.dimi.uniud.it/papers/btad/btad.zip",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="ksdd",
        title="SDD (KolektorSDD)",
        datamodule_path="anomalib_glocalclip.data.KolektorSDD",
        aliases=("sdd", "kolektorsdd", "kolektor"),
        level="pixel",
        domain="industrial",
        download="https://www.vicos.si/resources/kolektorsdd/",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="dtd_synthetic",
        title="DTD-Synthetic",
        datamodule_path="anomalib_glocalclip.data.DTDSynthetic",
        aliases=("dtd",),
        level="pixel",
        domain="industrial",
        download="https://drive.google.com/drive/folders/10OyPzvI3H6llCZBxKxFlKWt1Pw1tkMK1",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="dagm",
        title="DAGM 2007 (AnomalyCLIP's table only)",
        datamodule_path="anomalib_glocalclip.data.DAGM",
        aliases=("dagm_kaggleupload",),
        level="pixel",
        domain="industrial",
        download="https://www.kaggle.com/datasets/mhskjelvareid/dagm-2007-competition-dataset-optical-inspection",
        paper_table="8.6",
    ),
    DatasetEntry(
        name="headct",
        title="HeadCT",
        datamodule_path="anomalib_glocalclip.data.HeadCT",
        aliases=("head_ct",),
        level="image",
        domain="medical",
        download="https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage",
        paper_table="8.3",
    ),
    DatasetEntry(
        name="brainmri",
        title="BrainMRI",
        datamodule_path="anomalib_glocalclip.data.BrainMRI",
        aliases=("brain_mri",),
        level="image",
        domain="medical",
        download="https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection",
        paper_table="8.3",
    ),
    DatasetEntry(
        name="br35h",
        title="Br35H",
        datamodule_path="anomalib_glocalclip.data.Br35H",
        aliases=(),
        level="image",
        domain="medical",
        download="https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection",
        paper_table="8.3",
    ),
    DatasetEntry(
        name="isic2016",
        title="ISIC",
        datamodule_path="anomalib_glocalclip.data.ISIC2016",
        aliases=("isic",),
        level="pixel",
        domain="medical",
        download="https://challenge.isic-archive.com/data/#2016",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="cvc_colondb",
        title="CVC-ColonDB",
        datamodule_path="anomalib_glocalclip.data.CVCColonDB",
        aliases=("colondb",),
        level="pixel",
        domain="medical",
        download="https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="cvc_clinicdb",
        title="CVC-ClinicDB",
        datamodule_path="anomalib_glocalclip.data.CVCClinicDB",
        aliases=("clinicdb",),
        level="pixel",
        domain="medical",
        download="https://polyp.grand-challenge.org/CVCClinicDB/",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="kvasir_seg",
        title="Kvasir",
        datamodule_path="anomalib_glocalclip.data.KvasirSEG",
        aliases=("kvasir",),
        level="pixel",
        domain="medical",
        download="https://datasets.simula.no/kvasir-seg/",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="endotect",
        title="Endo",
        datamodule_path="anomalib_glocalclip.data.EndoTect",
        aliases=("endo",),
        level="pixel",
        domain="medical",
        download="https://endotect.com",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="tn3k",
        title="TN3K",
        datamodule_path="anomalib_glocalclip.data.TN3K",
        aliases=(),
        level="pixel",
        domain="medical",
        download="https://github.com/haifangong/TRFE-Net-for-thyroid-nodule-segmentation",
        paper_table="8.4",
    ),
)
"""Every dataset of the sweep: GlocalCLIP's 15 plus DAGM 2007, which only AnomalyCLIP reports."""

DATASETS: dict[str, DatasetEntry] = {entry.name: entry for entry in CATALOGUE}
"""The catalogue by name."""

PLUGIN_DATAMODULE_NAMES: tuple[str, ...] = tuple(
    entry.datamodule_name for entry in CATALOGUE if entry.plugin_datamodule
)
"""Class names of the catalogue's datamodules that this plugin defines (the others are Anomalib's)."""

_BY_ANY_NAME: dict[str, DatasetEntry] = {name: entry for entry in CATALOGUE for name in (entry.name, *entry.aliases)}


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def get_dataset(name: str | DatasetEntry) -> DatasetEntry:
    """The entry of ``name`` (case-insensitive, ``-`` and ``_`` alike, aliases allowed)."""
    if isinstance(name, DatasetEntry):
        return name
    entry = _BY_ANY_NAME.get(_key(name))
    if entry is None:
        msg = f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}."
        raise ValueError(msg)
    return entry


def list_categories(name: str | DatasetEntry, root: str | Path) -> list[str]:
    """The categories of dataset ``name`` found under ``root`` (one, named after the dataset, for single-set ones)."""
    return get_dataset(name).layout.categories(root)


def make_datamodule(
    entry_or_name: str | DatasetEntry,
    root: str | Path,
    category: str | None = None,
    **kwargs: Any,
) -> AnomalibDataModule:
    """The datamodule testing on one category of a dataset.

    Args:
        entry_or_name: dataset entry or name (see :data:`CATALOGUE`).
        root: dataset root in its official download layout.
        category: category to test; may be left out for datasets with one category.
        **kwargs: further datamodule arguments (``eval_batch_size``, ``num_workers``, ...).

    Returns:
        The datamodule, not yet prepared or set up.

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


if __name__ == "__main__":
    print(markdown_table())
