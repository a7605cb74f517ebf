"""``anomalib-glocalclip benchmark``: GlocalCLIP, AnoCLIP and WinCLIP on the same data, one results table.

WinCLIP needs its CLIP weights; here it is built offline on a tiny random CLIP by setting the module constants of
Anomalib's WinCLIP (``BACKBONE``/``PRETRAINED``) inside this test process only, so the run with WinCLIP uses the
Python API in-process, and the CLI subprocess compares GlocalCLIP and AnoCLIP.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from anomalib_glocalclip import AnoCLIP, GlocalCLIP
from anomalib_glocalclip.cli.benchmark import main
from anomalib_glocalclip.comparison import ZeroShotBenchmark
from anomalib_glocalclip.comparison.generator import ZeroShotBenchmarkJobGenerator
from anomalib_glocalclip.comparison.resolve import build_model
from anomalib_glocalclip.comparison.table import METRIC_ORDER, collect_rows, print_table, with_means
from anomalib_glocalclip.testing import generate_mvtec_ad
from anomalib_glocalclip.utils.errors import describe_error
from deploy_helpers import anoclip_args, glocalclip_args, run_cli, write_shallow_clip_config

ANOMALIB_GLOCALCLIP = str(Path(sys.executable).with_name("anomalib-glocalclip"))
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CATEGORIES = ["bottle", "cable"]
TINY_WINCLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 240, "layers": 2, "width": 64, "head_width": 32, "patch_size": 40},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}



@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shallow tiny CLIP, a GlocalCLIP prompt file and a generated MVTec AD with two categories."""
    root = tmp_path_factory.mktemp("benchmark")
    config = write_shallow_clip_config(root)
    prompts = GlocalCLIP(**glocalclip_args(config)).save_prompts(root / "prompts.pt")
    data = generate_mvtec_ad(root / "mvtec", categories=tuple(CATEGORIES), n_train=1, n_test_good=2, n_test_bad=2,
                             odd_images=False, seed=11)
    return {"root": root, "config": config, "prompts": prompts, "data": data}


@pytest.fixture
def offline_winclip(tmp_path: Path) -> Iterator[None]:
    """Anomalib's WinCLIP on a tiny random CLIP (no download), for this test only."""
    import open_clip
    from anomalib.models.image.winclip import torch_model

    folder = tmp_path / "open_clip_configs"
    folder.mkdir()
    (folder / "tiny-winclip.json").write_text(json.dumps(TINY_WINCLIP))
    open_clip.add_model_config(folder)
    saved = torch_model.BACKBONE, torch_model.PRETRAINED
    torch_model.BACKBONE, torch_model.PRETRAINED = "tiny-winclip", None
    yield
    torch_model.BACKBONE, torch_model.PRETRAINED = saved
    open_clip.factory._MODEL_CONFIGS.pop("tiny-winclip", None)


def model_entries(workspace: dict[str, Path], winclip: bool) -> list[dict[str, Any]]:
    entries = [
        {"class_path": "GlocalCLIP",
         "init_args": {**glocalclip_args(workspace["config"]), "prompt_weights": str(workspace["prompts"])}},
        {"class_path": "AnoCLIP", "init_args": anoclip_args(workspace["config"], image_score_views="none")},
    ]
    return [*entries, {"class_path": "WinClip"}] if winclip else entries


