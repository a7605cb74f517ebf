"""GlocalCLIP and AnoCLIP zero-shot anomaly detection for Anomalib.

Installing the package registers its models and datamodules with Anomalib, so that
``anomalib train --model GlocalCLIP``, ``anomalib.models.get_model("GlocalCLIP")`` and benchmark configs
naming ``GlocalCLIP`` all work without an import by the user.
"""

from .data import AuxiliarySource, AuxiliaryTransfer
from .glocalclip import GlocalCLIP
from .registry import register_with_anomalib

__all__ = ["AuxiliarySource", "AuxiliaryTransfer", "GlocalCLIP"]

register_with_anomalib(models={"GlocalCLIP": GlocalCLIP}, datamodules={"AuxiliaryTransfer": AuxiliaryTransfer})
