"""The anomaly map drawn over its image: the app's heatmaps and the sweep report's worst-case tiles."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

HEATMAP_MAX_SIDE = 1024
"""Longest side of a drawn heatmap, in pixels."""
COLOUR_MAP = "jet"


def draw_heatmap(
    image: torch.Tensor,
    anomaly_map: torch.Tensor | None,
    value_range: tuple[float, float],
    long_side: int = HEATMAP_MAX_SIDE,
    enlarge: bool = False,
) -> Image.Image:
    """The anomaly map in the ``COLOUR_MAP`` colours over the image, half and half, at most ``long_side`` pixels long.

    Args:
        image: ``[3, H, W]`` in [0, 1].
        anomaly_map: ``[h, w]`` pixel scores at any size; ``None``: the image alone.
        value_range: scores drawn blue (low) to red (high).
        long_side: the picture's longest side at most.
        enlarge: scale smaller images up to ``long_side`` too (the report's tiles).
    """
    from matplotlib import colormaps

    height, width = image.shape[-2:]
    scale = long_side / max(height, width) if enlarge else min(1.0, long_side / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size != (height, width):
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    pixels = image.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if anomaly_map is None:
        return Image.fromarray(pixels)
    anomaly_map = F.interpolate(anomaly_map[None, None].float(), size=size, mode="bilinear", align_corners=False)
    low, high = value_range
    levels = ((anomaly_map[0, 0] - low) / (high - low if high > low else 1.0)).clamp(0, 1).mul(255).round()
    colours = (colormaps[COLOUR_MAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    return Image.fromarray(((pixels.astype(np.uint16) + colours[levels.to(torch.uint8).numpy()]) // 2).astype(np.uint8))


def colour_bar_html(value_range: tuple[float, float], scale: str) -> str:
    """A colour bar of :func:`draw_heatmap`'s colours from ``value_range``'s low to its high score; ``scale``: HTML."""
    from matplotlib import colormaps, colors

    stops = ",".join(map(colors.to_hex, colormaps[COLOUR_MAP](np.linspace(0.0, 1.0, 9))))
    bar = f"display:inline-block;width:12em;height:1em;vertical-align:middle;background:linear-gradient(90deg,{stops})"
    return (f'<p class="colour-bar">{value_range[0]:.4g} <span style="{bar}"></span> {value_range[1]:.4g}: '
            f"{scale} (drawn half over the image; scores beyond take the end colours)</p>")
