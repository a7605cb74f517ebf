"""GlocalCLIP's losses: global cross-entropy, local focal + dice, and the glocal contrastive loss.

All functions take tensors on any device and build nothing on the host (the reference builds its
focal-loss one-hot on the CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

FOCAL_SMOOTH = 1e-5


def global_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``[B, 2]`` (normal, anomalous) logits against ``[B]`` image labels."""
    return F.cross_entropy(logits, labels.long().view(-1))


def _weighted_mean(per_image: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``[..., B]`` values over ``B``, over the images whose weight is 1 when ``weights`` are given (0 if none).

    Weights instead of boolean indexing keep shapes static, so no value has to travel to the host.
    """
    if weights is None:
        return per_image.mean(dim=-1)
    weights = weights.to(per_image.dtype)
    return (per_image * weights).sum(dim=-1) / weights.sum().clamp(min=1)


def focal_loss(
    probabilities: torch.Tensor, mask: torch.Tensor, gamma: float = 2.0, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Focal loss on probabilities (already soft-maxed), as the reference computes it, of one map or a stack.

    Args:
        probabilities: ``[B, 2, H, W]`` (normal, anomalous) probabilities, or a stack ``[..., B, 2, H, W]``
            of such maps (one per layer) sharing the mask.
        mask: ``[B, H, W]`` binary ground truth.
        gamma: focusing parameter.
        weights: ``[B]`` 0/1, images that count (``None``: all).

    Returns:
        Mean over all pixels (of the images that count) of ``-(1 - p_t)^γ log p_t``, where the one-hot target
        is clamped to ``[1e-5, 1 - 1e-5]`` and ``p_t = Σ_c onehot_c p_c + 1e-5``; summed over the maps of a stack.
    """
    anomalous = mask.to(probabilities.dtype).unsqueeze(-3)
    target = torch.cat([1 - anomalous, anomalous], dim=-3).clamp(FOCAL_SMOOTH, 1 - FOCAL_SMOOTH)  # [B, 2, H, W]
    p_t = (target * probabilities).sum(dim=-3) + FOCAL_SMOOTH  # [..., B, H, W]
    per_pixel = -((1 - p_t) ** gamma) * p_t.log()
    return _weighted_mean(per_pixel.flatten(-2).mean(dim=-1), weights).sum()


def dice_loss(
    probabilities: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary dice loss ``1 - (2 Σ p t + 1) / (Σ p + Σ t + 1)`` per image, averaged over the batch.

    Args:
        probabilities: ``[B, H, W]`` probabilities of one class, or a stack ``[..., B, H, W]`` of such maps.
        mask: ``[B, H, W]`` binary target of that class, or targets ``[..., B, H, W]`` broadcastable to
            ``probabilities``.
        smooth: additive smoothing (1 in the reference).
        weights: ``[B]`` 0/1, images that count (``None``: all).

    Returns:
        The loss, summed over the maps of a stack.
    """
    p = probabilities.flatten(-2)
    t = mask.to(p.dtype).flatten(-2)
    dice = (2 * (p * t).sum(dim=-1) + smooth) / (p.sum(dim=-1) + t.sum(dim=-1) + smooth)
    return _weighted_mean(1 - dice, weights).sum()


def local_loss(probability_map: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Focal + dice(anomalous, M) + dice(normal, 1 - M) of a ``[B, 2, H, W]`` map, summed over a stack of maps.

    A stack ``[K, B, 2, H, W]`` (one map per layer) takes one batched focal and one dice pass over layers and states.

    Args:
        probability_map: ``[B, 2, H, W]`` (normal, anomalous) probabilities, or ``[K, B, 2, H, W]``.
        mask: ``[B, H, W]`` binary ground truth.
        weights: ``[B]`` 0/1, images that count (``None``: all).
    """
    anomalous = mask.to(probability_map.dtype)
    states = torch.stack([1 - anomalous, anomalous])  # [2, B, H, W]: the dice target of each state
    per_state = probability_map.movedim(-3, -4)  # [..., 2, B, H, W], a view
    return focal_loss(probability_map, mask, weights=weights) + dice_loss(per_state, states, weights=weights)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """``‖a - p‖² + max(0, m - ‖a - n‖)²`` with ``torch.pairwise_distance`` (eps 1e-6), mean over rows ``[*, E]``."""
    positive_distance = F.pairwise_distance(anchor, positive)
    negative_distance = F.pairwise_distance(anchor, negative)
    return (positive_distance.pow(2) + (margin - negative_distance).clamp(min=0).pow(2)).mean()


def glocal_contrastive_loss(
    global_normal: torch.Tensor,
    global_anomalous: torch.Tensor,
    local_normal: torch.Tensor,
    local_anomalous: torch.Tensor,
    margin: float = 0.0,
) -> torch.Tensor:
    """GCL: each global prompt (anchor) is pulled to the local prompt of its state, pushed from the other.

    ``T(g_n; l_n, l_a) + T(g_a; l_a, l_n)`` on normalised ``[E]`` or ``[1, E]`` embeddings. With the
    reference's margin 0 the push term is always zero and the loss is a pure pull.
    """
    rows = [t.reshape(1, -1) for t in (global_normal, global_anomalous, local_normal, local_anomalous)]
    g_n, g_a, l_n, l_a = rows
    return triplet_loss(g_n, l_n, l_a, margin) + triplet_loss(g_a, l_a, l_n, margin)
