"""Connected GT regions of a stack of masks, labelled once on the host whatever the masks' device.

Both AUPROs average over 8-connected anomalous regions. Each mask is labelled by OpenCV's ``connectedComponents``
(about 3x faster on a CPU than one ``scipy.ndimage.label`` over the stack, same regions), its labels shifted past
the previous images'.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["label_regions"]


def label_regions(masks: Tensor) -> tuple[Tensor, int]:
    """Label the 8-connected regions of every bool mask of a stack ``[N, H, W]``, uniquely across the stack.

    Returns:
        int64 ``[N, H, W]`` labels on the masks' device, ``0`` for normal pixels and ``1..R`` for the regions
        (numbered image by image; OpenCV's order within an image), and ``R``.
    """
    if masks.ndim != 3:
        msg = f"Expected a mask stack [N, H, W], got shape {tuple(masks.shape)}."
        raise ValueError(msg)
    stack = np.ascontiguousarray(masks.detach().cpu().numpy(), dtype=bool).view(np.uint8)
    labels = np.zeros(stack.shape, dtype=np.int32)
    num_regions = 0
    for image, image_labels in zip(stack, labels, strict=True):
        if not image.any():
            continue
        count, found = cv2.connectedComponents(image, connectivity=8, ltype=cv2.CV_32S)
        np.add(found, num_regions, out=image_labels, where=found > 0)
        num_regions += count - 1
    return torch.from_numpy(labels).to(masks.device, torch.int64), num_regions
