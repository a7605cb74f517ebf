"""GlocalCLIP's training losses of a batch, and the ``torch.compile``d loss of a step on cached features.

A step on cached features launches hundreds of small GPU kernels; with ``GlocalCLIP(compile=True)`` it runs, from
the cached features to the total loss, as one compiled graph (``fullgraph``, fixed shapes), its backward with it.
Steps on images keep the eager path (their vision pass is compiled by the backbone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from anomalib_glocalclip.compat import compile_errors, recompile_limit_errors
from anomalib_glocalclip.data.dataset import has_pixel_labels
from anomalib_glocalclip.utils.errors import PluginError, describe_error

from .loss import global_loss, glocal_contrastive_loss, local_loss

if TYPE_CHECKING:
    from .torch_model import GlocalCLIPModel, ImageFeatures

logger = logging.getLogger(__name__)

LOSS_NAMES = ("loss", "loss_global", "loss_local", "loss_gcl")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs


class CompiledStepError(PluginError, RuntimeError):
    """``torch.compile`` could not build the training step (no compiler, unsupported platform or version)."""


def glocal_losses(
    model: GlocalCLIPModel,
    features: ImageFeatures,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    gcl_weight: float,
    gcl_margin: float,
) -> dict[str, torch.Tensor]:
    """All loss terms of a batch, and their total ``global + local + α·GCL`` under ``"loss"``.

    Args:
        model: the network (its prompts are encoded here, differentiably).
        features: normalised image features of the batch.
        labels: ``[B]`` image labels.
        masks: ``[B, H, W]`` (or ``[B, 1, H, W]``) masks; ``None`` for image-level data.
        gcl_weight: α, weight of the glocal contrastive loss.
        gcl_margin: margin of the glocal contrastive loss.
    """
    text = model.encode_text()
    loss_global = global_loss(model.image_logits(features.global_features, text), labels.to(text.device))
    loss_gcl = glocal_contrastive_loss(text[0], text[1], text[2], text[3], margin=gcl_margin)
    loss_local = local_losses(model, features, text, labels, masks)
    total = loss_global + loss_local + gcl_weight * loss_gcl
    return {"loss": total, "loss_global": loss_global, "loss_local": loss_local, "loss_gcl": loss_gcl}


def local_losses(
    model: GlocalCLIPModel,
    features: ImageFeatures,
    text: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
) -> torch.Tensor:
    """Σ over map layers of focal + dice, over the images that have pixel labels (0 if none has).

    All layers' maps ``[K, B, 2, H, W]`` are upsampled in one call and go through one batched loss.
    """
    if masks is None:
        return text.new_zeros(())
    masks = masks.to(text.device)
    if masks.dim() == 4:
        masks = masks.squeeze(1)
    weights = has_pixel_labels(labels, masks).float()
    masks = (masks > 0).float()
    maps = model.probability_maps(features.patch_features, text, tuple(masks.shape[-2:]))
    return features.layer_weight * local_loss(maps, masks, weights)


def cached_batch_losses(
    model: GlocalCLIPModel,
    global_features: torch.Tensor,
    patch_features: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    gcl_weight: float,
    gcl_margin: float,
) -> dict[str, torch.Tensor]:
    """``glocal_losses`` of a batch of raw cached features (global ``[B, E]``, patch ``[K, B, N, E]``)."""
    features = model.normalize_features(global_features, patch_features)
    return glocal_losses(model, features, labels, masks, gcl_weight, gcl_margin)


@lru_cache(maxsize=8)
def compiled_cached_batch_losses(backend: str | Callable = "inductor", mode: str | None = None) -> Callable:
    """``cached_batch_losses`` under ``torch.compile`` (one graph, fixed shapes), built once per backend and mode.

    Kept at module level rather than on the model, so models stay picklable and copyable. ``mode`` is inductor's,
    e.g. ``"reduce-overhead"`` for CUDA graphs.

    Raises:
        CompiledStepError: ``torch.compile`` is not available here.
    """
    options = {"mode": mode} if mode is not None else {}
    try:
        return torch.compile(cached_batch_losses, fullgraph=True, dynamic=False, backend=backend, **options)
    except RuntimeError as error:  # e.g. a Python version or platform dynamo does not support
        raise _compile_failure(error) from error


def run_compiled_cached_losses(
    model: GlocalCLIPModel,
    global_features: torch.Tensor,
    patch_features: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    gcl_weight: float,
    gcl_margin: float,
    backend: str | Callable = "inductor",
    mode: str | None = None,
) -> dict[str, torch.Tensor]:
    """``cached_batch_losses`` through its compiled version (the first call of a shape compiles it).

    Once dynamo's recompile limit is reached (many batch shapes or models in one process), further new shapes are
    computed eagerly, with a warning.

    Raises:
        CompiledStepError: the step could not be compiled; the message names the ``compile`` argument.
    """
    compiled = compiled_cached_batch_losses(backend, mode)
    # tv_tensors.Mask (a tensor subclass) would be traced through its __torch_function__: plain tensors only.
    masks = masks.as_subclass(torch.Tensor) if masks is not None else None
    graphs = mode in CUDA_GRAPH_MODES and global_features.device.type == "cuda"
    if graphs:
        torch.compiler.cudagraph_mark_step_begin()
    try:
        losses = compiled(model, global_features, patch_features, labels, masks, gcl_weight, gcl_margin)
    except recompile_limit_errors() as error:
        logger.warning("Compiled training step not used for this batch (%s); computing it eagerly.",
                       describe_error(error, max_length=200))
        return cached_batch_losses(model, global_features, patch_features, labels, masks, gcl_weight, gcl_margin)
    except compile_errors() as error:
        raise _compile_failure(error) from error
    if graphs:  # the next replay overwrites the graph's outputs, which Lightning may still read (logging)
        losses = {name: value.clone() for name, value in losses.items()}
    return losses


def _compile_failure(error: BaseException) -> CompiledStepError:
    msg = (
        f"torch.compile could not build GlocalCLIP's training step on cached features "
        f"({describe_error(error, max_length=300)}). Train without it: GlocalCLIP(compile=False) "
        "(--model.compile false)."
    )
    return CompiledStepError(msg)
