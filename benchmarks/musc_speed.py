"""MuSc speed: ms per image and peak memory of the plugin and of the official code, set size by set size.

    python benchmarks/musc_speed.py --device cpu --sizes 16 64                  # the plugin alone
    python benchmarks/musc_speed.py --device cpu --sizes 16 64 --reference /path/to/MuSc
    python benchmarks/musc_speed.py --device cuda --sizes 200 --reference /path/to/MuSc
    python benchmarks/musc_speed.py --tiny                                       # a smoke run (tiny random CLIP)

For each set size N it writes N generated product images as one MVTec AD-layout category (the layout the
reference reads), then runs each side **in its own process** on the same machine, one after the other:

* the plugin: ``MuSc`` and an ``Engine`` are built before the clock; the clock covers ``Engine.predict`` on the
  category's ``test`` folder with ``visualizer=False, post_processor=False, evaluator=False`` (decoding,
  pre-processing, backbone, LNAMD, mutual scoring, RsCIN, the maps at the input size);
* the reference (``--reference``, run by ``--reference-python``): its ``MuSc`` is built before the clock; the
  clock covers its ``make_category_data`` for the category without its metric code
  (``benchmarks/musc_reference.py``).

Configurations (random weights: the time does not depend on them):

* ``--device cpu``: ViT-B-16 at 224 px, ``feature_layers=(3, 6, 9, 12)`` (the reference's ``[2, 5, 8, 11]``), fp32;
* ``--device cuda``: ViT-L-14-336 at 518 px, ``feature_layers=(6, 12, 18, 24)``, the backbone under fp16
  autocast (``--precision``, the plugin's name for it; the reference always autocasts on CUDA);
* ``--tiny``: the tiny random CLIP at 64 px, the plugin only (the reference does not know that model), for the
  slow-tier test.

Peak memory is the process's peak resident set on the CPU (``ru_maxrss``: Python, torch and the model included)
and ``torch.cuda.max_memory_allocated`` on a GPU (reset when the clock starts). The table's last column is the
plugin's speed-up, the reference's time over the plugin's. The CPU time of each process (all its threads) is
given beside the wall time: a steadier measure on a machine shared with other work. ``--repeats`` runs each
side that many times (fresh processes) and keeps the fastest, since other work only ever adds time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("musc_reference.py")
CONFIGS = {
    "cpu": {"backbone": "ViT-B-16", "image_size": 224, "feature_layers": (3, 6, 9, 12), "precision": "fp32"},
    "cuda": {"backbone": "ViT-L-14-336", "image_size": 518, "feature_layers": (6, 12, 18, 24), "precision": "fp16"},
    "tiny": {"backbone": "tiny-clip", "image_size": 64, "feature_layers": (6, 12, 18, 24), "precision": "fp32"},
}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="set sizes N (default 16 64 200; --tiny: 4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny random CLIP at 64 px (plugin only)")
    parser.add_argument("--precision", help="the plugin's backbone precision (default: the configuration's)")
    parser.add_argument("--reference", type=Path, help="checkout of xrli-U/MuSc: time it too")
    parser.add_argument("--reference-python", default=sys.executable, help="Python that runs the reference")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side and N; the fastest is kept")
    parser.add_argument("--workdir", type=Path, help="where the images go (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one timed plugin run
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def _config(args: argparse.Namespace) -> dict:
    config = dict(CONFIGS["tiny" if args.tiny else args.device])
    config["precision"] = args.precision or config["precision"]
    return config


def write_set(root: Path, n_images: int) -> Path:
    """``n_images`` generated images as the ``bottle`` test set under ``root`` (one in eight anomalous)."""
    from anomalib_glocalclip.demo.datasets import generate_mvtec_ad

    bad = max(1, n_images // 8)
    return generate_mvtec_ad(root, categories=("bottle",), n_train=1, n_test_good=n_images - bad, n_test_bad=bad,
                             defects=("scratch",), image_size=(192, 256), seed=0)


def _peak_bytes(cuda: bool) -> int:
    if cuda:
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def plugin_worker(args: argparse.Namespace) -> None:
    """One timed ``Engine.predict`` of the plugin's MuSc on ``args.data``; writes ``{seconds, peak_bytes, n}``."""
    from anomalib.engine import Engine

    from anomalib_glocalclip import MuSc

    config = _config(args)
    cuda = args.device == "cuda"
    model = MuSc(backbone=config["backbone"], pretrained=None, image_size=config["image_size"],
                 feature_layers=config["feature_layers"], precision=config["precision"],
                 post_processor=False, evaluator=False, visualizer=False)
    engine = Engine(default_root_dir=args.out.parent / "engine", logger=False, accelerator="gpu" if cuda else "cpu",
                    devices=1, enable_progress_bar=False)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, start_cpu = time.perf_counter(), time.process_time()
    predictions = engine.predict(model=model, data_path=args.data)
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    n_images = sum(len(batch.image_path) for batch in predictions)
    result = {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_bytes": _peak_bytes(cuda), "n": n_images}
    args.out.write_text(json.dumps(result))


def _time_plugin(args: argparse.Namespace, folder: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--worker", "--device", args.device, "--data", str(folder), "--out", str(out)]
    command += ["--tiny"] if args.tiny else []
    command += ["--precision", args.precision] if args.precision else []
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def _time_reference(args: argparse.Namespace, data: Path, out: Path) -> dict:
    import numpy as np

    config = _config(args)
    command = [args.reference_python, str(WORKER), "--reference", str(args.reference), "--data", str(data),
               "--backbone", config["backbone"], "--image-size", str(config["image_size"]),
               "--feature-layers", *[str(layer - 1) for layer in config["feature_layers"]],
               "--device", "0" if args.device == "cuda" else "cpu", "--out", str(out)]
    run = subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:  # its progress bars fill stderr: shown only when it fails
        msg = f"The reference failed (exit status {run.returncode}):\n{run.stderr[-3000:]}"
        raise SystemExit(msg)
    with np.load(out) as saved:
        return {"seconds": float(saved["seconds"]), "cpu_seconds": float(saved["cpu_seconds"]),
                "peak_bytes": int(saved["peak_bytes"]), "n": len(saved["paths"])}


def _per_image(side: str, run: dict) -> dict:
    return {f"{side}_ms": 1000 * run["seconds"] / run["n"], f"{side}_cpu_ms": 1000 * run["cpu_seconds"] / run["n"],
            f"{side}_peak_mb": run["peak_bytes"] / 2**20}


def _fastest(runs: list[dict]) -> dict:
    return min(runs, key=lambda run: run["seconds"])


def main() -> None:
    """Time both sides for every N and print the table."""
    args = _arguments()
    if args.worker:
        plugin_worker(args)
        return
    if args.tiny and args.reference:
        msg = "--tiny runs the plugin alone: the reference does not know the tiny CLIP. Leave out --reference."
        raise SystemExit(msg)
    config = _config(args)
    sizes = args.sizes or ([4] if args.tiny else [16, 64, 200])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="musc_speed_"))
    rows = []
    for n_images in sizes:
        data = write_set(workdir / f"n{n_images}", n_images)
        row: dict = {"n": n_images}
        plugin = _fastest([_time_plugin(args, data / "bottle" / "test", workdir / f"plugin_{n_images}_{repeat}.json")
                           for repeat in range(args.repeats)])
        row.update(_per_image("plugin", plugin))
        if args.reference:
            reference = _fastest([_time_reference(args, data, workdir / f"reference_{n_images}_{repeat}.npz")
                                  for repeat in range(args.repeats)])
            row.update(_per_image("reference", reference))
            row.update(speed_up=row["reference_ms"] / row["plugin_ms"],
                       cpu_speed_up=row["reference_cpu_ms"] / row["plugin_cpu_ms"])
        rows.append(row)
        print(json.dumps(row), flush=True)

    cuda = args.device == "cuda"
    where = f"GPU {torch.cuda.get_device_name()}" if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{config['backbone']} at {config['image_size']} px, feature_layers={config['feature_layers']}, "
          f"precision {config['precision']}, {where}, fastest of {args.repeats}")
    print("| N | plugin ms/image (CPU ms) | plugin peak MiB | reference ms/image (CPU ms) | reference peak MiB "
          "| speed-up (by CPU time) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ours = f"{row['plugin_ms']:.0f} ({row['plugin_cpu_ms']:.0f}) | {row['plugin_peak_mb']:.0f}"
        theirs = (f"{row['reference_ms']:.0f} ({row['reference_cpu_ms']:.0f}) | {row['reference_peak_mb']:.0f} | "
                  f"{row['speed_up']:.2f}x ({row['cpu_speed_up']:.2f}x)" if "speed_up" in row else "- | - | -")
        print(f"| {row['n']} | {ours} | {theirs} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
