"""Prompt sizes of the paper's four training protocols (spec 3.4, from the reference ``train.sh``)."""

from __future__ import annotations

from .prompt_learner import PromptShape

DEFAULT_PROMPT_SHAPE = PromptShape(n_ctx=12, n_abnormal_ctx=12, deep_prompt_depth=9, deep_prompt_length=4)
"""``train.py``/``test.py`` defaults of the reference (also its ClinicDB -> medical protocol)."""

PRESETS: dict[str, PromptShape] = {
    # VisA (test split, all classes) -> MVTec AD
    "visa_to_mvtec": PromptShape(n_ctx=13, n_abnormal_ctx=13, deep_prompt_depth=9, deep_prompt_length=4),
    # MVTec AD (test split) -> VisA, MPDD, BTAD, SDD, DTD-Synthetic
    "mvtec_to_industrial": PromptShape(n_ctx=12, n_abnormal_ctx=13, deep_prompt_depth=10, deep_prompt_length=2),
    # CVC-ColonDB -> CVC-ClinicDB
    "colondb_to_clinicdb": PromptShape(n_ctx=12, n_abnormal_ctx=12, deep_prompt_depth=12, deep_prompt_length=4),
    # CVC-ClinicDB -> HeadCT, BrainMRI, Br35H, ISIC, ColonDB, Kvasir, Endo, TN3K
    "clinicdb_to_medical": DEFAULT_PROMPT_SHAPE,
}


def resolve_prompt_shape(preset: str | None, *sizes: int | None) -> PromptShape:
    """Prompt sizes from a preset (or the defaults); each size given (in ``PromptShape``'s order) takes precedence."""
    if preset is not None and preset not in PRESETS:
        msg = f"Unknown GlocalCLIP preset {preset!r}. Known presets: {', '.join(PRESETS)}."
        raise ValueError(msg)
    base = PRESETS[preset] if preset is not None else DEFAULT_PROMPT_SHAPE
    overrides = zip(PromptShape._fields, sizes, strict=True)
    return base._replace(**{key: value for key, value in overrides if value is not None})
