"""Offline demo: generate an auxiliary and a target dataset, learn prompts, test zero-shot, write heatmaps."""

from .options import DemoOptions
from .run import run_demo

__all__ = ["DemoOptions", "run_demo"]
