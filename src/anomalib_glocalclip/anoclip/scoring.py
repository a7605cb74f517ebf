"""AnoCLIP's scores: state probabilities of embeddings, the image score and the pixel map.

Probabilities are ``softmax([cos(x, t_n), cos(x, t_a)])`` with no temperature (logit scale 1), as in
the reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def cosine_state_probabilities(embeddings: torch.Tensor, state_embeddings: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` (normal, anomalous) probabilities of ``[..., E]`` embeddings (any norm) and ``[2, E]`` states."""
    return (F.normalize(embeddings, dim=-1) @ state_embeddings.t()).softmax(dim=-1)


def image_anomaly_score(class_embeddings: torch.Tensor, state_embeddings: torch.Tensor) -> torch.Tensor:
    """``[B]`` mean anomalous probability of the class embeddings ``[B, V, E]`` of ``V`` views per image."""
    return cosine_state_probabilities(class_embeddings, state_embeddings)[..., 1].mean(dim=1)


def patch_anomaly_map(
    patch_scores: torch.Tensor, grid_size: tuple[int, int], output_size: tuple[int, int]
) -> torch.Tensor:
    """Patch scores ``[B, h * w]`` (row-major), 3x3 mean (replicate padding), upsampled bilinearly to ``[B, H, W]``."""
    grid = patch_scores.reshape(-1, 1, *grid_size)
    smoothed = F.avg_pool2d(F.pad(grid, (1, 1, 1, 1), mode="replicate"), kernel_size=3, stride=1)
    return F.interpolate(smoothed, size=tuple(output_size), mode="bilinear", align_corners=True).squeeze(1)
