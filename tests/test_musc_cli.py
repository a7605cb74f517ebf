"""MuSc end to end through the real ``anomalib`` CLI, in subprocesses (slow tier).

The class path is used (``--model anomalib_glocalclip.musc.MuSc``): the short name ``MuSc`` resolves through the
installed entry points, which this checkout's ``pyproject.toml`` declares (``test_plugin_registration``).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from anomalib_glocalclip.testing import generate_mvtec_ad

TINY_ARGS = ("--model", "anomalib_glocalclip.musc.MuSc", "--model.backbone", "tiny-clip", "--model.pretrained", "null",
             "--model.image_size", "64", "--model.feature_layers", "[3, 6, 9, 12]", "--trainer.accelerator", "cpu")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "COLUMNS": "1000"}  # wide: rich wraps the log lines otherwise


@pytest.fixture(scope="module")
def category(tmp_path_factory) -> Path:
    root = generate_mvtec_ad(tmp_path_factory.mktemp("musc_cli") / "MVTecAD", categories=("bottle",), n_train=1,
                             n_test_good=4, n_test_bad=2, defects=("scratch", "crack"))
    return root / "bottle"


@pytest.mark.slow
def test_anomalib_test_scores_the_category_as_one_set(cli, category: Path, tmp_path: Path) -> None:
    result = cli("anomalib", "test", *TINY_ARGS, "--data", "MVTecAD", "--data.root", str(category.parent),
                 "--data.category", "bottle", "--data.eval_batch_size", "3", "--data.num_workers", "0",
                 "--default_root_dir", str(tmp_path / "results"), cwd=tmp_path, env=ONE_THREAD)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "image_AUROC" in output
    assert "pixel_AUPRO" in output
    assert "MuSc: scored a set of 8 images" in output
    assert "scored earlier in this run" in output  # validation's set kept for the test of the same files


@pytest.mark.slow
def test_anomalib_predict_scores_a_folder_as_one_set(cli, category: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(sorted((category / "test").rglob("*.png"))):
        shutil.copy(image, folder / f"{index:03d}.png")
    result = cli("anomalib", "predict", *TINY_ARGS, "--data", str(folder), "--default_root_dir",
                 str(tmp_path / "results"), cwd=tmp_path, env=ONE_THREAD)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "MuSc: scored a set of 8 images" in output
    rows = list(csv.DictReader(next((tmp_path / "results").rglob("predictions.csv")).open()))
    assert [Path(row["image_path"]).name for row in rows] == [f"{index:03d}.png" for index in range(8)]
    scores = [float(row["pred_score"]) for row in rows]
    assert 0.0 <= min(scores) < max(scores) <= 1.0  # RsCIN of min-max scores


@pytest.mark.slow
def test_ddp_scores_the_whole_set_on_every_rank(cli, category: Path, tmp_path: Path) -> None:
    """Two CPU processes: each scores the whole set and tests its share; the gathered metrics are one process's."""
    from test_ddp import DDP_ARGS, SINGLE_ARGS, printed_metrics

    def run_test(devices: list[str], root: str) -> dict[str, float]:
        result = cli("anomalib", "test", *TINY_ARGS[:-2], "--data", "MVTecAD", "--data.root", str(category.parent),
                     "--data.category", "bottle", "--data.num_workers", "0", *devices, "--default_root_dir", root,
                     cwd=tmp_path, env=ONE_THREAD)
        assert result.returncode == 0, result.stderr[-3000:]
        return printed_metrics(result.stdout)

    ddp, single = run_test(DDP_ARGS, "ddp"), run_test(SINGLE_ARGS, "single")
    assert {"image_AUROC", "pixel_AUROC", "pixel_AUPRO"} <= set(single), single
    assert ddp == pytest.approx(single, abs=1e-6), (ddp, single)
