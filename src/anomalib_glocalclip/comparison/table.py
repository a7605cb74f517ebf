"""The comparison table: one row per model x category plus a mean row per model, as CSV and Markdown.

Metrics are on Anomalib's normalised scores, as ``anomalib test`` reports them; the table says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from anomalib_glocalclip.utils.files import atomic_write_text

IDENTITY_COLUMNS = ["model", "data", "category", "status", "scores"]
METRIC_ORDER = ["image_AUROC", "image_AUPR", "image_F1Max", "pixel_AUROC", "pixel_AUPRO", "pixel_F1Max"]
DURATION_COLUMNS = ["fit_duration", "test_duration", "job_duration"]
TRAILING_COLUMNS = ["error"]
MEAN_CATEGORY = "mean"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
CSV_NAME = "results.csv"
MARKDOWN_NAME = "results.md"
SCORES = "normalised"
"""Value of the ``scores`` column: the metrics are on Anomalib's normalised scores, not the models' raw ones."""
SCORES_NOTE = (
    "Metrics on Anomalib's normalised scores (min-max from the validation split, clipped to [0, 1]), as "
    "`anomalib test` reports them; `anomalib-glocalclip evaluate` reports raw scores, as the papers do."
)
SCORES_CAPTION = "Metrics on normalised scores, as `anomalib test` (raw scores: `anomalib-glocalclip evaluate`)."


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    """The evaluator's metrics in a fixed order, then any other ``image_``/``pixel_`` metric found."""
    found = [column for column in frame.columns if column.startswith(("image_", "pixel_"))]
    return [name for name in METRIC_ORDER if name in found] + sorted(set(found) - set(METRIC_ORDER))


def collect_rows(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows of the jobs as a table with the union of their keys, main columns first, config columns last."""
    frame = pd.DataFrame(rows, dtype=object)  # config values keep their types (an int stays an int)
    frame["scores"] = SCORES
    for column in IDENTITY_COLUMNS + METRIC_ORDER + DURATION_COLUMNS + TRAILING_COLUMNS:
        if column not in frame.columns:
            frame[column] = math.nan if column in METRIC_ORDER + DURATION_COLUMNS else ""
    for column in _metric_columns(frame) + DURATION_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    main = main_columns(frame)
    return frame[main + [column for column in frame.columns if column not in main]]


def main_columns(frame: pd.DataFrame) -> list[str]:
    """Identity, metrics, durations and error: the columns of the Markdown table."""
    return IDENTITY_COLUMNS + _metric_columns(frame) + DURATION_COLUMNS + TRAILING_COLUMNS


def with_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Each model's rows followed by its mean row over its successful jobs (status e.g. ``"2/3 ok"``)."""
    numeric = _metric_columns(frame) + DURATION_COLUMNS
    # Runs on several accelerators are averaged separately.
    keys = ["model", "accelerator"] if frame.get("accelerator", pd.Series()).nunique() > 1 else ["model"]  # noqa: PD101 - NaN must not count
    parts = []
    for _, rows in frame.groupby(keys, sort=False):
        succeeded = rows[rows["status"] == STATUS_OK]
        mean = dict.fromkeys(frame.columns, "")
        mean.update({column: pd.to_numeric(succeeded[column], errors="coerce").mean() for column in numeric})
        mean.update({key: rows[key].iloc[0] for key in keys})
        status = f"{len(succeeded)}/{len(rows)} {STATUS_OK}"
        mean.update(data=rows["data"].iloc[0], category=MEAN_CATEGORY, status=status, scores=SCORES)
        parts += [rows, pd.DataFrame([mean], columns=frame.columns)]
    return pd.concat(parts, ignore_index=True) if parts else frame


def _cell(value: object, column: str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.1f}" if column in DURATION_COLUMNS else f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of the main columns (metrics to 4 decimals, durations in seconds), under a caption."""
    columns = main_columns(frame)
    lines = [SCORES_NOTE, "", "| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row[column], column) for column in columns) + " |" for _, row in
              frame.iterrows()]
    return "\n".join(lines) + "\n"


def write_results(table: pd.DataFrame, output_dir: Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (all columns, config included) and ``results.md`` (main columns), each atomically."""
    csv_path, markdown_path = output_dir / CSV_NAME, output_dir / MARKDOWN_NAME
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(markdown_path, to_markdown(table))
    return csv_path, markdown_path


def print_table(frame: pd.DataFrame, width: int | None = None) -> None:
    """Print model, category, status and metrics with Rich, fitting ``width`` (default: the terminal's, or 80).

    Metric headers are split at ``_`` onto two lines and values have three decimals; errors and all columns are in
    the files.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    metrics = _metric_columns(frame)
    table = Table(title="Benchmark results", caption=SCORES_CAPTION, box=box.SIMPLE_HEAD, header_style="bold magenta",
                  padding=(0, 1), collapse_padding=True, show_edge=False)
    for column in ("model", "category", "status"):
        table.add_column(column, overflow="fold")
    for column in metrics:
        table.add_column(column.replace("_", "\n", 1), justify="right", no_wrap=True)
    for _, row in frame.iterrows():
        values = [_cell(row[column], column) for column in ("model", "category", "status")]
        table.add_row(*values, *(_short_cell(row[column]) for column in metrics))
    Console(width=width).print(table)


def _short_cell(value: object) -> str:
    """A metric with three decimals for the terminal (the files keep four)."""
    number = pd.to_numeric(value, errors="coerce")
    return "" if pd.isna(number) else f"{float(number):.3f}"
