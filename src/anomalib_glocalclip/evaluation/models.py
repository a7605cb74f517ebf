"""What a sweep evaluates: model factories, the sweep's evaluator, and how a built model is readied for the sweep.

A *model factory* is any callable taking the keyword ``evaluator`` and returning a fresh ``AnomalibModule``, e.g.
``functools.partial(GlocalCLIP, prompt_weights="prompts.pt")`` or ``lambda evaluator: WinClip(evaluator=evaluator)``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml
from anomalib import LearningType
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.visualization import ImageVisualizer

from anomalib_glocalclip.components import FittedThresholdPostProcessor, zero_shot_evaluator
from anomalib_glocalclip.components.visualizer import PluginImageVisualizer
from anomalib_glocalclip.utils.model_config import build_model

logger = logging.getLogger(__name__)

ModelFactory = Callable[..., AnomalibModule]
"""Called as ``factory(evaluator=...)``; returns a new model."""

ZERO_SHOT_TYPES = (LearningType.ZERO_SHOT, LearningType.FEW_SHOT)
MUSC_RSCIN_K = (1, 2, 3)
"""MuSc's RsCIN neighbour counts in the paper (MVTec AD and every dataset but VisA)."""
MUSC_VISA_RSCIN_K = (1, 8, 9)
"""MuSc's RsCIN neighbour counts on VisA in the paper."""


def sweep_evaluator(image_metrics: bool = True, pixel_metrics: bool = True) -> Evaluator:
    """The metrics of a sweep: ``zero_shot_evaluator``'s and the paper's PRO (``pixel_ReferenceAUPRO``).

    Metric states stay on the model's device (``compute_on_cpu=False``); the values equal the host path's.
    """
    return zero_shot_evaluator(image_metrics, pixel_metrics, reference_aupro=True, compute_on_cpu=False)


def heatmap_visualizer(output_dir: str | Path) -> PluginImageVisualizer:
    """Anomalib's image visualizer (images read by the plugin's reader) writing into ``output_dir``.

    The sweep scores raw (see :func:`prepare_model`), so each map (GlocalCLIP's lie in [0, 4]) is min-max scaled
    per image for the colour map, as the reference code does for its pictures; the predicted masks are drawn at
    the fitted pixel threshold.
    """
    return PluginImageVisualizer(
        fields_config={"anomaly_map": {"colormap": True, "normalize": True}},
        output_dir=output_dir,
    )


def prepare_model(
    model: AnomalibModule, evaluator: Evaluator, visualizer: ImageVisualizer | None, normalize: bool = False
) -> AnomalibModule:
    """Give a freshly built model the sweep's evaluator and visualizer, and score it the paper's way.

    Anomalib's own ``PostProcessor`` becomes a ``FittedThresholdPostProcessor`` with its settings, so that labels
    and masks use the fitted thresholds whether or not scores are normalised.

    Args:
        model: the model (from a factory).
        evaluator: the sweep's evaluator (set again in case the factory ignored it).
        visualizer: the visualizer drawing heatmaps, or ``None``.
        normalize: keep Anomalib's min-max/threshold normalisation of scores and maps. ``False`` (the default)
            evaluates the raw scores, as the papers do: Anomalib's normalisation clips to [0, 1] around the
            validation threshold, which ties scores and shifts the reference AUPRO's thresholds. Either way the
            thresholds are fitted on the target (on the test pass where it is the validation split, see
            ``one_pass.py``) and label the images and draw the masks. A post-processor with thresholding off
            (MuSc's: the model labels with its set's own threshold) is left as it is.

    Raises:
        TypeError: the model is not zero- or few-shot (it would be tested untrained).
    """
    if model.learning_type not in ZERO_SHOT_TYPES:
        msg = (
            f"{type(model).__name__} has learning type {model.learning_type.value!r}; the sweep tests zero-shot "
            "(no training on the target). Give GlocalCLIP its learned prompts (--prompts) or use a zero-shot model."
        )
        raise TypeError(msg)
    if model.evaluator is not evaluator:
        model.evaluator = evaluator
    model.visualizer = visualizer
    if isinstance(model.post_processor, PostProcessor) and not model.post_processor.enable_thresholding:
        return model  # the model labels itself (MuSc: its set's threshold); nothing to fit, normalise or relabel
    if type(model.post_processor) is PostProcessor:  # labels raw scores at 0.5: not the thresholds it fits
        model.post_processor = FittedThresholdPostProcessor(**model.post_processor.checkpoint_config())
    if isinstance(model.post_processor, PostProcessor):
        model.post_processor.enable_normalization = normalize
    return model


