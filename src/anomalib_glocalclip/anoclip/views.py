"""The 21 augmented views AnoCLIP averages its image score over (with the image itself, 22 views).

In the reference code's order (hq-deng/AnoVL, ``utils.aug``), on CLIP-normalised images: 8 small rotations and
8 translations (resampled with reflection padding), a horizontal flip, a grayscale copy, rotations by 90, 180 and
270 degrees. The score is the views' mean, so their order (the reference shuffles them) and the sign convention
of the symmetric angles and shifts change it only by float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

SMALL_ROTATIONS: tuple[float, ...] = tuple(k * math.pi / 16 for k in (-4, -3, -2, -1, 1, 2, 3, 4))
"""Rotation angles in radians: -π/4, -3π/16, -π/8, -π/16, π/16, π/8, 3π/16, π/4."""

TRANSLATIONS: tuple[tuple[float, float], ...] = (
    (0.2, 0.2), (-0.2, 0.2), (-0.2, -0.2), (0.2, -0.2), (0.1, 0.1), (-0.1, 0.1), (-0.1, -0.1), (0.1, -0.1),
)
"""Shifts ``(x, y)`` in normalised grid units (the image spans -1..1)."""

GRAYSCALE_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B."""

NUM_AUGMENTED_VIEWS = len(SMALL_ROTATIONS) + len(TRANSLATIONS) + 1 + 1 + 3


def affine_matrices(dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """Sampling-grid matrices ``[16, 2, 3]`` of the small rotations, then the translations."""
    rotations = [[[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]] for a in SMALL_ROTATIONS]
    shifts = [[[1.0, 0.0, x], [0.0, 1.0, y]] for x, y in TRANSLATIONS]
    return torch.tensor(rotations + shifts, dtype=dtype, device=device)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """``[B, M, C, H, W]``: images ``[B, C, H, W]`` resampled with ``F.affine_grid`` matrices ``[M, 2, 3]``.

    Bilinear, reflection padding, ``align_corners=True``.
    """
    batch, channels, height, width = images.shape
    count = matrices.shape[0]
    repeated = images.unsqueeze(1).expand(-1, count, -1, -1, -1).reshape(-1, channels, height, width)
    grid = F.affine_grid(matrices.repeat(batch, 1, 1), list(repeated.shape), align_corners=True)
    warped = F.grid_sample(repeated, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return warped.view(batch, count, channels, height, width)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images ``[B, 3, H, W]``, repeated over the 3 channels."""
    weights = torch.tensor(GRAYSCALE_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)


def augmented_views(images: torch.Tensor) -> torch.Tensor:
    """The 21 augmented views ``[B, 21, 3, H, W]`` of square images ``[B, 3, H, W]`` (the image not included)."""
    warped = warp(images, affine_matrices(images.dtype, images.device))
    simple = [images.flip(-1), grayscale(images)]
    simple += [torch.rot90(images, k, dims=(-2, -1)) for k in (1, 2, 3)]
    return torch.cat([warped, torch.stack(simple, dim=1)], dim=1)
