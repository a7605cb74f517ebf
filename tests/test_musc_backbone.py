"""What MuSc asks of the shared backbone: the reference's QuickGELU rule, its bicubic positional-embedding resize."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from anomalib_glocalclip.backbone import build_clip, resize_positional_embedding
from anomalib_glocalclip.backbone.precision import autocast


def _is_quick_gelu(clip: torch.nn.Module) -> bool:
    return isinstance(clip.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


@pytest.fixture(scope="module")
def openai_layout_file(tiny_config, tmp_path_factory):
    """Tiny CLIP weights in OpenAI's layout (the scalars OpenAI's archives hold besides the weights), native 64 px."""
    source = open_clip.CLIP(**json.loads(tiny_config.read_text()), quick_gelu=True)
    state_dict = {**source.state_dict(), "input_resolution": torch.tensor(64), "context_length": torch.tensor(77),
                  "vocab_size": torch.tensor(49408)}
    path = tmp_path_factory.mktemp("openai") / "openai_layout.pt"
    torch.save(state_dict, path)
    return path


@pytest.mark.parametrize(
    ("image_size", "quick_gelu", "expected"),
    [(64, None, True), (96, None, False), (None, None, True), (96, True, True), (64, False, False)],
)
def test_reference_quick_gelu_rule(tiny_config, openai_layout_file, image_size, quick_gelu, expected) -> None:
    """OpenAI weights: QuickGELU at their native size, GELU at another (as MuSc's open_clip); True/False force it."""
    clip = build_clip(tiny_config, openai_layout_file, image_size=image_size, quick_gelu=quick_gelu,
                      quick_gelu_at_native_size_only=True)
    assert _is_quick_gelu(clip) is expected


def test_without_the_reference_rule_openai_weights_keep_quick_gelu_when_resized(tiny_config, openai_layout_file):
    assert _is_quick_gelu(build_clip(tiny_config, openai_layout_file, image_size=96))


def test_bicubic_resize_has_no_antialias(tiny_config, openai_layout_file) -> None:
    clip = build_clip(tiny_config, openai_layout_file, image_size=96, positional_embedding_mode="bicubic")
    old = torch.load(openai_layout_file, weights_only=True)["visual.positional_embedding"]
    grid = old[1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(12, 12), mode="bicubic", align_corners=False, antialias=False)
    expected = torch.cat([old[:1], expected.permute(0, 2, 3, 1).reshape(144, -1)])
    torch.testing.assert_close(clip.visual.positional_embedding.detach(), expected)
    antialiased = F.interpolate(grid, size=(12, 12), mode="bicubic", align_corners=False, antialias=True)
    assert not torch.allclose(expected[1:], antialiased.permute(0, 2, 3, 1).reshape(144, -1))
    table = torch.randn(17, 4)
    torch.testing.assert_close(resize_positional_embedding(table, (6, 6), mode="bicubic")[1:].reshape(1, 6, 6, 4),
                               F.interpolate(table[1:].reshape(1, 4, 4, 4).permute(0, 3, 1, 2), size=(6, 6),
                                             mode="bicubic").permute(0, 2, 3, 1))


def test_fp16_precision_is_cuda_only() -> None:
    with autocast(torch.device("cpu"), "fp16"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize(("image_size", "expected"), [(64, True), (96, False)])
def test_musc_builds_its_backbone_by_the_reference_rule(tiny_config, openai_layout_file, image_size, expected) -> None:
    from anomalib_glocalclip.musc import MuScModel

    model = MuScModel(tiny_config, openai_layout_file, image_size=image_size, feature_layers=(3, 6))
    assert _is_quick_gelu(model.backbone.clip) is expected
    if image_size == 96:  # resized bicubic, no antialias
        old = torch.load(openai_layout_file, weights_only=True)["visual.positional_embedding"]
        torch.testing.assert_close(model.backbone.clip.visual.positional_embedding.detach(),
                                   resize_positional_embedding(old, (12, 12), mode="bicubic"))
