"""The "PRO" of the GlocalCLIP / AnomalyCLIP / AnoVL papers (originally cflow-ad's), fast and next to Anomalib's.

The papers' ``cal_pro_score`` (see the GlocalCLIP README's "Two AUPROs") for one category:

1. thresholds ``np.arange(lo, hi, (hi - lo) / 200)`` over the stack's min/max in the maps' dtype (200 *or 201*);
2. PRO(th): mean over every 8-connected GT region of the fraction of its pixels with ``map > th``;
3. FPR(th): fraction of all GT-normal pixels with ``map > th``;
4. only thresholds with ``FPR < 0.3`` are kept;
5. the kept FPRs are min-max rescaled to [0, 1] (not divided by 0.3);
6. the score is the trapezoid area of PRO over the rescaled FPRs (``sklearn.metrics.auc``).

Without loops over thresholds or regions: each pixel goes to the threshold bucket of its score, per-region and
normal-pixel histograms come from one ``bincount`` per chunk of images, and reverse cumulative sums give the pixels
above every threshold at once.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from anomalib.metrics import AnomalibMetric
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from .regions import label_regions

__all__ = ["ReferenceAUPRO", "reference_aupro", "reference_pro_curve", "reference_thresholds"]

# Pixels handled per bincount pass (whole images at a time); ~50 bytes of scratch memory per pixel.
_CHUNK_PIXELS = 1 << 22
_NATIVE_FLOAT_DTYPES = (torch.float16, torch.float32, torch.float64)


def reference_thresholds(anomaly_maps: Tensor, num_thresholds: int = 200) -> np.ndarray:
    """Thresholds exactly as the reference computes them with the installed numpy.

    ``np.arange(lo, hi, (hi - lo) / num_thresholds)`` with ``lo``/``hi`` numpy scalars of the maps' dtype. With
    float32 maps numpy 2 computes the step in float32, the length as ``ceil`` of a float32 quotient and the values in
    float64, so the result has ``num_thresholds`` or ``num_thresholds + 1`` entries and the last one may equal or
    exceed ``hi``.

    Returns:
        float64 array ``[T]``, increasing; empty when the maps are empty, constant or not finite (the reference
        raises there).
    """
    if anomaly_maps.numel() == 0:
        return np.empty(0, dtype=np.float64)
    np_dtype = torch.empty((), dtype=anomaly_maps.dtype).numpy().dtype
    lo = np_dtype.type(anomaly_maps.min().item())
    hi = np_dtype.type(anomaly_maps.max().item())
    with np.errstate(all="ignore"):
        step = (hi - lo) / num_thresholds
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(step) and step > 0):
        return np.empty(0, dtype=np.float64)
    return np.arange(lo, hi, step).astype(np.float64)


def _floor_to_dtype(values: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Round float64 ``values`` down to the largest ``dtype`` number not above each of them.

    For a score ``v`` of that dtype, ``v > t`` in float64 (numpy 2's promotion in the reference's ``amaps > th``)
    is then the same as ``v > floor(t)`` in the maps' own dtype, so the maps never need a float64 copy.
    """
    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    rounded = values.astype(np_dtype)
    too_high = rounded.astype(np.float64) > values
    rounded[too_high] = np.nextafter(rounded[too_high], np_dtype.type(-np.inf))
    return rounded


def _binarise(masks: Tensor) -> Tensor:
    """Bool ``[...]`` mask: non-zero for bool/integer masks, ``> 0.5`` for float ones (soft masks from resizing)."""
    masks = masks.as_subclass(Tensor)
    return masks > 0.5 if masks.is_floating_point() else masks != 0


def _label_rows(masks: Tensor) -> tuple[Tensor, int]:
    """Each pixel's histogram row (int64 ``[n, H, W]``) of bool masks: its region, or ``R`` (normal); and ``R``."""
    rows, num_regions = label_regions(masks)
    # labels are 1..R for regions and 0 for normal pixels; rotate by one so normal pixels land on row R.
    rows = torch.where(rows > 0, rows - 1, num_regions)
    return rows, num_regions


