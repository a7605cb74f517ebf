"""End-to-end speed of ``anomalib-glocalclip evaluate`` on an MVTec-AD-shaped set, against the model's forward.

    python benchmarks/evaluate_speed.py                  # 15 categories, 1,725 test images at 1024 px (GPU)
    python benchmarks/evaluate_speed.py --tiny           # a CPU smoke run: tiny random CLIP, 64 px, 2 categories
    python benchmarks/evaluate_speed.py --categories bottle --heatmaps off --batch-size 32 --workers 8

The set has MVTec AD's 15 category names and test counts (467 normal + 1,258 anomalous images, PNG, masks with
1-3 elliptic defects) and one training image per category; it is written once by a process pool into ``--data``
and reused while its ``manifest.json`` matches. GlocalCLIP runs with random weights (ViT-L-14-336 at 518 px, bf16
on a GPU; speed does not depend on the weights) through the public
:func:`anomalib_glocalclip.evaluation.sweep.evaluate`, as users run it (one model for the sweep, one pass per
category, metric states on the model's device), once with and once without heatmaps, and once more without
heatmaps with the metric states on the host and Anomalib's own AUPRO instead of ``anomalib_glocalclip.metrics.AUPRO``
(the sweep's metrics before issue 14); the largest metric difference between the sweeps is printed (the same
numbers are expected).

Printed per sweep: total seconds, test images/s, the fixed seconds per category and the seconds per image (a
least-squares line through the categories' own durations, the first one left out as warm-up: "n/a" with fewer
than three categories), peak GPU memory, and seconds spent in

* ``loading``: the main process waiting for the next batch (``DataLoader`` iterators);
* ``model``: the torch model's forward;
* ``metrics``: the evaluator's batch and epoch hooks (metric updates and ``compute``);
* ``heatmaps``: the one-pass callback's end of the test epoch (thresholds fitted, the kept predictions labelled and
  drawn on a few threads; without heatmaps its threshold fit counts as ``metrics``), or the visualizer's test-batch
  hook on the two-pass path of normalised scores;
  ``heatmap drawing (threads)`` is the drawing threads' own time (rendering and writing PNGs), which overlaps and
  is not part of the total's split;
* ``tables``: writing the sweep's tables at the end;
* ``other``: the rest (model building, Engine set-up, pre-processing, post-processing, host-device copies, result
  files).

Then ``anomalib test``'s path (``Engine.test`` on the first category: Anomalib's validation pass, then the test,
heatmaps drawn in the test loop) is timed against the sweep's one pass on the same category (thresholds fitted on
the test pass, heatmaps drawn after it on a few threads), both on raw scores with the sweep's metrics; the ratio and the
largest metric difference (the same numbers are expected) are printed.

Last, every pixel metric of the sweep is timed alone on a category-sized stack (``--metric-stack``, default 80
maps of 518 px) with its states on the host and, on a GPU, on the device (as the sweep keeps them).

The spans are measured from outside the sweep by wrapping the named methods for the run (with a CUDA
synchronisation at each edge, which removes some overlap the sweep would otherwise get). The model's own forward
images/s at the same batch size is measured in the same run, and the sweep/forward ratio printed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from anomalib.metrics import Evaluator

# MVTec AD's test split: (normal, anomalous) images per category, 467 + 1,258 = 1,725.
MVTEC_AD_TEST_COUNTS: dict[str, tuple[int, int]] = {
    "bottle": (20, 63),
    "cable": (58, 92),
    "capsule": (23, 109),
    "carpet": (28, 89),
    "grid": (21, 57),
    "hazelnut": (40, 70),
    "leather": (32, 92),
    "metal_nut": (22, 93),
    "pill": (26, 141),
    "screw": (41, 119),
    "tile": (33, 84),
    "toothbrush": (12, 30),
    "transistor": (60, 40),
    "wood": (19, 60),
    "zipper": (32, 119),
}
TINY_COUNTS: dict[str, tuple[int, int]] = {"bottle": (2, 3), "carpet": (2, 4)}
SPANS = ("loading", "model", "metrics", "heatmaps", "tables")

# ----- data -----


def _write_sample(task: tuple[str, str | None, int, int]) -> None:
    """Write one smooth random RGB image (and, for an anomalous one, its mask with 1-3 inverted ellipses)."""
    image_path, mask_path, size, seed = task
    rng = np.random.default_rng(seed)
    cells = max(2, size // 32)
    image = cv2.resize(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), (size, size), cv2.INTER_CUBIC)
    if mask_path is not None:
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            center = (int(rng.integers(size // 8, size - size // 8)), int(rng.integers(size // 8, size - size // 8)))
            axes = (int(rng.integers(1 + size // 40, 2 + size // 8)), int(rng.integers(1 + size // 40, 2 + size // 8)))
            cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, thickness=-1)
        image[mask > 0] = 255 - image[mask > 0]
        cv2.imwrite(mask_path, mask)
    cv2.imwrite(image_path, image)


def _tasks(root: Path, counts: dict[str, tuple[int, int]], size: int) -> list[tuple[str, str | None, int, int]]:
    """Every file of the MVTec AD layout as a ``_write_sample`` task (folders created here)."""
    tasks: list[tuple[str, str | None, int, int]] = []
    for category, (normal, anomalous) in counts.items():
        base = root / category
        for folder in ("train/good", "test/good", "test/defect", "ground_truth/defect"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        tasks.append((str(base / "train/good/000.png"), None, size, len(tasks)))
        tasks += [(str(base / f"test/good/{index:03d}.png"), None, size, len(tasks) + index) for index in range(normal)]
        tasks += [
            (str(base / f"test/defect/{index:03d}.png"), str(base / f"ground_truth/defect/{index:03d}_mask.png"), size,
             len(tasks) + normal + index)
            for index in range(anomalous)
        ]
    return tasks


def make_dataset(root: Path, counts: dict[str, tuple[int, int]], size: int, processes: int | None = None) -> float:
    """Write the set under ``root`` unless its manifest says it is there already; returns the seconds it took.

    Args:
        root: dataset root (MVTec AD layout); replaced when its manifest differs.
        counts: ``{category: (normal, anomalous)}`` test images.
        size: image side in pixels.
        processes: writer processes (default: one per CPU).
    """
    manifest = root / "manifest.json"
    wanted = {"size": size, "counts": counts}
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")) == json.loads(json.dumps(wanted)):
        return 0.0
    start = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    tasks = _tasks(root, counts, size)
    with ProcessPoolExecutor(max_workers=processes) as pool:
        list(pool.map(_write_sample, tasks, chunksize=8))
    manifest.write_text(json.dumps(wanted), encoding="utf-8")  # last: an interrupted run is redone
    return time.perf_counter() - start


# ----- timing -----


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Spans:
    """Seconds accumulated per span name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        """Add the wall time of the block (device work included) to ``name``."""
        _sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            self.seconds[name] += time.perf_counter() - start

    @contextlib.contextmanager
    def wrapping(self, owner: object, attribute: str, name: str) -> Iterator[None]:
        """Time every call of ``owner.attribute`` into ``name`` while the block runs; restored afterwards."""
        own = attribute in vars(owner)
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: object, **kwargs: object) -> object:
            with self.span(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        try:
            yield
        finally:
            if own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)


