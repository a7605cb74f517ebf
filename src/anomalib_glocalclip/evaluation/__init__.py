"""Zero-shot evaluation sweeps: every category of a dataset, the paper's tables, resumable (see ``sweep.py``)."""

from .models import (
    ModelFactory,
    anoclip_factory,
    apply_few_shot,
    category_reference_seed,
    config_factory,
    glocalclip_factory,
    prepare_model,
    sweep_evaluator,
)
from .store import CategoryResult, ResultStore, SweepMismatchError
from .sweep import evaluate
from .tables import metrics_frame, paper_frame, paper_markdown, write_tables

__all__ = [
    "CategoryResult",
    "ModelFactory",
    "ResultStore",
    "SweepMismatchError",
    "anoclip_factory",
    "apply_few_shot",
    "category_reference_seed",
    "config_factory",
    "evaluate",
    "glocalclip_factory",
    "metrics_frame",
    "paper_frame",
    "paper_markdown",
    "prepare_model",
    "sweep_evaluator",
    "write_tables",
]