def _bucket_histograms(anomaly_maps: Tensor, masks: Tensor, boundaries: Tensor) -> tuple[Tensor, Tensor]:
    """Per-region ``[R, T + 1]`` and normal-pixel ``[T + 1]`` int64 histograms of "thresholds below the score".

    ``anomaly_maps`` ``[N, H, W]`` are in the dtype of the ``[T]`` non-decreasing ``boundaries``; masks are bool.
    """
    num_buckets = boundaries.numel() + 1
    images_per_chunk = max(1, _CHUNK_PIXELS // max(1, anomaly_maps[0].numel()))
    region_hists = []
    normal_hist = torch.zeros(num_buckets, dtype=torch.int64, device=anomaly_maps.device)
    for start in range(0, anomaly_maps.shape[0], images_per_chunk):
        rows, num_regions = _label_rows(masks[start : start + images_per_chunk])
        # right=False: bucket b = number of boundaries < score, so the pixel is positive at thresholds 0..b-1.
        buckets = torch.bucketize(anomaly_maps[start : start + images_per_chunk], boundaries)
        keys = (rows * num_buckets + buckets).flatten()
        hist = torch.bincount(keys, minlength=(num_regions + 1) * num_buckets).view(num_regions + 1, num_buckets)
        region_hists.append(hist[:num_regions])
        normal_hist += hist[num_regions]
    return torch.cat(region_hists), normal_hist


def _counts_above(hist: Tensor) -> Tensor:
    """``[..., T + 1]`` bucket histogram -> ``[..., T]`` number of pixels with score > threshold ``k``."""
    return hist.flip(-1).cumsum(-1).flip(-1)[..., 1:]


def reference_pro_curve(
    anomaly_maps: Tensor, masks: Tensor, num_thresholds: int = 200
) -> tuple[Tensor, Tensor, Tensor]:
    """The reference's full curve, before the FPR limit: one point per threshold.

    Args:
        anomaly_maps: ``[N, H, W]`` scores (float16/32/64 kept as they are, other dtypes read as float32).
        masks: ``[N, H, W]`` ground truth, anomalous where non-zero (``> 0.5`` for float masks).
        num_thresholds: the reference's ``max_step``.

    Returns:
        ``thresholds``, ``fpr`` and ``pro``, float64 ``[T]`` on the maps' device, ``T`` being ``num_thresholds`` or
        one more (0 for constant or non-finite maps). ``pro`` is NaN without GT regions and ``fpr`` is NaN without
        normal pixels, as 0/0 in the reference.
    """
    if anomaly_maps.ndim != 3 or anomaly_maps.shape != masks.shape:
        shapes = f"{anomaly_maps.shape} and {masks.shape}"
        msg = f"Expected anomaly maps and masks of the same shape [N, H, W], got {shapes}."
        raise ValueError(msg)
    anomaly_maps = anomaly_maps.as_subclass(Tensor).detach()
    if anomaly_maps.dtype not in _NATIVE_FLOAT_DTYPES:
        anomaly_maps = anomaly_maps.float()
    device = anomaly_maps.device
    thresholds = reference_thresholds(anomaly_maps, num_thresholds)
    if thresholds.size == 0:
        empty = torch.empty(0, dtype=torch.float64, device=device)
        return empty, empty, empty
    boundaries = torch.from_numpy(_floor_to_dtype(thresholds, anomaly_maps.dtype)).to(device)
    region_hists, normal_hist = _bucket_histograms(anomaly_maps, _binarise(masks).to(device), boundaries)

    region_areas = region_hists.sum(-1, keepdim=True).double()
    pro = (_counts_above(region_hists).double() / region_areas).mean(0)
    fpr = _counts_above(normal_hist).double() / normal_hist.sum().double()
    return torch.from_numpy(thresholds).to(device), fpr, pro


def _rescaled_area(fpr: Tensor, pro: Tensor, fpr_limit: float) -> Tensor:
    """Steps 4-6 on float64 ``[T]`` curves (``fpr`` non-increasing); NaN with a warning where the reference fails."""
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=fpr.device)
    keep = fpr < fpr_limit
    if int(keep.sum()) < 2:
        msg = (f"Reference AUPRO is undefined: fewer than 2 thresholds with FPR < {fpr_limit} (constant or non-finite "
               f"maps, no normal pixels, or more than {fpr_limit} of them sharing the top score); returning NaN.")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return nan
    fpr, pro = fpr[keep], pro[keep]
    span = fpr.max() - fpr.min()
    if span == 0:
        msg = ("Reference AUPRO is undefined: all kept thresholds have the same FPR (0/0 in its min-max rescaling, "
               "e.g. a map whose normal pixels all share the lowest score); returning NaN.")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return nan
    if torch.isnan(pro).any():
        warnings.warn("Reference AUPRO is undefined without GT regions; returning NaN.", RuntimeWarning, stacklevel=3)
        return nan
    # FPR falls as thresholds rise, so x decreases; sklearn.metrics.auc then negates the trapezoid.
    return -torch.trapezoid(pro, (fpr - fpr.min()) / span)