def metrics_on_host(evaluator: Evaluator) -> Evaluator:
    """``evaluator`` as the sweep had it before issue 14: states on the host, Anomalib's own AUPRO.

    The plugin's ``AUPRO`` (the sweep's) gives Anomalib's values with regions labelled on the host in one call;
    here it is swapped back for Anomalib's class. Done in place; returns ``evaluator``.
    """
    from anomalib.metrics import AUPRO as AnomalibAUPRO  # noqa: N811 - both are called AUPRO

    from anomalib_glocalclip.metrics import AUPRO

    evaluator.compute_on_cpu = True
    for index, metric in enumerate(evaluator.test_metrics):
        if type(metric) is AUPRO:
            prefix = metric.name.removesuffix("AUPRO")
            evaluator.test_metrics[index] = AnomalibAUPRO(
                fields=metric.fields, prefix=prefix, strict=metric.strict, fpr_limit=float(metric.fpr_limit)
            )
    return evaluator


@contextlib.contextmanager
def host_metrics_in_sweep() -> Iterator[None]:
    """While the block runs, the sweep's evaluators (one per category) get :func:`metrics_on_host`."""
    from anomalib_glocalclip.evaluation import sweep

    original = sweep.sweep_evaluator

    @functools.wraps(original)
    def on_host(*args: object, **kwargs: object) -> Evaluator:
        return metrics_on_host(original(*args, **kwargs))

    sweep.sweep_evaluator = on_host
    try:
        yield
    finally:
        sweep.sweep_evaluator = original


