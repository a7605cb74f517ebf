"""From nearest-reference distances to a few-shot anomaly map, and its combination with the zero-shot scores.

The few-shot map is WinCLIP+'s visual association score (Jeong et al., CVPR 2023, eq. 4), ``(1 - max cos) / 2``
in ``[0, 1]``, upsampled and smoothed by the zero-shot model's own patch-map function. Combination (WinCLIP+, as
Anomalib's ``WinClipModel``)::

    anomaly_map = (1 - w) * zero_shot_map   + w * map_scale * few_shot_map
    pred_score  = (1 - w) * zero_shot_score + w * max_pixels(few_shot_map)

``w = 0.5`` is WinCLIP+'s plain mean. ``map_scale`` is the zero-shot map's range (1, or the number of layers
GlocalCLIP sums), so the combined map keeps its range and natural threshold. ``w = 0`` changes nothing.
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
    """``[B, H, W]`` few-shot map: half the ``[B, N]`` nearest-reference distances through ``patch_map``."""
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
        weight: ``w``, the few-shot share, in ``[0, 1]``.
        map_scale: range of the zero-shot map; the few-shot map is scaled to it.

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
