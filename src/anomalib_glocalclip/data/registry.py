"""The datasets of the GlocalCLIP paper's cross-dataset protocol, and how to build a datamodule for each.

Each entry names the layout that reads the dataset's official download (for category listing and auxiliary
training through ``AuxiliaryTransfer``) and the datamodule that tests on it: Anomalib's own where it reads
the official layout as the paper used it (MVTec AD, VisA, MPDD), the plugin's otherwise.

Example::

    from anomalib_glocalclip.data.registry import DATASETS, list_categories, make_datamodule

    for category in list_categories("btad", "./datasets/btad"):
        datamodule = make_datamodule("btad", "./datasets/btad", category, eval_batch_size=8)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from anomalib.data import AnomalibDataModule

from .datamodule import LayoutDataModule
from .layouts import get_layout
from .layouts.industrial import mvtec_style_root


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the evaluation sweep.

    Attributes:
        name: registry key (``"mvtec_ad"``, ``"headct"``, ...).
        title: the dataset's name as the paper writes it.
        layout: name of the layout that reads its official download (see ``data.layouts``).
        datamodule_path: dotted import path of the datamodule class that tests on it.
        level: ``"pixel"`` (masks: pixel metrics) or ``"image"`` (image labels only: image metrics).
        domain: ``"industrial"`` or ``"medical"``.
        download: where to download the dataset.
        paper_table: section of ``spec/glocalclip.md`` with the reported numbers (``"8.1/8.2"``, ...).
    """

    name: str
    title: str
    layout: str
    datamodule_path: str
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


_PLUGIN = "anomalib_glocalclip.data"

DATASETS: dict[str, DatasetEntry] = {
    entry.name: entry
    for entry in (
        DatasetEntry(
            name="mvtec_ad",
            title="MVTec AD",
            layout="mvtec_ad",
            datamodule_path="anomalib.data.MVTecAD",
            level="pixel",
            domain="industrial",
            download="https://www.mvtec.com/company/research/datasets/mvtec-ad",
            paper_table="8.1/8.2",
        ),
        DatasetEntry(
            name="visa",
            title="VisA",
            layout="visa",
            datamodule_path="anomalib.data.Visa",
            level="pixel",
            domain="industrial",
            download="https://github.com/amazon-science/spot-diff",
            paper_table="8.1/8.2",
        ),
        DatasetEntry(
            name="mpdd",
            title="MPDD",
            layout="mpdd",
            datamodule_path="anomalib.data.MPDD",
            level="pixel",
            domain="industrial",
            download="https://github.com/stepanje/MPDD",
            paper_table="8.1/8.2",
        ),
        DatasetEntry(
            name="btad",
            title="BTAD",
            layout="btad",
            datamodule_path=f"{_PLUGIN}.BTAD",
            level="pixel",
            domain="industrial",
            download="http://avires.dimi.uniud.it/papers/btad/btad.zip",
            paper_table="8.1/8.2",
        ),
        DatasetEntry(
            name="ksdd",
            title="SDD (KolektorSDD)",
            layout="ksdd",
            datamodule_path=f"{_PLUGIN}.KolektorSDD",
            level="pixel",
            domain="industrial",
            download="https://www.vicos.si/resources/kolektorsdd/",
            paper_table="8.1/8.2",
        ),
        DatasetEntry(
            name="dtd_synthetic",
            title="DTD-Synthetic",
            layout="dtd_synthetic",
            datamodule_path=f"{_PLUGIN}.DTDSynthetic",
            level="pixel",
            domain="industrial",
            download="https://drive.google.com/drive/folders/10OyPzvI3H6llCZBxKxFlKWt1Pw1tkMK1",
            paper_table="8.1/8.2",
        ),
        DatasetEntry(
            name="dagm",
            title="DAGM 2007 (AnomalyCLIP's table only)",
            layout="dagm",
            datamodule_path=f"{_PLUGIN}.DAGM",
            level="pixel",
            domain="industrial",
            download="https://www.kaggle.com/datasets/mhskjelvareid/dagm-2007-competition-dataset-optical-inspection",
            paper_table="8.6",
        ),
        DatasetEntry(
            name="headct",
            title="HeadCT",
            layout="headct",
            datamodule_path=f"{_PLUGIN}.HeadCT",
            level="image",
            domain="medical",
            download="https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage",
            paper_table="8.3",
        ),
        DatasetEntry(
            name="brainmri",
            title="BrainMRI",
            layout="brainmri",
            datamodule_path=f"{_PLUGIN}.BrainMRI",
            level="image",
            domain="medical",
            download="https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection",
            paper_table="8.3",
        ),
        DatasetEntry(
            name="br35h",
            title="Br35H",
            layout="br35h",
            datamodule_path=f"{_PLUGIN}.Br35H",
            level="image",
            domain="medical",
            download="https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection",
            paper_table="8.3",
        ),
        DatasetEntry(
            name="isic2016",
            title="ISIC",
            layout="isic2016",
            datamodule_path=f"{_PLUGIN}.ISIC2016",
            level="pixel",
            domain="medical",
            download="https://challenge.isic-archive.com/data/#2016",
            paper_table="8.4",
        ),
        DatasetEntry(
            name="cvc_colondb",
            title="CVC-ColonDB",
            layout="cvc_colondb",
            datamodule_path=f"{_PLUGIN}.CVCColonDB",
            level="pixel",
            domain="medical",
            download="https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579",
            paper_table="8.4",
        ),
        DatasetEntry(
            name="cvc_clinicdb",
            title="CVC-ClinicDB",
            layout="cvc_clinicdb",
            datamodule_path=f"{_PLUGIN}.CVCClinicDB",
            level="pixel",
            domain="medical",
            download="https://polyp.grand-challenge.org/CVCClinicDB/",
            paper_table="8.4",
        ),
        DatasetEntry(
            name="kvasir_seg",
            title="Kvasir",
            layout="kvasir_seg",
            datamodule_path=f"{_PLUGIN}.KvasirSEG",
            level="pixel",
            domain="medical",
            download="https://datasets.simula.no/kvasir-seg/",
            paper_table="8.4",
        ),
        DatasetEntry(
            name="endotect",
            title="Endo",
            layout="endotect",
            datamodule_path=f"{_PLUGIN}.EndoTect",
            level="pixel",
            domain="medical",
            download="https://endotect.com",
            paper_table="8.4",
        ),
        DatasetEntry(
            name="tn3k",
            title="TN3K",
            layout="tn3k",
            datamodule_path=f"{_PLUGIN}.TN3K",
            level="pixel",
            domain="medical",
            download="https://github.com/haifangong/TRFE-Net-for-thyroid-nodule-segmentation",
            paper_table="8.4",
        ),
    )
}
"""Every dataset of the sweep: GlocalCLIP's 15 plus DAGM 2007, which only AnomalyCLIP reports."""

