"""Mutual scoring (MuSc's MSM): each patch's distance to the nearest patch of every other image, interval-averaged.

For image ``i``, patch ``p`` and every other image ``j``: ``d(i, p, j) = min_q ||Z_i[p] - Z_j[q]||``. The patch's
score is the mean of its ``d(i, p, j)`` ranked ``[k_lo, k_hi)`` in ascending order over ``j`` (reference:
``models/modules/_MSM.py``). Computed in image blocks bounded by an element budget, each image pair once (one
block's distances give both directions), never all patches against all patches at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

DEFAULT_MAX_ELEMENTS = 2**28
"""Elements of the largest temporary (one block of patch-pair distances): 1 GiB in fp32."""
SYMMETRY_BLOCKS = 4
"""Blocks per side wanted: the diagonal blocks (computed whole) then add 1/8 to half of the N^2 pairs."""
MIN_BLOCK_ROWS = 512
"""Fewest patches per block side (smaller matrix products run well below their peak speed)."""


def interval_bounds(num_others: int, interval: tuple[float, float]) -> tuple[int, int]:
    """Ranks ``[k_lo, k_hi)`` of the nearest-image distances to average, among ``num_others`` images.

    Values below 1 are fractions of ``num_others``, truncated as the reference does (``int(0.3 * (N - 1))``); values
    of 1 or more are counts. Unlike the reference (NaN when ``int(0.3 * (N - 1)) = 0``, N <= 4), at least one image
    is averaged, and counts are clamped to ``num_others``.
    """
    if num_others < 1:
        msg = "Mutual scoring needs at least one other image."
        raise ValueError(msg)
    low, high = (int(bound * num_others) if bound < 1 else int(bound) for bound in interval)
    low, high = min(low, high), max(low, high)
    high = min(max(1, high), num_others)
    return min(low, high - 1), high


def _blocks(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def _squared_distance_operands(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Operands whose product gives ``||x - y||^2`` (``_pair_distances``).

    Args:
        features: ``[M, L, C]`` unit patch features.

    Returns:
        fp32: ``[-2x, |x|^2, 1]`` and ``[y, 1, |y|^2]``, each ``[M, L, C + 2]``: ``torch.cdist``'s form (the
        reference's distances, to rounding). fp16: the features themselves, for ``2 - 2 x.y`` (in fp16 the squared
        norms of unit vectors round to 1, so cdist's form would only add two columns).
    """
    if features.dtype == torch.float16:
        return features, features
    squared_norms = features.square().sum(-1, keepdim=True)
    ones = torch.ones_like(squared_norms)
    return torch.cat([-2 * features, squared_norms, ones], -1), torch.cat([features, ones, squared_norms], -1)


def _pair_distances(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[a*L, b*L]`` (fp32) of operand blocks ``[a, L, *]`` and ``[b, L, *]``."""
    left, right = left.flatten(0, 1), right.flatten(0, 1)
    if left.dtype != torch.float16:
        return left @ right.T
    # fp16 inputs with fp32 accumulation and output on CUDA (CPUs have no such product: fp32 there)
    products = torch.mm(left, right.T, out_dtype=torch.float32) if left.is_cuda else left.float() @ right.float().T
    return products.mul_(-2).add_(2)


def nearest_image_distances(
    features: torch.Tensor, references: torch.Tensor | None = None, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> torch.Tensor:
    """Distance of every patch to the nearest patch of every image of the set and of the references.

    Args:
        features: ``[N, L, C]`` unit patch features of the scored set (fp32, or fp16 on CUDA).
        references: ``[R, L, C]`` unit features of reference images (never scored), or ``None``.
        max_elements: most patch-pair distances computed at once (the largest temporary).

    Returns:
        ``[N, L, N + R]`` fp32 distances ``min_q ||Z_i[p] - Z_j[q]||``; ``+inf`` where ``j == i``.
    """
    count, length, _ = features.shape
    pool = features if references is None else torch.cat([features, references.to(features.dtype)])
    left, right = _squared_distance_operands(pool)
    # Diagonal blocks are computed whole: several blocks per side save most of the transposed half, and blocks of
    # at least MIN_BLOCK_ROWS patches keep the matrix products efficient.
    wanted = max(math.ceil(MIN_BLOCK_ROWS / length), math.ceil(count / SYMMETRY_BLOCKS))
    block = max(1, min(math.isqrt(max(1, max_elements)) // length, wanted))
    nearest = torch.full((count, length, pool.shape[0]), torch.inf, device=features.device)
    for rows in _blocks(count, block):
        for columns in _blocks(pool.shape[0], block):
            if columns.stop <= rows.start:  # the lower triangle came from the transposed block
                continue
            squared = _pair_distances(left[rows], right[columns]).view(
                rows.stop - rows.start, length, columns.stop - columns.start, length
            )
            nearest[rows, :, columns] = squared.amin(3)
            if columns.start >= rows.stop and columns.start < count:  # off-diagonal, scored columns: the transpose
                scored = slice(columns.start, min(columns.stop, count))
                width = scored.stop - scored.start
                nearest[scored, :, rows] = squared[:, :, :width].amin(1).permute(1, 2, 0)
    nearest = nearest.clamp_min_(0).sqrt_()  # as torch.cdist
    index = torch.arange(count, device=features.device)
    nearest[index, :, index] = torch.inf
    return nearest


def interval_mean(nearest: torch.Tensor, interval: tuple[float, float], num_others: int) -> torch.Tensor:
    """Mean of each patch's nearest-image distances ranked ``[k_lo, k_hi)`` (``interval_bounds``).

    Args:
        nearest: ``[N, L, M]`` distances, ``+inf`` for the image itself (``nearest_image_distances``).
        interval: the interval of ranks, fractions of ``num_others`` below 1, counts from 1 on.
        num_others: images each image is compared with (``M - 1``).

    Returns:
        ``[N, L]`` fp32 patch scores.
    """
    low, high = interval_bounds(num_others, interval)
    smallest = torch.topk(nearest, high, dim=-1, largest=False, sorted=True).values
    return smallest[..., low:].mean(-1)


def mutual_scores(
    features: torch.Tensor,
    interval: tuple[float, float] = (0.0, 0.3),
    references: torch.Tensor | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """MSM patch scores ``[N, L]`` (fp32) of unit features ``[N, L, C]`` against each other and the references."""
    nearest = nearest_image_distances(features, references, max_elements)
    return interval_mean(nearest, interval, nearest.shape[-1] - 1)
