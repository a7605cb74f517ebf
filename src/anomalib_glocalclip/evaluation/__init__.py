"""Zero-shot evaluation sweeps: every category of a dataset, the paper's tables, resumable.

Example:
    >>> import functools
    >>> from anomalib_glocalclip import GlocalCLIP
    >>> from anomalib_glocalclip.evaluation import evaluate
    >>> table = evaluate(functools.partial(GlocalCLIP, prompt_weights="prompts.pt"), "mvtec_ad",
    ...                  "./datasets/MVTecAD", output="results/evaluate/mvtec_ad")  # doctest: +SKIP

The same from the command line: ``anomalib-glocalclip evaluate --prompts prompts.pt --dataset mvtec_ad
--root ./datasets/MVTecAD``.
"""

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
