"""Dataset layouts: each reads one dataset from its official download layout into Anomalib's samples table.

Every layout of this package's modules is registered under its name in :data:`LAYOUTS` (see ``data/README.md``).
"""

from __future__ import annotations

from . import folder, industrial, medical_image, medical_pixel, mvtec, normal_folder, visa
from .base import DatasetLayout, DatasetLayoutError

LAYOUTS: dict[str, DatasetLayout] = {
    layout.name: layout
    for module in (mvtec, visa, industrial, medical_image, medical_pixel, folder, normal_folder)
    for layout in vars(module).values()
    if isinstance(layout, DatasetLayout)
}
"""Every layout by name."""


def get_layout(name: str) -> DatasetLayout:
    """The layout registered under ``name`` (case-insensitive, ``-`` and ``_`` alike)."""
    layout = LAYOUTS.get(name.lower().replace("-", "_"))
    if layout is None:
        msg = f"Unknown dataset layout {name!r}. Known layouts: {', '.join(sorted(LAYOUTS))}."
        raise DatasetLayoutError(msg)
    return layout


__all__ = ["LAYOUTS", "DatasetLayout", "DatasetLayoutError", "get_layout"]
