"""From nearest-reference distances to a few-shot anomaly map, and its combination with the zero-shot scores.

The few-shot map is WinCLIP+'s visual association score (Jeong et al., CVPR 2023, eq. 4): half the cosine
distance of a patch to its nearest normal reference patch, ``(1 - max cos) / 2``, in ``[0, 1]`` like the
zero-shot models' anomalous probabilities. It is upsampled and smoothed by the zero-shot model's own patch-map
function, so both maps share their geometry.

Combination (WinCLIP+, mirrored by Anomalib's ``WinClipModel``; AnomalyCLIP and AdaCLIP's few-shot variants
also add a nearest-reference map to the zero-shot map with equal weight)::

    anomaly_map = (1 - w) * zero_shot_map   + w * map_scale * few_shot_map
    pred_score  = (1 - w) * zero_shot_score + w * max_pixels(few_shot_map)

with ``w = 0.5`` by default, which is WinCLIP+'s plain mean of the two. ``map_scale`` is the range of the
zero-shot map (1 for a probability map, the number of summed layers for GlocalCLIP's reference-mode map), so the
combined map keeps the zero-shot map's range and its natural threshold (half the range). ``w = 0`` returns the
zero-shot outputs unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

PatchMapFunction = Callable[[torch.Tensor], torch.Tensor]
"""A model's patch-score-to-map function: ``[B, N]`` scores on the patch grid to a ``[B, H, W]`` map."""

DEFAULT_FEW_SHOT_WEIGHT = 0.5
"""WinCLIP+'s equal weighting of the zero-shot and few-shot scores."""


class CombinedScores(NamedTuple):
    """Few-shot outputs of a model.

    Attributes:
        anomaly_map: ``[B, H, W]`` combined anomaly map, in the zero-shot map's range.
        pred_score: ``[B]`` combined image score.
    """

    anomaly_map: torch.Tensor
    pred_score: torch.Tensor


def few_shot_anomaly_map(distances: torch.Tensor, patch_map: PatchMapFunction) -> torch.Tensor:
    """Few-shot anomaly map: half the nearest-reference distances, through the model's patch-map function.

    Args:
        distances: ``[B, N]`` cosine distances to the nearest reference patch, in ``[0, 2]``
            (``ReferenceBank.nearest_distance``).
        patch_map: the zero-shot model's upsampling and smoothing of ``[B, N]`` patch scores to ``[B, H, W]``.

    Returns:
        ``[B, H, W]`` few-shot map, in ``[0, 1]`` when ``patch_map`` is an average (bilinear, Gaussian, mean).
    """
    return patch_map(distances / 2)


def combine(
    zero_shot_map: torch.Tensor,
    few_shot_map: torch.Tensor,
    zero_shot_score: torch.Tensor,
    weight: float = DEFAULT_FEW_SHOT_WEIGHT,
    map_scale: float = 1.0,
) -> CombinedScores:
    """Weighted mean of zero-shot and few-shot outputs (see the module docstring).

    Args:
        zero_shot_map: ``[B, H, W]`` zero-shot anomaly map, in ``[0, map_scale]``.
        few_shot_map: ``[B, H, W]`` few-shot map, in ``[0, 1]`` (``few_shot_anomaly_map``).
        zero_shot_score: ``[B]`` zero-shot image score, in ``[0, 1]``.
        weight: ``w``, the few-shot share, in ``[0, 1]``. Defaults to ``0.5`` (WinCLIP+).
        map_scale: range of the zero-shot map; the few-shot map is scaled to it. Defaults to ``1.0``.

    Returns:
        ``CombinedScores`` with the combined map ``[B, H, W]`` and image score ``[B]``.

    Raises:
        ValueError: ``weight`` is outside ``[0, 1]``, ``map_scale`` is not positive, or the maps' shapes differ.
    """
    if not 0.0 <= weight <= 1.0:
        msg = f"The few-shot weight must lie in [0, 1], got {weight}."
        raise ValueError(msg)
    if map_scale <= 0:
        msg = f"map_scale must be positive, got {map_scale}."
        raise ValueError(msg)
    if zero_shot_map.shape != few_shot_map.shape:
        msg = f"Zero-shot map {list(zero_shot_map.shape)} and few-shot map {list(few_shot_map.shape)} differ in shape."
        raise ValueError(msg)
    if weight == 0.0:
        return CombinedScores(anomaly_map=zero_shot_map, pred_score=zero_shot_score)
    anomaly_map = (1.0 - weight) * zero_shot_map + (weight * map_scale) * few_shot_map
    pred_score = (1.0 - weight) * zero_shot_score + weight * few_shot_map.amax(dim=(-2, -1))
    return CombinedScores(anomaly_map=anomaly_map, pred_score=pred_score)
