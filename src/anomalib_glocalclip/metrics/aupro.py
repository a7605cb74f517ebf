"""Anomalib's ``AUPRO`` with its GT regions labelled exactly, once per stack, whatever the metric's device.

On a GPU, Anomalib's ``AUPRO.perform_cca`` runs ``connected_components_gpu``: always 1,000 max-pool propagation
passes over the stack (a region more than 1,000 steps across stays split), then a pass per region. This subclass
replaces only that step: the masks are labelled once on the host (``regions.label_regions``, OpenCV's partition, as
Anomalib's host path) and the curve and area stay Anomalib's, on the states' device.
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

    Use it where the metric states stay on a GPU (``Evaluator(compute_on_cpu=False)``).

    Example:
        >>> AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", fpr_limit=0.3).name
        'pixel_AUPRO'
    """

    def perform_cca(self) -> Tensor:
        """int64 labels (``0`` normal, ``1..R`` regions, unique across the masks) of the stored masks' shape and device.

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
