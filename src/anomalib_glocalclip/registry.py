"""Make this plugin's classes visible to Anomalib under their short names.

Anomalib 2.7 has no plugin discovery. ``anomalib.models.get_model`` (and so ``anomalib benchmark``)
looks names up in the ``anomalib.models`` namespace, ``anomalib.data.get_datamodule`` in
``anomalib.data``, and the CLI resolves ``--model GlocalCLIP`` among already-imported subclasses. The
start-up hook (``_anomalib_glocalclip_hook``) imports the plugin when ``anomalib.models`` is imported;
this module then sets the names. Setting attributes on a namespace is all it does: no Anomalib source
is changed.
"""

from __future__ import annotations

import anomalib.data
import anomalib.models


def register_with_anomalib(models: dict[str, type], datamodules: dict[str, type]) -> None:
    """Expose ``models`` on ``anomalib.models`` and ``datamodules`` on ``anomalib.data`` (missing names only)."""
    for namespace, classes in ((anomalib.models, models), (anomalib.data, datamodules)):
        for name, cls in classes.items():
            if getattr(namespace, name, None) is None:
                setattr(namespace, name, cls)
