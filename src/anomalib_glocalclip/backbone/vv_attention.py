"""Dual-stream V-V attention over open_clip's vision transformer, without changing open_clip's modules.

From a configurable layer ``s`` on, every residual block is run twice over the same LayerNorm output
``z = LN1(h)`` of the original stream, sharing one ``qkv`` projection:

* original stream: ``h <- h + W_o softmax(q kᵀ / √d) v + b_o``, then the block's MLP (vanilla CLIP);
* V-V stream:      ``u <- u + W_o softmax(v vᵀ / √d) v + b_o``, no MLP and no LayerNorm of its own,
  starting from ``u = h`` (the output of layer ``s - 1``).

So the original stream (and its CLS token) is exactly CLIP's, while the V-V stream localises anomalies
(CLIP-Surgery / AnomalyCLIP's "DPAM"); both attentions share one fused SDPA call and one output projection.
Blocks run batch first (``[B, L, D]``) on their own modules and weights, so nothing is permuted between blocks
(open_clip runs them in ``[L, B, D]``); in fp32 this is open_clip's forward to rounding, nothing patched or copied.
Layers are numbered from 1, as in the papers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from .loading import UnsupportedBackboneError


class DualStreamOutput(NamedTuple):
    """What one pass of the vision tower returns (all before ``ln_post``/``proj``).

    Attributes:
        class_token: ``[B, W]`` the original stream's CLS token after the last block.
        vv_tokens: one ``[B, 1 + H*W, W]`` tensor per requested layer, in request order: the V-V stream
            after that layer (the shared stream for layers before the V-V start).
    """

    class_token: torch.Tensor
    vv_tokens: list[torch.Tensor]


def check_vision_tower(visual: nn.Module) -> None:
    """Raise ``UnsupportedBackboneError`` unless ``visual`` is open_clip's native ViT with MHA blocks."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or not hasattr(visual, "conv1") or getattr(visual, "attn_pool", None) is not None:
        msg = "V-V attention needs open_clip's VisionTransformer (patch conv, class token, no attentional pooling)."
        raise UnsupportedBackboneError(msg)
    for block in blocks:
        attn = getattr(block, "attn", None)
        if (
            not isinstance(attn, nn.MultiheadAttention)
            or attn.in_proj_weight is None
            or attn.bias_k is not None
            or attn.add_zero_attn
            or hasattr(block, "ln_1_kv")
        ):
            msg = "V-V attention needs blocks with nn.MultiheadAttention over a packed in_proj (open_clip ViTs)."
            raise UnsupportedBackboneError(msg)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``[B, L, D]`` -> ``[B, heads, L, D / heads]``."""
    batch, length, width = x.shape
    return x.view(batch, length, num_heads, width // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, heads, L, d]`` -> ``[B, L, heads * d]``."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def self_attention(z: torch.Tensor, attn: nn.MultiheadAttention) -> torch.Tensor:
    """``W_o softmax(q kᵀ·d^-1/2) v + b_o`` of ``z`` ``[B, L, D]`` with the packed weights of ``attn`` (one SDPA)."""
    q, k, v = F.linear(z, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (_heads(t, attn.num_heads) for t in (q, k, v))
    return attn.out_proj(_merge_heads(F.scaled_dot_product_attention(q, k, v)))


def dual_attention(z: torch.Tensor, attn: nn.MultiheadAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """Original and V-V self-attention of ``z`` with the weights of ``attn``, in one fused call.

    Returns:
        ``(W_o softmax(q kᵀ·s) v + b_o, W_o softmax(v vᵀ·s) v + b_o)``, each ``[B, L, D]``, ``s = d^-1/2``.
    """
    batch = z.shape[0]
    q, k, v = F.linear(z, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (_heads(t, attn.num_heads) for t in (q, k, v))
    # One SDPA call over [original; V-V] stacked along the batch: (q, k, v) and (v, v, v).
    out = F.scaled_dot_product_attention(torch.cat([q, v]), torch.cat([k, v]), torch.cat([v, v]))
    out = attn.out_proj(_merge_heads(out))
    return out[:batch], out[batch:]


def vv_attention(z: torch.Tensor, attn: nn.MultiheadAttention) -> torch.Tensor:
    """V-V self-attention alone: ``W_o softmax(v vᵀ·d^-1/2) v + b_o`` for ``z`` of shape ``[B, L, D]``."""
    return dual_attention(z, attn)[1]


def residual_block(block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """One open_clip ``ResidualAttentionBlock`` on a batch-first stream ``[B, L, D]`` (its own modules, no permute)."""
    hidden = hidden + block.ls_1(self_attention(block.ln_1(hidden), block.attn))
    return hidden + block.ls_2(block.mlp(block.ln_2(hidden)))


def dual_stream_block(
    block: nn.Module, hidden: torch.Tensor, vv_hidden: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance the original and the V-V stream ``[B, L, D]`` through one open_clip ``ResidualAttentionBlock``."""
    original, vv = dual_attention(block.ln_1(hidden), block.attn)
    hidden = hidden + block.ls_1(original)
    hidden = hidden + block.ls_2(block.mlp(block.ln_2(hidden)))
    return hidden, vv_hidden + block.ls_1(vv)


