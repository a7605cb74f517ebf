"""Run open_clip's text tower on token embeddings, with deep text prompts written into its layers.

Prompt learning (CoOp style) replaces some token embeddings of a tokenised template by learnable
vectors, so the text tower has to start from embeddings rather than token ids. Deep text prompt tuning
(MaPLe / AnomalyCLIP style) additionally overwrites the hidden states at sequence positions ``1..t``
at the input of text layers ``2..depth`` with learnable ``[t, D]`` tensors, shared by all prompts.
open_clip's own residual blocks do the work; this module only feeds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from anomalib_glocalclip.compat import check_text_layout


class TextTower(NamedTuple):
    """The parts of an open_clip text tower (``CLIP`` keeps them on the model, ``CustomTextCLIP`` on ``.text``)."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    transformer: nn.Module
    ln_final: nn.Module
    text_projection: torch.Tensor | nn.Linear
    attn_mask: torch.Tensor | None


def text_tower(clip: nn.Module) -> TextTower:
    """Return the text-tower parts of an open_clip ``CLIP`` or ``CustomTextCLIP`` model."""
    owner = clip.text if hasattr(clip, "text") else clip
    if getattr(owner, "cls_emb", None) is not None:
        msg = "Text towers with an appended class token (CoCa) are not supported."
        raise ValueError(msg)
    parts = (owner.token_embedding, owner.positional_embedding, owner.transformer, owner.ln_final)
    return TextTower(*parts, owner.text_projection, getattr(owner, "attn_mask", None))


def encode_token_embeddings(
    tower: TextTower,
    embeddings: torch.Tensor,
    eot_indices: torch.Tensor,
    deep_prompts: Sequence[torch.Tensor] = (),
    round_deep_prompts_to_fp16: bool = False,
) -> torch.Tensor:
    """Encode prompts given as token embeddings.

    Args:
        tower: the text tower.
        embeddings: ``[P, L, D]`` token embeddings (``L`` = context length), learnable ones included.
        eot_indices: ``[P]`` position of each prompt's end-of-text token, whose state is pooled.
        deep_prompts: ``depth - 1`` tensors ``[t, D]``; tensor ``i`` overwrites positions ``1..t`` at the
            input of layer ``i + 2`` (1-indexed). Empty: plain CLIP text encoding.
        round_deep_prompts_to_fp16: round deep prompts to fp16 after expanding them over the prompts, as the
            reference code does (its gradients are then rounded per prompt, as there).

    Returns:
        ``[P, E]`` text features, not normalised.
    """
    length = embeddings.shape[1]
    x = embeddings + tower.positional_embedding[:length].to(embeddings.dtype)
    attn_mask = tower.attn_mask[:length, :length] if tower.attn_mask is not None else None
    blocks = tower.transformer.resblocks
    if len(deep_prompts) >= len(blocks):
        msg = f"{len(deep_prompts)} deep prompts need a text tower deeper than its {len(blocks)} layers."
        raise ValueError(msg)
    check_text_layout(tower.transformer)
    x = x.transpose(0, 1)  # open_clip blocks work in [L, P, D]
    for layer, block in enumerate(blocks):
        if 1 <= layer <= len(deep_prompts):
            prompt = deep_prompts[layer - 1].unsqueeze(1).expand(-1, x.shape[1], -1)  # [t, P, D]
            if round_deep_prompts_to_fp16:
                # Expanded first, then rounded (the reference's order): the backward then rounds each prompt's
                # gradient to fp16 before the P of them are summed, not the sum. The forward is the same.
                prompt = prompt.half()
            prompt = prompt.to(x.dtype)
            x = torch.cat([x[:1], prompt, x[1 + prompt.shape[0] :]], dim=0)
        x = block(x, attn_mask=attn_mask)
    x = tower.ln_final(x.transpose(0, 1))
    pooled = x[torch.arange(x.shape[0], device=x.device), eot_indices]
    if isinstance(tower.text_projection, nn.Linear):
        return tower.text_projection(pooled)
    return pooled @ tower.text_projection


def encode_tokens(tower: TextTower, tokens: torch.Tensor) -> torch.Tensor:
    """Plain CLIP text encoding of token ids ``[P, L]`` -> ``[P, E]`` (pooled at the highest id, the EOT)."""
    embeddings = tower.token_embedding(tokens)
    return encode_token_embeddings(tower, embeddings, tokens.argmax(dim=-1))
