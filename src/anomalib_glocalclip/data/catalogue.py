"""The catalogue of datasets: one entry per dataset of the paper's cross-dataset protocol.

Everything else about the datasets is derived from :data:`CATALOGUE`: the layout lookup (:func:`get_layout`),
the datamodules the plugin registers with Anomalib (:data:`PLUGIN_DATAMODULES`, which pyproject's entry points
must list), the table of ``data/README.md`` (:func:`markdown_table`, printed by
``python -m anomalib_glocalclip.data``) and the evaluation sweep's dataset choice. A new dataset is a
layout, a datamodule class (unless Anomalib has one) and one entry here; the tests then ask for its entry point
in pyproject.toml and its row in the README table.

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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from anomalib.data import AnomalibDataModule

from . import datamodules
from .datamodule import LayoutDataModule
from .layouts import DatasetLayout, DatasetLayoutError, industrial, medical_image, medical_pixel
from .layouts.folder import FOLDER
from .layouts.industrial import mvtec_style_root
from .layouts.mvtec import MVTEC_AD
from .layouts.normal_folder import NORMAL_FOLDER
from .layouts.visa import VISA


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the evaluation sweep.

    Attributes:
        name: catalogue key (``"mvtec_ad"``, ``"headct"``, ...), also the name of its layout.
        title: the dataset's name as the paper writes it.
        layout: the layout that reads its official download.
        datamodule: the datamodule class that tests on it.
        aliases: other names, among them the reference code's (``"SDD"``, ``"colondb"``, ...), lower case.
        level: ``"pixel"`` (masks: pixel metrics) or ``"image"`` (image labels only: image metrics).
        domain: ``"industrial"`` or ``"medical"``.
        download: where to download the dataset.
        paper_table: section of ``spec/glocalclip.md`` with the reported numbers (``"8.1/8.2"``, ...).
    """

    name: str
    title: str
    layout: DatasetLayout
    datamodule: type[AnomalibDataModule]
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
    def datamodule_path(self) -> str:
        """Import path of the datamodule as the user writes it (``anomalib.data.MVTecAD``, ...)."""
        package = ".".join(self.datamodule.__module__.split(".")[:2])
        return f"{package}.{self.datamodule.__name__}"


_INDUSTRIAL_TABLES = "8.1/8.2"

