"""Training and testing under Lightning's DDP, with two CPU processes."""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import pytest

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad, generate_visa
from image_files import save_rgb

pytestmark = pytest.mark.slow

TINY_ARGS = ["--model.backbone", str(TINY_CLIP_CONFIG), "--model.pretrained", "null", "--model.image_size", "64"]
DDP_ARGS = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
SINGLE_ARGS = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
METRIC_ROW = re.compile(r"(image_\w+|pixel_\w+)\s*[│|]\s*([-+0-9.eE]+|nan)\s*[│|]")


def printed_metrics(stdout: str) -> dict[str, float]:
    """The metrics of Lightning's printed results table: ``{name: value}``."""
    return {name: float(value) for name, value in METRIC_ROW.findall(stdout)}


def test_train_then_test_on_two_processes(cli, tmp_path: Path) -> None:
    generate_visa(tmp_path / "visa", categories=("candle", "pcb1"), seed=0)
    # 4 test images: an even split over two processes, so no sample is repeated to pad a rank's share
    generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_test_good=2, n_test_bad=2, seed=1)
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

    def run_test(devices: list[str], root: str) -> dict[str, float]:
        test = cli(
            "anomalib", "test", "--model", "GlocalCLIP", *TINY_ARGS, "--model.prompt_weights", str(prompts),
            "--data", "MVTecAD", "--data.root", "mvtec", "--data.category", "bottle", "--data.num_workers", "0",
            *devices, "--default_root_dir", root, cwd=tmp_path,
        )
        assert test.returncode == 0, test.stderr[-3000:]
        return printed_metrics(test.stdout)

    # The metrics gathered from two processes are those of one process scoring every image.
    ddp, single = run_test(DDP_ARGS, "test"), run_test(SINGLE_ARGS, "test-single")
    assert {"image_AUROC", "pixel_AUROC", "pixel_AUPRO"} <= set(single), single
    assert ddp == pytest.approx(single, abs=1e-4), (ddp, single)


def test_predictions_table_of_two_processes_holds_every_image(cli, tmp_path: Path) -> None:
    """Each process predicts its share of the folder; ``predictions.csv`` lists every image once, labelled."""
    folder = tmp_path / "images"
    names = [f"{index}.png" for index in range(5)]  # odd: the two shares differ in size
    for index, name in enumerate(names):
        save_rgb(folder / name, seed=index)
    run = cli(
        "anomalib", "predict", "--model", "AnoCLIP", *TINY_ARGS, "--data", str(folder), *DDP_ARGS,
        "--default_root_dir", "predict", cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in run.stdout + run.stderr
    (table,) = (tmp_path / "predict").rglob("predictions.csv")
    with table.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert sorted(Path(row["image_path"]).name for row in rows) == names
    assert {row["pred_label"] for row in rows} <= {"0", "1"}


def test_sweep_on_two_processes_says_whose_images_its_report_shows(cli, tmp_path: Path) -> None:
    """Metrics, thresholds and heatmaps cover every image; the report's images are process 0's share, and say so."""
    from anomalib_glocalclip.evaluation.report_data import ReportData, report_data_path

    generate_mvtec_ad(tmp_path / "mvtec", categories=("bottle",), n_test_good=2, n_test_bad=2, seed=1)
    run = cli(
        "anomalib-glocalclip", "evaluate", "--model", "anoclip", "--backbone", str(TINY_CLIP_CONFIG), "--pretrained",
        "none", "--image-size", "64", "--dataset", "mvtec_ad", "--root", "mvtec", "--output", "out", "--accelerator",
        "cpu", "--devices", "2", "--workers", "0", "--batch-size", "2", "--no-progress", cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]  # (the command keeps Lightning's start-up lines quiet)
    assert len(list((tmp_path / "out" / "heatmaps" / "bottle").rglob("*.png"))) == 4
    assert len(ReportData.load(report_data_path(tmp_path / "out", "bottle")).paths) == 2
    page = html.unescape((tmp_path / "out" / "report.html").read_text(encoding="utf-8"))
    assert "Run on 2 processes (DDP): the report's images and score plots are process 0's share" in page
