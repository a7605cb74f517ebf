"""Training and testing under Lightning's DDP, with two CPU processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad, generate_visa

pytestmark = pytest.mark.slow

TINY_ARGS = ["--model.backbone", str(TINY_CLIP_CONFIG), "--model.pretrained", "null", "--model.image_size", "64"]
DDP_ARGS = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


def test_train_then_test_on_two_processes(cli, tmp_path: Path) -> None:
    generate_visa(tmp_path / "visa", categories=("candle", "pcb1"), seed=0)
    generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), seed=1)
    train = cli(
        "anomalib", "train", "--model", "GlocalCLIP", *TINY_ARGS, "--data", "AuxiliaryTransfer",
        "--data.auxiliary", "[{layout: visa, root: visa}]", "--data.target", "MVTecAD", "--data.target.root", "mvtec",
        "--data.target.category", "bottle", "--data.num_workers", "0", "--trainer.max_epochs", "2", *DDP_ARGS,
        "--default_root_dir", "train", cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    output = train.stdout + train.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "pixel_AUROC" in train.stdout
    prompts = next(tmp_path.glob("train/GlocalCLIP/*/bottle/v0/weights/lightning/prompts.pt"))

    test = cli(
        "anomalib", "test", "--model", "GlocalCLIP", *TINY_ARGS, "--model.prompt_weights", str(prompts),
        "--data", "MVTecAD", "--data.root", "mvtec", "--data.category", "bottle", "--data.num_workers", "0",
        *DDP_ARGS, "--default_root_dir", "test", cwd=tmp_path,
    )
    assert test.returncode == 0, test.stderr[-3000:]
    assert "pixel_AUROC" in test.stdout
    assert "image_AUROC" in test.stdout
