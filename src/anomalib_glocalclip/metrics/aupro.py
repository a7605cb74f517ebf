"""Anomalib's ``AUPRO`` with its GT regions labelled exactly, once per stack, whatever the metric's device.

Anomalib's ``AUPRO.perform_cca`` labels regions with OpenCV image by image when the states are on the host, and
on a GPU with ``connected_components_gpu``: 1,000 max-pool label-propagation passes over the whole stack (always
all 1,000, and a region whose pixels are more than 1,000 steps apart inside it stays split), then one full-stack
pass per region to renumber. This subclass only replaces that step: the stack's masks are labelled once on the
host (see :func:`~anomalib_glocalclip.metrics.regions.label_regions`), the labels going back
to the states' device, where Anomalib's own curve and area are computed unchanged. The region partition is
OpenCV's (8-connectivity, a pixel is anomalous where the mask equals 1, as Anomalib reads it), so the values are
the ones of Anomalib's host path, and the logged name stays ``<prefix>AUPRO``.
"""

from __future__ import annotations

import torch
from anomalib.metrics import AUPRO as _AnomalibAUPRO  # noqa: N811 - the subclass keeps the metric's name
from torch import Tensor
from torchmetrics.utilities.data import dim_zero_cat

from .regions import label_regions

__all__ = ["AUPRO"]


class AUPRO(_AnomalibAUPRO):
    """Anomalib's ``AUPRO`` (same arguments, same values), its regions labelled once on the host.

    Use it where the metric states stay on a GPU (``Evaluator(compute_on_cpu=False)``): only the masks travel to
    the host (one byte per pixel) and the labels back; sorting and the curve stay on the device.

    Example:
        >>> AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", fpr_limit=0.3).name
        'pixel_AUPRO'
    """

    def perform_cca(self) -> Tensor:
        """Label the connected regions of all stored masks, uniquely across them.

        Returns:
            int64 labels of the stored masks' shape (``[N, H, W]`` or ``[N, 1, H, W]``) on their device: ``0`` for
            normal pixels, ``1..R`` for the regions.

        Raises:
            ValueError: masks outside ``[0, 1]`` (as Anomalib's).
        """
        target = dim_zero_cat(self.target)
        if target.numel() and (target.min() < 0 or target.max() > 1):
            msg = f"AUPRO expects masks in [0, 1], but found [{target.min()}, {target.max()}]."
            raise ValueError(msg)
        # Anomalib reads a mask pixel as anomalous where it equals 1 (a float mask's 0.5 is normal there too).
        anomalous = target if target.dtype == torch.bool else target == 1
        labels, _ = label_regions(anomalous.reshape(-1, *target.shape[-2:]))
        return labels.view(target.shape)