ALIASES: dict[str, str] = {
    "mvtec": "mvtec_ad",
    "btech": "btad",
    "sdd": "ksdd",
    "kolektorsdd": "ksdd",
    "kolektor": "ksdd",
    "dtd": "dtd_synthetic",
    "dagm_kaggleupload": "dagm",
    "isic": "isic2016",
    "colondb": "cvc_colondb",
    "clinicdb": "cvc_clinicdb",
    "kvasir": "kvasir_seg",
    "endo": "endotect",
    "head_ct": "headct",
    "brain_mri": "brainmri",
}
"""Other names of the datasets, among them the reference code's (``SDD``, ``DTD``, ``colondb``, ``endo``, ...)."""

# Anomalib's datamodules read the dataset folder itself; these find it below a folder an archive was extracted into.
_ANOMALIB_ROOT_FINDERS: dict[str, Callable[[Path], Path]] = {"mpdd": mvtec_style_root}


def get_dataset(name: str | DatasetEntry) -> DatasetEntry:
    """The entry of ``name`` (case-insensitive, ``-`` and ``_`` alike, aliases allowed)."""
    if isinstance(name, DatasetEntry):
        return name
    key = name.lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        msg = f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}."
        raise ValueError(msg)
    return DATASETS[key]


def list_categories(name: str | DatasetEntry, root: str | Path) -> list[str]:
    """The categories of dataset ``name`` found under ``root`` (one, named after the dataset, for single-set ones)."""
    return get_layout(get_dataset(name).layout).categories(root)


def datamodule_class(entry: DatasetEntry) -> type[AnomalibDataModule]:
    """Import the datamodule class of ``entry``."""
    module_name, _, class_name = entry.datamodule_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def make_datamodule(
    entry_or_name: str | DatasetEntry,
    root: str | Path,
    category: str | None = None,
    **kwargs: Any,  # noqa: ANN401 - any datamodule argument
) -> AnomalibDataModule:
    """The datamodule testing on one category of a dataset.

    Args:
        entry_or_name: dataset entry or name (see :data:`DATASETS`).
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
    cls = datamodule_class(entry)
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
