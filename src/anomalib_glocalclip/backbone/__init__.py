"""Everything about CLIP itself, shared by both methods: loading, the V-V vision hook, the text-prompt hook."""

from pathlib import Path

from .clip_backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, CLIPBackbone
from .loading import (
    DEFAULT_BACKBONE,
    TINY_CLIP_NAME,
    UnsupportedBackboneError,
    WeightsMismatchError,
    WeightsNotFoundError,
    build_clip,
    load_model_config,
    read_state_dict,
    resize_positional_embedding,
    resolve_weights,
)
from .text_prompts import encode_token_embeddings, text_tower
from .vv_attention import dual_attention, dual_stream_forward, residual_block, vv_attention

TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
"""open_clip config of a tiny random ViT (64 px) for tests and the offline demo (``--model.backbone tiny-clip``)."""

__all__ = [
    "DEFAULT_BACKBONE",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "TINY_CLIP_CONFIG",
    "TINY_CLIP_NAME",
    "CLIPBackbone",
    "UnsupportedBackboneError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "build_clip",
    "dual_attention",
    "dual_stream_forward",
    "encode_token_embeddings",
    "load_model_config",
    "read_state_dict",
    "residual_block",
    "resize_positional_embedding",
    "resolve_weights",
    "text_tower",
    "vv_attention",
]
