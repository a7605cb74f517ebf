"""Connected GT regions of a stack of masks, labelled once on the host whatever the masks' device.

Both AUPROs average over connected anomalous regions (8-connectivity in the image plane, as skimage's and OpenCV's
defaults). Labelling is done by one ``scipy.ndimage.label`` call over the whole ``[N, H, W]`` stack with a
structuring element that links no two images, so labels are unique across the stack without a per-image loop; only
the bool masks travel to the host and the int64 labels back.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

__all__ = ["label_regions"]

# In-plane 8-connectivity for a [N, H, W] stack, and no links between images.
_STACK_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STACK_STRUCTURE[1] = True


def label_regions(masks: Tensor) -> tuple[Tensor, int]:
    """Label the 8-connected regions of every mask of a stack, uniquely across the stack.

    Args:
        masks: bool ``[N, H, W]`` anomalous pixels, any device.

    Returns:
        int64 ``[N, H, W]`` labels on the masks' device, ``0`` for normal pixels and ``1..R`` for the regions
        (numbered image by image, in raster order within an image), and ``R``.
    """
    if masks.ndim != 3:
        msg = f"Expected a mask stack [N, H, W], got shape {tuple(masks.shape)}."
        raise ValueError(msg)
    labels, num_regions = ndimage.label(masks.detach().cpu().numpy(), structure=_STACK_STRUCTURE)
    return torch.from_numpy(labels).to(masks.device, torch.int64), int(num_regions)
