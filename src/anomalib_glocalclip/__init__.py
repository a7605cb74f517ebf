"""GlocalCLIP, AnoCLIP and MuSc zero-shot anomaly detection for Anomalib.

Installing the package registers its models and datamodules with Anomalib (entry points of the groups
``anomalib.models`` and ``anomalib.data``, loaded by the start-up hook ``_anomalib_glocalclip_hook`` once
``anomalib.models`` is imported), so that ``anomalib train --model GlocalCLIP``,
``anomalib.models.get_model("GlocalCLIP")`` and benchmark configs naming ``GlocalCLIP`` all work without an
import by the user.

Importing the package itself is cheap (no torch, no Anomalib), so that ``anomalib-glocalclip --help`` answers at
once: the names below are imported from the modules that define them on first access
(``from anomalib_glocalclip import GlocalCLIP``). No module of the package imports this one.
"""

import importlib

_MODULES = {
    "AnoCLIP": "anomalib_glocalclip.anoclip.lightning_model",
    "AuxiliarySource": "anomalib_glocalclip.data.auxiliary",
    "AuxiliaryTransfer": "anomalib_glocalclip.data.auxiliary",
    "GlocalCLIP": "anomalib_glocalclip.glocalclip.lightning_model",
    "MuSc": "anomalib_glocalclip.musc.lightning_model",
    "SyntheticSource": "anomalib_glocalclip.data.synthetic",
}
"""Public name -> the module that defines it."""

# _MODULES' names
__all__ = ["AnoCLIP", "AuxiliarySource", "AuxiliaryTransfer", "GlocalCLIP", "MuSc", "SyntheticSource"]


def __getattr__(name: str) -> type:
    if name not in _MODULES:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
