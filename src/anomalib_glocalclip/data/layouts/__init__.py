"""Dataset layouts: each reads one dataset from its official download layout into Anomalib's samples table.

The layouts are looked up by name through the dataset catalogue (``anomalib_glocalclip.data.catalogue.get_layout``).
"""

from __future__ import annotations

from .base import DatasetLayout, DatasetLayoutError

__all__ = ["DatasetLayout", "DatasetLayoutError"]
