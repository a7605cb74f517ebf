"""The standalone learned-prompt file: what GlocalCLIP learns, in a few hundred KB.

Format (``torch.save`` of plain data, readable with ``weights_only=True``)::

    {"format": "anomalib-glocalclip/prompts", "version": 1,
     "prompt_shape": {"n_ctx": N, "n_abnormal_ctx": M, "deep_prompt_depth": depth, "deep_prompt_length": t},
     "text_width": D, "backbone": "ViT-L-14-336", "state_dict": {name: tensor}}

``read_prompt_file`` also reads the reference implementation's ``epoch_*.pth`` (``{"prompt_learner": ...}``,
its unused ``compound_prompt_projections`` are dropped) and Lightning checkpoints of this plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from anomalib_glocalclip.utils.errors import PluginError
from anomalib_glocalclip.utils.files import atomic_path

from .prompt_learner import GlocalPromptLearner, PromptShape

FORMAT = "anomalib-glocalclip/prompts"
VERSION = 1
_REFERENCE_KEYS = {
    "ctx_global_pos": "global_normal_ctx",
    "ctx_global_neg": "global_anomalous_ctx",
    "ctx_local_pos": "local_normal_ctx",
    "ctx_local_neg": "local_anomalous_ctx",
}
_LIGHTNING_PREFIX = "model.prompt_learner."


class PromptFileError(PluginError, ValueError):
    """A prompt file that cannot be read or does not fit the model."""


class PromptFile(NamedTuple):
    """Contents of a prompt file: sizes, learnable tensors (``GlocalPromptLearner`` names) and metadata."""

    shape: PromptShape
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, object]

    @property
    def backbone(self) -> str | None:
        """The backbone the prompts were learned with, where the file records it (this plugin's prompt files)."""
        backbone = self.metadata.get("backbone")
        return str(backbone) if backbone else None


def fitting_shape(prompt_file: PromptFile, path: str, requested: PromptShape, asked: bool) -> PromptShape:
    """The file's prompt sizes, which decide; ``requested`` sizes must agree when ``asked`` for explicitly.

    Raises:
        PromptFileError: sizes asked for that the file does not hold.
    """
    if asked and requested != prompt_file.shape:
        msg = (
            f"Prompt file {path} holds prompts of sizes {prompt_file.shape._asdict()}, but the model was asked "
            f"for {requested._asdict()}. Drop --model.preset/--model.n_ctx/... to take the file's sizes."
        )
        raise PromptFileError(msg)
    return prompt_file.shape


def save_prompt_file(learner: GlocalPromptLearner, path: str | Path, **metadata: object) -> Path:
    """Write the learner's parameters atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "prompt_shape": learner.shape._asdict(),
        "text_width": learner.global_normal_ctx.shape[-1],
        "state_dict": {name: tensor.detach().float().cpu() for name, tensor in learner.state_dict().items()},
        **metadata,
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def read_prompt_file(path: str | Path) -> PromptFile:
    """Read learned prompts from this plugin's prompt file, a Lightning checkpoint, or a reference ``.pth``."""
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"Prompt file {path} does not exist. Pass the prompts.pt written next to a training run's checkpoint."
        raise PromptFileError(msg)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        msg = f"Could not read prompt file {path}: {error}. Is it complete and written by GlocalCLIP?"
        raise PromptFileError(msg) from error
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        metadata = {key: value for key, value in payload.items() if key not in {"state_dict", "prompt_shape"}}
        return PromptFile(PromptShape(**payload["prompt_shape"]), dict(payload["state_dict"]), metadata)
    if isinstance(payload, dict) and "prompt_learner" in payload:
        return _from_reference(payload["prompt_learner"], path)
    if isinstance(payload, dict) and "state_dict" in payload:
        state_dict = {
            key.removeprefix(_LIGHTNING_PREFIX): value
            for key, value in payload["state_dict"].items()
            if key.startswith(_LIGHTNING_PREFIX)
        }
        if state_dict:
            return PromptFile(_shape_of(state_dict, path), state_dict, {"source": "lightning checkpoint"})
    msg = f"{path} holds no GlocalCLIP prompts (neither a prompt file, a GlocalCLIP checkpoint nor a reference .pth)."
    raise PromptFileError(msg)


def _from_reference(reference: dict[str, torch.Tensor], path: Path) -> PromptFile:
    """Map the reference prompt learner's tensors (``[1, 1, n, D]`` contexts) onto ours."""
    state_dict = {}
    for reference_key, key in _REFERENCE_KEYS.items():
        if reference_key not in reference:
            msg = f"{path} looks like a reference checkpoint but lacks {reference_key!r}."
            raise PromptFileError(msg)
        state_dict[key] = reference[reference_key].reshape(-1, reference[reference_key].shape[-1]).float()
    index = 0
    while f"compound_prompts_text.{index}" in reference:
        state_dict[f"deep_prompts.{index}"] = reference[f"compound_prompts_text.{index}"].float()
        index += 1
    return PromptFile(_shape_of(state_dict, path), state_dict, {"source": "reference implementation"})


def _shape_of(state_dict: dict[str, torch.Tensor], path: Path) -> PromptShape:
    try:
        deep = [state_dict[f"deep_prompts.{i}"] for i in range(len(state_dict)) if f"deep_prompts.{i}" in state_dict]
        return PromptShape(
            n_ctx=state_dict["global_normal_ctx"].shape[0],
            n_abnormal_ctx=state_dict["global_anomalous_ctx"].shape[0],
            deep_prompt_depth=len(deep) + 1,
            deep_prompt_length=deep[0].shape[0] if deep else 0,
        )
    except KeyError as error:
        msg = f"{path} lacks the prompt tensor {error}."
        raise PromptFileError(msg) from error
