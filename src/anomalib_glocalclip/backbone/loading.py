"""Build an open_clip model by name or config file, at any input size, with weights from a tag or a file.

``pretrained`` is an open_clip tag (looked up in open_clip's cache, downloaded only when missing and online), a
local file (OpenAI's TorchScript ``.pt``, an open_clip state dict, ``.safetensors``), or ``None`` for a random
backbone (tests, speed runs). Positional embeddings are resized to the requested image size's patch grid while
loading (bilinear, as the GlocalCLIP reference does on its first forward), so OpenAI weights work at 518 px too.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from anomalib_glocalclip.compat import open_clip_cached_weights
from anomalib_glocalclip.utils.errors import PluginError

logger = logging.getLogger(__name__)

OFFLINE_ENV_VARS = ("ANOMALIB_GLOCALCLIP_OFFLINE", "HF_HUB_OFFLINE")
RANDOM_WEIGHTS = {"random", "none", "null", ""}
WEIGHT_FILE_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors", ".ckpt"}
RANDOM_INIT_SEED = 0
DEFAULT_BACKBONE = "ViT-L-14-336"
"""The open_clip model GlocalCLIP (the paper's backbone), its presets and the demo use unless told otherwise."""
TINY_CLIP_NAME = "tiny-clip"
"""Model name of the bundled tiny random ViT (``configs/tiny-clip.json``): ``--model.backbone tiny-clip``."""
_OPENAI_STATE_DICT_EXTRAS = ("input_resolution", "context_length", "vocab_size")


class WeightsNotFoundError(PluginError, FileNotFoundError):
    """CLIP weights were asked for but are neither on disk nor downloadable."""


class WeightsMismatchError(PluginError, ValueError):
    """A CLIP weight file was read, but its tensors do not fit the model built (another architecture)."""


class UnsupportedBackboneError(ValueError):
    """The open_clip model cannot carry this project's hooks (it is not a native CLIP ViT)."""


def is_offline() -> bool:
    """True when downloads are switched off (``ANOMALIB_GLOCALCLIP_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``)."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in OFFLINE_ENV_VARS)


def load_model_config(model: str | Path) -> dict[str, object]:
    """Return the open_clip model config of a model name (``"ViT-L-14-336"``, ``"tiny-clip"``) or of a JSON file.

    Raises:
        ValueError: if the name is not an open_clip model and no such file exists.
    """
    import open_clip

    if str(model) == TINY_CLIP_NAME:  # a name, so the offline CLI recipe needs no path into the installed package
        model = Path(__file__).parent / "configs" / f"{TINY_CLIP_NAME}.json"
    path = Path(model)
    if path.suffix == ".json":
        if not path.is_file():
            msg = f"CLIP model config file {path} does not exist. Pass an open_clip model name or a JSON config file."
            raise ValueError(msg)
        config = json.loads(path.read_text())
    else:
        config = open_clip.get_model_config(str(model).replace("/", "-"))
        if config is None:
            known = ", ".join(name for name in open_clip.list_models() if name.startswith("ViT"))
            msg = f"Unknown CLIP model {model!r}. Use an open_clip model name ({known}) or a JSON config file."
            raise ValueError(msg)
    return copy.deepcopy(config)


def build_clip(
    model: str | Path = DEFAULT_BACKBONE,
    pretrained: str | Path | None = "openai",
    image_size: int | None = None,
    quick_gelu: bool | None = None,
    cache_dir: str | Path | None = None,
    quick_gelu_at_native_size_only: bool = False,
    positional_embedding_mode: str = "bilinear",
) -> nn.Module:
    """Build an open_clip ``CLIP`` model in eval mode.

    Args:
        model: open_clip model name or path to a model-config JSON file.
        pretrained: pretrained tag, local weight file, or ``None``/``"random"`` for random weights.
        image_size: input size the vision tower is built for (``None``: the config's).
        quick_gelu: use QuickGELU activations. ``None``: the config's ``quick_gelu`` if it has one, else
            decided from the weights: OpenAI weights need it (the ``openai`` tag, a TorchScript archive, or a
            plain state dict in OpenAI's layout, see ``is_openai_state_dict``), others get GELU.
        cache_dir: open_clip download cache (default ``~/.cache/clip``, or the Hugging Face cache).
        quick_gelu_at_native_size_only: with ``quick_gelu=None``, OpenAI weights get QuickGELU only at the config's
            own image size; at another size the config decides (GELU unless it says ``quick_gelu``). This is the
            rule of the open_clip that MuSc's reference ships, which rebuilds a resized OpenAI model from its config.
        positional_embedding_mode: ``F.interpolate`` mode of the positional-embedding resize (no antialias);
            ``"bicubic"`` as open_clip's (and MuSc's) ``resize_pos_embed``.
    """
    import open_clip

    config = load_model_config(model)
    model_name = Path(model).stem if Path(model).suffix == ".json" else str(model).replace("/", "-")
    vision_config, text_config = config.get("vision_cfg", {}), config.get("text_cfg", {})
    if "timm_model_name" in vision_config or "hf_model_name" in text_config:
        msg = (
            f"CLIP model {model_name!r} uses a timm or Hugging Face tower; the V-V attention and deep-prompt hooks "
            "need open_clip's native ViT and text transformer (e.g. ViT-L-14-336, ViT-B-16-plus-240)."
        )
        raise UnsupportedBackboneError(msg)

    weights_path = resolve_weights(model_name, pretrained, cache_dir)
    state_dict, openai_layout = _read_checkpoint(weights_path) if weights_path is not None else (None, False)
    if quick_gelu is None and "quick_gelu" in config:  # the config says so explicitly
        quick_gelu = bool(config["quick_gelu"])
    resized = image_size is not None and int(image_size) != vision_config.get("image_size")
    if quick_gelu is None and quick_gelu_at_native_size_only and resized:
        quick_gelu = False
    if quick_gelu is None:  # OpenAI's weights were trained with QuickGELU, whatever file they come in
        quick_gelu = openai_layout or _is_openai_weights(pretrained, weights_path)
    config["quick_gelu"] = quick_gelu
    if image_size is not None:
        vision_config["image_size"] = int(image_size)

    custom_text = config.pop("custom_text", False)
    clip_class = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    # Random weights are drawn from a fixed seed, so a random backbone is rebuilt identically (prompts
    # learned on it, e.g. in tests or the offline demo, stay valid) and the global RNG is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        clip = clip_class(**config)
    if state_dict is not None:
        _load_weights(clip, state_dict, weights_path, model_name=str(model), mode=positional_embedding_mode)
    clip.eval()
    return clip


def resolve_weights(model_name: str, pretrained: str | Path | None, cache_dir: str | Path | None = None) -> Path | None:
    """The local weight file ``pretrained`` stands for (downloaded only if allowed), or ``None`` for random weights.

    Raises:
        WeightsNotFoundError: with the file expected, the cache folder and how to pass a local file.
    """
    if pretrained is None or str(pretrained).strip().lower() in RANDOM_WEIGHTS:
        logger.warning("Building %s with RANDOM weights (pretrained=None): its scores mean nothing.", model_name)
        return None
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    if path.suffix in WEIGHT_FILE_SUFFIXES or os.sep in str(pretrained):
        msg = (
            f"CLIP weight file {path} does not exist. Pass an existing OpenAI .pt archive, open_clip state dict or "
            f".safetensors file, or an open_clip pretrained tag such as 'openai'."
        )
        raise WeightsNotFoundError(msg)

    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    tag = str(pretrained)
    pretrained_config = get_pretrained_cfg(model_name, tag)
    if not pretrained_config:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        msg = (
            f"Unknown pretrained tag {tag!r} for CLIP model {model_name!r}. Known tags: {tags or 'none'}. "
            "Pass one of them, a local weight file, or null for random weights."
        )
        raise WeightsNotFoundError(msg)

    cache = str(cache_dir) if cache_dir else None
    cached, cache_folder = open_clip_cached_weights(pretrained_config, cache)
    if cached is not None:
        return cached
    if not is_offline():
        try:
            downloaded = open_clip.pretrained.download_pretrained(pretrained_config, cache_dir=cache)
        except Exception as error:  # noqa: BLE001 - any network failure ends in the same advice
            logger.debug("Downloading %s / %s failed: %s", model_name, tag, error)
        else:
            if downloaded and Path(downloaded).is_file():
                return Path(downloaded)
    url = pretrained_config.get("url", "")
    hub_model, _, hub_file = pretrained_config.get("hf_hub", "").rpartition("/")
    source = url or f"https://huggingface.co/{hub_model}"
    file_name = url.rpartition("/")[2] or hub_file or "open_clip_pytorch_model.bin"
    msg = (
        f"CLIP weights {model_name!r} / {tag!r} are not available offline.\n"
        f"  Expected file: {file_name} (from {source})\n"
        f"  Cache folder:  {cache_folder}\n"
        f"Fix: put {file_name} into that folder, or pass the local file instead of the tag, e.g. "
        f"--model.pretrained /path/to/{file_name} (an OpenAI .pt archive, an open_clip state dict or a "
        f".safetensors file). For a random backbone (tests, speed runs) pass --model.pretrained null."
    )
    raise WeightsNotFoundError(msg)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read CLIP weights from an OpenAI TorchScript archive, a (wrapped) state dict or a safetensors file."""
    return _read_checkpoint(path)[0]


def is_openai_state_dict(state_dict: dict[str, torch.Tensor]) -> bool:
    """True for CLIP weights (as stored, before any dtype conversion) as OpenAI saves them, trained with QuickGELU.

    With the text tower at the top level, either of two traits marks OpenAI's layout (see open_clip's
    ``build_model_from_openai_state_dict``): the scalars ``input_resolution``, ``context_length`` and
    ``vocab_size``, or the partial fp16 conversion (conv and linear weights fp16, LayerNorms fp32).
    """
    if "text_projection" not in state_dict or "visual.conv1.weight" not in state_dict:
        return False
    if any(key in state_dict for key in _OPENAI_STATE_DICT_EXTRAS):
        return True
    half_weights = state_dict["visual.conv1.weight"].dtype == torch.float16
    norm = state_dict.get("visual.ln_pre.weight", state_dict.get("ln_final.weight"))
    return half_weights and norm is not None and norm.dtype == torch.float32


def _read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """The fp32 state dict in ``path`` and whether it is in OpenAI's layout (``is_openai_state_dict``)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state_dict = load_file(str(path))
        elif _is_torchscript_archive(path):
            state_dict = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        msg = f"Could not read CLIP weights from {path}: {error}. Is the file complete and a CLIP checkpoint?"
        raise WeightsNotFoundError(msg) from error
    if isinstance(state_dict, dict) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not state_dict:
        msg = f"{path} holds no CLIP state dict."
        raise WeightsNotFoundError(msg)
    if next(iter(state_dict)).startswith("module."):
        state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    openai_layout = is_openai_state_dict(state_dict)
    for key in _OPENAI_STATE_DICT_EXTRAS:
        state_dict.pop(key, None)
    state_dict = {key: value.float() if value.is_floating_point() else value for key, value in state_dict.items()}
    return state_dict, openai_layout


def resize_positional_embedding(
    positional_embedding: torch.Tensor, grid_size: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resize a ViT positional embedding ``[1 + h*w, D]`` to ``[1 + H*W, D]`` for a new patch grid.

    The class-token row is kept; the grid rows are interpolated with ``align_corners=False`` and no antialias
    (``mode`` ``"bicubic"``: as open_clip's ``resize_pos_embed`` in MuSc's reference).
    """
    class_row, grid_rows = positional_embedding[:1], positional_embedding[1:]
    old_side = round(grid_rows.shape[0] ** 0.5)
    if old_side * old_side != grid_rows.shape[0]:
        msg = f"Cannot resize a positional embedding of {grid_rows.shape[0]} grid rows: not a square grid."
        raise ValueError(msg)
    if (old_side, old_side) == tuple(grid_size):
        return positional_embedding
    grid = grid_rows.reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(grid_size), mode=mode, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(-1, positional_embedding.shape[-1])
    return torch.cat([class_row, grid.to(positional_embedding.dtype)], dim=0)


def _load_weights(
    clip: nn.Module, state_dict: dict[str, torch.Tensor], path: Path, model_name: str, mode: str = "bilinear"
) -> None:
    import open_clip

    if "positional_embedding" in state_dict and not hasattr(clip, "positional_embedding"):
        state_dict = open_clip.model.convert_to_custom_text_state_dict(state_dict)
    key = "visual.positional_embedding"
    if key in state_dict and state_dict[key].shape != clip.visual.positional_embedding.shape:
        state_dict[key] = resize_positional_embedding(state_dict[key], tuple(clip.visual.grid_size), mode=mode)
    if getattr(clip, "logit_bias", None) is None:
        state_dict.pop("logit_bias", None)
    # TorchScript archives also hold buffers the model rebuilds itself (e.g. the causal ``attn_mask``).
    for name in {name for name, _ in clip.named_buffers()} - set(clip.state_dict()):
        state_dict.pop(name, None)
    advice = "Check that --model.backbone names the architecture the file was trained with."
    try:
        result = clip.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # tensors of other shapes
        msg = f"CLIP weights {path} do not fit the model {model_name}: {error}\n{advice}"
        raise WeightsMismatchError(msg) from None
    if result.missing_keys or result.unexpected_keys:
        msg = (
            f"CLIP weights {path} do not fit the model {model_name}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}. {advice}"
        )
        raise WeightsMismatchError(msg)


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _is_openai_weights(pretrained: str | Path | None, weights_path: Path | None) -> bool:
    if pretrained is not None and str(pretrained).lower() == "openai":
        return True
    return weights_path is not None and weights_path.suffix == ".pt" and _is_torchscript_archive(weights_path)