def write_config(path: Path, models: list[dict[str, Any]], workspace: dict[str, Path]) -> Path:
    """A benchmark YAML in the layout of ``anomalib benchmark``."""
    config = {
        "accelerator": "cpu",
        "benchmark": {
            "seed": 42,
            "model": {"grid": models},
            "data": {
                "class_path": "MVTecAD",
                "init_args": {"root": str(workspace["data"]), "num_workers": 0, "category": {"grid": CATEGORIES}},
            },
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def check_table(output_dir: Path, models: list[str]) -> pd.DataFrame:
    """``results.csv``/``results.md`` hold a row per model x category and a mean row per model, same metrics."""
    table = pd.read_csv(output_dir / "results.csv", keep_default_na=False, na_values=[""])
    jobs = table[table["category"] != "mean"]
    assert sorted(zip(jobs["model"], jobs["category"], strict=True)) == sorted(
        (model, category) for model in models for category in CATEGORIES
    )
    assert (jobs["status"] == "ok").all(), jobs[["model", "category", "error"]]
    assert list(table.columns[5:11]) == METRIC_ORDER
    assert (table["scores"] == "normalised").all()
    assert jobs[METRIC_ORDER].notna().all().all()
    means = table[table["category"] == "mean"].set_index("model")
    assert sorted(means.index) == sorted(models)
    for model in models:
        expected = jobs[jobs["model"] == model]["image_AUROC"].mean()
        assert means.loc[model, "image_AUROC"] == pytest.approx(expected)
        assert means.loc[model, "status"] == f"{len(CATEGORIES)}/{len(CATEGORIES)} ok"

    markdown = (output_dir / "results.md").read_text().splitlines()
    assert markdown[0].startswith("Metrics on Anomalib's normalised scores")
    assert markdown[2].startswith("| model | data | category | status | scores | image_AUROC |")
    assert len(markdown) == 4 + len(table)
    for model in models:
        assert sum(line.startswith(f"| {model} |") for line in markdown) == len(CATEGORIES) + 1
    return table


def test_glocalclip_anoclip_and_winclip_in_one_table(
    workspace: dict[str, Path], offline_winclip: None, tmp_path: Path
) -> None:
    del offline_winclip
    config = write_config(tmp_path / "bench.yaml", model_entries(workspace, winclip=True), workspace)
    table = ZeroShotBenchmark(output_dir=tmp_path / "out").run(argparse.Namespace(config=config))
    check_table(tmp_path / "out", ["GlocalCLIP", "AnoCLIP", "WinClip"])
    assert (tmp_path / "out" / "benchmark.log").is_file()
    assert len(table) == 3 * (len(CATEGORIES) + 1)


def test_musc_beside_anoclip_in_one_table(workspace: dict[str, Path], tmp_path: Path) -> None:
    """``class_path: MuSc`` in a grid: each category's test split is scored as one set; its row says its scores
    are its own (its post-processor normalises nothing), AnoCLIP's that they are normalised."""
    musc = {"class_path": "MuSc", "init_args": {**anoclip_args(workspace["config"]), "feature_layers": [2, 4]}}
    config = write_config(tmp_path / "bench.yaml", [model_entries(workspace, winclip=False)[1], musc], workspace)
    ZeroShotBenchmark(output_dir=tmp_path / "out").run(argparse.Namespace(config=config))
    table = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False, na_values=[""]).set_index("model")
    assert (table.loc["MuSc", "status"].iloc[:-1] == "ok").all(), table.loc["MuSc", "error"]
    assert table.loc["MuSc", "image_AUROC"].notna().all()
    assert set(table.loc["MuSc", "scores"]) == {"own"}
    assert set(table.loc["AnoCLIP", "scores"]) == {"normalised"}


def test_a_failing_model_is_a_row_and_the_others_still_run(workspace: dict[str, Path], tmp_path: Path) -> None:
    broken = {"class_path": "GlocalCLIP", "name": "GlocalCLIP-no-weights",
              "init_args": {**glocalclip_args(workspace["config"]), "pretrained": str(tmp_path / "missing.pt")}}
    models = [model_entries(workspace, winclip=False)[1], broken]
    config = write_config(tmp_path / "bench.yaml", models, workspace)
    table = ZeroShotBenchmark(output_dir=tmp_path / "out").run(argparse.Namespace(config=config))
    jobs = table[table["category"] != "mean"].set_index(["model", "category"])
    assert (jobs.loc["AnoCLIP", "status"] == "ok").all()
    assert (jobs.loc["GlocalCLIP-no-weights", "status"] == "failed").all()
    assert jobs.loc[("GlocalCLIP-no-weights", "bottle"), "error"].startswith("WeightsNotFoundError: CLIP weight file")
    means = table[table["category"] == "mean"].set_index("model")
    assert means.loc["GlocalCLIP-no-weights", "status"] == "0/2 ok"
    assert math.isnan(means.loc["GlocalCLIP-no-weights", "image_AUROC"])
    assert (tmp_path / "out" / "results.md").is_file()


def test_winclip_without_its_weights_offline_is_a_failed_row(
    workspace: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real WinCLIP (ViT-B-16-plus-240, laion400m_e31) with its download failing as it does offline."""
    from urllib.error import URLError

    import open_clip

    def offline(url: str, *args: Any, **kwargs: Any) -> str:
        msg = "[Errno -2] Name or service not known"
        raise URLError(msg)

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", offline)
    models = [model_entries(workspace, winclip=False)[1], {"class_path": "WinClip"}]
    config = write_config(tmp_path / "bench.yaml", models, workspace)
    table = ZeroShotBenchmark(output_dir=tmp_path / "out").run(argparse.Namespace(config=config))
    jobs = table[table["category"] != "mean"].set_index(["model", "category"])
    assert (jobs.loc["AnoCLIP", "status"] == "ok").all()
    assert (jobs.loc["WinClip", "status"] == "failed").all()
    error = jobs.loc[("WinClip", "bottle"), "error"]
    assert error.startswith("URLError: <urlopen error [Errno -2] Name or service not known>")
    assert "laion400m_e31" in error


@pytest.mark.slow
def test_cli_writes_the_table(workspace: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "bench.yaml", model_entries(workspace, winclip=False), workspace)
    result = run_cli(ANOMALIB_GLOCALCLIP, "benchmark", "--config", str(config), "--output_dir", str(tmp_path / "out"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results.csv" in result.stdout
    check_table(tmp_path / "out", ["GlocalCLIP", "AnoCLIP"])


def test_bad_inputs_stop_the_benchmark_before_its_first_job(
    workspace: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Unknown model, missing prompt file, missing dataset root: one error listing all three, exit 2, no table."""
    glocalclip = model_entries(workspace, winclip=False)[0]
    glocalclip["init_args"]["prompt_weights"] = str(tmp_path / "not_trained_yet.pt")
    config = write_config(tmp_path / "bench.yaml", [glocalclip, {"class_path": "NoSuchModel"}], workspace)
    settings = yaml.safe_load(config.read_text())
    settings["benchmark"]["data"]["init_args"]["root"] = str(tmp_path / "no_dataset")
    config.write_text(yaml.safe_dump(settings))

    assert main(["--config", str(config), "--output_dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"The benchmark config {config} cannot run; nothing was started" in error
    assert "Unknown model 'NoSuchModel'" in error
    assert f"prompt_weights file {tmp_path / 'not_trained_yet.pt'} does not exist: train the prompts first" in error
    assert f"root {tmp_path / 'no_dataset'} does not exist" in error
    assert error.count("  - ") == 3  # each problem once, although every category repeats it
    assert not (tmp_path / "out").exists()


def test_shipped_config_says_what_to_train_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """Run as shipped where nothing was trained or downloaded: exit 2 naming the prompts to train and the data."""
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(CONFIGS / "benchmark_zero_shot.yaml")]) == 2
    error = capsys.readouterr().err
    assert "prompts.pt does not exist: train the prompts first" in error
    assert "root ./datasets/MVTecAD does not exist" in error
    assert not (tmp_path / "results").exists()


def test_the_printed_table_fits_80_columns_and_names_its_scores(capsys: pytest.CaptureFixture) -> None:
    metrics = dict.fromkeys(METRIC_ORDER, 0.98765)
    rows = [{"model": model, "data": "MVTecAD", "category": category, "status": "ok", **metrics}
            for model in ("GlocalCLIP", "AnoCLIP") for category in ("bottle", "pipe_fryum")]
    print_table(with_means(collect_rows(rows)), width=80)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert sum("0.988" in line for line in lines) == 6  # every metric row in one piece, values unbroken
    assert "normalised scores" in " ".join(lines)


def test_example_config_expands_to_five_models_on_two_categories() -> None:
    config = yaml.safe_load((CONFIGS / "benchmark_zero_shot.yaml").read_text())
    assert config["accelerator"] == "auto"
    jobs = list(ZeroShotBenchmarkJobGenerator(config["accelerator"]).generate_jobs(config["benchmark"], None))
    pairs = [(job.flat_cfg["model.class_path"], job.flat_cfg["data.init_args.category"]) for job in jobs]
    models = ("GlocalCLIP", "AnoCLIP", "AnoCLIP", "MuSc", "WinClip")  # AnoCLIP zero-shot, then 4-shot
    assert pairs == [(model, category) for model in models for category in CATEGORIES]
    assert jobs[2 * len(CATEGORIES)].model_spec["init_args"]["few_shot"] == 4
    assert jobs[0].model_spec["init_args"]["prompt_weights"].endswith("prompts.pt")
    assert jobs[3 * len(CATEGORIES)].model_spec["init_args"]["rscin_k"] == [1, 2, 3]  # MVTec AD's preset


def test_rows_with_different_metrics_make_one_table() -> None:
    """Anomalib's ``BenchmarkJob.collect`` raises ``KeyError`` here; the union of columns is kept instead."""
    rows = [
        {"model": "A", "data": "D", "category": "x", "status": "ok", "image_AUROC": 0.5, "extra_key": 1},
        {"model": "B", "data": "D", "category": "x", "status": "ok", "image_AUROC": 0.7, "pixel_AUROC": 0.9},
        {"model": "B", "data": "D", "category": "y", "status": "failed", "error": "boom"},
    ]
    table = with_means(collect_rows(rows))
    assert list(table["model"]) == ["A", "A", "B", "B", "B"]
    assert table.iloc[-1]["status"] == "1/2 ok"
    assert table.iloc[-1]["image_AUROC"] == pytest.approx(0.7)
    assert table.iloc[0]["extra_key"] == 1


def test_plugin_class_paths_pass_anomalib_whitelist(workspace: dict[str, Path]) -> None:
    model = build_model({"class_path": "anomalib_glocalclip.AnoCLIP", "init_args": anoclip_args(workspace["config"])})
    assert isinstance(model, AnoCLIP)
    assert model.visualizer is None
    assert [metric.name for metric in model.evaluator.test_metrics] == METRIC_ORDER


def test_zero_shot_model_is_validated_once(workspace: dict[str, Path], validated: list[int]) -> None:
    """A zero-shot job validates once (Anomalib's ``test`` does, before testing), not again after a ``fit``."""
    from anomalib_glocalclip.comparison import ZeroShotBenchmarkJob

    model_spec = {"class_path": "AnoCLIP", "init_args": anoclip_args(workspace["config"], image_score_views="none")}
    data_spec = {"class_path": "MVTecAD",
                 "init_args": {"root": str(workspace["data"]), "category": "bottle", "num_workers": 0}}
    row = ZeroShotBenchmarkJob("cpu", model_spec, data_spec, seed=1, flat_cfg={}).run()
    assert row["status"] == "ok", row["error"]
    assert sum(validated) == 4  # the 4 test images (validation split = test split), once
    assert row["fit_duration"] > 0  # the validation, a zero-shot model's fitting
    assert row["image_AUROC"] >= 0


def test_a_config_without_models_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "bench.yaml"
    config.write_text("accelerator: cpu\nbenchmark:\n  seed: 1\n")
    assert main(["--config", str(config), "--output_dir", str(tmp_path / "out")]) == 2
    assert "has no `benchmark.model`" in capsys.readouterr().err


def test_network_errors_get_a_hint() -> None:
    from urllib.error import URLError

    text = describe_error(URLError("[Errno -2] Name or service not known"))
    assert text.startswith("URLError:")
    assert "~/.cache/clip" in text