class TimedFactory:
    """A sweep model factory building GlocalCLIP and timing its torch model's forward into ``spans["model"]``.

    Args:
        spans: where the forward seconds go.
        **model_args: ``GlocalCLIP`` arguments.
    """

    title = "GlocalCLIP"

    def __init__(self, spans: Spans, **model_args: object) -> None:
        self.spans = spans
        self.model_args = model_args
        self.description = f"GlocalCLIP({model_args}) timed by benchmarks/evaluate_speed.py"
        self._start = 0.0

    def _before(self, *_: object) -> None:
        _sync()
        self._start = time.perf_counter()

    def _after(self, *_: object) -> None:
        _sync()
        self.spans.seconds["model"] += time.perf_counter() - self._start

    def __call__(self, evaluator: Evaluator) -> torch.nn.Module:
        """A GlocalCLIP with forward timing hooks on its torch model (the sweep builds one)."""
        from anomalib_glocalclip import GlocalCLIP

        model = GlocalCLIP(evaluator=evaluator, **self.model_args)
        model.model.register_forward_pre_hook(self._before)
        model.model.register_forward_hook(self._after)
        return model


def _fit_line(durations: list[tuple[int, float]]) -> tuple[float, float] | None:
    """(seconds per category, seconds per image) of ``duration = a + b * images``; ``None`` if undetermined.

    The first category also pays one-off warm-up (kernels, caches) and is left out, so three categories are needed.
    """
    durations = durations[1:]
    images = np.array([n for n, _ in durations], dtype=np.float64)
    if len(durations) < 2 or np.ptp(images) == 0:
        return None
    per_image, fixed = np.polyfit(images, np.array([s for _, s in durations]), 1)
    return float(fixed), float(per_image)


