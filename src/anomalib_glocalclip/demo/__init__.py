"""Offline demo: generate an auxiliary and a target dataset, learn prompts, test zero-shot, write heatmaps.

``anomalib-glocalclip demo`` parses its options into :class:`DemoOptions` and runs :func:`run_demo`. The demo's
data comes from its own small generator (``demo.datasets``, drawing with ``demo.products``), never from the test
kit.
"""

from .options import DemoOptions
from .run import run_demo

__all__ = ["DemoOptions", "run_demo"]
