"""MuSc (ICLR 2024): zero-shot anomaly detection by mutual scoring of the images of one set.

``lightning_model.MuSc`` is the Anomalib module (its docstring has the constructor and what ``Engine.predict``
returns); ``torch_model.MuScModel`` the plain module; ``lnamd``, ``mutual_scoring`` and ``rscin`` the maths.
"""

from .lightning_model import MuSc
from .torch_model import MuScModel

__all__ = ["MuSc", "MuScModel"]
