"""The zero-shot comparison behind ``anomalib-glocalclip benchmark``: any Anomalib models on the same data, one table.

The command, its options and the config layout are in ``cli/benchmark.py``. (Not the top-level ``benchmarks/``
folder: speed scripts.)
"""

from .job import ZeroShotBenchmarkJob
from .pipeline import ZeroShotBenchmark
from .table import STATUS_FAILED, STATUS_OK

__all__ = ["STATUS_FAILED", "STATUS_OK", "ZeroShotBenchmark", "ZeroShotBenchmarkJob"]
