"""Make the plugin's classes visible to Anomalib under their short names, with the start-up hook off too.

Anomalib 2.7 has no plugin discovery; the start-up hook (``_anomalib_glocalclip_hook``) sets the entry points of
the groups ``anomalib.models`` and ``anomalib.data`` on those namespaces. The plugin's own commands call
:func:`register_with_anomalib` so that they work with the hook off (``ANOMALIB_DISABLE_PLUGINS=1``).
"""
from __future__ import annotations

import anomalib.data
import anomalib.models

from _anomalib_glocalclip_hook import register_entry_points

NAMESPACES = (anomalib.models, anomalib.data)
"""Where the entry points are set (imported here, so that they exist when the hook looks for them)."""


def register_with_anomalib() -> None:
    """Set each entry point of the groups ``anomalib.models`` and ``anomalib.data`` on Anomalib (missing names only)."""
    register_entry_points()
