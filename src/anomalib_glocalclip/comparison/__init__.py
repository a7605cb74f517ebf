"""The zero-shot comparison behind ``anomalib-glocalclip benchmark``: any Anomalib models on the same data, one table.

Anomalib's benchmark pipeline (``Pipeline``, runners, job generator) with the plugin's job: zero-shot models
validate on the data, every model logs the same metrics, plugin class paths resolve, and a failing model is a row
with its error. The command, its options and the config layout are in ``anomalib_glocalclip/cli/benchmark.py``.
(Not to be confused with the top-level ``benchmarks/`` folder: speed scripts.)

Example:
    >>> from jsonargparse import Namespace
    >>> from anomalib_glocalclip.comparison import ZeroShotBenchmark
    >>> table = ZeroShotBenchmark("results/bench").run(Namespace(config="bench.yaml"))  # doctest: +SKIP
"""

from .job import ZeroShotBenchmarkJob
from .pipeline import ZeroShotBenchmark
from .table import STATUS_FAILED, STATUS_OK

__all__ = ["STATUS_FAILED", "STATUS_OK", "ZeroShotBenchmark", "ZeroShotBenchmarkJob"]
