"""Zero-shot evaluation sweep: test a model on every category of a dataset and write the paper's tables.

``anomalib-glocalclip evaluate`` (options in ``cli/evaluate.py``) and :func:`evaluate` run each category through
the plugin's engine path (``evaluation/engine.py``), one model kept on its device for the whole sweep. Finished
categories are stored atomically (``store.py``) so that a rerun resumes; a failed category is recorded and the
sweep goes on; SIGINT/SIGTERM stop it after writing the tables (``stopping.py``). Every dataset is read by the
plugin's datamodules. Metrics are computed on raw scores, as in the paper; ``report.html`` is written with the
tables (``report.py``). README "The paper's cross-dataset tables" describes the outputs.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from lightning.pytorch import Callback
from tqdm.auto import tqdm

from anomalib_glocalclip.compat import silence_log_message
from anomalib_glocalclip.components.base import ZeroShotCLIPMixin
from anomalib_glocalclip.data.catalogue import DatasetEntry, get_dataset, list_categories, make_datamodule
from anomalib_glocalclip.utils.errors import describe_error
from anomalib_glocalclip.utils.logs import log_to_file

from .engine import evaluation_engine
from .models import (
    ModelFactory,
    anoclip_factory,
    apply_few_shot,
    config_factory,
    describe_factory,
    glocalclip_factory,
    model_title,
    musc_factory,
    prepare_model,
    sweep_evaluator,
)
from .report import write_report
from .report_data import ReportCollector, report_data_path
from .stopping import StopSignals, SweepStopped, stop_on_signals
from .store import INTERRUPTED, CategoryResult, ResultStore
from .tables import order_results, write_tables

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from anomalib.metrics import Evaluator
    from anomalib.models.components import AnomalibModule
    from lightning.pytorch import LightningModule, Trainer
    from torch import nn

logger = logging.getLogger(__name__)

LOG_FILE = "evaluate.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
DEFAULT_OUTPUT = Path("results") / "evaluate"


def is_config(model: str | Path) -> bool:
    """Whether ``model`` names an Anomalib config file (``.yaml``, ``.yml``, ``.json``) rather than a model."""
    return Path(model).suffix.lower() in {".yaml", ".yml", ".json"}


def resolve_model(
    model: ModelFactory | str | Path, model_args: Mapping[str, object] | None = None, dataset: str | None = None
) -> ModelFactory:
    """The model factory of ``model``.

    Args:
        model: a factory (returned as is), ``"glocalclip"`` (needs ``prompt_weights`` in ``model_args``),
            ``"anoclip"``, ``"musc"``, or the path of an Anomalib config file.
        model_args: init arguments of a model named by string or config.
        dataset: the catalogue name of the swept dataset (MuSc's preset: ``musc_factory``).
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
    if name == "musc":
        return musc_factory(dataset, **model_args)
    msg = f"Unknown model {model!r}: use 'glocalclip' (with prompts), 'anoclip', 'musc', or an Anomalib config file."
    raise ValueError(msg)


class _ImageProgress(Callback):
    """A Lightning callback advancing a tqdm bar over the test images (rate and ETA of the running category)."""

    def __init__(self, total: int, category: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc=f"  {category}", unit="image", disable=not enabled, leave=False,
                        dynamic_ncols=True)

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: ImageBatch, batch: ImageBatch, *args: object
    ) -> None:
        del trainer, pl_module, outputs, args
        self.bar.update(len(batch))


