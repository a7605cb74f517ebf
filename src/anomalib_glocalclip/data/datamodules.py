"""The plugin's datamodules: one ``LayoutDataModule`` subclass per catalogue entry that names one.

The classes are made from ``data/catalogue.py``, so that a dataset is named there only; why Anomalib's own
datamodules are not used for them is in ``data/README.md``.
"""

from __future__ import annotations

from anomalib.data import AnomalibDataModule

from .auxiliary import AuxiliaryTransfer
from .catalogue import CATALOGUE, DatasetEntry
from .datamodule import LayoutDataModule


def layout_datamodule(entry: DatasetEntry) -> type[LayoutDataModule]:
    """The ``LayoutDataModule`` subclass of a catalogue entry: its class name, fixed to the entry's layout."""
    return type(
        entry.datamodule_name,
        (LayoutDataModule,),
        {"__doc__": f"{entry.title}, one category read from its official download: {entry.layout.description}",
         "__module__": __name__, "__qualname__": entry.datamodule_name, "default_layout": entry.layout},
    )


PLUGIN_DATAMODULES: tuple[type[LayoutDataModule], ...] = tuple(
    layout_datamodule(entry) for entry in CATALOGUE if entry.plugin_datamodule
)
"""The catalogue's datamodules that this plugin defines (the others are Anomalib's)."""

globals().update({cls.__name__: cls for cls in PLUGIN_DATAMODULES})  # importable by name, e.g. for pickling

DATAMODULES: tuple[type[AnomalibDataModule], ...] = (AuxiliaryTransfer, LayoutDataModule, *PLUGIN_DATAMODULES)
"""Datamodules this plugin registers with Anomalib under their class names (pyproject's entry points list them)."""

__all__ = ["DATAMODULES", "PLUGIN_DATAMODULES", "layout_datamodule"]
__all__ += [cls.__name__ for cls in PLUGIN_DATAMODULES]
