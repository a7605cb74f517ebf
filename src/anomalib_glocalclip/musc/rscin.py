"""RsCIN: MuSc's re-scoring of each image's score by the scores of its most similar images (class tokens).

Reference: ``models/modules/_RsCIN.py``. Scores are min-max scaled over the set; for each ``k`` every image's score
becomes the similarity-weighted mean of the scores of its ``k`` most similar images (itself included, so ``k = 1``
gives the scaled score back); the result is the mean over the ``k`` values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

logger = logging.getLogger(__name__)


def min_max_scale(scores: torch.Tensor) -> torch.Tensor:
    """``(s - min) / (max - min)`` over the set; all zeros when every score is the same (no NaN)."""
    span = scores.max() - scores.min()
    if span == 0:
        return torch.zeros_like(scores)
    return (scores - scores.min()) / span


def neighbour_weights(similarity: torch.Tensor, k: int) -> torch.Tensor:
    """Row-stochastic weights ``[N, N]``: each row keeps its ``k`` largest similarities, divided by their sum."""
    kept = torch.topk(similarity, k, dim=1).indices
    weights = torch.zeros_like(similarity).scatter_(1, kept, similarity.gather(1, kept))
    return weights / weights.sum(1, keepdim=True)


def clamp_neighbour_counts(k_values: Sequence[int], count: int) -> tuple[int, ...]:
    """``k_values`` with each ``k`` above the set size ``count`` clamped to it, with a warning."""
    if any(int(k) < 1 for k in k_values):
        msg = f"rscin_k values must be at least 1 (None switches RsCIN off), got {tuple(k_values)}."
        raise ValueError(msg)
    clamped = tuple(min(int(k), count) for k in k_values)
    if clamped != tuple(int(k) for k in k_values):
        logger.warning("RsCIN: k values %s exceed the set of %d images; clamped to %s.", tuple(k_values), count,
                       clamped)
    return clamped


def rscin(scores: torch.Tensor, class_features: torch.Tensor, k_values: Sequence[int] | None) -> torch.Tensor:
    """Re-scored image scores ``[N]`` (fp32) of raw scores ``[N]`` and L2-normalised class features ``[N, E]``.

    ``k_values`` ``None`` returns the scores unchanged (RsCIN off, the map's scale); otherwise the scores are
    min-max scaled over the set first (the result is on ``[0, 1]``, not the map's scale).
    """
    if k_values is None:
        return scores
    scaled = min_max_scale(scores).float()
    features = class_features.float()
    similarity = features @ features.T
    k_values = clamp_neighbour_counts(k_values, len(scores))
    return torch.stack([neighbour_weights(similarity, k) @ scaled for k in k_values], -1).mean(-1)
