"""Zero-shot evaluation sweep: test a model on every category of a dataset and write the paper's tables.

``anomalib-glocalclip evaluate`` (and :func:`evaluate` in Python) tests GlocalCLIP with a learned prompt file,
AnoCLIP, or any zero-shot model given as an Anomalib config, on each category of one of the paper's datasets
(see ``data/catalogue.py``), through Anomalib's ``Engine.test`` (validation on the target first, then test), and
writes per-category and mean metrics in the paper's format, with heatmaps.

* **Resume**: each finished category's result is written atomically to ``categories/<category>.json``; a rerun
  skips categories with a successful result and redoes the others (failed, or interrupted before finishing).
* **Independent categories**: every category gets a fresh model and its own Engine root
  (``runs/<category>``); a category that fails is recorded (table, ``evaluate.log``) and the sweep goes on;
  the command then exits with status 1. Errors that would hit every category (the model cannot be built,
  results of another sweep in the folder) stop the sweep at once (status 2).
* **Metrics per dataset level**, as in the paper: image (AUROC, AP) where the test split holds normal and
  anomalous images, pixel (AUROC, PRO) where it has masks. On anomalous-only sets (polyps, ISIC, TN3K) image
  metrics are undefined and not computed; Anomalib's adaptive image threshold then falls back to the lowest
  validation score (it logs a warning), which only affects predicted labels, not the metrics.
* **Raw scores**: metrics are computed on the model's raw scores, as in the paper, not on Anomalib's clipped
  normalisation (``--normalize-scores`` to keep it).

Example::

    anomalib-glocalclip evaluate --prompts prompts.pt --dataset mvtec_ad --root ./datasets/MVTecAD
    anomalib-glocalclip evaluate --model anoclip --dataset visa --root ./datasets/visa --categories candle pcb1

The command's options are in ``anomalib_glocalclip/cli/evaluate.py``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from anomalib_glocalclip.compat import silence_log_message
from anomalib_glocalclip.data.catalogue import DatasetEntry, get_dataset, list_categories, make_datamodule
from anomalib_glocalclip.utils.errors import describe_error
from anomalib_glocalclip.utils.logs import log_to_file

from .models import (
    ModelFactory,
    anoclip_factory,
    apply_few_shot,
    config_factory,
    describe_factory,
    glocalclip_factory,
    heatmap_visualizer,
    model_title,
    prepare_model,
    sweep_evaluator,
)
from .store import CategoryResult, ResultStore
from .tables import order_results, write_tables

logger = logging.getLogger(__name__)

LOG_FILE = "evaluate.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DEFAULT_OUTPUT = Path("results") / "evaluate"


def is_config(model: str | Path) -> bool:
    """Whether ``model`` names an Anomalib config file (``.yaml``, ``.yml``, ``.json``) rather than a model."""
    return Path(model).suffix.lower() in {".yaml", ".yml", ".json"}


def resolve_model(model: ModelFactory | str | Path, model_args: Mapping[str, Any] | None = None) -> ModelFactory:
    """The model factory of ``model``.

    Args:
        model: a factory (returned as is), ``"glocalclip"`` (needs ``prompt_weights`` in ``model_args``),
            ``"anoclip"``, or the path of an Anomalib config file.
        model_args: init arguments of a model named by string or config.
    """
    model_args = dict(model_args or {})
    if callable(model):
        if model_args:
            msg = "model_args only apply to a model named by string or config; bind them into the factory instead."
            raise ValueError(msg)
        return model
    if is_config(model):
        return config_factory(model, **model_args)
    name = str(model).lower()
    if name == "glocalclip":
        prompts = model_args.pop("prompt_weights", None)
        if prompts is None:
            msg = "GlocalCLIP is evaluated zero-shot with learned prompts: pass --prompts (prompt_weights)."
            raise ValueError(msg)
        return glocalclip_factory(prompts, **model_args)
    if name == "anoclip":
        return anoclip_factory(**model_args)
    msg = f"Unknown model {model!r}: use 'glocalclip' (with prompts), 'anoclip', or an Anomalib config file."
    raise ValueError(msg)


def _has_masks(dataset: Any) -> bool:  # noqa: ANN401 - any dataset, duck-typed
    return str(getattr(dataset, "task", "")).lower().endswith("segmentation")


class _CategoryRun:
    """Everything one category's run needs from the sweep (so the loop stays readable)."""

    def __init__(
        self,
        factory: ModelFactory,
        entry: DatasetEntry,
        root: Path,
        output: Path,
        engine_args: dict[str, Any],
        datamodule_args: dict[str, Any],
        heatmaps: bool,
        normalize: bool,
        seed: int | None,
        few_shot: int = 0,
    ) -> None:
        self.factory = factory
        self.few_shot = few_shot
        self.entry = entry
        self.root = root
        self.output = output
        self.engine_args = engine_args
        self.datamodule_args = datamodule_args
        self.heatmaps = heatmaps
        self.normalize = normalize
        self.seed = seed

    def __call__(self, category: str) -> CategoryResult:
        """Test ``category``; data and test errors become a failed result, model-building errors propagate."""
        from anomalib.engine import Engine
        from lightning.pytorch import seed_everything

        start = time.perf_counter()
        result = CategoryResult(category=category, status="failed")
        try:
            datamodule = make_datamodule(self.entry, self.root, category, **self.datamodule_args)
            datamodule.prepare_data()
            datamodule.setup()
            samples = datamodule.test_data.samples
            labels = set(samples["label_index"].astype(int))
            result.n_images, result.n_anomalous = len(samples), int(samples["label_index"].sum())
            # Image metrics need both classes; pixel metrics need masks.
            evaluator = sweep_evaluator(
                image_metrics=self.entry.image_metrics and labels == {0, 1},
                pixel_metrics=self.entry.pixel_metrics and _has_masks(datamodule.test_data),
            )
        except Exception as error:  # noqa: BLE001 - a broken category is reported, the sweep goes on
            return self._failed(result, error, start)
        if self.seed is not None:
            seed_everything(self.seed, verbose=False)
        heatmap_dir = self.output / "heatmaps" / category
        model = apply_few_shot(self.factory(evaluator=evaluator), self.few_shot, category, self.seed)
        prepare_model(model, evaluator, heatmap_visualizer(heatmap_dir) if self.heatmaps else None, self.normalize)
        try:
            shutil.rmtree(heatmap_dir, ignore_errors=True)  # no stale pictures from an interrupted run
            engine = Engine(default_root_dir=self.output / "runs" / category, **self.engine_args)
            with _expected_one_class_warning(labels == {1}):
                metrics = engine.test(model, datamodule=datamodule, verbose=False)[0]
        except Exception as error:  # noqa: BLE001
            return self._failed(result, error, start)
        finally:
            del model
            _release_memory()
        result.status = "ok"
        result.metrics = {name: float(value) for name, value in metrics.items()}
        result.duration_s = round(time.perf_counter() - start, 3)
        result.heatmaps = str(heatmap_dir.relative_to(self.output)) if self.heatmaps else None
        return result

    @staticmethod
    def _failed(result: CategoryResult, error: BaseException, start: float) -> CategoryResult:
        result.error = describe_error(error)
        result.traceback = traceback.format_exc()
        result.duration_s = round(time.perf_counter() - start, 3)
        logger.error("Category %s failed: %s\n%s", result.category, result.error, result.traceback)
        return result


