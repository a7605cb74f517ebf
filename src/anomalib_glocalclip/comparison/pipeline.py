"""The benchmark pipeline: Anomalib's ``Benchmark`` with the plugin's job generator, writing one results table."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch
from anomalib.pipelines import Benchmark
from anomalib.pipelines.components.base import Runner
from anomalib.pipelines.components.runners import ParallelRunner, SerialRunner
from jsonargparse import Namespace

from anomalib_glocalclip.utils.logs import log_to_file

from .checks import check_inputs
from .generator import ZeroShotBenchmarkJobGenerator, check_section
from .job import ZeroShotBenchmarkJob
from .table import print_table, with_means, write_results

logger = logging.getLogger(__name__)

ACCELERATORS = ("cpu", "cuda", "auto")
LOG_NAME = "benchmark.log"


class ZeroShotBenchmark(Benchmark):
    """Benchmark zero-shot, few-shot and one-class models on the same data; one table for all of them.

    Runs Anomalib's runners (serial, or one process per GPU with ``accelerator: cuda`` on several GPUs) over
    ``ZeroShotBenchmarkJob``s; writes ``results.csv``, ``results.md`` and ``benchmark.log`` to ``output_dir``
    (``None``: the config's ``output_dir``, else ``runs/benchmark/<date-time>``).
    """

    def __init__(self, output_dir: str | Path | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.written: tuple[Path, Path] | None = None

    @staticmethod
    def _setup_runners(args: dict[str, object]) -> list[Runner]:
        """One runner per accelerator (``auto``: ``cuda`` if visible): serial, or parallel over several GPUs."""
        accelerators = args.get("accelerator", "auto")
        accelerators = accelerators if isinstance(accelerators, list) else [accelerators]
        runners: list[Runner] = []
        for accelerator in accelerators:
            if accelerator not in ACCELERATORS:
                msg = f"Unsupported accelerator {accelerator!r}: use one of {ACCELERATORS} (or a list of them)."
                raise ValueError(msg)
            if accelerator == "auto":
                accelerator = "cuda" if torch.cuda.is_available() else "cpu"  # noqa: PLW2901
            generator = ZeroShotBenchmarkJobGenerator(accelerator)
            gpus = torch.cuda.device_count()
            if accelerator == "cuda" and gpus > 1:
                runners.append(ParallelRunner(generator, n_jobs=gpus))
            else:
                runners.append(SerialRunner(generator))
        return runners

    def run(self, args: Namespace | None = None) -> pd.DataFrame:
        """Run every job of the config ``args.config``; write and return the table (mean rows included)."""
        config = self._get_args(args) or {}
        section = config.get(ZeroShotBenchmarkJob.name)
        check_section(section)
        # Default: runs/benchmark/<date-time>, where ``anomalib benchmark`` writes too.
        default = Path("runs") / "benchmark" / datetime.now().strftime("%Y-%m-%d-%H_%M_%S")
        output_dir = self.output_dir or Path(config.get("output_dir") or default)
        runners = self._setup_runners(config)
        check_inputs(section, getattr(args, "config", None))
        with log_to_file(output_dir / LOG_NAME):
            frames = [runner.run(section) for runner in runners]
        table = with_means(pd.concat(frames, ignore_index=True))
        self.written = write_results(table, output_dir)
        print_table(table)
        logger.info("Benchmark results written to %s and %s", *self.written)
        return table