CATALOGUE: tuple[DatasetEntry, ...] = (
    DatasetEntry(
        name="mvtec_ad",
        title="MVTec AD",
        layout=MVTEC_AD,
        datamodule=LayoutDataModule,
        aliases=("mvtec",),
        level="pixel",
        domain="industrial",
        download="https://www.mvtec.com/company/research/datasets/mvtec-ad",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="visa",
        title="VisA",
        layout=VISA,
        datamodule=LayoutDataModule,
        aliases=(),
        level="pixel",
        domain="industrial",
        download="https://github.com/amazon-science/spot-diff",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="mpdd",
        title="MPDD",
        layout=industrial.MPDD,
        datamodule=LayoutDataModule,
        aliases=(),
        level="pixel",
        domain="industrial",
        download="https://github.com/stepanje/MPDD",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="btad",
        title="BTAD",
        layout=industrial.BTAD,
        datamodule=datamodules.BTAD,
        aliases=("btech",),
        level="pixel",
        domain="industrial",
        download="http://avires.dimi.uniud.it/papers/btad/btad.zip",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="ksdd",
        title="SDD (KolektorSDD)",
        layout=industrial.KSDD,
        datamodule=datamodules.KolektorSDD,
        aliases=("sdd", "kolektorsdd", "kolektor"),
        level="pixel",
        domain="industrial",
        download="https://www.vicos.si/resources/kolektorsdd/",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="dtd_synthetic",
        title="DTD-Synthetic",
        layout=industrial.DTD_SYNTHETIC,
        datamodule=datamodules.DTDSynthetic,
        aliases=("dtd",),
        level="pixel",
        domain="industrial",
        download="https://drive.google.com/drive/folders/10OyPzvI3H6llCZBxKxFlKWt1Pw1tkMK1",
        paper_table=_INDUSTRIAL_TABLES,
    ),
    DatasetEntry(
        name="dagm",
        title="DAGM 2007 (AnomalyCLIP's table only)",
        layout=industrial.DAGM,
        datamodule=datamodules.DAGM,
        aliases=("dagm_kaggleupload",),
        level="pixel",
        domain="industrial",
        download="https://www.kaggle.com/datasets/mhskjelvareid/dagm-2007-competition-dataset-optical-inspection",
        paper_table="8.6",
    ),
    DatasetEntry(
        name="headct",
        title="HeadCT",
        layout=medical_image.HEADCT,
        datamodule=datamodules.HeadCT,
        aliases=("head_ct",),
        level="image",
        domain="medical",
        download="https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage",
        paper_table="8.3",
    ),
    DatasetEntry(
        name="brainmri",
        title="BrainMRI",
        layout=medical_image.BRAINMRI,
        datamodule=datamodules.BrainMRI,
        aliases=("brain_mri",),
        level="image",
        domain="medical",
        download="https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection",
        paper_table="8.3",
    ),
    DatasetEntry(
        name="br35h",
        title="Br35H",
        layout=medical_image.BR35H,
        datamodule=datamodules.Br35H,
        aliases=(),
        level="image",
        domain="medical",
        download="https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection",
        paper_table="8.3",
    ),
    DatasetEntry(
        name="isic2016",
        title="ISIC",
        layout=medical_pixel.ISIC2016,
        datamodule=datamodules.ISIC2016,
        aliases=("isic",),
        level="pixel",
        domain="medical",
        download="https://challenge.isic-archive.com/data/#2016",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="cvc_colondb",
        title="CVC-ColonDB",
        layout=medical_pixel.CVC_COLONDB,
        datamodule=datamodules.CVCColonDB,
        aliases=("colondb",),
        level="pixel",
        domain="medical",
        download="https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="cvc_clinicdb",
        title="CVC-ClinicDB",
        layout=medical_pixel.CVC_CLINICDB,
        datamodule=datamodules.CVCClinicDB,
        aliases=("clinicdb",),
        level="pixel",
        domain="medical",
        download="https://polyp.grand-challenge.org/CVCClinicDB/",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="kvasir_seg",
        title="Kvasir",
        layout=medical_pixel.KVASIR_SEG,
        datamodule=datamodules.KvasirSEG,
        aliases=("kvasir",),
        level="pixel",
        domain="medical",
        download="https://datasets.simula.no/kvasir-seg/",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="endotect",
        title="Endo",
        layout=medical_pixel.ENDOTECT,
        datamodule=datamodules.EndoTect,
        aliases=("endo",),
        level="pixel",
        domain="medical",
        download="https://endotect.com",
        paper_table="8.4",
    ),
    DatasetEntry(
        name="tn3k",
        title="TN3K",
        layout=medical_pixel.TN3K,
        datamodule=datamodules.TN3K,
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

GENERIC_LAYOUTS: tuple[DatasetLayout, ...] = (FOLDER, NORMAL_FOLDER)
"""Layouts of the user's own folders, which are no dataset of the paper."""

LAYOUTS: dict[str, DatasetLayout] = {
    layout.name: layout for layout in (*(entry.layout for entry in CATALOGUE), *GENERIC_LAYOUTS)
}
"""Every layout by name: the catalogue's and the generic ones."""

PLUGIN_DATAMODULES: tuple[type[AnomalibDataModule], ...] = tuple(
    dict.fromkeys(entry.datamodule for entry in CATALOGUE if issubclass(entry.datamodule, LayoutDataModule))
)
"""The catalogue's datamodules that this plugin defines (the others are Anomalib's)."""

_BY_ANY_NAME: dict[str, DatasetEntry] = {name: entry for entry in CATALOGUE for name in (entry.name, *entry.aliases)}

# Anomalib's datamodules read the dataset folder itself; these find it below a folder an archive was extracted into.
_ANOMALIB_ROOT_FINDERS: dict[str, Callable[[Path], Path]] = {"mpdd": mvtec_style_root}


def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def get_layout(name: str) -> DatasetLayout:
    """The layout registered under ``name`` (case-insensitive, ``-`` and ``_`` alike)."""
    layout = LAYOUTS.get(_key(name))
    if layout is None:
        msg = f"Unknown dataset layout {name!r}. Known layouts: {', '.join(sorted(LAYOUTS))}."
        raise DatasetLayoutError(msg)
    return layout


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
        The datamodule, not yet prepared or set up (Anomalib's ``Visa`` splits its raw download in
        ``prepare_data()``; the others find the data as it is).

    Raises:
        DatasetLayoutError: ``root`` holds no such dataset.
        ValueError: unknown dataset or category, or no category given for a dataset with several.
    """
    entry = get_dataset(entry_or_name)
    cls = entry.datamodule
    if cls is LayoutDataModule:
        return cls(root=str(root), category=category, layout=entry.layout.name, **kwargs)
    if issubclass(cls, LayoutDataModule):
        return cls(root=str(root), category=category, **kwargs)
    # Checked here because Anomalib's datamodules download their dataset when the category folder is missing.
    categories = list_categories(entry, root)
    if category is None and len(categories) == 1:
        category = categories[0]
    if category not in categories:
        choice = "choose" if category is None else f"has no category {category!r}; choose"
        msg = f"{entry.title} under {root} {choice} one of: {', '.join(categories)}."
        raise ValueError(msg)
    find_root = _ANOMALIB_ROOT_FINDERS.get(entry.name)
    root = find_root(Path(root).expanduser()) if find_root is not None else Path(root)
    return cls(root=root, category=category, **kwargs)


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
