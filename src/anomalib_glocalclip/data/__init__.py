"""Data: robust image reading, dataset layouts, the dataset catalogue and the datamodules of the plugin.

The package imports its modules on first use of one of its names (``from anomalib_glocalclip.data import BTAD``),
so that reading the catalogue (``data.catalogue``, e.g. for command-line help) imports neither torch nor Anomalib.
"""

import importlib

from .catalogue import (
    CATALOGUE,
    DATASETS,
    PLUGIN_DATAMODULE_NAMES,
    DatasetEntry,
    get_dataset,
    list_categories,
    make_datamodule,
)

_MODULES: dict[str, str] = {
    **dict.fromkeys(("AuxiliarySource", "AuxiliaryTransfer", "TrainSplitCache"), "auxiliary"),
    **dict.fromkeys(("DATAMODULES", "PLUGIN_DATAMODULES", *PLUGIN_DATAMODULE_NAMES), "datamodules"),
    "LayoutDataModule": "datamodule",
    **dict.fromkeys(("SampleDataset", "has_pixel_labels"), "dataset"),
    "EpochSampler": "epoch_sampler",
    **dict.fromkeys(("ImageReadError", "read_image", "read_mask"), "io"),
    **dict.fromkeys(("LAYOUTS", "DatasetLayout", "DatasetLayoutError", "get_layout"), "layouts"),
    "PerlinSynthesizer": "perlin",
    **dict.fromkeys(("SyntheticDataset", "SyntheticSource"), "synthetic"),
}
"""Name -> the module of this package that defines it."""

__all__ = ["CATALOGUE", "DATASETS", "DatasetEntry", "get_dataset", "list_categories", "make_datamodule"]
__all__ += list(_MODULES)


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
