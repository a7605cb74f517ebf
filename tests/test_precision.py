"""bf16 autocast: chosen per device, and both models run and score alike in bf16 and fp32."""

from __future__ import annotations

import contextlib

import pytest
import torch
from anomalib.data import ImageBatch

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.backbone.precision import autocast, check_precision

TINY = {"pretrained": None, "image_size": 64}


def test_autocast_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert isinstance(autocast(cpu, "auto"), contextlib.nullcontext)  # CPUs stay in fp32 unless asked
    assert isinstance(autocast(cpu, "fp32"), contextlib.nullcontext)
    assert isinstance(autocast(cuda, "fp32"), contextlib.nullcontext)
    assert isinstance(autocast(cpu, "bf16"), torch.autocast)
    assert isinstance(autocast(cuda, "auto"), torch.autocast)
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("fp8")


def test_glocalclip_in_bf16(tiny_config, images) -> None:
    torch.manual_seed(0)
    fp32 = GlocalCLIP(backbone=str(tiny_config), precision="fp32", **TINY).eval()
    torch.manual_seed(0)
    bf16 = GlocalCLIP(backbone=str(tiny_config), precision="bf16", **TINY).eval()
    global_raw, patch_raw = bf16.model.encode_image_raw(images)
    assert global_raw.dtype == patch_raw.dtype == torch.bfloat16
    with torch.no_grad():
        a, b = fp32.model(images), bf16.model(images)
    assert b.pred_score.dtype == b.anomaly_map.dtype == torch.float32
    torch.testing.assert_close(b.pred_score, a.pred_score, atol=0.05, rtol=0)
    torch.testing.assert_close(b.anomaly_map, a.anomaly_map, atol=0.1, rtol=0)
    bf16.train()
    batch = ImageBatch(image=images, gt_label=torch.tensor([0, 1]), gt_mask=torch.zeros(2, 64, 64, dtype=torch.bool))
    batch.gt_mask[1, :8, :8] = True
    loss = bf16.compute_losses(bf16.model.encode_image(images), batch.gt_label, batch.gt_mask)["loss"]
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in bf16.model.prompt_learner.parameters())


@pytest.mark.parametrize("tta", [False, True])
def test_anoclip_in_bf16(tiny_config, images, tta: bool) -> None:
    common = {"backbone": str(tiny_config), "image_score_views": "none", "tta": tta, "class_name": "bottle", **TINY}
    fp32 = AnoCLIP(precision="fp32", **common)
    bf16 = AnoCLIP(precision="bf16", **common)
    for model in (fp32, bf16):
        model.model.setup_prompts("bottle", "object")
    a, b = fp32.model(images), bf16.model(images)
    assert b.anomaly_map.dtype == torch.float32
    torch.testing.assert_close(b.pred_score, a.pred_score, atol=0.02, rtol=0)
    torch.testing.assert_close(b.anomaly_map, a.anomaly_map, atol=0.05, rtol=0)