def category_reference_seed(category: str, seed: int | None) -> int:
    """Seed of a category's few-shot references: the same for every model, different between categories.

    A non-negative 63-bit integer from the SHA-256 of ``"<category>:<seed>"`` (``None`` counts as 0), stable
    across runs and machines, unlike Python's ``hash``.
    """
    digest = hashlib.sha256(f"{category}:{seed or 0}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def apply_few_shot(model: AnomalibModule, k: int, category: str, seed: int | None) -> AnomalibModule:
    """Make a plugin model ``k``-shot on ``category`` (references: its train split; a bank of another category goes).

    ``k == 0`` leaves the model as it is; the choice is seeded by :func:`category_reference_seed`.

    Raises:
        TypeError: ``k > 0`` for a model without the plugin's few-shot support.
    """
    if k == 0:
        return model
    if not hasattr(model, "init_few_shot"):
        msg = (
            f"--few-shot applies to GlocalCLIP, AnoCLIP and MuSc; {type(model).__name__} takes its own few-shot "
            "setting (e.g. WinClip's k_shot in its config)."
        )
        raise TypeError(msg)
    weight = getattr(model.model, "few_shot_weight", 1.0)  # MuSc's references are other images, not weighted
    model.init_few_shot(k, None, category_reference_seed(category, seed), weight)
    model.forget_references()  # the sweep reuses its model: the previous category's references go
    return model


def _file_digest(path: str | Path) -> str:
    """Short SHA-256 of a file, so a resumed sweep notices prompts re-learned into the same path."""
    digest = hashlib.sha256()
    with Path(path).expanduser().open("rb") as file:
        for chunk in iter(functools.partial(file.read, 1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def glocalclip_factory(prompt_weights: str | Path, **init_args: object) -> ModelFactory:
    """GlocalCLIP in zero-shot mode with the learned prompts of ``prompt_weights`` (and their backbone unless given).

    Args:
        prompt_weights: learned prompt file (``prompts.pt``, a GlocalCLIP checkpoint or a reference ``.pth``).
        **init_args: further ``GlocalCLIP`` arguments (``backbone``, ``pretrained``, ``image_size``, ``sigma``...).
            ``preprocessing`` defaults to ``"reference"`` (the reference's PIL resize, as the paper's protocol).
    """
    from anomalib_glocalclip.glocalclip.lightning_model import GlocalCLIP

    init_args = {"preprocessing": "reference", **init_args}
    path = Path(prompt_weights).expanduser()
    if not path.is_file():
        msg = f"Prompt file {path} does not exist (pass the prompts.pt a training run wrote next to its checkpoint)."
        raise FileNotFoundError(msg)
    return functools.partial(GlocalCLIP, prompt_weights=str(path), **init_args)


def anoclip_factory(**init_args: object) -> ModelFactory:
    """AnoCLIP (training-free; ``tta=True`` for AnoCLIP+) with ``init_args``."""
    from anomalib_glocalclip.anoclip import AnoCLIP

    return functools.partial(AnoCLIP, **init_args)


def musc_factory(dataset: str | None = None, **init_args: object) -> ModelFactory:
    """MuSc with ``init_args``; RsCIN's ``rscin_k`` is the paper's preset for ``dataset`` unless given.

    ``(1, 8, 9)`` on VisA, ``(1, 2, 3)`` elsewhere (as ``configs/musc_visa.yaml`` and ``configs/musc_mvtec.yaml``).
    """
    from anomalib_glocalclip.musc import MuSc

    init_args.setdefault("rscin_k", MUSC_VISA_RSCIN_K if dataset == "visa" else MUSC_RSCIN_K)
    return functools.partial(MuSc, **init_args)


def _model_section(config: Mapping[str, object], path: Path) -> dict[str, object]:
    """The ``model`` part of an Anomalib config (full config, or one holding only ``class_path``/``init_args``)."""
    section = config.get("model", config) if isinstance(config, Mapping) else None
    if isinstance(section, str):
        section = {"class_path": section}
    if not isinstance(section, Mapping) or "class_path" not in section:
        msg = f"{path} has no model (expected a `model:` section with `class_path`, as Anomalib's configs have)."
        raise ValueError(msg)
    return copy.deepcopy(dict(section))


def config_factory(config: str | Path, **init_args: object) -> ModelFactory:
    """The model of an Anomalib config file (its ``model:`` section), built as the benchmark does (``build_model``).

    Args:
        config: YAML file with a ``model:`` section (``class_path`` + ``init_args``), e.g. ``configs/anoclip.yaml``.
        **init_args: values replacing the config's ``init_args``.
    """
    path = Path(config).expanduser()
    section = _model_section(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, path)
    section["init_args"] = {**(section.get("init_args") or {}), **init_args}

    def build(evaluator: Evaluator) -> AnomalibModule:
        model = build_model(section)
        model.evaluator = evaluator
        return model

    build.description = f"config {path.resolve()}: {section}"  # type: ignore[attr-defined]
    build.title = str(section["class_path"]).rpartition(".")[2]  # type: ignore[attr-defined]
    return build


def model_title(factory: ModelFactory) -> str:
    """A short name of what ``factory`` builds (``GlocalCLIP``, ``AnoCLIP``, a config's class name), for titles."""
    if hasattr(factory, "title"):
        return str(factory.title)
    function = factory.func if isinstance(factory, functools.partial) else factory
    return function.__name__ if isinstance(function, type) else "Model"


def describe_factory(factory: ModelFactory) -> str:
    """A description of what ``factory`` builds, stored with a sweep's results to catch mixed-up resumes.

    Prompt files are identified by content (a short SHA-256), not only by path.
    """
    if hasattr(factory, "description"):
        return str(factory.description)
    if isinstance(factory, functools.partial):
        keywords = dict(factory.keywords)
        if keywords.get("prompt_weights"):
            keywords["prompt_weights_sha256"] = _file_digest(keywords["prompt_weights"])
        arguments = ", ".join(f"{key}={value!r}" for key, value in sorted(keywords.items()))
        function = factory.func
        return f"{function.__module__}.{function.__qualname__}({arguments})"
    name = getattr(factory, "__qualname__", type(factory).__qualname__)
    return f"{getattr(factory, '__module__', '')}.{name}"
