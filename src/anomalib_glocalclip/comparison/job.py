"""One benchmark job: build a model and a datamodule, fit, test, and return one row of the results table.

Differences from Anomalib 2.7's ``BenchmarkJob``:

* the model and datamodule are built inside ``run``, so a model that cannot be built (e.g. WinCLIP without its
  weights offline) fails its own job only;
* ``fit`` gets the datamodule by keyword, and a zero- or few-shot model is validated once, not again before testing
  (``FitOnceEngine``);
* every model gets the same evaluator, so all rows have the same metric columns;
* a failure becomes a row with ``status="failed"`` and the error, instead of an exception.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd
from anomalib import LearningType
from anomalib.engine import Engine
from anomalib.models import AnomalibModule
from anomalib.pipelines.benchmark.job import BenchmarkJob
from anomalib.utils.logging import hide_output
from lightning import seed_everything

from anomalib_glocalclip.compat import anomalib_should_run_validation
from anomalib_glocalclip.utils.errors import describe_error

from .resolve import build_datamodule, build_model, class_name, model_label
from .table import STATUS_FAILED, STATUS_OK, collect_rows

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500


class FitOnceEngine(Engine):
    """An ``Engine`` that does not validate a zero- or few-shot model again before testing it after ``fit``.

    For those models ``fit`` only validates (thresholds and normalisation); Anomalib's ``test`` would run the
    same validation a second time, doubling the cost of every zero-shot job.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._validated_models: set[int] = set()

    def fit(self, model: AnomalibModule, *args: Any, **kwargs: Any) -> None:
        """Anomalib's ``fit``; remembers zero- and few-shot models it validated."""
        super().fit(model, *args, **kwargs)
        if model.learning_type in {LearningType.ZERO_SHOT, LearningType.FEW_SHOT}:
            self._validated_models.add(id(model))

    def _should_run_validation(self, model: AnomalibModule, ckpt_path: str | Path | None) -> bool:  # type: ignore[override]
        """Anomalib's rule, except for a model this engine has already validated in ``fit``."""
        if id(model) in self._validated_models:
            return False
        return anomalib_should_run_validation(model, ckpt_path)


class ZeroShotBenchmarkJob(BenchmarkJob):
    """Fit and test one model on one datamodule (one category); never raises.

    Args:
        accelerator: ``"cpu"`` or ``"cuda"``.
        model_spec: model entry of the config: a class name or ``{class_path, init_args, name}``.
        data_spec: data entry of the config: ``{class_path, init_args}``.
        seed: seed of the job.
        flat_cfg: the job's configuration, flattened (``model.init_args.x``), copied into its row.
    """

    name = "benchmark"

    def __init__(
        self,
        accelerator: str,
        model_spec: str | dict[str, Any],
        data_spec: str | dict[str, Any],
        seed: int,
        flat_cfg: dict[str, Any],
    ) -> None:
        super().__init__(accelerator=accelerator, model=None, datamodule=None, seed=seed, flat_cfg=flat_cfg)
        self.model_spec = model_spec
        self.data_spec = data_spec

    def _identity(self) -> dict[str, Any]:
        data_args = (self.data_spec.get("init_args") or {}) if isinstance(self.data_spec, dict) else {}
        return {
            "model": model_label(self.model_spec),
            "data": class_name(self.data_spec),
            "category": data_args.get("category", ""),
        }

    def run(self, task_id: int | None = None) -> dict[str, Any]:
        """Fit (zero/few-shot: validate) and test; return the row: identity, status, metrics, durations, config."""
        row: dict[str, Any] = {**self._identity(), "status": STATUS_OK, "error": ""}
        devices: str | list[int] = "auto" if task_id is None else [task_id]
        start = time.time()
        try:
            row.update(hide_output(self._fit_and_test)(devices, category=row["category"]))
        except Exception as error:  # any failure of one job becomes its row
            row.update(status=STATUS_FAILED, error=describe_error(error, MAX_ERROR_LENGTH))
            logger.exception("Benchmark job %s on %s/%s failed:", row["model"], row["data"], row["category"])
        row["job_duration"] = time.time() - start
        row.update({"accelerator": self.accelerator, **self.flat_cfg})
        logger.info("Benchmark job finished: %s", {key: row[key] for key in ("model", "category", "status")})
        return row

    def _fit_and_test(self, devices: str | list[int], category: str) -> dict[str, Any]:
        """Build, fit and test; return durations and test metrics (and the datamodule's category if none given)."""
        seed_everything(self.seed, workers=True)
        model = build_model(self.model_spec)
        datamodule = build_datamodule(self.data_spec)
        with TemporaryDirectory() as root:
            engine = FitOnceEngine(accelerator=self.accelerator, devices=devices, default_root_dir=root, logger=False)
            fit_start = time.time()
            engine.fit(model, datamodule=datamodule)
            test_start = time.time()
            results = engine.test(model, datamodule=datamodule, verbose=False)
            test_end = time.time()
        return {
            "category": category or getattr(datamodule, "category", "") or "",
            "fit_duration": test_start - fit_start,
            "test_duration": test_end - test_start,
            **(results[0] if results else {}),
        }

    @staticmethod
    def collect(results: list[dict[str, Any]]) -> pd.DataFrame:
        """All rows, with the union of their columns (a missing metric is empty, not an error)."""
        return collect_rows(results)

    @staticmethod
    def save(result: pd.DataFrame) -> None:
        """Nothing: the pipeline writes and prints the table (with mean rows) into its own output folder."""
        del result