def run_sweep(
    args: argparse.Namespace,
    data: Path,
    model_args: dict[str, Any],
    heatmaps: bool = True,
    host_metrics: bool = False,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """One timed ``evaluate`` over ``args.categories``.

    Returns:
        The figures of one table column, and the metrics of every category.
    """
    from anomalib.metrics import Evaluator
    from anomalib.visualization import ImageVisualizer
    from torch.utils.data.dataloader import _BaseDataLoaderIter

    from anomalib_glocalclip.evaluation import one_pass, sweep
    from anomalib_glocalclip.evaluation.store import ResultStore

    spans = Spans()
    folder = ("heatmaps" if heatmaps else "no_heatmaps") + ("_host_metrics" if host_metrics else "")
    output = args.output / folder
    hooks = [
        (_BaseDataLoaderIter, "__next__", "loading"),
        *((Evaluator, hook, "metrics") for hook in ("on_validation_batch_end", "on_validation_epoch_end",
                                                    "on_test_batch_end", "on_test_epoch_end")),
        (ImageVisualizer, "on_test_batch_end", "heatmaps"),  # the two-pass path (normalised scores)
        # the one-pass path: fit, label, draw (without heatmaps only the fit, which is the thresholds' metrics)
        (one_pass.ThresholdsFromTest, "on_test_epoch_end", "heatmaps" if heatmaps else "metrics"),
        (one_pass, "save_pictures", "heatmap drawing (threads)"),
        (sweep, "_write_tables", "tables"),
    ]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.ExitStack() as stack:
        for owner, attribute, name in hooks:
            stack.enter_context(spans.wrapping(owner, attribute, name))
        if host_metrics:
            stack.enter_context(host_metrics_in_sweep())
        start = time.perf_counter()
        factory = TimedFactory(spans, **model_args)
        table = sweep.evaluate(factory, "mvtec_ad", data, categories=args.categories, output=output,
                               accelerator=args.accelerator, devices=1, batch_size=args.batch_size,
                               num_workers=args.workers, heatmaps=heatmaps, overwrite=True, progress=False)
        total = time.perf_counter() - start
    if table.attrs.get("failed"):
        msg = f"categories failed: {table.attrs['failed']} (see {output / sweep.LOG_FILE})"
        raise RuntimeError(msg)
    results = {result.category: result for result in ResultStore(output).all()}
    durations = [(results[c].n_images, results[c].duration_s) for c in args.categories]
    images = sum(n for n, _ in durations)
    line = _fit_line(durations)
    figures: dict[str, Any] = {
        "total s": total,
        "test images": images,
        "images/s": images / total,
        "fixed s per category": line[0] if line else None,
        "s per image": line[1] if line else None,
        **{f"{name} s": spans.seconds[name] for name in SPANS},
        "other s": total - sum(spans.seconds[name] for name in SPANS),
        "heatmap drawing (threads) s": spans.seconds["heatmap drawing (threads)"],
        "peak GPU GiB": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
    }
    return figures, {category: results[category].metrics for category in args.categories}


def forward_images_per_second(model_args: dict[str, Any], batch_size: int, device: str, iterations: int) -> float:
    """Images/s of GlocalCLIP's torch model forward on random pre-processed images (two warm-up batches)."""
    from anomalib_glocalclip import GlocalCLIP

    model = GlocalCLIP(**model_args)
    network = model.model.to(device).eval()
    images = torch.randn(batch_size, 3, model.image_size, model.image_size, device=device)
    with torch.no_grad():
        for _ in range(2):
            network(images)
        _sync()
        start = time.perf_counter()
        for _ in range(iterations):
            network(images)
        _sync()
    return batch_size * iterations / (time.perf_counter() - start)


def _disc_stack(images: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 maps ``[images, size, size]`` lifted by 0.5 inside up to three discs per image, and bool masks."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.arange(size)
    masks = torch.zeros(images, size, size, dtype=torch.bool)
    for _ in range(3):
        cy, cx = torch.randint(0, size, (2, images, 1, 1), generator=generator)
        radius = torch.randint(2, max(3, size // 9), (images, 1, 1), generator=generator)
        masks |= (grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2 <= radius**2
    masks[::4] = False
    return torch.rand(images, size, size, generator=generator) + 0.5 * masks, masks


def time_pixel_metrics(images: int, size: int, devices: list[str], batch_size: int) -> dict[str, dict[str, float]]:
    """Seconds of every pixel metric of the sweep (updates + compute) on one category-sized stack, per device.

    Also the plugin's ``AUPRO`` (row ``pixel_AUPRO (plugin)``). The maps are fed in batches as the evaluator
    does; a ``cpu`` column is what the sweep pays today (its metric states live on the host).
    """
    import copy
    from types import SimpleNamespace

    from anomalib_glocalclip.evaluation.models import sweep_evaluator
    from anomalib_glocalclip.metrics import AUPRO

    maps, masks = _disc_stack(images, size)
    candidates = [metric for metric in sweep_evaluator().test_metrics if metric.name.startswith("pixel_")]
    candidates.append(AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False, fpr_limit=0.3))
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for index, template in enumerate(candidates):
        name = template.name + (" (plugin)" if index == len(candidates) - 1 else "")
        for device in devices:
            metric = copy.deepcopy(template).to(device)
            on_device = maps.to(device), masks.to(device)
            _sync()
            start = time.perf_counter()
            for first in range(0, images, batch_size):
                chunk = slice(first, first + batch_size)
                metric.update(SimpleNamespace(anomaly_map=on_device[0][chunk], gt_mask=on_device[1][chunk]))
            float(metric.compute())
            _sync()
            rows[name][device] = time.perf_counter() - start
    return dict(rows)


def _largest_difference(metric_values: dict[str, dict[str, dict[str, float]]]) -> float | None:
    """Largest absolute difference of one category's metric between any sweep and the first; ``None`` if one."""
    first, *others = metric_values.values()
    differences = [
        abs(value - first[category][name])
        for other in others
        for category, values in other.items()
        for name, value in values.items()
    ]
    return max(differences) if differences else None


def time_engine_test(args: argparse.Namespace, data: Path, model_args: dict[str, Any], category: str) -> dict[str, Any]:
    """``anomalib test``'s two passes (``Engine.test``: validate, then test) against the sweep's one pass on a category.

    Both score raw (Anomalib's post-processor without normalisation, as the sweep), compute the sweep's metrics and
    draw heatmaps; the model is built after the same seed (the sweep's), so the metrics are expected to be equal.
    """
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.post_processing import PostProcessor
    from lightning.pytorch import seed_everything

    from anomalib_glocalclip import GlocalCLIP
    from anomalib_glocalclip.evaluation import sweep
    from anomalib_glocalclip.evaluation.models import heatmap_visualizer, sweep_evaluator

    output = args.output / "engine_test"
    seed_everything(111, verbose=False)  # the sweep's default seed, set before it builds its model
    model = GlocalCLIP(**model_args, post_processor=PostProcessor(enable_normalization=False),
                       evaluator=sweep_evaluator(), visualizer=heatmap_visualizer(output / "anomalib_test_heatmaps"))
    datamodule = MVTecAD(root=data, category=category, eval_batch_size=args.batch_size, num_workers=args.workers)
    engine = Engine(default_root_dir=output / "anomalib_test", devices=1, accelerator=args.accelerator,
                    logger=False, enable_progress_bar=False)
    _sync()
    start = time.perf_counter()
    two_pass = engine.test(model, datamodule=datamodule, verbose=False)[0]
    _sync()
    seconds = {"anomalib test s": time.perf_counter() - start}
    del model, engine
    start = time.perf_counter()
    sweep.evaluate(functools.partial(GlocalCLIP, **model_args), "mvtec_ad", data, categories=[category],
                   output=output / "evaluate", accelerator=args.accelerator, devices=1, batch_size=args.batch_size,
                   num_workers=args.workers, overwrite=True, progress=False)
    _sync()
    seconds["evaluate s"] = time.perf_counter() - start
    one_pass = json.loads((output / "evaluate" / "categories" / f"{category}.json").read_text())["metrics"]
    return {
        "category": category,
        "images": len(datamodule.test_data),
        **seconds,
        "ratio": seconds["anomalib test s"] / seconds["evaluate s"],
        "metric difference": max(abs(one_pass[name] - value) for name, value in two_pass.items()),
    }


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def print_report(columns: dict[str, dict[str, Any]], forward: float, device: str, args: argparse.Namespace) -> None:
    """The sweeps side by side as a markdown table, then the forward speed and the ratios."""
    names = list(columns)
    print(f"\nDevice: {device}; {len(args.categories)} categories; batch {args.batch_size}; workers {args.workers}")
    print("\n| figure | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    for key in next(iter(columns.values())):
        print(f"| {key} | " + " | ".join(_cell(columns[name][key]) for name in names) + " |")
    print(f"\nModel forward alone (batch {args.batch_size}): {forward:.1f} images/s")
    for name in names:
        ratio = columns[name]["images/s"] / forward
        print(f"Sweep ({name}) / forward: {ratio:.3f} ({1 / ratio:.1f}x slower than the forward)")
    if "cuda" not in device.lower():
        print("(CPU figures: only ratios between them mean anything; the targets need a GPU.)")
    print("Target (issue 14): the whole 15-category sweep in under 60 s on one GPU.")


def main(argv: list[str] | None = None) -> None:
    """Generate (or reuse) the data, time the sweeps and the forward, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP, 64 px, 2 small categories (CPU smoke)")
    parser.add_argument("--categories", nargs="+", default=None, help="categories to sweep (default: all generated)")
    parser.add_argument("--size", type=int, default=None, help="image side in px (default 1024, tiny 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default 32, tiny 4)")
    parser.add_argument("--workers", type=int, default=None, help="dataloader workers (default 8, tiny 0)")
    parser.add_argument("--processes", type=int, default=None, help="data writer processes (default: all CPUs)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--heatmaps", default="both", choices=["both", "on", "off"])
    parser.add_argument(
        "--no-host-metrics",
        dest="host_metrics",
        action="store_false",
        help="skip the extra sweep with metric states on the host and Anomalib's AUPRO (the sweep before issue 14)",
    )
    parser.add_argument("--metric-stack", type=int, nargs=2, default=None, metavar=("IMAGES", "SIZE"),
                        help="stack on which the pixel metrics are timed alone (default 80 518, tiny 4 64)")
    parser.add_argument("--iterations", type=int, default=None, help="forward batches timed (default 10, tiny 2)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--data", type=Path, default=Path("benchmark_data/mvtec_like"))
    parser.add_argument("--output", type=Path, default=Path("benchmark_runs/evaluate"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

    counts = TINY_COUNTS if args.tiny else MVTEC_AD_TEST_COUNTS
    size = args.size or (64 if args.tiny else 1024)
    args.batch_size = args.batch_size or (4 if args.tiny else 32)
    args.workers = (0 if args.tiny else 8) if args.workers is None else args.workers
    args.categories = args.categories or list(counts)
    unknown = sorted(set(args.categories) - set(counts))
    if unknown:
        parser.error(f"unknown categories {unknown}; choose from {', '.join(counts)}")
    model_args: dict[str, Any] = {"pretrained": None, "precision": args.precision}
    model_args |= {"backbone": str(TINY_CLIP_CONFIG), "image_size": 64, "sigma": 1.0} if args.tiny else {}

    data = args.data / f"{'tiny' if args.tiny else 'full'}_{size}px"
    seconds = make_dataset(data, counts, size, args.processes)
    print(f"Data: {data} ({'generated in ' + format(seconds, '.1f') + ' s' if seconds else 'reused'})")
    # The sweep needs a prompt file; random prompts do (speed does not depend on them).
    from anomalib_glocalclip import GlocalCLIP

    args.output.mkdir(parents=True, exist_ok=True)
    prompts = GlocalCLIP(**model_args).save_prompts(args.output / "prompts.pt")
    model_args["prompt_weights"] = str(prompts)

    modes = {"both": [True, False], "on": [True], "off": [False]}[args.heatmaps]
    runs = {
        ("with heatmaps" if heatmaps else "no heatmaps"): run_sweep(args, data, model_args, heatmaps=heatmaps)
        for heatmaps in modes
    }
    if args.host_metrics:
        runs["no heatmaps, metrics on host"] = run_sweep(args, data, model_args, heatmaps=False, host_metrics=True)
    columns = {name: figures for name, (figures, _) in runs.items()}
    metric_values = {name: values for name, (_, values) in runs.items()}
    use_cuda = torch.cuda.is_available() and args.accelerator in {"auto", "gpu", "cuda"}
    device = "cuda" if use_cuda else "cpu"
    iterations = args.iterations or (2 if args.tiny else 10)
    forward = forward_images_per_second(model_args, args.batch_size, device, iterations)
    print_report(columns, forward, torch.cuda.get_device_name() if use_cuda else "CPU", args)
    metric_images, metric_size = args.metric_stack or ((4, 64) if args.tiny else (80, 518))
    metric_seconds = time_pixel_metrics(metric_images, metric_size, ["cpu", "cuda"] if use_cuda else ["cpu"],
                                        args.batch_size)
    print(f"\nPixel metrics on one category-sized stack ({metric_images} maps of {metric_size} px), seconds:")
    devices = list(next(iter(metric_seconds.values())))
    print("| metric | " + " | ".join(devices) + " |\n|---|" + "---:|" * len(devices))
    for name, seconds in metric_seconds.items():
        print(f"| {name} | " + " | ".join(f"{seconds[device]:.3f}" for device in devices) + " |")
    engine_test = time_engine_test(args, data, model_args, args.categories[0])
    print(f"\n`anomalib test` (validate + test) vs `evaluate` (one pass) on {engine_test['category']} "
          f"({engine_test['images']} images, heatmaps, raw scores): {engine_test['anomalib test s']:.2f} s vs "
          f"{engine_test['evaluate s']:.2f} s ({engine_test['ratio']:.2f}x); "
          f"largest metric difference {engine_test['metric difference']:.1e}")
    difference = _largest_difference(metric_values)
    if difference is not None:
        print(f"Largest metric difference between the sweeps: {difference:.2e} (same numbers expected: < 1e-6)")
    if args.json is not None:
        figures = {"sweeps": columns, "forward images/s": forward, "metrics": metric_values,
                   "pixel metric seconds": metric_seconds, "engine test": engine_test}
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
