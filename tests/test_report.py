"""The sweep's ``report.html``: the data kept per category, the page, resume, and the page in a real browser."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from anomalib_glocalclip import GlocalCLIP
from anomalib_glocalclip.data.catalogue import get_dataset
from anomalib_glocalclip.demo.datasets import generate_mvtec_ad
from anomalib_glocalclip.evaluation import CategoryResult, evaluate, paper_frame
from anomalib_glocalclip.evaluation import sweep as sweep_module
from anomalib_glocalclip.evaluation.report import REPORT_FILE, score_curves, write_report
from anomalib_glocalclip.evaluation.report_data import (
    PixelHistograms,
    ReportCollector,
    ReportData,
    histogram_roc,
    report_data_path,
)
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG
from browser import PageWatch, chromium  # noqa: F401

TINY = {"backbone": str(TINY_CLIP_CONFIG), "pretrained": None, "image_size": 64, "sigma": 1.0}
CATEGORIES = ("bottle", "carpet")
SCREENSHOTS_ENV = "ANOMALIB_GLOCALCLIP_SCREENSHOTS"


# ----- the data kept per category -----


def _exact_auroc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """P(anomalous > normal) + P(tie) / 2, over every pair."""
    greater = (anomalous[:, None] > normal[None, :]).mean()
    return float(greater + 0.5 * (anomalous[:, None] == normal[None, :]).mean())


def test_pixel_roc_from_histograms_is_exact_at_the_edges() -> None:
    rng = np.random.default_rng(0)
    normal, anomalous = rng.normal(0, 1, 3000), rng.normal(1.2, 1.5, 1000)
    scores, labels = np.r_[normal, anomalous], np.r_[np.zeros(3000, bool), np.ones(1000, bool)]
    order = np.argsort(np.abs(scores))  # the first batch covers a narrow range: the bins must widen both ways
    histograms = PixelHistograms(bins=256)
    for chunk in np.array_split(order, 7):
        histograms.add(torch.from_numpy(scores[chunk]), torch.from_numpy(labels[chunk]))
    histograms.add(torch.tensor([math.nan, math.inf]), torch.tensor([True, False]))  # left out

    assert histograms.counts.sum(axis=1).tolist() == [3000, 1000]
    edges = histograms.edges
    assert edges[0] <= scores.min()
    assert scores.max() < edges[-1]
    fpr, tpr = histogram_roc(histograms.counts)
    np.testing.assert_allclose(fpr, [(normal >= edge).mean() for edge in edges], atol=1e-12)
    np.testing.assert_allclose(tpr, [(anomalous >= edge).mean() for edge in edges], atol=1e-12)
    # the area differs from the exact AUROC by at most half the share of (normal, anomalous) pairs in one bin
    area = float(np.trapezoid(tpr[::-1], fpr[::-1]))
    shares = histograms.counts / histograms.counts.sum(axis=1, keepdims=True)
    same_bin = float((shares[0] * shares[1]).sum())
    assert abs(area - _exact_auroc(normal, anomalous)) <= 0.5 * same_bin + 1e-12
    assert 0 < same_bin < 0.05


def test_score_curves_are_exact_with_ties() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    labels = np.array([1, 1, 0, 1, 0])
    curves = score_curves(scores, labels)
    np.testing.assert_allclose(curves.fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(curves.tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(curves.precision, [1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(curves.recall, [1 / 3, 2 / 3, 1, 1])
    assert curves.auroc == pytest.approx(_exact_auroc(scores[labels == 0], scores[labels == 1]))
    assert curves.ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 4)  # recall gained x precision


def _batch(scores: list[float], labels: list[int], first: int) -> SimpleNamespace:
    """A test batch whose anomaly map of image ``i`` is constant ``i``, with masks marking the anomalous ones."""
    n = len(scores)
    index = torch.arange(first, first + n, dtype=torch.float32)
    return SimpleNamespace(
        pred_score=torch.tensor(scores),
        gt_label=torch.tensor(labels),
        anomaly_map=index[:, None, None].expand(n, 32, 32).clone(),
        gt_mask=torch.tensor(labels, dtype=torch.bool)[:, None, None].expand(n, 32, 32),
        image_path=[f"/data/{first + i:03d}.png" for i in range(n)],
    )


def test_worst_cases_are_chosen_right(tmp_path: Path) -> None:
    #          image:   0    1    2    3    4    5    6    7    8    9   10   11
    scores = [0.1, 0.9, 0.7, 0.2, 0.95, 0.6, 0.3, 0.55, 0.8, 0.4, 0.45, 0.65]
    labels = [0, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1]
    collector = ReportCollector(n_worst=3, map_size=8)
    collector.on_test_start(None, None)  # type: ignore[arg-type]
    for first in range(0, 12, 5):
        collector.on_test_batch_end(None, None, _batch(scores[first : first + 5], labels[first : first + 5], first))
    post_processor = SimpleNamespace(image_threshold=torch.tensor(0.5))
    collector.on_test_end(None, SimpleNamespace(post_processor=post_processor))  # type: ignore[arg-type]
    data = ReportData.load(collector.save(tmp_path / "category.report.npz"))

    assert data.threshold == 0.5
    assert data.paths == [f"/data/{i:03d}.png" for i in range(12)]
    np.testing.assert_allclose(data.scores, scores, rtol=1e-6)
    assert data.labels.tolist() == labels
    # false positives: normal above 0.5, highest first (4, 1, 8, 5, 7); the collector kept the maps of 3
    assert data.worst(anomalous=False, n=3) == [4, 1, 8]
    assert data.worst(anomalous=False) == [4, 1, 8, 5]
    # false negatives: anomalous at or below 0.5, lowest first (3, 6, 9)
    assert data.worst(anomalous=True, n=3) == [3, 6, 9]
    for index in (4, 1, 8, 3, 6, 9):
        np.testing.assert_allclose(data.map_of(index), index)  # each image's own map
    assert data.map_of(2) is None  # an anomalous image above the threshold: not a candidate, no map kept
    assert data.map_of(5) is None  # the fourth false positive: its map not kept
    assert data.map_range.tolist() == [0, 11]
    assert data.pixel_counts.sum(axis=1).tolist() == [7 * 32 * 32, 5 * 32 * 32]
    assert ReportData(threshold=math.nan).worst(anomalous=False) == []


def _hand_made(paths: list[str], labels: list[int], pixels: bool) -> ReportData:
    scores = np.linspace(0.1, 0.9, len(paths)).astype(np.float32)
    counts = np.array([[5, 3, 1, 0], [0, 1, 2, 4]]) if pixels else np.zeros((2, 0), np.int64)
    return ReportData(
        paths=paths, scores=scores, labels=np.asarray(labels, np.int8), threshold=0.5,
        kept=np.arange(len(paths)), maps=np.ones((len(paths), 8, 8), np.float16), map_range=np.array([0.0, 2.0]),
        pixel_edges=np.arange(5.0) if pixels else np.zeros(0), pixel_counts=counts,
    )


def test_report_shows_what_each_category_allows(tmp_path: Path) -> None:
    """Plots follow the data (one class: no image curves; no masks: no pixel ROC); failures show their error."""
    image = tmp_path / "images" / "a.png"
    image.parent.mkdir()
    generate_mvtec_ad(tmp_path / "mvtec", ["bottle"], n_train=1, n_test_good=1, n_test_bad=1, image_size=32)
    shutil.copy(next((tmp_path / "mvtec").rglob("test/good/*.png")), image)
    moved = str(tmp_path / "gone" / "b.png")  # deleted since the sweep: its tile is drawn without the image
    cases = {
        "polyps": (_hand_made([str(image), moved, str(image)], [1, 1, 1], pixels=True), 0, 2),
        "headct": (_hand_made([str(image), moved, str(image), moved], [0, 1, 0, 1], pixels=False), 1, 1),
    }
    results = []
    for category, (data, *_) in cases.items():
        data.save(report_data_path(tmp_path, category))
        results.append(CategoryResult(category, "ok", n_images=len(data.paths), duration_s=2.0))
    results += [
        CategoryResult("broken", "failed", error="ImageReadError: /data/x.png is truncated", duration_s=0.5),
        CategoryResult("older", "ok", duration_s=1.0),  # finished before reports were kept
    ]
    table = paper_frame(results, get_dataset("mvtec_ad"))
    page = write_report(tmp_path, results, table, "hand-made", ["Model: `AnoCLIP(pretrained='openai')`."]).read_text(
        encoding="utf-8")
    sections = _sections(page)
    assert "<li>Model: <code>AnoCLIP(pretrained=&#x27;openai&#x27;)</code>.</li>" in page  # Markdown rendered
    assert "random-weights" not in page  # no settings file: nothing said about the weights

    assert re.findall(r'<figure><img[^>]+alt="([^"]+)">', sections["polyps"]) == ["pixel ROC", "image score histogram"]
    assert re.findall(r'<figure><img[^>]+alt="([^"]+)">', sections["headct"]) == [
        "image ROC", "image precision-recall", "image score histogram"
    ]
    for category, (data, n_false_positives, n_false_negatives) in cases.items():
        assert len(data.worst(anomalous=False)) == n_false_positives
        assert len(data.worst(anomalous=True)) == n_false_negatives
        assert _case_count(sections[category]) == n_false_positives + n_false_negatives
    assert "gone/b.png" in sections["headct"]  # the moved image's tile (scores 0.37: a false negative)
    assert '<p class="error">failed: ImageReadError: /data/x.png is truncated</p>' in sections["broken"]
    assert "took 0.5 s" in sections["broken"]
    assert "No report data" in sections["older"]
    for category in ("polyps", "headct"):  # the maps' range of the category, one scale for all its tiles
        bar = r'<p class="colour-bar">0 <span[^>]+linear-gradient\(90deg,#000080,[^>]+,#800000\)"></span> 2: '
        assert re.search(bar + "raw anomaly-map score, one scale shared by every heatmap", sections[category])


@pytest.mark.parametrize(("model", "random"), [
    ("AnoCLIP(backbone='tiny-clip', pretrained=None)", True),
    ("config c.yaml: {'init_args': {'pretrained': 'none'}}", True),
    ("AnoCLIP(pretrained='openai')", False),
    ("GlocalCLIP(prompt_weights='p.pt')", False),  # the method's default weights
])
def test_report_says_when_the_weights_are_random(tmp_path: Path, model: str, random: bool) -> None:
    (tmp_path / "sweep.json").write_text(json.dumps({"model": model}), encoding="utf-8")
    page = write_report(tmp_path, [], paper_frame([], get_dataset("mvtec_ad")), "t").read_text(encoding="utf-8")
    assert ('<p class="banner" id="random-weights">Random CLIP weights' in page) == random


# ----- the sweep's report -----


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MVTec AD miniature (bottle, carpet: 5 good and 4 bad test images each) and a tiny random prompt file."""
    root = tmp_path_factory.mktemp("data")
    torch.manual_seed(0)
    prompts = GlocalCLIP(**TINY).save_prompts(root / "prompts.pt")
    mvtec = generate_mvtec_ad(root / "mvtec", CATEGORIES, n_train=1, n_test_good=5, n_test_bad=2,
                              defects=("scratch", "crack"), image_size=96)
    return {"mvtec": mvtec, "prompts": prompts}


