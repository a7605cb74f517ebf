"""LNAMD: MuSc's per-image LayerNorm and neighbourhood aggregation of patch tokens (``r x r`` mean, then unit length).

The reference (``xrli-U/MuSc``, ``models/modules/_LNAMD.py``) normalises the whole token map of one image with a fresh
``nn.LayerNorm([C, h, w])`` (one mean and variance per image, identity affine) and aggregates with PatchCore's
unfold-then-``adaptive_avg_pool1d``, which equals ``avg_pool2d`` with zero padding counted in the border windows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

LAYER_NORM_EPS = 1e-5
"""``nn.LayerNorm``'s default, which the reference uses."""


def layer_norm_maps(tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """LayerNorm over the whole token map of each image, no affine.

    Args:
        tokens: ``[B, h*w, C]`` patch tokens of one layer (class token dropped).
        grid_size: patch grid ``(h, w)``.

    Returns:
        ``[B, C, h, w]`` maps, each image normalised by one mean and one variance over all its ``C*h*w`` values.
    """
    batch, length, width = tokens.shape
    height, grid_width = grid_size
    if height * grid_width != length:
        msg = f"{length} patch tokens do not form a {height}x{grid_width} grid."
        raise ValueError(msg)
    maps = tokens.transpose(1, 2).reshape(batch, width, height, grid_width)
    return F.layer_norm(maps, maps.shape[1:], eps=LAYER_NORM_EPS)


def aggregate_neighbourhoods(maps: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over each patch's ``r x r`` neighbourhood (zeros outside the grid counted), then unit length.

    Args:
        maps: ``[B, C, h, w]`` LayerNormed maps (``layer_norm_maps``).
        r: odd neighbourhood size; 1 keeps each patch as it is.

    Returns:
        ``[B, h*w, C]`` L2-normalised patch features.
    """
    if r < 1 or r % 2 == 0:
        msg = f"Aggregation degrees in r_list must be odd and positive, got {r}."
        raise ValueError(msg)
    if r > 1:
        maps = F.avg_pool2d(maps, kernel_size=r, stride=1, padding=r // 2, count_include_pad=True)
    features = maps.flatten(2).transpose(1, 2)
    return F.normalize(features, dim=-1)


def lnamd(tokens: torch.Tensor, grid_size: tuple[int, int], r: int) -> torch.Tensor:
    """LNAMD features ``[B, h*w, C]`` of patch tokens ``[B, h*w, C]`` at aggregation degree ``r``."""
    return aggregate_neighbourhoods(layer_norm_maps(tokens, grid_size), r)
