"""A sweep's ``report.html`` (README, "The sweep's report"), drawn from what the sweep keeps on disk.

One file that opens offline (pictures as data URIs, inline style, no script), covering a resumed sweep's earlier
runs too. Plots use matplotlib's object API (``Figure`` on an Agg canvas): pyplot's global state is left alone.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from anomalib_glocalclip.components.heatmap_overlay import colour_bar_html, draw_heatmap
from anomalib_glocalclip.data.io import read_image
from anomalib_glocalclip.utils.files import atomic_write_text

from .report_data import PIXEL_BINS, ReportData, histogram_roc, report_data_path
from .store import SETTINGS_FILE, CategoryResult
from .tables import COLUMN_TITLES

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TILE_SIZE = 200
NORMAL_COLOUR, ANOMALOUS_COLOUR = "#1f77b4", "#d62728"
CODE_SPAN = re.compile(r"`([^`]+)`")  # the footnotes' only Markdown
RANDOM_WEIGHTS = re.compile(r"pretrained'?\s*[=:]\s*(None|'(none|null|random)?')", re.IGNORECASE)  # in sweep.json
RANDOM_BANNER = "Random CLIP weights (pretrained: none): the numbers, curves and heatmaps of this report mean nothing."

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table.paper { border-collapse: collapse; margin: 0.5em 0; } table.paper td:last-child { text-align: left; }
table.paper th, table.paper td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
section.category { border-top: 2px solid #ddd; margin-top: 1.5em; } figure { margin: 0; }
.plots, .cases { display: flex; flex-wrap: wrap; gap: 8px; } .error { color: #b00020; } .muted { color: #666; }
figure.case { width: 200px; font-size: 12px; word-break: break-all; }
.banner { background: #fff3cd; border: 1px solid #d4a000; padding: 6px 10px; font-weight: 600; }
"""