def embed_patches(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Patch embedding, class token, positional embedding and ``ln_pre``: ``[B, 3, H, W]`` -> ``[B, 1+N, D]``."""
    x = visual.conv1(images.to(visual.conv1.weight.dtype))
    x = x.flatten(2).transpose(1, 2)
    class_token = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([class_token, x], dim=1) + visual.positional_embedding.to(x.dtype)
    return visual.ln_pre(visual.patch_dropout(x))


def dual_stream_forward(
    visual: nn.Module, images: torch.Tensor, vv_start_layer: int, out_layers: Sequence[int]
) -> DualStreamOutput:
    """Run open_clip's vision tower with a V-V stream from ``vv_start_layer`` on.

    Args:
        visual: open_clip ``VisionTransformer``.
        images: ``[B, 3, H, W]`` normalised images at the tower's input size.
        vv_start_layer: first layer (1-indexed) with a V-V stream; ``num_layers + 1`` disables it.
        out_layers: layers (1-indexed) whose V-V stream to return.

    Returns:
        ``DualStreamOutput`` with the CLS token ``[B, D]`` and the requested V-V streams ``[B, 1+N, D]``.
    """
    blocks = visual.transformer.resblocks
    num_layers = len(blocks)
    if not 1 <= vv_start_layer <= num_layers + 1:
        msg = f"vv_start_layer must be in 1..{num_layers + 1}, got {vv_start_layer}."
        raise ValueError(msg)
    bad = [layer for layer in out_layers if not 1 <= layer <= num_layers]
    if bad:
        msg = f"Requested layers {bad} are outside 1..{num_layers} of this vision tower."
        raise ValueError(msg)

    hidden = embed_patches(visual, images)
    wanted = set(out_layers)
    collected: dict[int, torch.Tensor] = {}
    vv_hidden: torch.Tensor | None = None
    # The V-V stream is only needed up to the last layer asked for; later blocks run as plain CLIP.
    vv_end_layer = max(out_layers, default=0)
    for layer, block in enumerate(blocks, start=1):
        if vv_start_layer <= layer <= vv_end_layer:
            hidden, vv_hidden = dual_stream_block(block, hidden, hidden if vv_hidden is None else vv_hidden)
            stream = vv_hidden
        else:
            hidden = residual_block(block, hidden)
            stream = hidden
        if layer in wanted:
            collected[layer] = stream
    return DualStreamOutput(class_token=hidden[:, 0], vv_tokens=[collected[layer] for layer in out_layers])


def project_tokens(visual: nn.Module, tokens: torch.Tensor, apply_ln_post: bool = True) -> torch.Tensor:
    """Map vision-width tokens ``[..., W]`` into the joint embedding space ``[..., E]`` (``ln_post``, ``proj``)."""
    if apply_ln_post:
        tokens = visual.ln_post(tokens)
    return tokens @ visual.proj
