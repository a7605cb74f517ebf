"""The frozen CLIP backbone both methods share: one open_clip model, its V-V and deep-prompt hooks.

Its weights never enter a ``state_dict`` (checkpoints carry only what was learned; the backbone is rebuilt from
``pretrained``, and loading leaves it as built) unless ``persist_weights=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .loading import DEFAULT_BACKBONE, build_clip
from .precision import check_precision, under_precision
from .text_prompts import encode_token_embeddings, encode_tokens, text_tower
from .vv_attention import DualStreamOutput, check_vision_tower, dual_stream_forward, project_tokens

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@lru_cache(maxsize=4)
def _tokenizer(context_length: int) -> Callable[[list[str]], torch.Tensor]:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)


@lru_cache(maxsize=4)
def compiled_vision_forward(device_type: str, cuda_graphs: bool) -> Callable[..., DualStreamOutput]:
    """``dual_stream_forward`` under ``torch.compile`` (fixed shapes), one per device type and mode.

    At module level, so backbones stay picklable. ``cuda_graphs`` (CUDA only) uses ``mode="reduce-overhead"``.
    """
    mode = "reduce-overhead" if cuda_graphs and device_type == "cuda" else None
    return torch.compile(dual_stream_forward, dynamic=False, mode=mode)


def _drop_backbone_weights(module: CLIPBackbone, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict hook: leave the frozen CLIP weights out."""
    del local_metadata
    if module.persist_weights:
        return
    for key in [key for key in state_dict if key.startswith(prefix)]:
        del state_dict[key]


def _keep_backbone_weights(module: CLIPBackbone, state_dict: dict, prefix: str, *args: object) -> None:
    """Load-state-dict pre-hook: a state dict without CLIP weights keeps the ones already built."""
    del args
    if module.persist_weights:
        return
    for key, value in module.state_dict(keep_vars=True, persist_all=True).items():
        state_dict.setdefault(prefix + key, value)