def roc_area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC points ``(fpr, tpr)`` (``[K]`` each, in either order), by trapezoids."""
    return abs(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))  # numpy 1.x has no np.trapezoid


class Curves(NamedTuple):
    """Exact ROC and precision-recall points of image scores, one per distinct score from the highest down."""

    fpr: np.ndarray  # starting at 0
    tpr: np.ndarray  # starting at 0
    precision: np.ndarray
    recall: np.ndarray

    @property
    def auroc(self) -> float:
        """Area under the ROC curve (trapezoids: ties count half)."""
        return roc_area(self.fpr, self.tpr)

    @property
    def ap(self) -> float:
        """Average precision: the sum of the precisions weighted by the recall each adds."""
        return float(np.sum(np.diff(self.recall, prepend=0.0) * self.precision))


def score_curves(scores: np.ndarray, labels: np.ndarray) -> Curves:
    """The :class:`Curves` of image ``scores`` (``[N]``) against ``labels`` (``[N]``, 1 anomalous)."""
    order = np.argsort(-scores, kind="stable")
    ordered, positive = scores[order], labels[order] == 1
    last = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]  # the last index of each distinct score
    tp = np.cumsum(positive)[last].astype(float)
    fp = (last + 1) - tp
    recall = tp / max(tp[-1], 1)
    return Curves(np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, recall], tp / (tp + fp), recall)


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(2.9, 2.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10)
    axes.tick_params(labelsize=8)
    return figure, axes


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _percent(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def _curve_figure(x: np.ndarray, y: np.ndarray, title: str, roc: bool = True) -> str:
    """A ROC curve (``x`` false, ``y`` true positive rates) or a precision (``y``)-recall (``x``) step curve."""
    figure, axes = _figure(title)
    if roc:
        axes.plot([0, 1], [0, 1], color="#999", linestyle=":", linewidth=1)
        axes.plot(x, y, color=ANOMALOUS_COLOUR)
    else:
        axes.step(np.r_[0.0, x], np.r_[y[0], y], where="pre", color=ANOMALOUS_COLOUR)
    labels = ("false positive rate", "true positive rate") if roc else ("recall", "precision")
    axes.set(xlabel=labels[0], ylabel=labels[1], xlim=(0, 1), ylim=(0, 1.02))
    return _png(figure)


def _histogram_figure(data: ReportData) -> str:
    figure, axes = _figure("image scores")
    finite = data.scores[np.isfinite(data.scores)]
    edges = np.histogram_bin_edges(finite, bins=int(np.clip(math.sqrt(max(len(finite), 1)) * 2, 10, 40)))
    for label, name, colour in ((0, "normal", NORMAL_COLOUR), (1, "anomalous", ANOMALOUS_COLOUR)):
        selected = data.scores[(data.labels == label) & np.isfinite(data.scores)]
        if len(selected):
            axes.hist(selected, bins=edges, alpha=0.6, color=colour, label=f"{name} ({len(selected)})")
    if math.isfinite(data.threshold):
        axes.axvline(data.threshold, color="#222", linestyle="--", linewidth=1.2,
                     label=f"threshold {data.threshold:.4g}")
    axes.set(xlabel="raw image score", ylabel="images")
    axes.legend(fontsize=7)
    return _png(figure)


def _plots(data: ReportData) -> list[tuple[str, str]]:
    """``(alt text, data URI)`` of each plot the data allows; the areas are those of the curves drawn."""
    plots = []
    if {0, 1} <= set(data.labels.tolist()):
        curves = score_curves(data.scores, data.labels)
        plots.append(("image ROC", _curve_figure(curves.fpr, curves.tpr, f"image ROC, AUROC {_percent(curves.auroc)}")))
        title = f"image PR, AP {_percent(curves.ap)}"
        plots.append(("image precision-recall", _curve_figure(curves.recall, curves.precision, title, roc=False)))
    counts = data.pixel_counts
    if counts.size and counts.sum(axis=1).all():
        fpr, tpr = histogram_roc(counts)
        title = f"pixel ROC, AUROC ≈ {_percent(roc_area(fpr, tpr))}"
        plots.append(("pixel ROC", _curve_figure(fpr, tpr, title)))
    if len(data.scores):
        plots.append(("image score histogram", _histogram_figure(data)))
    return plots


def _heatmap_uri(path: str, heatmap: np.ndarray | None, value_range: tuple[float, float]) -> str:
    """A JPEG data URI of the image at ``path`` (re-read by the plugin's reader) with ``heatmap`` over it."""
    try:
        image = read_image(path)
    except (OSError, ValueError):  # moved or deleted since the sweep: the map alone, on grey
        image = torch.full((3, TILE_SIZE, TILE_SIZE), 128 / 255)
    heatmap = None if heatmap is None else torch.from_numpy(heatmap)
    buffer = io.BytesIO()
    draw_heatmap(image, heatmap, value_range, TILE_SIZE, enlarge=True).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cases(data: ReportData, anomalous: bool) -> str:
    kind = "negatives (anomalous images at or below" if anomalous else "positives (normal images above"
    header = f"<h3>Worst false {kind} the threshold)</h3>"
    chosen = data.worst(anomalous)
    if not chosen:
        reason = "No image threshold was fitted." if math.isnan(data.threshold) else "None."
        return header + f'<p class="muted">{reason}</p>'
    tiles = []
    for index in chosen:
        path = data.paths[index]
        name = "/".join(Path(path).parts[-3:])
        uri = _heatmap_uri(path, data.map_of(index), tuple(map(float, data.map_range)))
        tiles.append(f'<figure class="case"><img src="{uri}" alt="heatmap of {html.escape(name)}">'
                     f'<figcaption>score {data.scores[index]:.4g}<br><span title="{html.escape(path)}">'
                     f"{html.escape(name)}</span></figcaption></figure>")
    return header + f'<div class="cases">{"".join(tiles)}</div>'


def _anchor(category: str) -> str:
    return "category-" + re.sub(r"[^A-Za-z0-9_-]", "_", category)


def _category_section(output: Path, result: CategoryResult) -> str:
    """The HTML of one category: its error line, or its numbers, plots and worst cases."""
    head = (f'<section class="category" id="{_anchor(result.category)}"><h2>{html.escape(result.category)}</h2>'
            f"<p>{result.status}; {result.n_images or 0} test images, {result.n_anomalous or 0} anomalous; "
            f"took {'–' if result.duration_s is None else f'{result.duration_s:.1f} s'}</p>")
    if not result.ok:
        return head + f'<p class="error">{html.escape(f"{result.status}: {result.error}")}</p></section>'
    path = report_data_path(output, result.category)
    if not path.is_file():
        return head + '<p class="muted">No report data (finished by a sweep that kept none).</p></section>'
    try:
        data = ReportData.load(path)
        threshold = f"{data.threshold:.4g}" if math.isfinite(data.threshold) else "none"
        plots = "".join(f'<figure><img src="{uri}" alt="{alt}"></figure>' for alt, uri in _plots(data))
        scale = "raw anomaly-map score, one scale shared by every heatmap of this category"
        bar = colour_bar_html(tuple(map(float, data.map_range)), scale) if np.isfinite(data.map_range).all() else ""
        body = (f"<p>image threshold {threshold} (raw score)</p><div class=\"plots\">{plots}</div>{bar}"
                + _cases(data, anomalous=False) + _cases(data, anomalous=True))
    except Exception as error:  # noqa: BLE001 - one unreadable category leaves the rest of the report
        logger.warning("Report of category %s not drawn: %s", result.category, error)
        body = f'<p class="error">{html.escape(f"Could not draw this category from {path}: {error}")}</p>'
    return head + body + "</section>"


def write_report(
    output: str | Path, results: Sequence[CategoryResult], table: pd.DataFrame, title: str,
    footnotes: Sequence[str] = ()
) -> Path:
    """Write ``report.html`` into the sweep folder ``output`` (whose ``categories/`` hold the report data).

    ``results`` (in table order), ``table`` (``tables.paper_frame``), ``title`` and ``footnotes`` are the tables'.
    Returns the report's path.
    """
    output = Path(output)
    links = " · ".join(f'<a href="#{_anchor(each.category)}">{html.escape(each.category)}</a>' for each in results)
    notes = "".join("<li>" + CODE_SPAN.sub(r"<code>\1</code>", html.escape(note)) + "</li>" for note in footnotes)
    settings = output / SETTINGS_FILE  # the sweep's model description: random CLIP weights get a banner
    random = settings.is_file() and RANDOM_WEIGHTS.search(settings.read_text(encoding="utf-8")) is not None
    banner = f'<p class="banner" id="random-weights">{RANDOM_BANNER}</p>' if random else ""
    paper = table.rename(columns=COLUMN_TITLES).reset_index().to_html(
        classes="paper", index=False, na_rep="–", float_format=lambda value: f"{value:.1f}", border=0
    )
    sections = "".join(_category_section(output, result) for result in results)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{banner}"
        f'<section id="table"><h2>Results</h2><p class="muted">Values x100, one decimal; the mean is over '
        f"categories.</p>{paper}<ul>{notes}</ul></section>"
        f'<p class="muted">Curves, their areas and the histograms use the model\'s raw scores, and the '
        f"post-processor's image threshold on that scale (a table of Anomalib-normalised scores may differ a "
        f"little: normalising clips the scores). The pixel ROC is exact at the edges of {PIXEL_BINS} equal bins "
        f"of the pixel scores and linear between them. Categories: {links}</p>"
        f"{sections}</body></html>\n"
    )
    return atomic_write_text(output / REPORT_FILE, page)