@contextlib.contextmanager
def _expected_one_class_warning(one_class: bool) -> Iterator[None]:
    """On anomalous-only data, silence Anomalib's warning that validation has no normal images.

    There its adaptive image threshold falls back to the lowest score (every image is predicted anomalous, which
    is right), and image metrics are not computed; the warning would only repeat for every such category.
    """
    with silence_log_message("anomalib.metrics.threshold.f1_adaptive_threshold",
                             "does not contain any normal images", active=one_class):
        yield


def _release_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def evaluate(
    model: ModelFactory | str | Path,
    dataset: str | DatasetEntry,
    root: str | Path,
    categories: Sequence[str] | None = None,
    output: str | Path = DEFAULT_OUTPUT,
    *,
    model_args: Mapping[str, Any] | None = None,
    accelerator: str = "auto",
    devices: int | str = 1,
    batch_size: int = 8,
    num_workers: int = 4,
    heatmaps: bool = True,
    normalize: bool = False,
    overwrite: bool = False,
    seed: int | None = 111,
    progress: bool = True,
    few_shot: int = 0,
) -> pd.DataFrame:
    """Test a model zero-shot on every category of a dataset; write the paper's tables into ``output``.

    Args:
        model: a model factory (called as ``factory(evaluator=...)`` per category, e.g.
            ``functools.partial(GlocalCLIP, prompt_weights="prompts.pt")``), ``"glocalclip"``, ``"anoclip"``, or
            an Anomalib config file with a ``model:`` section.
        dataset: dataset name of the registry (``mvtec_ad``, ``visa``, ``headct``, ...; aliases allowed).
        root: the dataset's root in its official download layout.
        categories: categories to test; ``None``: every category found under ``root``.
        output: output folder (results, tables, heatmaps, Anomalib's run folders, log).
        model_args: init arguments of a model named by string or config (``prompt_weights`` for GlocalCLIP).
        accelerator: Lightning accelerator.
        devices: Lightning devices.
        batch_size: evaluation batch size.
        num_workers: dataloader workers.
        heatmaps: write Anomalib's heatmaps to ``output/heatmaps/<category>``.
        normalize: compute metrics on Anomalib's normalised scores instead of the raw ones (see
            :func:`~anomalib_glocalclip.evaluation.models.prepare_model`).
        overwrite: discard the results already in ``output`` instead of resuming.
        seed: seed set before each category (``None``: none).
        progress: show a progress bar over categories.
        few_shot: ``k`` normal train images per category as few-shot references (GlocalCLIP, AnoCLIP), the
            same for every model (seeded by the category's name and ``seed``); ``0``: zero-shot.

    Returns:
        The paper-format table (as ``results.csv``): one row per category with a result, then ``mean``; values
        x100 with one decimal. ``table.attrs["failed"]`` lists the categories that failed in this run.

    Raises:
        SweepMismatchError: ``output`` holds results of another sweep (and ``overwrite`` is not set).
        ValueError: unknown dataset or model, or none of the categories exists.
    """
    entry = get_dataset(dataset)
    factory = resolve_model(model, model_args)
    root = Path(root).expanduser()
    output = Path(output).expanduser()
    available = list_categories(entry, root)
    chosen = list(categories) if categories else available
    unknown = [category for category in chosen if category not in available]
    if unknown:
        msg = f"{entry.title} under {root} has no categories {unknown}; found: {', '.join(available)}."
        raise ValueError(msg)

    store = ResultStore(output)
    if overwrite:
        store.clear()
    settings = {
        "dataset": entry.name,
        "root": str(root.resolve()),
        "model": describe_factory(factory),
        "title": model_title(factory),
        "scores": "anomalib-normalized" if normalize else "raw",
    }
    if few_shot:  # in the title too, so that a zero-shot and a few-shot sweep never share a folder
        settings.update(few_shot=few_shot, title=f"{settings['title']} ({few_shot}-shot)")
    output.mkdir(parents=True, exist_ok=True)
    store.check_settings(settings)
    run = _CategoryRun(
        factory=factory,
        entry=entry,
        root=root,
        output=output,
        engine_args={
            "accelerator": accelerator,
            "devices": devices,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
        datamodule_args={"eval_batch_size": batch_size, "num_workers": num_workers},
        heatmaps=heatmaps,
        normalize=normalize,
        seed=seed,
        few_shot=few_shot,
    )
    failed: list[str] = []
    with log_to_file(output / LOG_FILE, logger_name=__package__, log_format=LOG_FORMAT):
        logger.info("Sweep of %s on %s (%s), categories %s", settings["model"], entry.title, root, chosen)
        try:
            bar = tqdm(chosen, desc=f"{entry.name}", unit="category", disable=not progress, dynamic_ncols=True)
            for category in bar:
                bar.set_postfix_str(category)
                if store.finished(category):
                    logger.info("Category %s: already done, skipped", category)
                    continue
                result = run(category)
                store.save(result)
                if result.ok:
                    logger.info("Category %s done in %.1f s: %s", category, result.duration_s, result.metrics)
                else:
                    failed.append(category)
                    tqdm.write(f"{category}: FAILED ({result.error}); see {output / LOG_FILE}", file=sys.stderr)
        finally:
            # Also after an interruption: the tables show everything finished so far.
            table = _write_tables(store, entry, available, output, settings)
    table.attrs["failed"] = failed
    return table


def _write_tables(
    store: ResultStore,
    entry: DatasetEntry,
    available: Sequence[str],
    output: Path,
    settings: Mapping[str, str],
) -> pd.DataFrame:
    results = order_results(store.all(), available)
    k = settings.get("few_shot", 0)
    mode = f"{k}-shot (the same {k} seeded normal train images per category for every model)" if k else "zero-shot"
    footnotes = [
        f"Model: `{settings['model']}`.",
        f"Dataset: {entry.title} (`{entry.name}`) at `{settings['root']}`; {mode}, validation = test split.",
        "Scores: " + ("Anomalib-normalised." if settings["scores"] != "raw" else "raw, as in the paper."),
    ]
    if not entry.image_metrics:
        footnotes.append("Image metrics are not reported: every test image of this dataset is anomalous.")
    if not entry.pixel_metrics:
        footnotes.append("Pixel metrics are not reported: this dataset has image labels only.")
    footnotes += [f"{result.category} failed: {result.error}" for result in results if not result.ok]
    title = f"{settings['title']}, {'few' if k else 'zero'}-shot on {entry.title}"
    return write_tables(output, results, entry, title, n_categories=len(available), footnotes=footnotes)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's per-run banners (devices, callbacks) would repeat for every category."""
    # Lightning sets its loggers' levels when first imported; import it (as the Engine does) before lowering them.
    import anomalib.engine  # noqa: F401
    import lightning.pytorch  # noqa: F401

    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric")]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)
