"""Object-agnostic glocal semantic prompts with deep text prompts (GlocalCLIP, section 3 of the spec).

Four prompts are encoded, always in this order::

    global normal     [SOS] G_1..G_N object . [EOS]
    global anomalous  [SOS] G_1..G_N Ĝ_1..Ĝ_M damaged object . [EOS]
    local normal      [SOS] L_1..L_N object . [EOS]
    local anomalous   [SOS] L_1..L_N L̂_1..L̂_M damaged object . [EOS]

The anomalous prompt of each set reuses that set's N normal context vectors and appends M anomaly
vectors. The global and local sets share only the frozen text tower and the deep prompts: ``depth - 1``
tensors ``[t, D]`` written over positions ``1..t`` at the input of text layers ``2..depth``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from anomalib_glocalclip.backbone import CLIPBackbone

PROMPT_ORDER = ("global_normal", "global_anomalous", "local_normal", "local_anomalous")
PLACEHOLDER = "X"  # one BPE token; its embeddings are replaced by learnable vectors
INIT_STD = 0.02


class PromptShape(NamedTuple):
    """Sizes of the learnable prompts.

    Attributes:
        n_ctx: N, normal context vectors (shared by the normal and anomalous prompt of a set).
        n_abnormal_ctx: M, extra context vectors of the anomalous prompts.
        deep_prompt_depth: text layers that receive prompts (layer 1 gets the context vectors; layers
            2..depth get deep prompts, so there are ``depth - 1`` of them).
        deep_prompt_length: t, positions overwritten by each deep prompt.
    """

    n_ctx: int
    n_abnormal_ctx: int
    deep_prompt_depth: int
    deep_prompt_length: int


def placeholder_prompts(shape: PromptShape, class_name: str = "object") -> list[str]:
    """The four placeholder texts, in ``PROMPT_ORDER``, that are tokenised to lay out the prompts."""
    normal = " ".join([PLACEHOLDER] * shape.n_ctx)
    anomalous = " ".join([PLACEHOLDER] * (shape.n_ctx + shape.n_abnormal_ctx))
    return [f"{normal} {class_name}.", f"{anomalous} damaged {class_name}."] * 2


class GlocalPromptLearner(nn.Module):
    """Learnable global/local context vectors and deep text prompts.

    Args:
        backbone: the frozen CLIP, for the tokenizer and the token embeddings of the fixed words.
        shape: prompt sizes.
        class_name: the class word; GlocalCLIP is object-agnostic and always uses ``"object"``.
    """

    def __init__(self, backbone: CLIPBackbone, shape: PromptShape, class_name: str = "object") -> None:
        super().__init__()
        if shape.deep_prompt_depth < 1 or shape.deep_prompt_length > shape.n_ctx:
            msg = f"Need deep_prompt_depth >= 1 and deep_prompt_length <= n_ctx, got {shape}."
            raise ValueError(msg)
        width = backbone.text_width
        self.shape = shape
        self.global_normal_ctx = nn.Parameter(torch.empty(shape.n_ctx, width))
        self.global_anomalous_ctx = nn.Parameter(torch.empty(shape.n_abnormal_ctx, width))
        self.local_normal_ctx = nn.Parameter(torch.empty(shape.n_ctx, width))
        self.local_anomalous_ctx = nn.Parameter(torch.empty(shape.n_abnormal_ctx, width))
        self.deep_prompts = nn.ParameterList(
            [nn.Parameter(torch.empty(shape.deep_prompt_length, width)) for _ in range(shape.deep_prompt_depth - 1)],
        )
        for parameter in self.parameters():
            nn.init.normal_(parameter, std=INIT_STD)

        tokens = backbone.tokenize(placeholder_prompts(shape, class_name))
        with torch.no_grad():
            embeddings = backbone.embed_tokens(tokens).float()
        # Fixed word embeddings come from the frozen CLIP: rebuilt at init, never saved.
        self.register_buffer("token_embeddings", embeddings, persistent=False)  # [4, L, D]
        self.register_buffer("token_ids", tokens, persistent=False)  # [4, L]
        self.register_buffer("eot_indices", tokens.argmax(dim=-1), persistent=False)  # [4]

    def context_vectors(self) -> list[torch.Tensor]:
        """Learnable vectors of each prompt in ``PROMPT_ORDER``: ``[N, D]`` or ``[N + M, D]``."""
        return [
            self.global_normal_ctx,
            torch.cat([self.global_normal_ctx, self.global_anomalous_ctx]),
            self.local_normal_ctx,
            torch.cat([self.local_normal_ctx, self.local_anomalous_ctx]),
        ]

    def forward(self) -> torch.Tensor:
        """Prompt embeddings ``[4, L, D]``: SOS, the learnable vectors, then the fixed words and padding."""
        prompts = []
        for fixed, context in zip(self.token_embeddings, self.context_vectors(), strict=True):
            prompts.append(torch.cat([fixed[:1], context.to(fixed.dtype), fixed[1 + context.shape[0] :]]))
        return torch.stack(prompts)