def run_sweep(data: dict[str, Path], output: Path, root: Path | None = None, **kwargs: Any) -> Any:
    model = functools.partial(GlocalCLIP, prompt_weights=str(data["prompts"]), **TINY)
    return evaluate(model, "mvtec_ad", root or data["mvtec"], output=output, accelerator="cpu", num_workers=0,
                    batch_size=4, progress=False, heatmaps=False, **kwargs)


@pytest.fixture(scope="module")
def sweep(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("sweep")
    run_sweep(data, output)
    return output


def _sections(page: str) -> dict[str, str]:
    """The HTML of each category's section."""
    parts = re.split(r'<section class="category" id="category-', page)[1:]
    return {part.split('"', 1)[0]: part for part in parts}


def _case_count(section: str) -> int:
    return section.count('<figure class="case">')


def test_report_has_every_categorys_sections(sweep: Path) -> None:
    page = (sweep / REPORT_FILE).read_text(encoding="utf-8")
    assert '<table class="dataframe paper">' in page
    assert re.findall(r"<tr>\s*<td>([^<]+)</td>", page) == [*CATEGORIES, "mean"]  # the paper table's rows
    assert not re.search(r"https?://", page)  # nothing fetched
    assert "<script" not in page
    assert "`" not in page  # the footnotes' Markdown rendered
    assert "<code>" in page
    assert "mean nothing" in page  # the tiny random CLIP's banner
    sections = _sections(page)
    assert list(sections) == list(CATEGORIES)
    metrics = {
        category: sweep_module.ResultStore(sweep).load(category).metrics  # type: ignore[union-attr]
        for category in CATEGORIES
    }
    for category, section in sections.items():
        data = ReportData.load(report_data_path(sweep, category))
        assert len(data.paths) == 9
        assert data.labels.sum() == 4
        assert math.isfinite(data.threshold)
        # the collector sees the scores the metrics are computed on: its ROC gives the table's image AUROC
        curves = score_curves(data.scores, data.labels)
        assert curves.auroc == pytest.approx(metrics[category]["image_AUROC"])
        assert curves.ap == pytest.approx(metrics[category]["image_AUPR"])
        fpr, tpr = histogram_roc(data.pixel_counts)
        assert float(np.trapezoid(tpr[::-1], fpr[::-1])) == pytest.approx(metrics[category]["pixel_AUROC"], abs=0.01)
        alts = re.findall(r'<figure><img src="data:image/png;base64,[^"]+" alt="([^"]+)">', section)
        assert alts == ["image ROC", "image precision-recall", "pixel ROC", "image score histogram"]
        assert "Worst false positives" in section
        assert section.count('class="colour-bar"') == 1
        assert "Worst false negatives" in section
        worst = data.worst(anomalous=False) + data.worst(anomalous=True)
        assert _case_count(section) == len(worst)
        for index in worst:
            assert "/".join(Path(data.paths[index]).parts[-3:]) in section
        assert re.search(r"took \d+\.\d s", section)


def test_resumed_sweep_reports_every_category_and_failures(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mvtec"
    shutil.copytree(data["mvtec"], root)
    image = next((root / "bottle" / "test" / "good").glob("*.png"))
    original = image.read_bytes()
    image.write_bytes(original[:100])  # a truncated download: bottle fails
    output = tmp_path / "sweep"
    run_sweep(data, output, root)
    sections = _sections((output / REPORT_FILE).read_text(encoding="utf-8"))
    assert list(sections) == list(CATEGORIES)
    assert re.search(r'<p class="error">failed: [^<]*' + re.escape(image.name), sections["bottle"])
    assert "<img" not in sections["bottle"]
    assert sections["carpet"].count("<figure><img") == 4

    image.write_bytes(original)  # repaired: the rerun tests bottle only, the report covers both
    calls: list[str] = []
    original_call = sweep_module._CategoryRun.__call__
    monkeypatch.setattr(sweep_module._CategoryRun, "__call__",
                        lambda self, category: calls.append(category) or original_call(self, category))
    carpet_data = report_data_path(output, "carpet").read_bytes()
    run_sweep(data, output, root)
    assert calls == ["bottle"]
    assert report_data_path(output, "carpet").read_bytes() == carpet_data
    sections = _sections((output / REPORT_FILE).read_text(encoding="utf-8"))
    for category in CATEGORIES:
        assert sections[category].count("<figure><img") == 4, category
        assert 'class="error"' not in sections[category]


def test_normalised_sweep_reports_raw_scores_and_the_raw_threshold(
    sweep: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """With --normalize-scores the plots stay on the raw scale: the same scores and threshold as a raw sweep."""
    run_sweep(data, tmp_path, categories=["bottle"], normalize=True)
    normalised = ReportData.load(report_data_path(tmp_path, "bottle"))
    raw = ReportData.load(report_data_path(sweep, "bottle"))
    np.testing.assert_allclose(normalised.scores, raw.scores, rtol=1e-5)
    assert normalised.threshold == pytest.approx(raw.threshold, rel=1e-5)
    assert normalised.scores.min() <= normalised.threshold <= normalised.scores.max()


# ----- in a real browser -----


def test_report_renders_offline_in_a_browser(sweep: Path, chromium: Any, tmp_path: Path) -> None:  # noqa: F811
    watch = PageWatch()
    # 1250 x 1250 CSS pixels at scale 0.8: a 1000 x 1000 screenshot of the table and the first category
    page = watch.attach(chromium.new_page(viewport={"width": 1250, "height": 1250}, device_scale_factor=0.8))
    try:
        page.goto((sweep / REPORT_FILE).as_uri())
        page.wait_for_load_state("load")
        assert page.locator("table.paper").count() == 1
        assert page.locator("table.paper tbody tr").count() == len(CATEGORIES) + 1  # categories and mean
        assert page.locator("section.category").count() == len(CATEGORIES)
        assert page.locator("#random-weights").is_visible()
        assert page.locator(".colour-bar").count() == len(CATEGORIES)
        for category in CATEGORIES:
            section = page.locator(f"#category-{category}")
            assert section.locator(".plots img").count() == 4
            assert section.locator("h3", has_text="Worst false positives").count() == 1
            assert section.locator("h3", has_text="Worst false negatives").count() == 1
        cases = sum(
            len(each.worst(anomalous)) for each in (ReportData.load(report_data_path(sweep, c)) for c in CATEGORIES)
            for anomalous in (False, True)
        )
        assert page.locator("figure.case img").count() == cases
        # every picture decoded: a broken data URI has no natural width
        widths = page.locator("img").evaluate_all("images => images.map(image => image.naturalWidth)")
        assert len(widths) == 4 * len(CATEGORIES) + cases
        assert all(width > 0 for width in widths)
        page.screenshot(path=str(tmp_path / "report.png"))
        if os.environ.get(SCREENSHOTS_ENV):
            folder = Path(os.environ[SCREENSHOTS_ENV])
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / "report.png"))
    finally:
        page.close()
    assert watch.console_errors == []
    assert watch.page_errors == []
    assert watch.external_requests == []
    assert (tmp_path / "report.png").stat().st_size > 0
