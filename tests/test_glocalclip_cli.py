"""Every GlocalCLIP user flow exactly as the README writes it, through the real command line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad, generate_visa

pytestmark = pytest.mark.slow

TINY_ARGS = ["--model.backbone", str(TINY_CLIP_CONFIG), "--model.pretrained", "null", "--model.image_size", "64"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    generate_visa(root / "datasets" / "visa", categories=("candle", "pcb1"), seed=0)
    generate_mvtec_ad(root / "datasets" / "MVTecAD", categories=("bottle",), seed=1)
    return root


@pytest.fixture(scope="module")
def prompts(cli, workspace: Path) -> Path:
    """``anomalib train --model GlocalCLIP --data AuxiliaryTransfer ...``, as in the README."""
    result = cli(
        "anomalib", "train", "--model", "GlocalCLIP", *TINY_ARGS,
        "--data", "AuxiliaryTransfer",
        "--data.auxiliary", "[{layout: visa, root: ./datasets/visa}]",
        "--data.target", "MVTecAD", "--data.target.root", "./datasets/MVTecAD", "--data.target.category", "bottle",
        "--data.num_workers", "0", "--trainer.max_epochs", "2", "--default_root_dir", "results/train",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = list((workspace / "results" / "train").glob("GlocalCLIP/*/bottle/v0/weights/lightning/prompts.pt"))
    assert len(files) == 1, result.stderr[-2000:]
    return files[0]


def test_train_writes_prompts_beside_a_small_checkpoint(prompts: Path) -> None:
    checkpoint = prompts.parent / "model.ckpt"
    assert checkpoint.is_file()
    assert checkpoint.stat().st_size < 500_000
    assert (prompts.parents[2] / "config.yaml").read_text().count("anomalib_glocalclip.GlocalCLIP") == 1


def test_zero_shot_test(cli, workspace: Path, prompts: Path) -> None:
    result = cli(
        "anomalib", "test", "--model", "GlocalCLIP", *TINY_ARGS, "--model.prompt_weights", str(prompts),
        "--data", "MVTecAD", "--data.root", "./datasets/MVTecAD", "--data.category", "bottle",
        "--data.num_workers", "0", "--default_root_dir", "results/zero_shot",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for metric in ("image_AUROC", "image_AUPR", "image_F1Max", "pixel_AUROC", "pixel_AUPRO", "pixel_F1Max"):
        assert metric in result.stdout
    # As for Anomalib's own zero-shot models: validation on the target fits the thresholds, then the test
    # (test_one_pass_test.py counts the validation steps; `anomalib-glocalclip evaluate` is the one-pass path).
    assert "the test pass also fits the thresholds" not in result.stdout + result.stderr
    heatmaps = list((workspace / "results" / "zero_shot").glob("GlocalCLIP/MVTecAD/bottle/latest/images/**/*.png"))
    assert len(heatmaps) == 5


def test_predict_on_a_folder_writes_heatmaps_and_labels(cli, workspace: Path, prompts: Path) -> None:
    folder = workspace / "datasets" / "MVTecAD" / "bottle" / "test"
    result = cli(
        "anomalib", "predict", "--model", "GlocalCLIP", *TINY_ARGS, "--model.prompt_weights", str(prompts),
        "--data", str(folder), "--default_root_dir", "results/predict",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = next((workspace / "results" / "predict").glob("GlocalCLIP/*"))
    assert len(list(run.glob("images/*/*.png"))) == 5
    with (run / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 5
    assert {row["pred_label"] for row in rows} <= {"0", "1"}
    assert all(0.0 <= float(row["pred_score"]) <= 1.0 for row in rows)


def test_plugin_console_script_runs_anomalib_commands(cli, workspace: Path, prompts: Path) -> None:
    result = cli(
        "anomalib-glocalclip", "test", "--model", "GlocalCLIP", *TINY_ARGS, "--model.prompt_weights", str(prompts),
        "--data", "MVTecAD", "--data.root", "./datasets/MVTecAD", "--data.category", "bottle",
        "--data.num_workers", "0", "--default_root_dir", "results/console",
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pixel_AUROC" in result.stdout


def test_offline_demo(cli, tmp_path: Path) -> None:
    result = cli("anomalib-glocalclip", "demo", "--workdir", str(tmp_path / "demo"), "--epochs", "1",
                 env={"HOME": str(tmp_path)})  # an empty open_clip cache: no real weights
    assert result.returncode == 0, result.stderr[-3000:]
    first_line = result.stdout.splitlines()[1]
    assert first_line.startswith("NO CLIP WEIGHTS FOUND")
    assert "scores mean nothing" in first_line
    assert "pixel_AUROC" in result.stdout
    assert "Heatmaps:" in result.stdout
    assert list((tmp_path / "demo" / "zero_shot").glob("GlocalCLIP/MVTecAD/bottle/latest/images/**/*.png"))
