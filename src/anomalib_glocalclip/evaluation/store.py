"""Where a sweep keeps its per-category results: one JSON file per finished category, written atomically.

``<output>/sweep.json`` holds what was evaluated (checked on resume), ``<output>/categories/<category>.json`` one
result per category, written only once its test has finished, so a killed sweep leaves every finished category
intact; a rerun skips the successful ones, and the tables are always regenerated from these files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from anomalib_glocalclip.utils.files import atomic_write_json

SETTINGS_FILE = "sweep.json"
CATEGORY_FOLDER = "categories"
INTERRUPTED = "interrupted"


class SweepMismatchError(ValueError):
    """The output folder holds results of another sweep (other dataset, root or model)."""


@dataclass
class CategoryResult:
    """The outcome of testing one category.

    Attributes:
        status: ``"ok"``, ``"failed"``, or ``"interrupted"`` (stopped by a signal; a rerun redoes it).
        metrics: metric name -> value in [0, 1] (``None`` where the metric came out undefined, e.g. NaN).
        duration_s: wall time of the category's run, seconds.
        error: ``"ExceptionType: message"`` of a failed run.
        heatmaps: folder of the category's heatmaps, relative to the output folder (``None`` without heatmaps).
    """

    category: str
    status: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    n_images: int | None = None
    n_anomalous: int | None = None
    duration_s: float | None = None
    error: str | None = None
    traceback: str | None = None
    heatmaps: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the category finished successfully."""
        return self.status == "ok"


def _finite_or_none(value: float | None) -> float | None:
    """A JSON-safe metric value: NaN and infinities (undefined metrics) become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class ResultStore:
    """Per-category result files and the sweep's settings under the sweep's ``output`` folder."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.folder = self.output / CATEGORY_FOLDER

    def path(self, category: str) -> Path:
        """The result file of ``category``."""
        return self.folder / f"{category.replace(os.sep, '_')}.json"

    def save(self, result: CategoryResult) -> Path:
        """Store a category's result (atomically, replacing an earlier one)."""
        data = asdict(result)
        data["metrics"] = {name: _finite_or_none(value) for name, value in result.metrics.items()}
        path = self.path(result.category)
        atomic_write_json(path, data, fsync=True, allow_nan=False)
        return path

    def load(self, category: str) -> CategoryResult | None:
        """The stored result of ``category``, or ``None`` if there is none (or it is unreadable)."""
        try:
            return CategoryResult(**json.loads(self.path(category).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def finished(self, category: str) -> bool:
        """Whether ``category`` has a successful result (a rerun skips it)."""
        result = self.load(category)
        return result is not None and result.ok

    def all(self) -> list[CategoryResult]:
        """Every stored result, in file-name order."""
        if not self.folder.is_dir():
            return []
        results = (self.load(path.stem) for path in sorted(self.folder.glob("*.json")))
        return [result for result in results if result is not None]

    def clear(self) -> None:
        """Delete every stored result, what is kept beside it (report data) and the settings (start over)."""
        for path in self.folder.iterdir() if self.folder.is_dir() else ():
            if path.is_file():
                path.unlink()
        (self.output / SETTINGS_FILE).unlink(missing_ok=True)

    def check_settings(self, settings: dict[str, str | int]) -> None:
        """Record ``settings`` for a new sweep, or check that they match the sweep already in the folder.

        Raises:
            SweepMismatchError: the folder holds results of a sweep with other settings; mixing them would give
                a table of two different models or datasets.
        """
        path = self.output / SETTINGS_FILE
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            differences = {key: (stored.get(key), value) for key, value in settings.items() if stored.get(key) != value}
            if differences and self.all():
                lines = "\n".join(f"  {key}: stored {old!r}, now {new!r}" for key, (old, new) in differences.items())
                msg = (
                    f"{self.output} holds results of another sweep:\n{lines}\n"
                    "Choose another output folder, or start over with --overwrite (overwrite=True)."
                )
                raise SweepMismatchError(msg)
        atomic_write_json(path, settings, fsync=True, allow_nan=False)
