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
"""

from __future__ import annotations

import argparse
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
import yaml
from tqdm.auto import tqdm

from anomalib_glocalclip.data.catalogue import DATASETS, DatasetEntry, get_dataset, list_categories, make_datamodule

from .models import (
    ModelFactory,
    anoclip_factory,
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
DEFAULT_OUTPUT = Path("results") / "evaluate"


def _is_config(model: str | Path) -> bool:
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
    if _is_config(model):
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
    ) -> None:
        self.factory = factory
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
        model = self.factory(evaluator=evaluator)
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
        result.error = f"{type(error).__name__}: {error}".strip()
        result.traceback = traceback.format_exc()
        result.duration_s = round(time.perf_counter() - start, 3)
        logger.error("Category %s failed: %s\n%s", result.category, result.error, result.traceback)
        return result


class _DropNoNormalImagesWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "does not contain any normal images" not in record.getMessage()


@contextlib.contextmanager
def _expected_one_class_warning(one_class: bool) -> Iterator[None]:
    """On anomalous-only data, silence Anomalib's warning that validation has no normal images.

    There its adaptive image threshold falls back to the lowest score (every image is predicted anomalous, which
    is right), and image metrics are not computed; the warning would only repeat for every such category.
    """
    threshold_logger = logging.getLogger("anomalib.metrics.threshold.f1_adaptive_threshold")
    log_filter = _DropNoNormalImagesWarning()
    if one_class:
        threshold_logger.addFilter(log_filter)
    try:
        yield
    finally:
        threshold_logger.removeFilter(log_filter)


def _release_memory() -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Append this package's sweep messages to ``path`` while the sweep runs."""
    package_logger = logging.getLogger(__package__)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
        handler.close()


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
    )
    failed: list[str] = []
    with _log_to(output / LOG_FILE):
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
    footnotes = [
        f"Model: `{settings['model']}`.",
        f"Dataset: {entry.title} (`{entry.name}`) at `{settings['root']}`; zero-shot, validation = test split.",
        "Scores: " + ("Anomalib-normalised." if settings["scores"] != "raw" else "raw, as in the paper."),
    ]
    if not entry.image_metrics:
        footnotes.append("Image metrics are not reported: every test image of this dataset is anomalous.")
    if not entry.pixel_metrics:
        footnotes.append("Pixel metrics are not reported: this dataset has image labels only.")
    footnotes += [f"{result.category} failed: {result.error}" for result in results if not result.ok]
    title = f"{settings['title']}, zero-shot on {entry.title}"
    return write_tables(output, results, entry, title, n_categories=len(available), footnotes=footnotes)


# ----- command line -----


def _key_value(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        msg = f"expected KEY=VALUE, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return key.strip(), yaml.safe_load(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomalib-glocalclip evaluate",
        description="Test a model zero-shot on every category of a dataset and write the paper's tables "
        "(per category and mean, x100), with heatmaps. Reruns resume: finished categories are skipped.",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default="glocalclip",
        help="glocalclip (needs --prompts), anoclip, or an Anomalib config file with a model: section",
    )
    model.add_argument("--prompts", default=None, help="GlocalCLIP's learned prompt file (prompts.pt)")
    model.add_argument("--backbone", default=None, help="open_clip model name or config JSON (model default if unset)")
    model.add_argument(
        "--pretrained",
        default=None,
        help="open_clip pretrained tag or weight file; 'none' for random weights (tests only)",
    )
    model.add_argument("--image-size", type=int, default=None, help="input size (model default if unset)")
    model.add_argument(
        "--model-arg",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further init argument of the model, value in YAML (e.g. sigma=8, tta=true); repeatable",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, help=f"dataset: {', '.join(DATASETS)} (aliases allowed)")
    data.add_argument("--root", required=True, help="dataset root, in its official download layout")
    data.add_argument("--categories", nargs="+", default=None, help="categories to test (default: all found)")
    data.add_argument("--batch-size", type=int, default=8, help="evaluation batch size")
    data.add_argument("--workers", type=int, default=4, help="dataloader workers")
    run = parser.add_argument_group("run")
    run.add_argument("--output", default=None, help="output folder (default: results/evaluate/<model>/<dataset>)")
    run.add_argument("--accelerator", default="auto", help="Lightning accelerator (auto, gpu, cpu)")
    run.add_argument("--devices", default="1", help="Lightning devices")
    run.add_argument("--seed", type=int, default=111, help="seed set before every category")
    run.add_argument("--no-heatmaps", action="store_true", help="do not write heatmaps")
    run.add_argument(
        "--normalize-scores",
        action="store_true",
        help="compute metrics on Anomalib's normalised scores (default: raw scores, as the paper)",
    )
    run.add_argument("--overwrite", action="store_true", help="discard earlier results in --output and start over")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _model_args(args: argparse.Namespace) -> dict[str, Any]:
    model_args: dict[str, Any] = dict(args.model_arg)
    if args.prompts is not None:
        model_args["prompt_weights"] = args.prompts
    if args.backbone is not None:
        model_args["backbone"] = args.backbone
    if args.pretrained is not None:
        model_args["pretrained"] = None if args.pretrained.lower() in {"none", "null"} else args.pretrained
    if args.image_size is not None:
        model_args["image_size"] = args.image_size
    return model_args


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
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


def main(argv: Sequence[str]) -> int:
    """``anomalib-glocalclip evaluate``: 0 if every category succeeded, 1 if some failed, 2 on a setup error."""
    args = _parser().parse_args(list(argv))
    model = args.model
    if model.lower() == "glocalclip" and args.prompts is None:
        _parser().error("--model glocalclip is evaluated with learned prompts: pass --prompts prompts.pt")
    label = Path(model).stem if _is_config(model) else model.lower()
    devices: int | str = int(args.devices) if args.devices.isdigit() else args.devices
    try:
        output = Path(args.output) if args.output else DEFAULT_OUTPUT / label / get_dataset(args.dataset).name
        with _quiet_lightning():
            table = evaluate(
                model,
                args.dataset,
                args.root,
                categories=args.categories,
                output=output,
                model_args=_model_args(args),
                accelerator=args.accelerator,
                devices=devices,
                batch_size=args.batch_size,
                num_workers=args.workers,
                heatmaps=not args.no_heatmaps,
                normalize=args.normalize_scores,
                overwrite=args.overwrite,
                seed=args.seed,
                progress=not args.no_progress,
            )
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"anomalib-glocalclip evaluate: error: {error}", file=sys.stderr)
        return 2
    print((output / "results.md").read_text(encoding="utf-8"))
    print(f"Results: {output / 'results.csv'}, {output / 'results.md'}, {output / 'metrics.csv'}")
    failed = table.attrs.get("failed", [])
    if failed:
        print(f"{len(failed)} categories failed: {', '.join(failed)} (see {output / LOG_FILE})", file=sys.stderr)
        return 1
    return 0