def reference_aupro(anomaly_maps: Tensor, masks: Tensor, fpr_limit: float = 0.3, num_thresholds: int = 200) -> Tensor:
    """AUPRO as the GlocalCLIP / AnomalyCLIP / AnoVL papers compute it (their ``cal_pro_score``), vectorised.

    Runs on the maps' device (``[N, H, W]`` scores of one category; masks as in :func:`reference_pro_curve`); the
    scratch memory is bounded by one chunk of images (~4M pixels, ~300 MB measured on CPU), whatever ``N``.

    Returns:
        float64 scalar tensor on the maps' device. NaN, with a ``RuntimeWarning``, where the reference raises or
        returns NaN: no GT region, no normal pixel, constant or non-finite maps, fewer than two kept thresholds,
        or all kept thresholds at the same FPR.
    """
    _, fpr, pro = reference_pro_curve(anomaly_maps, masks, num_thresholds)
    return _rescaled_area(fpr, pro, fpr_limit)


def _as_stack(tensor: Tensor) -> Tensor:
    """``[N, H, W]`` or ``[N, 1, H, W]`` -> plain ``[N, H, W]`` tensor, detached."""
    tensor = tensor.as_subclass(Tensor).detach()
    return tensor.squeeze(1) if tensor.ndim == 4 and tensor.shape[1] == 1 else tensor


class _ReferenceAUPRO(Metric):
    """Accumulates maps and masks over batches; ``compute`` returns :func:`reference_aupro` of the whole stack.

    ``fpr_limit`` and ``num_thresholds`` are plain attributes, so (unlike Anomalib's ``AUPRO``, which registers
    ``fpr_limit`` as a buffer) nothing of this metric ends up in a model's ``state_dict``.

    Args:
        fpr_limit: thresholds with ``FPR < fpr_limit`` are kept.
        num_thresholds: the reference's ``max_step``.
        **kwargs: torchmetrics options (``compute_on_cpu``, ``dist_sync_on_step``, ...).
    """

    is_differentiable: bool = False
    higher_is_better: bool | None = True
    full_state_update: bool = False
    preds: list[Tensor]
    target: list[Tensor]

    def __init__(self, fpr_limit: float = 0.3, num_thresholds: int = 200, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.fpr_limit = float(fpr_limit)
        self.num_thresholds = int(num_thresholds)
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Store a batch of ``[B, H, W]`` or ``[B, 1, H, W]`` anomaly maps and GT masks (stored as bool)."""
        self.preds.append(_as_stack(preds))
        self.target.append(_binarise(_as_stack(target)))

    def compute(self) -> Tensor:
        """Reference AUPRO of everything seen since the last reset (float64 scalar)."""
        return reference_aupro(dim_zero_cat(self.preds), dim_zero_cat(self.target), self.fpr_limit, self.num_thresholds)


class ReferenceAUPRO(AnomalibMetric, _ReferenceAUPRO):  # type: ignore[misc]
    """The papers' AUPRO as an Anomalib metric: ``ReferenceAUPRO(prefix="pixel_")`` logs ``pixel_ReferenceAUPRO``.

    Reads ``anomaly_map`` and ``gt_mask`` from the batch unless other ``fields`` are given; ``strict=False`` skips
    batches without them (and ``compute`` then returns ``None`` if nothing was stored).
    """

    default_fields = ("anomaly_map", "gt_mask")
