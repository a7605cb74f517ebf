"""Data: robust image reading, dataset layouts, and the datamodules of the plugin."""

from .auxiliary import AuxiliarySource, AuxiliaryTransfer, TrainSplitCache
from .catalogue import (
    CATALOGUE,
    DATASETS,
    LAYOUTS,
    PLUGIN_DATAMODULES,
    DatasetEntry,
    get_dataset,
    get_layout,
    list_categories,
    make_datamodule,
)
from .datamodule import LayoutDataModule
from .datamodules import (
    BTAD,
    DAGM,
    ISIC2016,
    TN3K,
    Br35H,
    BrainMRI,
    CVCClinicDB,
    CVCColonDB,
    DTDSynthetic,
    EndoTect,
    HeadCT,
    KolektorSDD,
    KvasirSEG,
)
from .dataset import SampleDataset, has_pixel_labels
from .epoch_sampler import EpochSampler
from .io import ImageReadError, read_image, read_mask
from .layouts import DatasetLayout, DatasetLayoutError
from .perlin import PerlinSynthesizer
from .synthetic import SyntheticDataset, SyntheticSource

DATAMODULES = (AuxiliaryTransfer, LayoutDataModule, *PLUGIN_DATAMODULES)
"""Datamodules this plugin registers with Anomalib under their class names (and lists as entry points)."""

__all__ = [
    "CATALOGUE",
    "DATAMODULES",
    "DATASETS",
    "BTAD",
    "DAGM",
    "ISIC2016",
    "LAYOUTS",
    "TN3K",
    "AuxiliarySource",
    "AuxiliaryTransfer",
    "Br35H",
    "BrainMRI",
    "CVCClinicDB",
    "CVCColonDB",
    "DTDSynthetic",
    "DatasetEntry",
    "DatasetLayout",
    "DatasetLayoutError",
    "EndoTect",
    "EpochSampler",
    "HeadCT",
    "ImageReadError",
    "KolektorSDD",
    "KvasirSEG",
    "LayoutDataModule",
    "PLUGIN_DATAMODULES",
    "PerlinSynthesizer",
    "SampleDataset",
    "SyntheticDataset",
    "SyntheticSource",
    "TrainSplitCache",
    "get_dataset",
    "get_layout",
    "has_pixel_labels",
    "list_categories",
    "make_datamodule",
    "read_image",
    "read_mask",
]


# Importing this subpackage directly (before the plugin's package names) must register the plugin too: the
# start-up hook leaves it to the plugin while one of its modules is still being imported.
from anomalib_glocalclip import register  # noqa: E402 - after the package's own names exist

register(__name__)
