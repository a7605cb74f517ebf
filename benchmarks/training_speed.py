"""Prompt-learning speed of GlocalCLIP on a VisA-sized auxiliary set, with and without the feature cache.

    python benchmarks/training_speed.py                    # 2,162 images at 518 px, 15 epochs (needs a GPU)
    python benchmarks/training_speed.py --tiny             # a smoke run on the tiny random CLIP (CPU)
    python benchmarks/training_speed.py --images 2162 --epochs 15 --precision bf16 --workers 8

A VisA-like auxiliary set (12 categories, about 45% normal, masks) is generated once into ``--data`` and
reused. The run goes through Anomalib's ``Engine.fit`` with ``AuxiliaryTransfer``, as users train, with random
CLIP weights (speed does not depend on them). It prints the caching pass, the time per epoch and the whole
fit with the cache, the time per epoch without it (``--uncached-epochs`` epochs, default 1), their ratio,
and peak GPU memory. The caching pass decodes with ``--workers`` processes into pinned memory (on CUDA), so
the encoder does not wait on JPEG decoding unless the workers cannot keep up (raise ``--workers`` then).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from anomalib_glocalclip.testing import VISA_CATEGORIES


class EpochTimer(Callback):
    """Wall time from fit start to the first training batch (the caching pass), and of every epoch."""

    def __init__(self) -> None:
        self.fit_start = 0.0
        self.first_batch = 0.0
        self.epochs: list[float] = []
        self._epoch_start = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._sync()
        self._epoch_start = time.perf_counter()
        if not self.epochs and not self.first_batch:
            self.first_batch = self._epoch_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._sync()
        self.epochs.append(time.perf_counter() - self._epoch_start)

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def make_auxiliary(root: Path, images: int, size: int) -> Path:
    """A VisA layout of ``images`` test images over the 12 VisA categories (kept between runs)."""
    from anomalib_glocalclip.testing import generate_visa

    per_category = max(2, images // len(VISA_CATEGORIES))
    marker = root / f".complete-{images}-{size}"
    if not marker.exists():
        n_good = int(per_category * 0.45)
        generate_visa(root, categories=VISA_CATEGORIES, n_train=0, n_test_good=n_good,
                      n_test_bad=per_category - n_good, image_size=size, odd_images=False)
        marker.touch()
    return root


def fit(data: Path, args: argparse.Namespace, cache: bool, epochs: int) -> EpochTimer:
    """One ``Engine.fit`` with or without the feature cache; returns its timings."""
    from anomalib.engine import Engine

    from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP
    from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

    backbone = {"backbone": str(TINY_CLIP_CONFIG), "image_size": 64} if args.tiny else {"image_size": 518}
    model = GlocalCLIP(pretrained=None, precision=args.precision, cache_features=cache, **backbone)
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(data)), train_batch_size=8,
                                   num_workers=args.workers)
    timer = EpochTimer()
    engine = Engine(default_root_dir=args.output, accelerator=args.accelerator, devices=1, max_epochs=epochs,
                    logger=False, callbacks=[timer], enable_progress_bar=False, enable_model_summary=False)
    engine.fit(model, datamodule=datamodule)
    return timer


def main() -> None:
    """Generate the data once, fit with and without the cache, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP, 64 px, 96 images (a CPU smoke run)")
    parser.add_argument("--images", type=int, default=None, help="auxiliary images (default 2162, tiny 96)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--uncached-epochs", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="decoding workers of the caching pass and the uncached epochs (default: up to 8)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--data", type=Path, default=Path("benchmark_data/visa_like"))
    parser.add_argument("--output", type=Path, default=Path("benchmark_runs/training"))
    args = parser.parse_args()
    images = args.images or (96 if args.tiny else 2162)
    size = 64 if args.tiny else 518
    data = make_auxiliary(args.data / f"{images}x{size}", images, size)

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    cached = fit(data, args, cache=True, epochs=args.epochs)
    cached_total = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    uncached = fit(data, args, cache=False, epochs=args.uncached_epochs)

    caching_pass = cached.first_batch - cached.fit_start
    cached_epoch = sum(cached.epochs) / len(cached.epochs)
    uncached_epoch = sum(uncached.epochs) / len(uncached.epochs)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\nDevice: {device}, {images} auxiliary images at {size} px, precision {args.precision}\n")
    print("| figure | seconds |\n|---|---:|")
    print(f"| caching pass (each image encoded once; {images / caching_pass:.1f} images/s, "
          f"{args.workers} decoding workers) | {caching_pass:.1f} |")
    print(f"| epoch on cached features (mean of {len(cached.epochs)}) | {cached_epoch:.2f} |")
    print(f"| whole fit, {args.epochs} epochs, caching included | {cached_total:.1f} |")
    print(f"| epoch on images, no cache | {uncached_epoch:.2f} |")
    print(f"\nEpoch speed-up from the cache: {uncached_epoch / cached_epoch:.1f}x; "
          f"peak GPU memory with the cache: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
