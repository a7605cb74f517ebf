"""One benchmark job: build a model and a datamodule, fit, test, and return one row of the results table.

Unlike Anomalib 2.7's ``BenchmarkJob``, the model and datamodule are built inside ``run`` (a model that cannot be
built fails its own job only), the engine is the plugin's (a zero- or few-shot model is tested right away, so
validated once), every model gets the same evaluator, and a failure becomes a row with its error.
"""

from __future__ import annotations

import logging
import time
from tempfile import TemporaryDirectory

import pandas as pd
from anomalib import LearningType
from anomalib.pipelines.benchmark.job import BenchmarkJob
from anomalib.utils.logging import hide_output
from lightning import seed_everything
from lightning.pytorch import Callback, LightningModule, Trainer

from anomalib_glocalclip.evaluation.engine import evaluation_engine
from anomalib_glocalclip.utils.errors import describe_error
from anomalib_glocalclip.utils.model_config import ClassSpec

from .resolve import build_datamodule, build_model, class_name, model_label
from .table import STATUS_FAILED, STATUS_OK, collect_rows

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500


class _ValidationTime(Callback):
    """Seconds spent validating (a zero-shot model's validation before its test counts as its fitting)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        del trainer, pl_module
        self._start = time.time()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        del trainer, pl_module
        self.seconds += time.time() - self._start


class ZeroShotBenchmarkJob(BenchmarkJob):
    """Fit and test one model on one datamodule (one category); never raises.

    ``model_spec`` and ``data_spec`` are the config's entries (a class name or ``{class_path, init_args}``, a
    model's with an optional ``name``); ``flat_cfg``, the job's flattened configuration, is copied into its row.
    """

    name = "benchmark"

    def __init__(self, accelerator: str, model_spec: ClassSpec, data_spec: ClassSpec,
                 seed: int, flat_cfg: dict[str, object]) -> None:
        super().__init__(accelerator=accelerator, model=None, datamodule=None, seed=seed, flat_cfg=flat_cfg)
        self.model_spec = model_spec
        self.data_spec = data_spec

    def run(self, task_id: int | None = None) -> dict[str, object]:
        """Fit (zero/few-shot: validate) and test; return the row: identity, status, metrics, durations, config."""
        data_args = (self.data_spec.get("init_args") or {}) if isinstance(self.data_spec, dict) else {}
        row: dict[str, object] = {"model": model_label(self.model_spec), "data": class_name(self.data_spec),
                               "category": data_args.get("category", ""), "status": STATUS_OK, "error": ""}
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

    def _fit_and_test(self, devices: str | list[int], category: str) -> dict[str, object]:
        """Build, fit (one-class models only) and test; return durations, metrics and the datamodule's category.

        A zero- or few-shot model's validation before its test counts as its ``fit_duration``.
        """
        seed_everything(self.seed, workers=True)
        model = build_model(self.model_spec)
        datamodule = build_datamodule(self.data_spec)
        validation = _ValidationTime()
        with TemporaryDirectory() as root:
            engine = evaluation_engine(root, model, datamodule, accelerator=self.accelerator, devices=devices,
                                       callbacks=[validation])
            fit_start = time.time()
            if model.learning_type not in {LearningType.ZERO_SHOT, LearningType.FEW_SHOT}:
                engine.fit(model, datamodule=datamodule)
            validation.seconds = 0.0  # from here: the validation that Anomalib's test runs first
            test_start = time.time()
            results = engine.test(model, datamodule=datamodule, verbose=False)
            test_end = time.time()
        return {
            "category": category or getattr(datamodule, "category", "") or "",
            "fit_duration": test_start - fit_start + validation.seconds,
            "test_duration": test_end - test_start - validation.seconds,
            **(results[0] if results else {}),
        }

    @staticmethod
    def collect(results: list[dict[str, object]]) -> pd.DataFrame:
        """All rows, with the union of their columns (a missing metric is empty, not an error)."""
        return collect_rows(results)

    @staticmethod
    def save(result: pd.DataFrame) -> None:
        """Nothing: the pipeline writes and prints the table (with mean rows) into its own output folder."""
        del result