@dataclass
class _CategoryRun:
    """Everything one category's run needs from the sweep (so the loop stays readable).

    The plugin's models (``ZeroShotCLIPMixin``) are built once and reused: per category they get a fresh
    evaluator, a fresh copy of the post-processor as built (no thresholds carried over), no references of the
    previous category and the category's heatmap folder. Other models are built anew for every category, as they
    may keep per-category state.
    """

    factory: ModelFactory
    entry: DatasetEntry
    root: Path
    output: Path
    engine_args: dict[str, str | int]
    datamodule_args: dict[str, int]
    heatmaps: bool
    normalize: bool
    seed: int | None
    resize_masks: bool = False
    progress: bool = False
    few_shot: int = 0
    processes: int = 1
    _model: AnomalibModule | None = field(default=None, init=False)
    _pristine_post_processor: nn.Module | None = field(default=None, init=False)

    def model_for(self, evaluator: Evaluator) -> AnomalibModule:
        """The sweep's model readied for one category: built on first use, reused where it can be."""
        if self._model is None:
            model = self.factory(evaluator=evaluator)
            prepare_model(model, evaluator, None, self.normalize)
            if not isinstance(model, ZeroShotCLIPMixin):
                return model
            self._model = model
            self._pristine_post_processor = copy.deepcopy(model.post_processor)
            return model
        model = self._model
        model.evaluator = evaluator
        model.post_processor = copy.deepcopy(self._pristine_post_processor)
        model.forget_references()  # few-shot by its config: the next category's references are its own
        return model

    def release(self) -> None:
        """Drop the sweep's model (end of the sweep)."""
        self._model = None
        self._pristine_post_processor = None
        _release_memory()

    def __call__(self, category: str) -> CategoryResult:
        """Test ``category``; data and test errors become a failed result, model-building errors propagate."""
        from lightning.pytorch import seed_everything

        start = time.perf_counter()
        result = CategoryResult(category=category, status="failed")
        try:
            datamodule = make_datamodule(
                self.entry, self.root, category, resize_masks=self.resize_masks, **self.datamodule_args
            )
            datamodule.prepare_data()
            datamodule.setup()
            samples = datamodule.test_data.samples
            labels = set(samples["label_index"].astype(int))
            result.n_images, result.n_anomalous = len(samples), int(samples["label_index"].sum())
            # Image metrics need both classes; pixel metrics need masks.
            evaluator = sweep_evaluator(
                image_metrics=self.entry.image_metrics and labels == {0, 1},
                pixel_metrics=self.entry.pixel_metrics
                and str(datamodule.test_data.task).lower().endswith("segmentation"),
            )
        except Exception as error:  # noqa: BLE001 - a broken category is reported, the sweep goes on
            return self._failed(result, error, start)
        if self.seed is not None:
            seed_everything(self.seed, verbose=False)
        heatmap_dir = self.output / "heatmaps" / category
        model = apply_few_shot(self.model_for(evaluator), self.few_shot, category, self.seed)
        progress = _ImageProgress(result.n_images or 0, category, self.progress)
        report = ReportCollector()
        try:
            shutil.rmtree(heatmap_dir, ignore_errors=True)  # no stale pictures from an interrupted run
            engine = evaluation_engine(
                self.output / "runs" / category,
                model,
                datamodule,
                heatmap_dir=heatmap_dir if self.heatmaps else None,
                callbacks=[progress, report],
                **self.engine_args,
            )
            # On anomalous-only data the adaptive threshold falls back to the lowest score (all predicted anomalous,
            # which is right) and image metrics are not computed: its warning would only repeat for every category.
            with silence_log_message("anomalib.metrics.threshold.f1_adaptive_threshold",
                                     "does not contain any normal images", active=labels == {1}):
                metrics = engine.test(model, datamodule=datamodule, verbose=False)[0]
            self.processes = engine.trainer.world_size
            if engine.trainer.is_global_zero:  # under DDP the report data hold process 0's share (see _write_tables)
                report.save(report_data_path(self.output, category))
        except Exception as error:  # noqa: BLE001
            return self._failed(result, error, start)
        finally:
            progress.bar.close()
            del model
            if self._model is None:
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


def _release_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def evaluate(
    model: ModelFactory | str | Path, dataset: str | DatasetEntry, root: str | Path,
    categories: Sequence[str] | None = None, output: str | Path = DEFAULT_OUTPUT, *,
    model_args: Mapping[str, object] | None = None, accelerator: str = "auto", devices: int | str = 1,
    batch_size: int = 8, num_workers: int = 4, heatmaps: bool = True, normalize: bool = False,
    resize_masks: bool = False, overwrite: bool = False, seed: int | None = 111, progress: bool = True,
    few_shot: int = 0
) -> pd.DataFrame:
    """Test a model zero-shot on every category of a dataset; write the paper's tables into ``output``.

    Args:
        model: a model factory (see ``models.py``), ``"glocalclip"``, ``"anoclip"``, ``"musc"`` (the paper's
            preset for the dataset), or an Anomalib config file.
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
        normalize: compute metrics on Anomalib's normalised scores instead of the raw ones (``prepare_model``).
        resize_masks: resize masks of another size than their image (nearest neighbour) instead of failing the
            category with an error naming both files.
        overwrite: discard the results already in ``output`` instead of resuming.
        seed: seed set before each category (``None``: none).
        progress: show progress bars over categories and over the running category's images (rate, ETA).
        few_shot: ``k`` normal train images per category as references (``apply_few_shot``); ``0``: zero-shot.

    Returns:
        The paper-format table (as ``results.csv``): one row per category with a result, then ``mean``; values
        x100 with one decimal. ``table.attrs["failed"]`` lists the categories that failed in this run.

    Raises:
        SweepStopped: SIGINT or SIGTERM came; the running category is stored as interrupted (a rerun redoes it)
            and the tables of the finished ones are written first.
        SweepMismatchError: ``output`` holds results of another sweep (and ``overwrite`` is not set).
        ValueError: unknown dataset or model, or none of the categories exists.
    """
    entry = get_dataset(dataset)
    factory = resolve_model(model, model_args, entry.name)
    root = Path(root).expanduser()
    output = Path(output).expanduser()
    available = list_categories(entry, root)
    chosen = _chosen_categories(entry, root, categories, available)
    store = ResultStore(output)
    if overwrite:
        store.clear()
    settings = _settings(entry, root, factory, normalize, few_shot)
    output.mkdir(parents=True, exist_ok=True)
    store.check_settings(settings)
    run = _CategoryRun(
        factory=factory, entry=entry, root=root, output=output,
        engine_args={"accelerator": accelerator, "devices": devices},
        datamodule_args={"eval_batch_size": batch_size, "num_workers": num_workers},
        heatmaps=heatmaps, normalize=normalize, seed=seed, resize_masks=resize_masks, progress=progress,
        few_shot=few_shot,
    )
    return _sweep(run, chosen, available, store, settings)