class CLIPBackbone(nn.Module):
    """A frozen open_clip CLIP with a dual-stream (V-V) vision pass and a prompt-embedding text pass.

    Args:
        model: open_clip model name or model-config JSON file.
        pretrained: open_clip pretrained tag, local weight file, or ``None`` for random weights.
        image_size: input size of the vision tower (positional embeddings are resized to it).
        quick_gelu: force QuickGELU on or off; ``None`` decides from the weights.
        cache_dir: open_clip download cache.
        persist_weights: keep the CLIP weights in ``state_dict`` (off: checkpoints stay small).
        precision: ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``bf16``, ``fp16`` (CUDA only) or ``fp32``.
            Encoders then return bf16 (fp16) tensors; callers convert what they keep to fp32.
        compile: run the vision pass under ``torch.compile`` (compiled on first use, per input shape).
        cuda_graphs: with ``compile`` on a CUDA device, also replay CUDA graphs (``mode="reduce-overhead"``;
            for fixed input shapes; outputs are copied out of the graph's memory). Ignored elsewhere.
        quick_gelu_at_native_size_only: ``build_clip``'s rule for ``quick_gelu=None`` as in MuSc's reference.
        positional_embedding_mode: interpolation of the positional-embedding resize (``build_clip``).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_BACKBONE,
        pretrained: str | Path | None = "openai",
        image_size: int | None = None,
        quick_gelu: bool | None = None,
        cache_dir: str | Path | None = None,
        persist_weights: bool = False,
        precision: str = "auto",
        compile: bool = False,  # noqa: A002 - the name of the option everywhere (torch.compile)
        cuda_graphs: bool = False,
        quick_gelu_at_native_size_only: bool = False,
        positional_embedding_mode: str = "bilinear",
    ) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        self.use_compile = compile  # not `self.compile`: that is nn.Module.compile
        self.cuda_graphs = cuda_graphs
        self.clip = build_clip(
            model, pretrained, image_size=image_size, quick_gelu=quick_gelu, cache_dir=cache_dir,
            quick_gelu_at_native_size_only=quick_gelu_at_native_size_only,
            positional_embedding_mode=positional_embedding_mode,
        )
        self.clip.requires_grad_(requires_grad=False)
        check_vision_tower(self.clip.visual)
        self.persist_weights = persist_weights
        self.register_state_dict_post_hook(_drop_backbone_weights)
        self.register_load_state_dict_pre_hook(_keep_backbone_weights)

    def state_dict(self, *args: object, persist_all: bool = False, **kwargs: object) -> dict:
        """Like ``nn.Module.state_dict``; ``persist_all=True`` keeps the CLIP weights in this one call."""
        if not persist_all:
            return super().state_dict(*args, **kwargs)
        persist, self.persist_weights = self.persist_weights, True
        try:
            return super().state_dict(*args, **kwargs)
        finally:
            self.persist_weights = persist

    def train(self, mode: bool = True) -> CLIPBackbone:
        """The backbone is frozen: it stays in eval mode whatever the owner's mode."""
        del mode
        return super().train(mode=False)

    # ----- shapes -----
    @property
    def image_size(self) -> tuple[int, int]:
        """Input size ``(H, W)`` the vision tower was built for."""
        return tuple(self.clip.visual.image_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid ``(h, w)``."""
        return tuple(self.clip.visual.grid_size)

    @property
    def num_vision_layers(self) -> int:
        """Number of residual blocks of the vision tower."""
        return len(self.clip.visual.transformer.resblocks)

    @property
    def embed_dim(self) -> int:
        """Joint image-text embedding size ``E``."""
        return self.clip.visual.proj.shape[1]

    @property
    def text_width(self) -> int:
        """Width ``D`` of text token embeddings."""
        return text_tower(self.clip).token_embedding.embedding_dim

    @property
    def context_length(self) -> int:
        """Number of text positions ``L``."""
        return text_tower(self.clip).positional_embedding.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype of the vision tower."""
        return self.clip.visual.conv1.weight.dtype

    # ----- vision -----
    @under_precision
    def encode_image(self, images: torch.Tensor, vv_start_layer: int, out_layers: Sequence[int]) -> DualStreamOutput:
        """Dual-stream pass: CLS token ``[B, W]`` and V-V tokens ``[B, 1+N, W]`` at ``out_layers`` (1-indexed)."""
        if not self.use_compile:
            return dual_stream_forward(self.clip.visual, images, vv_start_layer, out_layers)
        graphs = self.cuda_graphs and images.device.type == "cuda"
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        output = compiled_vision_forward(images.device.type, graphs)(
            self.clip.visual, images, vv_start_layer, tuple(out_layers)
        )
        if graphs:  # the next replay overwrites the graph's output buffers
            output = DualStreamOutput(output.class_token.clone(), [tokens.clone() for tokens in output.vv_tokens])
        return output

    @under_precision
    def project(self, tokens: torch.Tensor, apply_ln_post: bool = True) -> torch.Tensor:
        """Vision-width tokens ``[..., W]`` -> joint embeddings ``[..., E]`` through ``ln_post`` and ``proj``."""
        return project_tokens(self.clip.visual, tokens, apply_ln_post=apply_ln_post)

    # ----- text -----
    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """CLIP BPE token ids ``[P, L]`` of ``texts`` (SOT ... EOT, zero padded)."""
        tokenizer = _tokenizer(self.context_length)
        return tokenizer([texts] if isinstance(texts, str) else list(texts)).to(self.clip.visual.proj.device)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``[P, L, D]`` of token ids ``[P, L]``."""
        return text_tower(self.clip).token_embedding(tokens)

    @under_precision
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain CLIP text features ``[P, E]`` of token ids ``[P, L]`` (not normalised)."""
        return encode_tokens(text_tower(self.clip), tokens)

    @under_precision
    def encode_prompt_embeddings(
        self,
        embeddings: torch.Tensor,
        eot_indices: torch.Tensor,
        deep_prompts: Sequence[torch.Tensor] = (),
        round_deep_prompts_to_fp16: bool = False,
    ) -> torch.Tensor:
        """Text features ``[P, E]`` of prompt embeddings ``[P, L, D]`` with optional deep prompts ``[t, D]``."""
        tower = text_tower(self.clip)
        return encode_token_embeddings(tower, embeddings, eot_indices, deep_prompts, round_deep_prompts_to_fp16)
