"""Everything about CLIP itself, shared by both methods: loading, the V-V vision hook, the text-prompt hook."""

from .clip_backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, CLIPBackbone
from .loading import (
    UnsupportedBackboneError,
    WeightsNotFoundError,
    build_clip,
    is_openai_state_dict,
    load_model_config,
    read_state_dict,
    resize_positional_embedding,
    resolve_weights,
)
from .text_prompts import TextTower, encode_token_embeddings, encode_tokens, text_tower
from .vv_attention import (
    DualStreamOutput,
    dual_attention,
    dual_stream_forward,
    project_tokens,
    residual_block,
    self_attention,
    vv_attention,
)

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "CLIPBackbone",
    "DualStreamOutput",
    "TextTower",
    "UnsupportedBackboneError",
    "WeightsNotFoundError",
    "build_clip",
    "dual_attention",
    "dual_stream_forward",
    "encode_token_embeddings",
    "encode_tokens",
    "is_openai_state_dict",
    "load_model_config",
    "project_tokens",
    "read_state_dict",
    "residual_block",
    "resize_positional_embedding",
    "resolve_weights",
    "self_attention",
    "text_tower",
    "vv_attention",
]
