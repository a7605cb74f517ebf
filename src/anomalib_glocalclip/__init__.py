"""GlocalCLIP and AnoCLIP zero-shot anomaly detection for Anomalib.

Installing the package registers its models and datamodules with Anomalib, so that
``anomalib train --model GlocalCLIP``, ``anomalib.models.get_model("GlocalCLIP")`` and benchmark configs
naming ``GlocalCLIP`` all work without an import by the user.

Importing the package itself is cheap (no torch, no Anomalib), so that ``anomalib-glocalclip --help`` answers at
once: the models and datamodules are imported, and registered with Anomalib, on first access of one of the names
below (``from anomalib_glocalclip import GlocalCLIP``) or by :func:`register`.
"""

import importlib
import sys
from typing import Any

__all__ = ["AnoCLIP", "AuxiliarySource", "AuxiliaryTransfer", "GlocalCLIP", "SyntheticSource", "register"]

_LAZY_NAMES = {
    "AnoCLIP": ".anoclip",
    "AuxiliarySource": ".data",
    "AuxiliaryTransfer": ".data",
    "GlocalCLIP": ".glocalclip",
    "SyntheticSource": ".data",
}

REGISTERING_WITH_ANOMALIB = False
"""True while :func:`register` imports the models (the start-up hook then leaves the registration to it)."""


def _imports_in_progress(caller: str | None) -> bool:
    """Whether a module of the plugin other than ``caller`` is half-way through its import.

    The start-up hook leaves registration to the plugin while one of its modules is being imported (e.g.
    ``import anomalib_glocalclip.glocalclip`` imports ``anomalib.models`` before ``GlocalCLIP`` exists); the
    subpackages that users import directly call :func:`register` at their end, and the outermost of them, the last
    to finish, registers. ``_initializing`` is CPython's import-in-progress flag (the hook reads it too).
    """
    prefix = __name__ + "."
    for name, module in list(sys.modules.items()):
        initializing = getattr(getattr(module, "__spec__", None), "_initializing", False)
        if initializing and name.startswith(prefix) and name != caller:
            return True
    return False


def register(caller: str | None = None) -> None:
    """Import the models and datamodules and expose them on ``anomalib.models`` / ``anomalib.data``.

    Args:
        caller: the subpackage calling at the end of its own import (``__name__``), ``None`` otherwise.
    """
    global REGISTERING_WITH_ANOMALIB  # noqa: PLW0603 - one flag for the start-up hook
    if REGISTERING_WITH_ANOMALIB or _imports_in_progress(caller):
        return
    REGISTERING_WITH_ANOMALIB = True
    try:
        from .compat import check_versions

        check_versions()

        from .anoclip import AnoCLIP
        from .data import DATAMODULES
        from .glocalclip import GlocalCLIP
        from .registry import register_with_anomalib

        register_with_anomalib(
            models={"GlocalCLIP": GlocalCLIP, "AnoCLIP": AnoCLIP},
            datamodules={datamodule.__name__: datamodule for datamodule in DATAMODULES},
        )
    finally:
        REGISTERING_WITH_ANOMALIB = False


def __getattr__(name: str) -> Any:
    if name not in _LAZY_NAMES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    register()
    value = getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
