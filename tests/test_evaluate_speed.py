"""``benchmarks/evaluate_speed.py``: its data set, its fitted costs and a ``--tiny`` run (no time is asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from anomalib.data import MVTecAD
from PIL import Image

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "evaluate_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("evaluate_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the process pool pickles its writer function by module name
    spec.loader.exec_module(module)
    return module


def test_full_set_has_mvtec_ad_test_counts(bench) -> None:
    counts = bench.MVTEC_AD_TEST_COUNTS
    assert len(counts) == 15
    assert sum(normal for normal, _ in counts.values()) == 467
    assert sum(anomalous for _, anomalous in counts.values()) == 1258


def test_generated_set_reads_as_mvtec_ad_and_is_reused(bench, tmp_path: Path) -> None:
    counts = {"bottle": (2, 3), "carpet": (1, 2)}
    root = tmp_path / "set"
    assert bench.make_dataset(root, counts, 48, processes=2) > 0
    datamodule = MVTecAD(root=root, category="carpet", num_workers=0)
    datamodule.setup()
    samples = datamodule.test_data.samples
    assert sorted(samples["label_index"].astype(int)) == [0, 1, 1]
    for _, sample in samples[samples["label_index"] == 1].iterrows():
        mask = Image.open(sample["mask_path"])
        assert mask.size == (48, 48)
        assert 0 < (bench.np.asarray(mask) > 0).sum() < 48 * 48
    stamp = (root / "bottle" / "test" / "good" / "000.png").stat().st_mtime_ns
    assert bench.make_dataset(root, counts, 48, processes=2) == 0.0  # reused: the manifest matches
    assert (root / "bottle" / "test" / "good" / "000.png").stat().st_mtime_ns == stamp
    assert bench.make_dataset(root, {"bottle": (1, 1)}, 48, processes=1) > 0  # other counts: written anew
    assert not (root / "carpet").exists()


def test_fixed_and_per_image_costs_from_category_durations(bench) -> None:
    # duration = 9 + 0.16 * images; the first category (warm-up) is off the line and left out.
    durations = [(80, 30.0), (83, 9 + 0.16 * 83), (150, 9 + 0.16 * 150), (42, 9 + 0.16 * 42)]
    fixed, per_image = bench._fit_line(durations)
    assert fixed == pytest.approx(9.0)
    assert per_image == pytest.approx(0.16)
    assert bench._fit_line([(80, 30.0), (83, 1.0), (83, 2.0)]) is None  # no spread in image counts
    assert bench._fit_line([(80, 30.0), (90, 2.0)]) is None  # one category after the warm-up one


def test_metrics_on_host_swaps_anomalib_aupro_back(bench) -> None:
    from anomalib.metrics import AUPRO as AnomalibAUPRO  # noqa: N811 - the plugin's has the same name

    from anomalib_glocalclip.evaluation.models import sweep_evaluator
    from anomalib_glocalclip.metrics import AUPRO

    evaluator = sweep_evaluator()
    assert evaluator.compute_on_cpu is False  # the sweep keeps metric states on the device
    names = [metric.name for metric in evaluator.test_metrics]
    new = next(metric for metric in evaluator.test_metrics if type(metric) is AUPRO)
    assert bench.metrics_on_host(evaluator) is evaluator
    assert evaluator.compute_on_cpu is True
    assert [metric.name for metric in evaluator.test_metrics] == names
    old = next(metric for metric in evaluator.test_metrics if metric.name == "pixel_AUPRO")
    assert type(old) is AnomalibAUPRO
    assert (new.fields, new.strict, float(new.fpr_limit)) == (old.fields, old.strict, float(old.fpr_limit))


@pytest.mark.slow
def test_tiny_run_prints_every_figure(bench, cli, tmp_path: Path) -> None:
    result = cli("python", str(SCRIPT), "--tiny", "--processes", "2", "--data", str(tmp_path / "data"),
                 "--output", str(tmp_path / "runs"), "--json", str(tmp_path / "figures.json"),
                 env={"ANOMALIB_GLOCALCLIP_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("total s", "images/s", "fixed s per category", "loading s", "model s", "metrics s", "heatmaps s",
                "tables s", "peak GPU GiB"):
        assert f"| {row} |" in result.stdout
    assert "| figure | with heatmaps | no heatmaps | no heatmaps, metrics on host |" in result.stdout
    assert "Sweep (no heatmaps) / forward:" in result.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    with_maps, without = figures["sweeps"]["with heatmaps"], figures["sweeps"]["no heatmaps"]
    assert with_maps["test images"] == without["test images"] == 11  # bottle 2 + 3, carpet 2 + 4
    assert with_maps["model s"] > 0
    assert with_maps["metrics s"] > 0
    assert with_maps["heatmaps s"] > 0
    assert without["heatmaps s"] == 0
    assert figures["forward images/s"] > 0
    # The spans are parts of the sweep's wall time, not more.
    assert sum(with_maps[f"{name} s"] for name in bench.SPANS) <= with_maps["total s"]
    assert len(list((tmp_path / "runs" / "heatmaps" / "heatmaps").rglob("*.png"))) == 11
    assert not (tmp_path / "runs" / "no_heatmaps" / "heatmaps").exists()
    # Metric states on the device and the plugin's AUPRO: the same numbers, pixel metrics included.
    on_device, on_host = figures["metrics"]["no heatmaps"], figures["metrics"]["no heatmaps, metrics on host"]
    assert set(on_device["carpet"]) >= {"pixel_AUROC", "pixel_AUPRO", "pixel_ReferenceAUPRO", "image_AUROC"}
    for category, values in on_host.items():
        assert on_device[category] == pytest.approx(values, abs=1e-6)
    assert "Largest metric difference between the sweeps:" in result.stdout
    assert "Pixel metrics on one category-sized stack (4 maps of 64 px)" in result.stdout
    seconds = figures["pixel metric seconds"]
    assert set(seconds) == {"pixel_AUROC", "pixel_ReferenceAUPRO", "pixel_AUPRO", "pixel_F1Max", "pixel_AUPRO (plugin)"}
    assert all(row["cpu"] > 0 for row in seconds.values())
    # anomalib test's two passes against the sweep's one pass: the same metrics.
    assert "`anomalib test` (validate + test) vs `evaluate` (one pass) on bottle (5 images" in result.stdout
    engine_test = figures["engine test"]
    assert engine_test["anomalib test s"] > 0
    assert engine_test["evaluate s"] > 0
    assert engine_test["ratio"] == pytest.approx(engine_test["anomalib test s"] / engine_test["evaluate s"])
    assert engine_test["metric difference"] < 1e-6

