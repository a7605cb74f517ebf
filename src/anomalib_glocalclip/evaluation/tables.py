"""A sweep's results as the paper's tables: per category and mean, x100 with one decimal.

The paper's image (AUROC, AP) are ``image_AUROC``, ``image_AUPR``; its pixel (AUROC, PRO) are ``pixel_AUROC``,
``pixel_ReferenceAUPRO``; Anomalib's ``AUPRO(fpr_limit=0.3)`` (``pixel_AUPRO``) is reported beside them. Writes
``results.csv`` and ``results.md`` (paper format) and ``metrics.csv`` (full precision, with status and counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from anomalib_glocalclip.data.catalogue import DatasetEntry
from anomalib_glocalclip.utils.files import atomic_write_text

from .store import CategoryResult

IMAGE_COLUMNS = ("image_AUROC", "image_AUPR")
PIXEL_COLUMNS = ("pixel_AUROC", "pixel_ReferenceAUPRO", "pixel_AUPRO")
MEAN_ROW = "mean"

COLUMN_TITLES = {
    "image_AUROC": "image AUROC",
    "image_AUPR": "image AP",
    "pixel_AUROC": "pixel AUROC",
    "pixel_ReferenceAUPRO": "pixel PRO (reference AUPRO)",
    "pixel_AUPRO": "pixel AUPRO (Anomalib)",
}


def paper_columns(entry: DatasetEntry) -> list[str]:
    """The metric columns the paper reports for ``entry``'s dataset, plus Anomalib's AUPRO beside the PRO."""
    columns = list(IMAGE_COLUMNS) if entry.image_metrics else []
    return columns + (list(PIXEL_COLUMNS) if entry.pixel_metrics else [])


def order_results(results: Sequence[CategoryResult], categories: Sequence[str]) -> list[CategoryResult]:
    """``results`` in the dataset's category order; categories not in ``categories`` follow, sorted by name."""
    rank = {category: index for index, category in enumerate(categories)}
    return sorted(results, key=lambda result: (rank.get(result.category, len(rank)), result.category))


def _note(result: CategoryResult) -> str:
    return "" if result.ok else f"{result.status}: {result.error or 'unknown error'}"


def metrics_frame(results: Sequence[CategoryResult]) -> pd.DataFrame:
    """Every metric of every category at full precision (in [0, 1]), with status, error, counts and run time."""
    rows = []
    for result in results:
        row: dict[str, object] = {"category": result.category, **result.metrics}
        row.update(
            status=result.status, n_images=result.n_images, n_anomalous=result.n_anomalous,
            duration_s=result.duration_s, error=result.error or ""
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["category", "status"])
    metric_columns = sorted({name for result in results for name in result.metrics})
    other = ["status", "n_images", "n_anomalous", "duration_s", "error"]
    return frame[["category", *metric_columns, *other]]


def paper_frame(
    results: Sequence[CategoryResult],
    entry: DatasetEntry,
    n_categories: int | None = None,
) -> pd.DataFrame:
    """The paper-format table: one row per category and a ``mean`` row, x100 with one decimal.

    Failed categories get empty cells and a note; the mean is taken over the successful categories' unrounded
    values, then rounded, and says so in its note when it covers fewer than ``n_categories``.
    """
    columns = paper_columns(entry)
    raw = pd.DataFrame(
        [{column: result.metrics.get(column) for column in columns} for result in results],
        index=pd.Index([result.category for result in results], name="category"), columns=columns, dtype=float
    )
    succeeded = raw.loc[[result.ok for result in results]]
    # A metric undefined (NaN) in one category leaves the mean undefined, rather than a mean over fewer categories.
    mean = succeeded.mean(axis=0, skipna=False) if len(succeeded) else pd.Series(math.nan, index=columns)
    mean_row = mean.to_frame(MEAN_ROW).T.rename_axis("category")
    table = pd.concat([raw, mean_row]) if len(raw) else mean_row
    table = (table * 100).round(1) + 0.0  # + 0.0 turns -0.0 (e.g. a negated zero area) into 0.0
    notes = [_note(result) for result in results]
    n_ok, total = len(succeeded), n_categories if n_categories is not None else len(results)
    mean_notes = [] if n_ok == total else [f"mean over {n_ok} of {total} categories"]
    mean_notes += [
        f"{column} undefined in {', '.join(succeeded.index[succeeded[column].isna()])}"
        for column in columns
        if succeeded[column].isna().any()
    ]
    notes.append("; ".join(mean_notes))
    table["note"] = notes
    return table


def _cell(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _pair(row: pd.Series, first: str, second: str) -> str:
    return f"{_cell(row[first])}, {_cell(row[second])}"


def paper_markdown(table: pd.DataFrame, title: str, footnotes: Sequence[str] = ()) -> str:
    """Markdown of :func:`paper_frame`'s table with the paper's pairs: image (AUROC, AP), pixel (AUROC, PRO)."""
    headers = ["category"]
    has_image = "image_AUROC" in table.columns
    has_pixel = "pixel_AUROC" in table.columns
    if has_image:
        headers.append("image (AUROC, AP)")
    if has_pixel:
        headers += ["pixel (AUROC, PRO)", "pixel AUPRO (Anomalib)"]
    headers.append("note")
    lines = [f"# {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for category, row in table.iterrows():
        name = f"**{category}**" if category == MEAN_ROW else str(category)
        cells = [name]
        if has_image:
            cells.append(_pair(row, "image_AUROC", "image_AUPR"))
        if has_pixel:
            cells += [_pair(row, "pixel_AUROC", "pixel_ReferenceAUPRO"), _cell(row["pixel_AUPRO"])]
        cells.append(str(row["note"]).replace("|", "\\|").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "Values x100, one decimal; the mean is over categories, as in the paper.",
        ("PRO is the papers' AUPRO (200 thresholds, FPR < 0.3 min-max rescaled); "
         "pixel AUPRO (Anomalib) is Anomalib's `AUPRO(fpr_limit=0.3)`, another definition."),
        *footnotes,
    ]
    lines += ["", *(f"* {note}" for note in notes), ""]
    return "\n".join(lines)


def write_tables(
    output: str | Path, results: Sequence[CategoryResult], entry: DatasetEntry, title: str,
    n_categories: int | None = None, footnotes: Sequence[str] = ()
) -> pd.DataFrame:
    """Write ``results.csv``, ``results.md`` and ``metrics.csv`` into ``output``; return the paper-format table."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    table = paper_frame(results, entry, n_categories)
    atomic_write_text(output / "results.csv", table.to_csv(float_format="%.1f"))
    atomic_write_text(output / "results.md", paper_markdown(table, title, footnotes))
    atomic_write_text(output / "metrics.csv", metrics_frame(results).to_csv(index=False))
    return table
