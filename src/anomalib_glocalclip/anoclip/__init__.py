"""AnoCLIP and AnoCLIP+ (arXiv 2308.15939): training-free zero-shot anomaly localisation with CLIP.

``AnoCLIP`` is the Anomalib module; ``AnoCLIPModel`` the PyTorch model it wraps.
"""

from .lightning_model import AnoCLIP
from .torch_model import AnoCLIPModel

__all__ = ["AnoCLIP", "AnoCLIPModel"]
