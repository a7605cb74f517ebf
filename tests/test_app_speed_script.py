"""``benchmarks/app_speed.py`` runs end to end on the tiny CLIP (it prints figures; nothing here checks a time)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parents[1] / "benchmarks" / "app_speed.py"


def test_app_speed_prints_the_three_paths_and_their_ratios(cli) -> None:
    pytest.importorskip("gradio")
    result = cli("python", str(SCRIPT), "--tiny", "--size", "96", "--repeats", "1", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seconds = dict(re.findall(r"^\| (bare scoring|Engine.predict|page round trip) \| ([0-9.]+) \|$", result.stdout,
                              flags=re.MULTILINE))
    assert set(seconds) == {"bare scoring", "Engine.predict", "page round trip"}
    assert "(gradio_client)" in result.stdout  # through the page's HTTP API, not a direct call
    ratio = float(re.search(r"Ratio page / bare scoring: ([0-9.]+)", result.stdout).group(1))
    expected = float(seconds["page round trip"]) / float(seconds["bare scoring"])
    assert ratio == pytest.approx(expected, rel=0.05, abs=0.02)
    assert "Ratio page / Engine.predict:" in result.stdout
