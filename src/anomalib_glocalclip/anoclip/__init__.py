"""AnoCLIP and AnoCLIP+ (arXiv 2308.15939): training-free zero-shot anomaly localisation with CLIP.

``AnoCLIP`` is the Anomalib module; ``AnoCLIPModel`` the PyTorch model it wraps.
"""

from .lightning_model import AnoCLIP
from .torch_model import AnoCLIPModel

__all__ = ["AnoCLIP", "AnoCLIPModel"]


# Importing this subpackage directly (before the plugin's package names) must register the plugin too: the
# start-up hook leaves it to the plugin while one of its modules is still being imported.
from anomalib_glocalclip import register

register(__name__)
