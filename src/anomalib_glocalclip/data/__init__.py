"""Data: robust image reading, dataset layouts, and the datamodules of the plugin."""

from .auxiliary import AuxiliarySource, AuxiliaryTransfer, TrainSplitCache
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
from .layouts import LAYOUTS, DatasetLayout, DatasetLayoutError, get_layout
from .perlin import PerlinSynthesizer
from .synthetic import SyntheticDataset, SyntheticSource

DATAMODULES = (
    AuxiliaryTransfer,
    LayoutDataModule,
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
"""Datamodules this plugin registers with Anomalib under their class names."""

__all__ = [
    "DATAMODULES",
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
    "DatasetLayout",
    "DatasetLayoutError",
    "EndoTect",
    "EpochSampler",
    "HeadCT",
    "ImageReadError",
    "KolektorSDD",
    "KvasirSEG",
    "LayoutDataModule",
    "PerlinSynthesizer",
    "SampleDataset",
    "SyntheticDataset",
    "SyntheticSource",
    "TrainSplitCache",
    "get_layout",
    "has_pixel_labels",
    "read_image",
    "read_mask",
]
