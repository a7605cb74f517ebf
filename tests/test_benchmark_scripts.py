"""The speed benchmarks run end to end (on the tiny CLIP; they print figures, nothing here checks a time)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_inference_speed_table(cli, tmp_path: Path) -> None:
    result = cli("python", str(BENCHMARKS / "inference_speed.py"), "--tiny", "--device", "cpu", "--batch-sizes", "2",
                 "--iterations", "1", "--models", "ViT-L-14 bare", "ViT-L-14 encoder", "ViT-L-14 batch-first",
                 "GlocalCLIP", "GlocalCLIP 4-shot", "AnoCLIP+", "WinCLIP", "--json", str(tmp_path / "rows.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + 7 * 2  # header + 7 models x 2 precisions
    assert "| GlocalCLIP | bf16 | 2 |" in result.stdout
    assert "| GlocalCLIP 4-shot | fp32 | 2 |" in result.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())
    bare = {row["precision"]: row["images_per_s"] for row in rows if row["model"] == "ViT-L-14 bare"}
    for row in rows:  # every ratio is taken against the bare encoder of the same run and precision
        assert row["vs_bare"] == pytest.approx(row["images_per_s"] / bare[row["precision"]])


def test_training_speed_table(cli, tmp_path: Path) -> None:
    result = cli("python", str(BENCHMARKS / "training_speed.py"), "--tiny", "--images", "24", "--epochs", "2",
                 "--workers", "0", "--accelerator", "cpu", "--data", str(tmp_path / "data"),
                 "--output", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "caching pass" in result.stdout
    assert "Epoch speed-up from the cache" in result.stdout


def test_training_speed_compiled_step_and_operation_counts(cli, tmp_path: Path) -> None:
    result = cli("python", str(BENCHMARKS / "training_speed.py"), "--tiny", "--images", "24", "--epochs", "2",
                 "--workers", "0", "--accelerator", "cpu", "--data", str(tmp_path / "data"),
                 "--output", str(tmp_path / "runs"), "--compile", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "compile=True: first epoch on cached features" in result.stdout
    assert "Cached-epoch speed-up from compile=True" in result.stdout

    result = cli("python", str(BENCHMARKS / "training_speed.py"), "--count-ops", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith(("| eager", "| compile"))]
    totals = {(row[1].strip(), int(row[2])): int(row[5]) for row in rows}
    assert len(totals) == 6  # 3 variants x (1, 4) map layers
    for layers in (1, 4):
        loop = totals["eager, per-layer loss loop (before issue 17)", layers]
        batched = totals["eager, batched loss", layers]
        assert totals["compile=True (inductor)", layers] < batched <= loop


def test_reader_check_speed_times_the_run_with_and_without_the_check(cli, tmp_path: Path) -> None:
    result = cli("python", str(BENCHMARKS / "reader_check_speed.py"), "--tiny", "--workers", "0", "--accelerator",
                 "cpu", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Engine.test on 6 test images of 64 px" in result.stdout
    without, with_check = (float(seconds) for seconds in re.findall(r"reader check: +([\d.]+) s", result.stdout))
    ratio = float(re.search(r"ratio with/without: ([\d.]+)", result.stdout).group(1))
    assert ratio == pytest.approx(with_check / without, abs=0.01)
    assert "decoding the same files once, serially" in result.stdout


def test_gpu_session_script_names_only_existing_options(cli) -> None:
    """``gpu_session.sh`` is valid bash and every option it passes exists in the script it calls."""
    script = BENCHMARKS / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    calls = re.findall(r"python3 benchmarks/(\w+\.py)((?:[^\n]|\\\n)*)", script.read_text())
    options: dict[str, set[str]] = {}
    for name, arguments in calls:
        options.setdefault(name, set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", arguments))
    assert set(options) == {"inference_speed.py", "evaluate_speed.py", "training_speed.py"}
    for name, used in options.items():
        usage = cli("python", str(BENCHMARKS / name), "--help")
        assert usage.returncode == 0, usage.stderr[-2000:]
        for option in used:
            assert option in usage.stdout, (name, option)
