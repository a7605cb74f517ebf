"""Dataset layouts: each reads one dataset from its official download layout into Anomalib's samples table."""

from __future__ import annotations

from .base import DatasetLayout, DatasetLayoutError
from .folder import FOLDER
from .industrial import INDUSTRIAL_LAYOUTS
from .medical_image import MEDICAL_IMAGE_LAYOUTS
from .medical_pixel import MEDICAL_PIXEL_LAYOUTS
from .mvtec import MVTEC_AD
from .normal_folder import NORMAL_FOLDER
from .visa import VISA

LAYOUTS: dict[str, DatasetLayout] = {
    layout.name: layout
    for layout in (
        MVTEC_AD, VISA, FOLDER, NORMAL_FOLDER, *INDUSTRIAL_LAYOUTS, *MEDICAL_PIXEL_LAYOUTS, *MEDICAL_IMAGE_LAYOUTS,
    )
}


def get_layout(name: str) -> DatasetLayout:
    """The layout registered under ``name`` (case-insensitive, ``-`` and ``_`` alike)."""
    key = name.lower().replace("-", "_")
    if key not in LAYOUTS:
        msg = f"Unknown dataset layout {name!r}. Known layouts: {', '.join(sorted(LAYOUTS))}."
        raise DatasetLayoutError(msg)
    return LAYOUTS[key]


__all__ = ["LAYOUTS", "DatasetLayout", "DatasetLayoutError", "get_layout"]
