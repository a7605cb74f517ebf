"""From patch features and text features to probability maps, and the Gaussian smoothing of the final map."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def tempered_state_probabilities(features: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[..., S]`` softmax over states of the cosines of ``[..., E]`` features and ``[S, E]`` ``text``, over τ."""
    return (features @ text.t() / temperature).softmax(dim=-1)


def patch_probability_map(
    patch_probabilities: torch.Tensor, grid_size: tuple[int, int], output_size: tuple[int, int]
) -> torch.Tensor:
    """Patch probabilities ``[B, h*w, S]`` on the ``(h, w)`` grid, upsampled bilinearly to ``[B, S, H, W]``.

    ``align_corners=False``, as the reference.
    """
    batch, _, states = patch_probabilities.shape
    grid = patch_probabilities.transpose(1, 2).reshape(batch, states, *grid_size)
    return F.interpolate(grid, size=output_size, mode="bilinear", align_corners=False)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device: torch.device | None = None) -> torch.Tensor:
    """Scipy's 1-D Gaussian weights: radius ``int(truncate * sigma + 0.5)``, normalised to sum 1."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _reflect_indices(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-``size`` axis padded by ``radius`` with scipy's ``reflect`` (edge repeated) mode."""
    index = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(index >= size, 2 * size - 1 - index, index)


def gaussian_blur(maps: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian filter equal to ``scipy.ndimage.gaussian_filter(map, sigma)`` per map of ``[B, H, W]``.

    ``sigma`` is in pixels (``0`` returns the maps unchanged), ``truncate`` the kernel radius in standard deviations.
    The result is float32.
    """
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma, truncate, device=maps.device)
    radius = kernel.numel() // 2
    height, width = maps.shape[-2:]
    x = maps.float().unsqueeze(1)  # [B, 1, H, W]
    x = x.index_select(3, _reflect_indices(width, radius, maps.device))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = x.index_select(2, _reflect_indices(height, radius, maps.device))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.squeeze(1)
