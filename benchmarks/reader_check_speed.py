"""Wall time of ``anomalib test --data MVTecAD`` with the plugin's reader check against the same run without it.

    python benchmarks/reader_check_speed.py           # 150 test images at 900 px, AnoCLIP's ViT-B-16-plus-240
    python benchmarks/reader_check_speed.py --tiny    # a smoke run: tiny random CLIP, 6 test images at 64 px

The models add ``ReaderCheck`` in ``configure_callbacks``; it checks the files of Anomalib's datasets at the start
of each loop. Here ``Engine.test`` (what ``anomalib test`` runs) is timed on one generated MVTec AD category (the
package's generator; a category of MVTec AD's size: 150 test images of 900 x 900 PNG, a quarter of them normal)
with AnoCLIP at its real-size default backbone on random weights (speed does not depend on the weights; a tiny
CLIP would let the files' decoding dominate), once as the models configure it and once with a model whose
``configure_callbacks`` leaves the check out, on the same machine in one process. Printed: both wall times, their
ratio, the seconds the check itself took (its ``on_*_start`` hooks) and, for comparison, the seconds one serial
decode of the same files takes (what the check cost when it decoded every file). The files are read once before
the first run, so that both runs find them in the page cache. On a shared machine the absolute times are noisy;
compare the ratio, or take ``--repeats`` alternating pairs (the fastest of each is printed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from anomalib.data import MVTecAD
from anomalib.engine import Engine
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image

from anomalib_glocalclip import AnoCLIP
from anomalib_glocalclip.data.reader_check import ReaderCheck
from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, generate_mvtec_ad

DEFECTS = ("broken_large", "broken_small", "contamination")


class TimedReaderCheck(ReaderCheck):
    """``ReaderCheck`` that adds the seconds its loop-start hooks take to ``seconds``."""

    seconds = 0.0

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Time the check of the validation files."""
        start = time.perf_counter()
        super().on_validation_start(trainer, pl_module)
        TimedReaderCheck.seconds += time.perf_counter() - start

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Time the check of the test files."""
        start = time.perf_counter()
        super().on_test_start(trainer, pl_module)
        TimedReaderCheck.seconds += time.perf_counter() - start


class CheckedAnoCLIP(AnoCLIP):
    """AnoCLIP with its callbacks, the reader check timed."""

    def configure_callbacks(self) -> list[Callback]:
        """The model's callbacks, ``ReaderCheck`` replaced by ``TimedReaderCheck``."""
        callbacks = super().configure_callbacks()
        return [TimedReaderCheck() if isinstance(callback, ReaderCheck) else callback for callback in callbacks]


class UncheckedAnoCLIP(AnoCLIP):
    """AnoCLIP without the reader check."""

    def configure_callbacks(self) -> list[Callback]:
        """The model's callbacks but ``ReaderCheck``."""
        return [callback for callback in super().configure_callbacks() if not isinstance(callback, ReaderCheck)]


def make_category(root: Path, images: int, size: int) -> Path:
    """Write (unless its manifest says it is there) one MVTec AD category of ``images`` test images; returns root."""
    manifest = root / "manifest.json"
    per_defect = max(1, images * 3 // 4 // len(DEFECTS))
    normal = max(1, images - per_defect * len(DEFECTS))
    wanted = {"size": size, "normal": normal, "per_defect": per_defect}
    if not manifest.is_file() or json.loads(manifest.read_text(encoding="utf-8")) != wanted:
        generate_mvtec_ad(root, categories=("bottle",), n_train=1, n_test_good=normal, n_test_bad=per_defect,
                          defects=DEFECTS, image_size=size)
        manifest.write_text(json.dumps(wanted), encoding="utf-8")  # last: an interrupted write is redone
    for path in (root / "bottle").rglob("*.png"):  # into the page cache, for both runs alike
        path.read_bytes()
    return root


def decode_seconds(root: Path) -> float:
    """Seconds to decode every test image and mask once, serially: what the check cost when it decoded them."""
    start = time.perf_counter()
    for folder in ("test", "ground_truth"):
        for path in (root / "bottle" / folder).rglob("*.png"):
            with Image.open(path) as image:
                image.load()
    return time.perf_counter() - start


def timed_test(model: AnoCLIP, root: Path, args: argparse.Namespace) -> float:
    """Seconds of ``Engine.test`` of ``model`` on the category (``anomalib test --data MVTecAD``)."""
    datamodule = MVTecAD(root=root, category="bottle", eval_batch_size=args.batch_size, num_workers=args.workers)
    engine = Engine(accelerator=args.accelerator, logger=False, default_root_dir=args.output,
                    enable_progress_bar=False)
    start = time.perf_counter()
    engine.test(model, datamodule=datamodule, verbose=False)
    return time.perf_counter() - start


def main() -> None:
    """Time the test run with and without the check; print both, their ratio and the check's own seconds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP, 6 test images at 64 px (smoke run)")
    parser.add_argument("--images", type=int, default=None, help="test images (default 150, tiny 6)")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default 900, tiny 64)")
    parser.add_argument("--backbone", default=None, help="default: AnoCLIP's ViT-B-16-plus-240 (tiny: tiny CLIP)")
    parser.add_argument("--batch-size", type=int, default=32, help="test batch size (Anomalib's default 32)")
    parser.add_argument("--workers", type=int, default=8, help="dataloader workers (Anomalib's default 8)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating pairs of runs; the fastest is printed")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--data", type=Path, default=Path("reader_check_data"), help="where the category is written")
    parser.add_argument("--output", type=Path, default=Path("reader_check_runs"), help="the runs' result folder")
    args = parser.parse_args()
    images, size = args.images or (6 if args.tiny else 150), args.size or (64 if args.tiny else 900)
    root = make_category(args.data, images, size)
    backbone = args.backbone or (str(TINY_CLIP_CONFIG) if args.tiny else "ViT-B-16-plus-240")
    model_args = {"backbone": backbone, "pretrained": None} | ({"image_size": 64} if args.tiny else {})
    with_check, without_check, check_seconds = [], [], []
    for _ in range(args.repeats):
        TimedReaderCheck.seconds = 0.0  # the checked run first: any cold start counts against the check
        with_check.append(timed_test(CheckedAnoCLIP(**model_args), root, args))
        check_seconds.append(TimedReaderCheck.seconds)
        without_check.append(timed_test(UncheckedAnoCLIP(**model_args), root, args))
    files = sum(1 for _ in (root / "bottle" / "test").rglob("*.png"))
    print(f"Engine.test on {files} test images of {size} px, {backbone}, batch {args.batch_size}, "
          f"{args.workers} workers, {args.repeats} pair(s):")
    print(f"  without the reader check: {min(without_check):.2f} s")
    print(f"  with the reader check:    {min(with_check):.2f} s (the check itself: {min(check_seconds):.3f} s)")
    print(f"  ratio with/without: {min(with_check) / min(without_check):.3f}")
    print(f"  decoding the same files once, serially (the check before it verified instead): "
          f"{decode_seconds(root):.3f} s")


if __name__ == "__main__":
    main()
