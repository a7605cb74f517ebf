"""MuSc's parity and speed scripts: their comparison arithmetic, and the speed script's plugin half end to end.

The reference half needs a checkout of ``xrli-U/MuSc``, so it is not run here (the README gives the figures).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def parity():
    spec = importlib.util.spec_from_file_location("musc_parity", BENCHMARKS / "musc_parity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _reference(scores: list[float], maps: np.ndarray) -> dict[str, np.ndarray]:
    return {"paths": np.array(["/a.png", "/b.png"]), "scores_1_2_3": np.array(scores), "maps": maps}


def test_compare_matches_by_path_and_measures_relative_error(parity) -> None:
    maps = np.full((2, 3, 3), 0.5)
    reference = _reference([0.2, 0.4], maps)
    # the plugin's rows come in another order; /b's score is off by 1e-5 relative, its map by 3e-4
    plugin = {"/b.png": (0.4 * (1 + 1e-5), maps[1] * (1 + 3e-4)), "/a.png": (0.2, maps[0])}
    scores, anomaly_maps = parity.compare("run", plugin, reference, "1_2_3", rtol=1e-4)
    assert scores[1:4] == ("image score (1_2_3)", 2, pytest.approx(0.4e-5))
    assert scores[4] == pytest.approx(1e-5)
    assert scores[5] is True
    assert anomaly_maps[3:5] == (pytest.approx(0.5 * 3e-4), pytest.approx(3e-4))
    assert anomaly_maps[5] is False


def test_compare_refuses_different_files_or_shapes(parity) -> None:
    reference = _reference([0.2, 0.4], np.zeros((2, 3, 3)))
    with pytest.raises(SystemExit, match="different files"):
        parity.compare("run", {"/a.png": (0.2, np.zeros((3, 3)))}, reference, "1_2_3", rtol=1e-4)
    plugin = {"/a.png": (0.2, np.zeros((4, 4))), "/b.png": (0.4, np.zeros((4, 4)))}
    with pytest.raises(SystemExit, match="shapes differ"):
        parity.compare("run", plugin, reference, "1_2_3", rtol=1e-4)


def test_rscin_margin_is_the_smallest_gap_at_each_k(parity) -> None:
    # unit rows at angles 0, 0.1, 0.3 rad: similarities cos(0.1)=.995, cos(0.2)=.980, cos(0.3)=.955
    angles = np.array([0.0, 0.1, 0.3])
    tokens = np.stack([np.cos(angles), np.sin(angles)], 1)
    similarity = np.cos(angles[:, None] - angles[None, :])
    gaps_at_2 = [sorted(row, reverse=True)[1] - sorted(row, reverse=True)[2] for row in similarity]
    assert parity.rscin_margin(tokens, [2]) == pytest.approx(min(gaps_at_2))
    assert parity.rscin_margin(tokens, [1]) == pytest.approx(1 - np.cos(0.1))  # self vs the nearest other
    assert parity.rscin_margin(tokens, [1, 2, 9]) == pytest.approx(min(*gaps_at_2, 1 - np.cos(0.1)))


@pytest.mark.slow
def test_speed_script_times_the_plugin_on_the_tiny_clip(cli, tmp_path: Path) -> None:
    result = cli("python", str(BENCHMARKS / "musc_speed.py"), "--tiny", "--device", "cpu", "--sizes", "3",
                 "--workdir", str(tmp_path), "--json", str(tmp_path / "rows.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 3 |" in result.stdout
    (row,) = json.loads((tmp_path / "rows.json").read_text())
    assert row["n"] == 3
    assert row["plugin_ms"] > 0
    assert row["plugin_peak_mb"] > 0
    assert "speed_up" not in row  # no reference checkout given
