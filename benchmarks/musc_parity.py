"""MuSc parity: the plugin's scores and maps against the official MuSc code, run end to end on the same images.

    python benchmarks/musc_parity.py --reference /path/to/MuSc                  # ViT-B-16 at 240 px, 14 images
    python benchmarks/musc_parity.py --reference /path/to/MuSc --reference-python /path/to/venv/bin/python \
        --backbone ViT-B-32 --image-size 256 --good 10 --bad 3

Needs a checkout of ``xrli-U/MuSc`` (``--reference``) and a Python that runs it (its ``requirements.txt``;
``--reference-python``, default this one). Nothing is downloaded. The script

1. writes an MVTec AD-layout category of generated product images (``--good`` normal and ``--bad`` anomalous
   images per defect, two defects, non-square so the reference's bicubic squash matters);
2. builds the backbone with random weights (``torch.manual_seed(--seed)``, open_clip's initialisation), saves its
   state dict to a local file, and gives that file to both sides;
3. runs the reference end to end in its own process (``benchmarks/musc_reference.py``: its dataset, resize,
   backbone, LNAMD, MSM, maps, RsCIN with ``K = [1, 2, 3]``; its RsCIN again for ``[1, 8, 9]`` and ``[0]``);
4. runs the plugin's ``MuSc`` through ``Engine.predict`` on the category's ``test`` folder, once for each of
   ``rscin_k = (1, 2, 3)``, ``None`` and ``(1, 8, 9)``, and through ``Engine.test`` on the category
   (``anomalib.data.MVTecAD``) with ``(1, 2, 3)``; post-processor, evaluator and visualiser off, so the raw
   scores and maps are compared;
5. matches the images by file path and compares image scores and maps with ``rtol`` 1e-4 (``atol`` 0).

Both sides run the image size given (default 240, not ViT-B-16's native 224), so the positional embedding is
resized (the reference: bicubic without antialias) and the reference runs its tower with ``nn.GELU`` (its
model config names no QuickGELU); the plugin keeps its default ``quick_gelu=None``, whose rule gives the same.
``--feature-layers`` are the plugin's 1-indexed blocks; the reference gets them minus one (its ``[2, 5, 8, 11]``
is the plugin's ``(3, 6, 9, 12)``). RsCIN's choice of nearest images can flip on rounding when two class-token
similarities are nearly equal; the script prints the smallest such gap in the set, so a run whose gap is within
rounding is seen as such (pick another ``--seed`` then, never a looser tolerance). Exit status 1 when anything
differs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

RSCIN_SETTINGS = {"1_2_3": (1, 2, 3), "off": None, "1_8_9": (1, 8, 9)}
"""Plugin ``rscin_k`` per reference output (``scores_<name>`` in the reference's ``.npz``; ``off``: ``[0]``)."""
WORKER = Path(__file__).with_name("musc_reference.py")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of xrli-U/MuSc")
    parser.add_argument("--reference-python", default=sys.executable, help="Python that runs the reference")
    parser.add_argument("--backbone", default="ViT-B-16", help="open_clip model both sides know")
    parser.add_argument("--image-size", type=int, default=240, help="not the model's native size")
    parser.add_argument("--feature-layers", type=int, nargs="+", default=[3, 6, 9, 12], help="1-indexed blocks")
    parser.add_argument("--good", type=int, default=8, help="normal test images")
    parser.add_argument("--bad", type=int, default=3, help="anomalous test images per defect (two defects)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random backbone weights")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--workdir", type=Path, help="where data, weights and outputs go (default: a temp folder)")
    return parser.parse_args()


def write_category(root: Path, good: int, bad: int) -> Path:
    """An MVTec AD-layout ``bottle`` category under ``root``: 96x128 images (squashed by both sides)."""
    from anomalib_glocalclip.demo.datasets import generate_mvtec_ad

    return generate_mvtec_ad(root, categories=("bottle",), n_train=2, n_test_good=good, n_test_bad=bad,
                             defects=("scratch", "crack"), image_size=(96, 128), seed=0)


def write_random_weights(backbone: str, seed: int, path: Path) -> Path:
    """open_clip's randomly initialised ``backbone`` (native size) under ``torch.manual_seed(seed)``, saved."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(backbone, pretrained=None)
    torch.save(model.state_dict(), path)
    return path


def run_reference(args: argparse.Namespace, data: Path, weights: Path, out: Path) -> dict[str, np.ndarray]:
    """The reference's outputs (see ``musc_reference.py``), run in its own process on the CPU."""
    command = [args.reference_python, str(WORKER), "--reference", str(args.reference), "--data", str(data),
               "--backbone", args.backbone, "--pretrained", str(weights), "--image-size", str(args.image_size),
               "--feature-layers", *[str(layer - 1) for layer in args.feature_layers], "--device", "cpu",
               "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with np.load(out) as saved:
        return {name: saved[name] for name in saved.files}


def _plugin_model(args: argparse.Namespace, weights: Path, rscin_k: tuple[int, ...] | None) -> object:
    from anomalib_glocalclip import MuSc

    return MuSc(backbone=args.backbone, pretrained=str(weights), image_size=args.image_size,
                feature_layers=tuple(args.feature_layers), rscin_k=rscin_k, precision="fp32",
                post_processor=False, evaluator=False, visualizer=False)


def _by_path(batches: Iterable[object]) -> dict[str, tuple[float, np.ndarray]]:
    """``{resolved image path: (pred_score, anomaly map [H, W] float64)}`` of predicted batches."""
    rows = {}
    for batch in batches:
        maps = batch.anomaly_map.detach().double().cpu().reshape(len(batch.image_path), *batch.anomaly_map.shape[-2:])
        for path, score, anomaly_map in zip(batch.image_path, batch.pred_score.reshape(-1), maps, strict=True):
            rows[str(Path(path).resolve())] = (float(score), anomaly_map.numpy())
    return rows


def plugin_predict(args: argparse.Namespace, weights: Path, folder: Path, rscin_k: tuple[int, ...] | None,
                   workdir: Path) -> dict[str, tuple[float, np.ndarray]]:
    """The plugin's scores and maps through ``Engine.predict`` on ``folder``."""
    from anomalib.engine import Engine

    engine = Engine(default_root_dir=workdir, logger=False, accelerator="cpu", devices=1)
    return _by_path(engine.predict(model=_plugin_model(args, weights, rscin_k), data_path=folder))


def plugin_test(
    args: argparse.Namespace, weights: Path, data: Path, workdir: Path
) -> dict[str, tuple[float, np.ndarray]]:
    """The plugin's scores and maps through ``Engine.test`` on the MVTec-layout category (``rscin_k=(1, 2, 3)``)."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import Callback

    class Collect(Callback):
        def __init__(self) -> None:
            self.batches: list[object] = []

        def on_test_batch_end(self, trainer: object, pl_module: object, outputs: object, *rest: object) -> None:
            self.batches.append(outputs)

    collect = Collect()
    datamodule = MVTecAD(root=data, category="bottle", train_batch_size=4, eval_batch_size=4, num_workers=0)
    engine = Engine(default_root_dir=workdir, logger=False, accelerator="cpu", devices=1, callbacks=[collect])
    engine.test(model=_plugin_model(args, weights, (1, 2, 3)), datamodule=datamodule, verbose=False)
    return _by_path(collect.batches)


def rscin_margin(class_tokens: np.ndarray, ks: Iterable[int]) -> float:
    """Smallest gap, over images and K, between the K-th and (K+1)-th largest class-token similarity of a row."""
    tokens = class_tokens.astype(np.float64)
    ordered = -np.sort(-(tokens @ tokens.T), axis=1)
    return min(float(np.min(ordered[:, k - 1] - ordered[:, k])) for k in ks if k < len(tokens))


def compare(name: str, plugin: dict[str, tuple[float, np.ndarray]], reference: dict[str, np.ndarray],
            score_key: str, rtol: float) -> list[tuple[str, str, int, float, float, bool]]:
    """Rows ``(run, quantity, n, max abs diff, max rel diff, within rtol)`` for the scores and the maps."""
    paths = [str(path) for path in reference["paths"]]
    missing = sorted(set(paths) ^ set(plugin))
    if missing:
        msg = f"{name}: the plugin and the reference scored different files: {missing[:5]}"
        raise SystemExit(msg)
    pairs = {
        f"image score ({score_key})": (np.array([plugin[path][0] for path in paths]), reference[f"scores_{score_key}"]),
        "anomaly map": (np.stack([plugin[path][1] for path in paths]), reference["maps"]),
    }
    rows = []
    for quantity, (ours, theirs) in pairs.items():
        if ours.shape != theirs.shape:
            msg = f"{name}: {quantity} shapes differ: plugin {ours.shape}, reference {theirs.shape}"
            raise SystemExit(msg)
        expected = theirs.astype(np.float64)
        difference = np.abs(ours - expected)
        relative = difference / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
        ok = bool(np.all(difference <= rtol * np.abs(expected)))
        rows.append((name, quantity, len(paths), float(difference.max()), float(relative.max()), ok))
    return rows


def main() -> None:
    """Run both sides, print one row per comparison, exit 1 if any is outside ``rtol``."""
    args = _arguments()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="musc_parity_"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = write_category(workdir / "data", args.good, args.bad)
    weights = write_random_weights(args.backbone, args.seed, workdir / f"{args.backbone}-seed{args.seed}.pt")
    reference = run_reference(args, data, weights, workdir / "reference.npz")
    n_images = len(reference["paths"])
    print(f"reference: {n_images} images, {float(reference['seconds']):.1f} s end to end on {reference['device']}")
    margin = rscin_margin(reference["class_tokens"], {1, 2, 3, 8, 9})
    print(f"RsCIN: smallest gap between a row's K-th and (K+1)-th class-token similarity: {margin:.2e}")

    rows = []
    folder = data / "bottle" / "test"
    for key, rscin_k in RSCIN_SETTINGS.items():
        outputs = plugin_predict(args, weights, folder, rscin_k, workdir / f"predict_{key}")
        rows += compare(f"Engine.predict rscin_k={rscin_k}", outputs, reference, key, args.rtol)
    outputs = plugin_test(args, weights, data, workdir / "test")
    rows += compare("Engine.test rscin_k=(1, 2, 3)", outputs, reference, "1_2_3", args.rtol)

    print(f"\n{args.backbone} at {args.image_size} px, feature_layers={tuple(args.feature_layers)}, "
          f"weights seed {args.seed}, rtol {args.rtol:g}")
    print("| run | quantity | images | max abs diff | max rel diff | within rtol |")
    print("|---|---|---|---|---|---|")
    for run, quantity, count, largest, relative, ok in rows:
        print(f"| {run} | {quantity} | {count} | {largest:.2e} | {relative:.2e} | {'yes' if ok else 'NO'} |")
    sys.exit(0 if all(row[-1] for row in rows) else 1)


if __name__ == "__main__":
    main()
