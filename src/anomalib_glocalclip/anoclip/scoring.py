"""AnoCLIP's scores: state probabilities of embeddings, the image score and the pixel map.

Probabilities are ``softmax([cos(x, t_n), cos(x, t_a)])`` with no temperature (logit scale 1), as in
the reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def cosine_state_probabilities(embeddings: torch.Tensor, state_embeddings: torch.Tensor) -> torch.Tensor:
    """Normal and anomalous probabilities of embeddings.

    Args:
        embeddings: ``[..., E]`` image embeddings (any norm; they are normalised here).
        state_embeddings: ``[2, E]`` normalised normal and anomalous state embeddings.

    Returns:
        ``[..., 2]`` probabilities, normal first.
    """
    return (F.normalize(embeddings, dim=-1) @ state_embeddings.t()).softmax(dim=-1)


def image_anomaly_score(class_embeddings: torch.Tensor, state_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean anomalous probability over the views of each image.

    Args:
        class_embeddings: ``[B, V, E]`` class-token embeddings of ``V`` views per image.
        state_embeddings: ``[2, E]`` normalised state embeddings.

    Returns:
        ``[B]`` image scores.
    """
    return cosine_state_probabilities(class_embeddings, state_embeddings)[..., 1].mean(dim=1)


def patch_anomaly_map(
    patch_scores: torch.Tensor,
    grid_size: tuple[int, int],
    output_size: tuple[int, int],
) -> torch.Tensor:
    """Smooth patch scores with a 3x3 mean (replicate padding) and upsample them bilinearly.

    Args:
        patch_scores: ``[B, h * w]`` anomalous probability of each patch, row-major.
        grid_size: patch grid ``(h, w)``.
        output_size: ``(H, W)`` of the map.

    Returns:
        ``[B, H, W]`` anomaly map.
    """
    grid = patch_scores.reshape(-1, 1, *grid_size)
    smoothed = F.avg_pool2d(F.pad(grid, (1, 1, 1, 1), mode="replicate"), kernel_size=3, stride=1)
    return F.interpolate(smoothed, size=tuple(output_size), mode="bilinear", align_corners=True).squeeze(1)
