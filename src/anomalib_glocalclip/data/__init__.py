"""Data: robust image reading, dataset layouts, and the datamodules of the plugin."""

from .auxiliary import AuxiliarySource, AuxiliaryTransfer
from .datamodule import LayoutDataModule
from .dataset import SampleDataset, has_pixel_labels
from .io import ImageReadError, read_image, read_mask
from .layouts import LAYOUTS, DatasetLayout, DatasetLayoutError, get_layout

__all__ = [
    "LAYOUTS",
    "AuxiliarySource",
    "AuxiliaryTransfer",
    "DatasetLayout",
    "DatasetLayoutError",
    "ImageReadError",
    "LayoutDataModule",
    "SampleDataset",
    "get_layout",
    "has_pixel_labels",
    "read_image",
    "read_mask",
]
