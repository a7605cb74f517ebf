"""Prompt-learning speed of GlocalCLIP on a VisA-sized auxiliary set, with and without the feature cache.

    python benchmarks/training_speed.py                    # 2,162 images at 518 px, 15 epochs (needs a GPU)
    python benchmarks/training_speed.py --tiny             # a smoke run on the tiny random CLIP (CPU)
    python benchmarks/training_speed.py --images 2162 --epochs 15 --precision bf16 --workers 8
    python benchmarks/training_speed.py --compile          # also fit with compile=True: eager vs compiled step
    python benchmarks/training_speed.py --count-ops        # only the launch-count proxy (CPU, tiny CLIP, no data)

A VisA-like auxiliary set (12 categories, about 45% normal, masks) is generated once into ``--data`` and
reused. The run goes through Anomalib's ``Engine.fit`` with ``AuxiliaryTransfer``, as users train, with random
CLIP weights (speed does not depend on them). It prints the caching pass, the time per epoch and the whole
fit with the cache, the time per epoch without it (``--uncached-epochs`` epochs, default 1), their ratio,
and peak GPU memory. The caching pass decodes with ``--workers`` processes into pinned memory (on CUDA), so
the encoder does not wait on JPEG decoding unless the workers cannot keep up (raise ``--workers`` then, or
decode on the GPU with ``--decode-on-device``).

``--compile`` fits once more with ``GlocalCLIP(compile=True)`` (compiled vision pass and compiled cached step;
``--compile-mode reduce-overhead`` adds CUDA graphs) and prints its cached epochs beside the eager ones, the
first compiled epoch (which compiles the step) apart. ``--count-ops`` prints a figure that needs no GPU: the
operations one cached training step (forward, backward, Adam) launches, counted with ``torch.profiler`` on the
CPU with the tiny CLIP, for the per-layer loss loop of before issue 17, the batched loss, and the compiled step.
On a GPU each counted operation is about one kernel launch, which is what a step on cached features waits for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from anomalib_glocalclip.testing import TINY_CLIP_CONFIG, VISA_CATEGORIES

# ATen operations that launch no device work: views, reshapes without a copy, allocations, host-side reads.
NON_KERNEL_OPS = frozenset(
    f"aten::{name}"
    for name in (
        "view", "_unsafe_view", "reshape", "_reshape_alias", "view_as", "transpose", "t", "permute", "unsqueeze",
        "squeeze", "expand", "expand_as", "broadcast_to", "select", "slice", "narrow", "as_strided", "alias",
        "detach", "detach_", "unflatten", "flatten", "split", "split_with_sizes", "chunk", "unbind", "movedim",
        "empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "resolve_conj", "resolve_neg",
        "lift_fresh", "contiguous", "to", "item", "_local_scalar_dense", "result_type", "numpy_T",
    )
)


class EpochTimer(Callback):
    """Wall time from fit start to the first training batch (the caching pass), and of every epoch."""

    def __init__(self) -> None:
        self.fit_start = 0.0
        self.first_batch = 0.0
        self.epochs: list[float] = []
        self.steps = 0
        self._epoch_start = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._sync()
        self._epoch_start = time.perf_counter()
        if not self.epochs and not self.first_batch:
            self.first_batch = self._epoch_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.steps += 1

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


def fit(data: Path, args: argparse.Namespace, cache: bool, epochs: int, compile_step: bool = False) -> EpochTimer:
    """One ``Engine.fit`` with or without the feature cache (and ``compile``); returns its timings."""
    from anomalib.engine import Engine

    from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP

    backbone = {"backbone": str(TINY_CLIP_CONFIG), "image_size": 64} if args.tiny else {"image_size": 518}
    model = GlocalCLIP(pretrained=None, precision=args.precision, cache_features=cache, compile=compile_step,
                       decode_on_device=args.decode_on_device, **backbone)
    model.compile_mode = args.compile_mode
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(data)), train_batch_size=8,
                                   num_workers=args.workers)
    timer = EpochTimer()
    engine = Engine(default_root_dir=args.output, accelerator=args.accelerator, devices=1, max_epochs=epochs,
                    logger=False, callbacks=[timer], enable_progress_bar=False, enable_model_summary=False)
    engine.fit(model, datamodule=datamodule)
    return timer


def launched_operations(events: list) -> int:
    """Operations of a ``torch.profiler`` trace that each launch device work (about one kernel on a GPU).

    An ATen operation counts once when the operations it calls launch nothing (else those are counted), unless
    it is a view, an allocation or a host-side read (``NON_KERNEL_OPS``); a ``_foreach_`` operation counts once
    (one multi-tensor kernel on CUDA); each kernel inductor generated counts once.
    """

    def count(event: object) -> int:
        name = event.name
        if "cpp_fused" in name or name.startswith(("triton_", "aten::_foreach_")):
            return 1
        below = sum(count(child) for child in event.cpu_children)
        if below or not name.startswith("aten::"):
            return below
        return 0 if name in NON_KERNEL_OPS else 1

    return sum(count(event) for event in events if event.cpu_parent is None)


@contextlib.contextmanager
def per_layer_loss_loop() -> Iterator[None]:
    """The local loss as it was computed before issue 17: a Python loop over layers, one term at a time."""
    from anomalib_glocalclip.glocalclip import training_step
    from anomalib_glocalclip.glocalclip.loss import dice_loss, focal_loss

    def looped(maps: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return sum(
            focal_loss(layer, mask, weights=weights)
            + dice_loss(layer[:, 1], mask, weights=weights)
            + dice_loss(layer[:, 0], 1 - mask, weights=weights)
            for layer in maps
        )

    batched = training_step.local_loss
    training_step.local_loss = looped
    try:
        yield
    finally:
        training_step.local_loss = batched


def count_step_operations(variant: str, per_layer_features: bool, batch_size: int = 8) -> tuple[int, int]:
    """Launched operations of one cached training step of the tiny GlocalCLIP on the CPU, after two warm-up steps.

    Args:
        variant: ``loop`` (per-layer loss loop), ``batched`` (eager, batched loss) or ``compiled`` (inductor).
        per_layer_features: four map layers (``True``) or the reference's one.
        batch_size: images per step.

    Returns:
        (forward + backward, Adam step) operation counts. Adam runs with ``foreach=True``, its default on CUDA.
    """
    from torch.profiler import ProfilerActivity, profile

    from anomalib_glocalclip import GlocalCLIP
    from anomalib_glocalclip.compat import inductor_cpu_kernel_profiling
    from anomalib_glocalclip.glocalclip.training_step import cached_batch_losses, run_compiled_cached_losses

    torch.manual_seed(0)
    model = GlocalCLIP(backbone=str(TINY_CLIP_CONFIG), pretrained=None, image_size=64, precision="fp32",
                       per_layer_features=per_layer_features).model
    global_features, patch_features = model.encode_image_raw(torch.randn(batch_size, 3, 64, 64))
    labels = torch.arange(batch_size) % 2
    masks = torch.zeros(batch_size, 64, 64, dtype=torch.bool)
    masks[1::2, 8:40, 16:48] = True
    optimizer = torch.optim.Adam(model.prompt_learner.parameters(), lr=1e-3, betas=(0.5, 0.999), foreach=True)
    arguments = (model, global_features, patch_features, labels, masks, 1.0, 0.0)

    def losses() -> torch.Tensor:
        if variant == "compiled":
            return run_compiled_cached_losses(*arguments)["loss"]
        return cached_batch_losses(*arguments)["loss"]

    def step() -> tuple[int, int]:
        optimizer.zero_grad()
        with profile(activities=[ProfilerActivity.CPU]) as forward_backward:
            losses().backward()
        with profile(activities=[ProfilerActivity.CPU]) as adam:
            optimizer.step()
        return launched_operations(forward_backward.events()), launched_operations(adam.events())

    loop = per_layer_loss_loop() if variant == "loop" else contextlib.nullcontext()
    with loop, inductor_cpu_kernel_profiling():
        for _ in range(2):
            step()
        return step()


def print_operation_counts(compiled: bool) -> None:
    """The launch-count table: operations per cached step, per loss variant and layer count (CPU, tiny CLIP)."""
    variants = ["loop", "batched", *(["compiled"] if compiled else [])]
    labels = {"loop": "eager, per-layer loss loop (before issue 17)", "batched": "eager, batched loss",
              "compiled": "compile=True (inductor)"}
    print("\nOperations launched per cached training step (torch.profiler, CPU, tiny CLIP with ViT-L-14's 12 text "
          "layers, batch 8; about one GPU kernel each)\n")
    print("| step | map layers | forward + backward | Adam | total |\n|---|---:|---:|---:|---:|")
    for per_layer_features in (False, True):
        for variant in variants:
            forward_backward, adam = count_step_operations(variant, per_layer_features)
            layers = 4 if per_layer_features else 1
            print(f"| {labels[variant]} | {layers} | {forward_backward} | {adam} | {forward_backward + adam} |")


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
    parser.add_argument("--compile", action="store_true",
                        help="also fit with GlocalCLIP(compile=True) and compare its cached epochs with the eager ones")
    parser.add_argument("--compile-mode", default=None, choices=[None, "default", "reduce-overhead", "max-autotune"],
                        help="torch.compile mode of the compiled step (reduce-overhead: CUDA graphs)")
    parser.add_argument("--decode-on-device", action="store_true",
                        help="the caching pass decodes the JPEGs on the model's device (decode_on_device=True)")
    parser.add_argument("--count-ops", action="store_true",
                        help="only print the operations per cached step (CPU, tiny CLIP; no data, no fit)")
    args = parser.parse_args()
    if args.count_ops:
        print_operation_counts(compiled=True)
        return
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
    compiled, compiled_total = None, 0.0
    if args.compile:
        start = time.perf_counter()
        compiled = fit(data, args, cache=True, epochs=args.epochs, compile_step=True)
        compiled_total = time.perf_counter() - start

    caching_pass = cached.first_batch - cached.fit_start
    cached_epoch = sum(cached.epochs) / len(cached.epochs)
    uncached_epoch = sum(uncached.epochs) / len(uncached.epochs)
    steps_per_epoch = cached.steps / len(cached.epochs)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\nDevice: {device}, {images} auxiliary images at {size} px, precision {args.precision}\n")
    print("| figure | seconds |\n|---|---:|")
    decoding = "JPEGs decoded on the device" if args.decode_on_device else f"{args.workers} decoding workers"
    print(f"| caching pass (each image encoded once; {images / caching_pass:.1f} images/s, "
          f"{decoding}) | {caching_pass:.1f} |")
    print(f"| epoch on cached features (mean of {len(cached.epochs)}; {steps_per_epoch:.0f} steps, "
          f"{1000 * cached_epoch / steps_per_epoch:.1f} ms per step) | {cached_epoch:.2f} |")
    print(f"| whole fit, {args.epochs} epochs, caching included | {cached_total:.1f} |")
    print(f"| epoch on images, no cache | {uncached_epoch:.2f} |")
    if compiled is not None:
        steady = compiled.epochs[1:] or compiled.epochs
        compiled_epoch = sum(steady) / len(steady)
        mode = f", mode {args.compile_mode}" if args.compile_mode else ""
        print(f"| compile=True{mode}: caching pass (vision pass compiled first) | "
              f"{compiled.first_batch - compiled.fit_start:.1f} |")
        print(f"| compile=True: first epoch on cached features (compiles the step) | {compiled.epochs[0]:.2f} |")
        print(f"| compile=True: epoch on cached features (mean of {len(steady)} after the first; "
              f"{1000 * compiled_epoch / steps_per_epoch:.1f} ms per step) | {compiled_epoch:.2f} |")
        print(f"| compile=True: whole fit, {args.epochs} epochs, caching and compilation included | "
              f"{compiled_total:.1f} |")
    print(f"\nEpoch speed-up from the cache: {uncached_epoch / cached_epoch:.1f}x; "
          f"peak GPU memory with the cache: {peak:.2f} GiB")
    if compiled is not None:
        print(f"Cached-epoch speed-up from compile=True: {cached_epoch / compiled_epoch:.2f}x "
              f"(eager {cached_epoch:.2f} s, compiled {compiled_epoch:.2f} s)")


if __name__ == "__main__":
    main()
