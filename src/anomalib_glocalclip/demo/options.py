"""The options of the offline demo, as ``anomalib-glocalclip demo`` parses them (``cli/demo.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does; the defaults are the command's.

    Attributes:
        workdir: folder for data, prompts and heatmaps.
        weights: local CLIP weight file (OpenAI ``ViT-L-14-336px.pt``, ...); ``None``: open_clip's cache.
        backbone: open_clip model name of ``weights``; ``None``: the backbone GlocalCLIP defaults to.
        image_size: input size; ``None``: 518 with real weights, 64 with the tiny backbone.
        epochs: epochs of prompt learning.
        accelerator: Lightning accelerator (``cpu``, ``gpu``, ``auto``).
        tiny: use the tiny random backbone even if weights exist.
        seed: seed of the data, the prompts and the training order.
    """

    workdir: str | Path = "glocalclip_demo"
    weights: str | None = None
    backbone: str | None = None
    image_size: int | None = None
    epochs: int = 3
    accelerator: str = "auto"
    tiny: bool = False
    seed: int = 0