def _sweep(
    run: _CategoryRun, chosen: list[str], available: list[str], store: ResultStore, settings: dict[str, str | int]
) -> pd.DataFrame:
    """Run the chosen categories, logging to the output's ``evaluate.log``; write the tables, even when stopped."""
    output = run.output
    # A second signal while the tables are written is ignored: they are written whole.
    with log_to_file(output / LOG_FILE, logger_name=__package__, log_format=LOG_FORMAT), stop_on_signals() as stop:
        logger.info("Sweep of %s on %s (%s), categories %s", settings["model"], run.entry.title, run.root, chosen)
        failed: list[str] = []
        try:
            _run_categories(run, chosen, store, stop, settings["scores"], failed)
        finally:
            run.release()
            # Also after an interruption: the tables show everything finished so far.
            table = _write_tables(store, run.entry, available, output, settings, run.processes)
    table.attrs["failed"] = failed
    return table


def _chosen_categories(
    entry: DatasetEntry, root: Path, categories: Sequence[str] | None, available: list[str]
) -> list[str]:
    """``categories``, or every available one for ``None``; ``ValueError`` for one that ``root`` does not hold."""
    chosen = list(categories) if categories else available
    unknown = [category for category in chosen if category not in available]
    if unknown:
        msg = f"{entry.title} under {root} has no categories {unknown}; found: {', '.join(available)}."
        raise ValueError(msg)
    return chosen


def _settings(
    entry: DatasetEntry, root: Path, factory: ModelFactory, normalize: bool, few_shot: int
) -> dict[str, str | int]:
    """What a sweep's results depend on; stored with them, so that a resume with other settings is refused."""
    settings: dict[str, str | int] = {
        "dataset": entry.name,
        "root": str(root.resolve()),
        "model": describe_factory(factory),
        "title": model_title(factory),
        "scores": "anomalib-normalized" if normalize else "raw",
    }
    if few_shot:  # in the title too, so that a zero-shot and a few-shot sweep never share a folder
        settings.update(few_shot=few_shot, title=f"{settings['title']} ({few_shot}-shot)")
    return settings


def _run_categories(
    run: _CategoryRun, chosen: Sequence[str], store: ResultStore, stop: StopSignals, scores: str, failed: list[str]
) -> None:
    """Test each chosen category not finished yet and store its result; the failed ones are appended to ``failed``.

    Raises:
        SweepStopped: a signal came; the running category is stored as interrupted first.
    """
    log_file = run.output / LOG_FILE
    bar = tqdm(chosen, desc=f"{run.entry.name}", unit="category", disable=not run.progress, dynamic_ncols=True)
    for category in bar:
        bar.set_postfix_str(category)
        if store.finished(category):
            logger.info("Category %s: already done, skipped", category)
            continue
        try:
            result = run(category)
            stop.raise_if_received()  # a signal that came while a killed worker's error was handled
        except SweepStopped as stopped:
            store.save(CategoryResult(category=category, status=INTERRUPTED, error=str(stopped)))
            logger.warning("Category %s interrupted (%s); a rerun redoes it", category, stopped)
            raise
        store.save(result)
        if result.ok:
            logger.info("Category %s done in %.1f s, metrics on %s scores: %s", category, result.duration_s,
                        scores, result.metrics)
        else:
            failed.append(category)
            tqdm.write(f"{category}: FAILED ({result.error}); see {log_file}", file=sys.stderr)


def _write_tables(
    store: ResultStore, entry: DatasetEntry, available: Sequence[str], output: Path, settings: Mapping[str, str | int],
    processes: int = 1
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
    if processes > 1:
        footnotes.append(f"Run on {processes} processes (DDP): the report's images and score plots are process 0's "
                         "share; metrics, thresholds and heatmaps cover every image.")
    footnotes += [f"{result.category} {result.status}: {result.error}" for result in results if not result.ok]
    scores = "raw scores" if settings["scores"] == "raw" else "Anomalib-normalised scores"
    title = f"{settings['title']}, {'few' if k else 'zero'}-shot on {entry.title} ({scores})"
    table = write_tables(output, results, entry, title, n_categories=len(available), footnotes=footnotes)
    write_report(output, results, table, title, footnotes)
    return table


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
