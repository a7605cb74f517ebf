"""Numeric precision of the frozen backbone: bf16 autocast on GPUs, fp32 elsewhere unless asked (fp16 for MuSc)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_Self = TypeVar("_Self", bound=torch.nn.Module)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a clear error."""
    if precision not in PRECISIONS:
        msg = f"precision must be one of {PRECISIONS}, got {precision!r}."
        raise ValueError(msg)
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` on ``device``.

    ``auto`` is bf16 on CUDA only (CPUs run bf16 slowly and exports need fp32), ``bf16`` on any device, ``fp32`` never,
    ``fp16`` on CUDA only (as MuSc's reference, ``torch.cuda.amp.autocast()``).
    """
    if precision == "fp32" or (precision in {"auto", "fp16"} and device.type != "cuda"):
        return contextlib.nullcontext()
    if precision == "fp16":
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def under_precision(method: Callable[Concatenate[_Self, _P], _R]) -> Callable[Concatenate[_Self, _P], _R]:
    """Run a ``CLIPBackbone`` method under the backbone's autocast (device taken from its weights)."""

    @wraps(method)
    def wrapper(self: _Self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with autocast(self.clip.visual.proj.device, self.precision):
            return method(self, *args, **kwargs)

    return wrapper
