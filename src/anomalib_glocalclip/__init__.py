"""GlocalCLIP and AnoCLIP zero-shot anomaly detection for Anomalib.

Installing the package registers its models and datamodules with Anomalib, so that
``anomalib train --model GlocalCLIP``, ``anomalib.models.get_model("GlocalCLIP")`` and benchmark configs
naming ``GlocalCLIP`` all work without an import by the user.
"""

from .anoclip import AnoCLIP
from .data import DATAMODULES, AuxiliarySource, AuxiliaryTransfer, SyntheticSource
from .glocalclip import GlocalCLIP
from .registry import register_with_anomalib

__all__ = ["AnoCLIP", "AuxiliarySource", "AuxiliaryTransfer", "GlocalCLIP", "SyntheticSource"]

register_with_anomalib(
    models={"GlocalCLIP": GlocalCLIP, "AnoCLIP": AnoCLIP},
    datamodules={datamodule.__name__: datamodule for datamodule in DATAMODULES},
)
