"""The examples run on their own generated data and print their metrics once and full paths a user can open."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *arguments: str, cwd: Path) -> str:
    """Run ``examples/<name>`` with this interpreter in ``cwd``; return its standard output."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", "ANOMALIB_GLOCALCLIP_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def printed_paths(text: str, label: str) -> list[Path]:
    """The paths printed after ``label`` (``"Heatmaps: /x/y"``) or before it (``"/x/y.png: score"``)."""
    if label.startswith(":"):
        return [Path(found) for found in re.findall(rf"^(\S+){re.escape(label)}", text, flags=re.MULTILINE)]
    return [Path(found) for found in re.findall(rf"^{re.escape(label)} (\S+)$", text, flags=re.MULTILINE)]


@pytest.mark.slow
def test_glocalclip_example_prints_paths_that_exist(tmp_path: Path) -> None:
    text = run_example("glocalclip_learn_and_test.py", "--epochs", "1", "--workdir", "out", cwd=tmp_path)
    workdir = tmp_path / "out"
    (prompts,) = printed_paths(text, "Learned prompts:")
    (heatmaps,) = printed_paths(text, "Heatmaps:")
    (predictions,) = printed_paths(text, "Predictions:")
    images = printed_paths(text, ": score")
    assert prompts.is_absolute()
    assert prompts.is_file()
    assert heatmaps.is_absolute()
    assert list(heatmaps.rglob("*.png"))
    assert predictions.is_absolute()
    assert predictions.is_file()
    test_images = sorted((workdir / "data" / "mvtec" / "bottle" / "test").rglob("*.png"))
    assert sorted(images) == test_images  # every test image once, by its full path
    assert text.count("image_AUROC") == 1
    assert "normalised scores" in text


@pytest.mark.slow
def test_anoclip_example_prints_each_models_metrics_once(tmp_path: Path) -> None:
    text = run_example("anoclip_zero_shot.py", "--workdir", "out", cwd=tmp_path)
    assert text.count("image_AUROC") == 2  # AnoCLIP, AnoCLIP+
    assert text.count("normalised scores") == 2
    heatmaps = printed_paths(text, "Heatmaps:")
    assert len(heatmaps) == 2
    assert all(path.is_absolute() and list(path.rglob("*.png")) for path in heatmaps)
