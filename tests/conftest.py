"""Shared fixtures: everything offline, a tiny random CLIP, small generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# No test may reach the network: open_clip / Hugging Face downloads are switched off for the session
# and for every subprocess the tests start.
os.environ["ANOMALIB_GLOCALCLIP_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG  # noqa: E402


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    """open_clip config of the tiny random CLIP."""
    return TINY_CLIP_CONFIG


@pytest.fixture(scope="session")
def tiny_backbone():  # noqa: ANN201
    """A tiny random ``CLIPBackbone`` at 64 px (shared; do not modify)."""
    from anomalib_glocalclip.backbone import CLIPBackbone

    return CLIPBackbone(TINY_CLIP_CONFIG, pretrained=None, image_size=64)


@pytest.fixture
def images() -> torch.Tensor:
    """Two random normalised images ``[2, 3, 64, 64]``."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
