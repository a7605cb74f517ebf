"""The offline demo: seeded (same metrics on every run), metrics printed once and labelled, outputs named by path."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from anomalib_glocalclip.cli.demo import parse_args
from anomalib_glocalclip.demo import DemoOptions, run_demo
from anomalib_glocalclip.demo.run import format_metrics

DEMO_OPTIONS = {"tiny": True, "epochs": 1, "accelerator": "cpu"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, float], str, Path]]:
    """The demo run twice into fresh folders: (metrics, printed text, workdir) of each run."""
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path_factory.mktemp(name) / "demo"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            metrics = run_demo(DemoOptions(workdir=workdir, **DEMO_OPTIONS))
        runs.append((metrics, printed.getvalue(), workdir))
    return runs


def test_two_runs_give_the_same_metrics(two_runs: list[tuple[dict[str, float], str, Path]]) -> None:
    (first, _, _), (second, _, _) = two_runs
    assert sorted(first) == ["image_AUPR", "image_AUROC", "image_F1Max", "pixel_AUPRO", "pixel_AUROC", "pixel_F1Max"]
    assert first == second


def test_metrics_are_printed_once_and_labelled(two_runs: list[tuple[dict[str, float], str, Path]]) -> None:
    metrics, text, _ = two_runs[0]
    for name, value in metrics.items():
        assert len(re.findall(rf"\b{name}\b", text)) == 1, name
        assert f"{name:<16}{value:.3f}" in text
    assert "normalised scores" in text


def test_outputs_are_named_by_existing_paths(two_runs: list[tuple[dict[str, float], str, Path]]) -> None:
    _, text, workdir = two_runs[0]
    assert f"auxiliary (VisA layout): {workdir / 'data' / 'visa'}" in text
    assert f"target (MVTec AD layout): {workdir / 'data' / 'mvtec'}" in text
    prompts = Path(re.search(r"2/3 Learned prompts on the auxiliary data:\n\s+(\S+)", text).group(1))
    assert prompts.is_file()
    assert prompts.is_relative_to(workdir)
    heatmaps = Path(re.search(r"Heatmaps: (\S+)", text).group(1))
    assert heatmaps.is_absolute()
    assert list(heatmaps.rglob("*.png"))


def test_the_demos_own_lines_fit_80_columns(two_runs: list[tuple[dict[str, float], str, Path]]) -> None:
    _, text, workdir = two_runs[0]
    own = [line for line in text.splitlines() if str(workdir) not in line]  # paths are as long as they are
    assert max(len(line) for line in own) <= 80


def test_the_demo_learns_prompts_for_the_epochs_it_is_given(two_runs: list[tuple[dict[str, float], str, Path]]) -> None:
    import torch

    (checkpoint,) = (two_runs[0][2] / "results").rglob("model.ckpt")  # the prompt-learning run's
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["epoch"] == DEMO_OPTIONS["epochs"] - 1  # the model sets no epoch count of its own
    assert saved["global_step"] > 0


def test_format_metrics_puts_image_metrics_first() -> None:
    text = format_metrics({"pixel_AUROC": 0.5, "image_F1Max": 0.25, "image_AUROC": 1.0})
    assert text.splitlines() == ["    image_AUROC     1.000", "    image_F1Max     0.250", "    pixel_AUROC     0.500"]


def test_the_command_line_parses_into_the_demos_options() -> None:
    assert parse_args([]) == DemoOptions()
    parsed = parse_args(["--workdir", "w", "--tiny", "--epochs", "1", "--accelerator", "cpu", "--image-size", "32"])
    assert parsed == DemoOptions(workdir="w", image_size=32, **DEMO_OPTIONS)
