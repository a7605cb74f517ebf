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

TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
"""open_clip model config of a 24-layer, 64-wide random ViT (64 px, 8 px patches) with a 12-layer text tower.

For the offline demo, tests, and trying the CLI without weights: ``--model.backbone tiny-clip`` (its name,
:data:`TINY_CLIP_NAME`) or ``--model.backbone <this path>``, with ``--model.pretrained null``.
"""

__all__ = [
    "DEFAULT_BACKBONE",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "TINY_CLIP_CONFIG",
    "TINY_CLIP_NAME",
    "CLIPBackbone",
    "DualStreamOutput",
    "TextTower",
    "UnsupportedBackboneError",
    "WeightsMismatchError",
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
