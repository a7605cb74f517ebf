"""GlocalCLIP and AnoCLIP zero-shot anomaly detection for Anomalib.

Installing the package registers its models and datamodules with Anomalib, so that
``anomalib train --model GlocalCLIP``, ``anomalib.models.get_model("GlocalCLIP")`` and benchmark configs
naming ``GlocalCLIP`` all work without an import by the user.
"""

from .compat import check_versions

check_versions()

from .anoclip import AnoCLIP  # noqa: E402 - after the version check
from .data import DATAMODULES, AuxiliarySource, AuxiliaryTransfer, SyntheticSource  # noqa: E402
from .glocalclip import GlocalCLIP  # noqa: E402
from .registry import register_with_anomalib  # noqa: E402

__all__ = ["AnoCLIP", "AuxiliarySource", "AuxiliaryTransfer", "GlocalCLIP", "SyntheticSource"]

register_with_anomalib(
    models={"GlocalCLIP": GlocalCLIP, "AnoCLIP": AnoCLIP},
    datamodules={datamodule.__name__: datamodule for datamodule in DATAMODULES},
)
