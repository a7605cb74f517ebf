"""Reproducible synthetic anomalies drawn with Anomalib's Perlin-noise generator (the one DRAEM trains with).

Every draw runs on a forked torch random state seeded from ``(seed, *key)``: a sample depends on its seed and key
only, and drawing it does not disturb the random state of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

from anomalib_glocalclip.compat import set_anomaly_sources

# What torchvision's ``io.read_image``, which the generator reads textures with, decodes.
TEXTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class PerlinSynthesizer:
    """Draws one anomaly into an image: the same seed and key always give the same pixels and mask.

    The result is quantised to 8 bits, as it is stored, and the mask is exactly the pixels whose 8-bit value the
    anomaly changed: blending can leave some pixels of the Perlin region unchanged, and those are not anomalous.

    Args:
        seed: seed of every draw, combined with the key of each.
        anomaly_source_path: folder of texture images (searched recursively; JPEG, PNG or WebP), or ``None``
            for Perlin-noise fills.
        blend_factor: ``beta``, the weight of the anomaly in the blend: a value, or a ``(min, max)`` range.
        rotation_range: rotation of the Perlin shape in degrees, ``(min, max)``.
        dual_mask: with probability 1/2, the union of two Perlin shapes (more varied shapes).
        max_attempts: draws tried for one sample before giving up (each with its own seed).
    """

    def __init__(
        self,
        seed: int = 0,
        anomaly_source_path: str | Path | None = None,
        blend_factor: float | Sequence[float] = (0.2, 1.0),
        rotation_range: Sequence[float] = (-90.0, 90.0),
        dual_mask: bool = False,
        max_attempts: int = 20,
    ) -> None:
        self.seed = int(seed)
        self.max_attempts = max_attempts
        self.textures = list_textures(anomaly_source_path) if anomaly_source_path is not None else []
        blend = float(blend_factor) if isinstance(blend_factor, int | float) else tuple(map(float, blend_factor))
        # The generator draws a random solarisation threshold when built: build it from the seed too.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            rotation = tuple(map(float, rotation_range))
            self.generator = PerlinAnomalyGenerator(
                probability=1.0, blend_factor=blend, rotation_range=rotation, dual_mask=dual_mask
            )
        # Set here, sorted: the generator's own search follows the file system's order, which differs between
        # machines, and the texture of a sample is drawn by position in this list.
        set_anomaly_sources(self.generator, self.textures)

    def __call__(self, image: torch.Tensor, key: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw an anomaly into ``image``.

        Args:
            image: ``[3, H, W]`` float image in [0, 1].
            key: non-negative integers that name the sample (e.g. ``(epoch, sample index)``).

        Returns:
            Anomalous image ``[3, H, W]`` uint8 and its mask ``[H, W]`` bool (never empty).

        Raises:
            ValueError: no draw of ``max_attempts`` changed any pixel.
        """
        original = quantise(image)
        for attempt in range(self.max_attempts):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_draw_seed(self.seed, *key, attempt))
                augmented, region = self.generator(image.float())
            anomalous = quantise(augmented)
            mask = (anomalous != original).any(dim=0) & (region[0] > 0)
            if mask.any():
                # Outside the Perlin region the generator keeps the image as it is; make that exact after rounding.
                return torch.where(mask, anomalous, original), mask
        msg = f"No visible anomaly could be drawn into an image of size {tuple(image.shape[-2:])} for key {key}."
        raise ValueError(msg)


def quantise(image: torch.Tensor) -> torch.Tensor:
    """``[3, H, W]`` float image in [0, 1] to uint8, as an 8-bit PNG stores it."""
    return image.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 image to float in [0, 1], bit for bit as ``data.io.read_image`` reads the stored PNG."""
    return image.contiguous().float().div_(255.0)


def list_textures(folder: str | Path) -> list[Path]:
    """Texture images under ``folder`` (recursive, sorted); a clear error if there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        msg = f"Anomaly source folder {folder} does not exist; point anomaly_source_path at a folder of textures."
        raise FileNotFoundError(msg)
    textures = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXTURE_SUFFIXES)
    if not textures:
        msg = f"No texture images ({', '.join(TEXTURE_SUFFIXES)}) found under {folder}."
        raise FileNotFoundError(msg)
    return textures


def _draw_seed(*entropy: int) -> int:
    """A 63-bit torch seed mixed from integers (nearby keys give unrelated seeds)."""
    state = np.random.SeedSequence([int(value) for value in entropy]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
