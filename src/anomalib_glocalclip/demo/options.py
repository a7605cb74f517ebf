"""The options of the offline demo, as ``anomalib-glocalclip demo`` parses them (``cli/demo.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does; the defaults are the command's, whose ``--help`` describes each option.

    ``None`` for ``weights``: open_clip's cache; for ``backbone``: GlocalCLIP's default; for ``image_size``: 518
    with real weights, 64 with the tiny backbone.
    """

    workdir: str | Path = "glocalclip_demo"
    weights: str | None = None
    backbone: str | None = None
    image_size: int | None = None
    epochs: int = 3
    accelerator: str = "auto"
    tiny: bool = False
    seed: int = 0
