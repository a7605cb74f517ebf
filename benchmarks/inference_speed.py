"""Inference speed of GlocalCLIP, AnoCLIP, AnoCLIP+ and WinCLIP against the bare ViT-L/14 encoder, in one run.

    python benchmarks/inference_speed.py                      # the real sizes (needs a GPU to be useful)
    python benchmarks/inference_speed.py --tiny               # a smoke run on the tiny random CLIP (CPU)
    python benchmarks/inference_speed.py --batch-sizes 1 8 32 --precisions fp32 bf16 --iterations 20
    python benchmarks/inference_speed.py --compile --cuda-graphs  # the vision passes under torch.compile (GPU)

Random weights (speed does not depend on them). For every model, precision and batch size it prints images/s,
ms per image and peak GPU memory, then three ratios taken in the same run: each model against open_clip's
encoder (``vs encoder``), against the fastest bare encoder (``vs bare``), and bf16 against fp32. Models run
their ``torch_model`` forward on pre-processed images, the part an exported model runs too; data loading,
post-processing and visualisation are not timed.

Rows:
* ``ViT-L-14 bare`` — the same ViT-L/14 at 518 px as timm builds it (``vit_large_patch14_clip_336`` at
  ``img_size=518``: batch-first blocks, fused QKV, ``scaled_dot_product_attention``, no hooks), the real limit;
* ``ViT-L-14 encoder`` — open_clip's ViT-L-14 image tower at 518 px (``nn.MultiheadAttention`` in ``[L, B, D]``);
* ``ViT-L-14 batch-first`` — the same open_clip weights through this plugin's batch-first blocks, no V-V stream;
* ``GlocalCLIP`` — ViT-L-14-336 at 518 px, V-V stream from layer 6, reference features, Gaussian smoothing;
* ``AnoCLIP`` / ``AnoCLIP (1 view)`` — ViT-B-16-plus-240 at 240 px with the reference's 22 views / the image only;
* ``AnoCLIP+`` — AnoCLIP with the per-image test-time adapter (5 AdamW steps);
* ``GlocalCLIP 4-shot`` / ``AnoCLIP 4-shot`` — the same with a reference bank of 4 normal images (nearest-reference
  maps combined with the zero-shot ones; the issue's target: at most 15 % slower than zero-shot at batch 32);
* ``WinCLIP`` — Anomalib's WinClip (ViT-B-16-plus-240, 240 px, zero-shot).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from anomalib_glocalclip.backbone.precision import autocast

Row = dict[str, float | int | str]
SELF_CAST_FREE = {"ViT-L-14 bare", "ViT-L-14 encoder", "ViT-L-14 batch-first", "WinCLIP"}


def _bare_encoder(tiny: bool) -> tuple[nn.Module, int]:
    from anomalib_glocalclip.backbone import build_clip
    from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

    name, size = (TINY_CLIP_CONFIG, 64) if tiny else ("ViT-L-14", 518)
    return build_clip(name, pretrained=None, image_size=size).visual, size


def _fastest_bare_encoder(tiny: bool) -> tuple[nn.Module, int]:
    """The ViT-L/14 of timm (CLIP layout) with fused batch-first attention; at the tiny CLIP's shape under ``tiny``."""
    import timm

    if tiny:  # the tiny CLIP's vision tower: 24 blocks of width 64, 4 heads, 8 px patches, 64 px
        shape = {"img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 24, "num_heads": 4}
    else:
        shape = {"img_size": 518}
    return timm.create_model("vit_large_patch14_clip_336", pretrained=False, num_classes=0, **shape), shape["img_size"]


class _BatchFirstEncoder(nn.Module):
    """open_clip's vision tower run through this plugin's batch-first blocks, without a V-V stream."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> class token ``[B, W]`` after the last block."""
        from anomalib_glocalclip.backbone import dual_stream_forward

        layers = len(self.visual.transformer.resblocks)
        return dual_stream_forward(self.visual, images, vv_start_layer=layers + 1, out_layers=[]).class_token


def _batch_first_encoder(tiny: bool) -> tuple[nn.Module, int]:
    visual, size = _bare_encoder(tiny)
    return _BatchFirstEncoder(visual), size


def _glocalclip(tiny: bool, precision: str) -> tuple[nn.Module, int]:
    from anomalib_glocalclip import GlocalCLIP
    from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

    args = {"backbone": str(TINY_CLIP_CONFIG), "image_size": 64} if tiny else {"image_size": 518}
    model = GlocalCLIP(pretrained=None, precision=precision, **args)
    return model.model, model.image_size


def _anoclip(tiny: bool, precision: str, views: str = "reference", tta: bool = False) -> tuple[nn.Module, int]:
    from anomalib_glocalclip import AnoCLIP
    from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

    args = {"backbone": str(TINY_CLIP_CONFIG), "image_size": 64} if tiny else {}
    model = AnoCLIP(pretrained=None, precision=precision, image_score_views=views, tta=tta, **args)
    model.model.setup_prompts("bottle", "object")
    return model.model, model.image_size


def _few_shot(model_and_size: tuple[nn.Module, int], k: int = 4) -> tuple[nn.Module, int]:
    """A plugin model with ``k`` random normal references in its bank (speed does not depend on the images)."""
    model, size = model_and_size
    model.reference_bank.add(model.reference_features(torch.randn(k, 3, size, size)))
    return model, size


def _winclip(tiny: bool) -> tuple[nn.Module, int]:
    """Anomalib's WinClip with random weights (its module constants name the weights it would download)."""
    from anomalib.models.image.winclip import torch_model as winclip

    if tiny:
        import open_clip

        from anomalib_glocalclip.testing import TINY_CLIP_CONFIG

        open_clip.add_model_config(TINY_CLIP_CONFIG)
        winclip.BACKBONE = TINY_CLIP_CONFIG.stem
    winclip.PRETRAINED = None
    model = winclip.WinClipModel(apply_transform=False)
    model.setup("bottle")
    return model, 64 if tiny else 240


def _compiled(model: nn.Module, name: str, cuda_graphs: bool) -> nn.Module:
    """The model with its vision pass under ``torch.compile`` (the plugin's backbones) or compiled whole (encoders).

    WinCLIP is left as Anomalib ships it. Compilation happens during the warm-up batches, which are not timed.
    """
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        backbone.use_compile, backbone.cuda_graphs = True, cuda_graphs
        return model
    if name in SELF_CAST_FREE - {"WinCLIP"}:
        mode = "reduce-overhead" if cuda_graphs else None
        return torch.compile(model, dynamic=False, mode=mode)
    return model


def _measure(run: Callable[[torch.Tensor], object], images: torch.Tensor, iterations: int) -> tuple[float, float]:
    """(seconds per batch, peak GPU memory in GiB) over ``iterations`` after two warm-up batches."""
    cuda = images.is_cuda
    for _ in range(2):
        run(images)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iterations):
        run(images)
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / iterations
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return seconds, peak


def benchmark(args: argparse.Namespace) -> list[Row]:
    """Time every model at every precision and batch size; return the rows."""
    device = torch.device(args.device)
    rows: list[Row] = []
    for precision in args.precisions:
        candidates: dict[str, Callable[[], tuple[nn.Module, int]]] = {
            "ViT-L-14 bare": lambda: _fastest_bare_encoder(args.tiny),
            "ViT-L-14 encoder": lambda: _bare_encoder(args.tiny),
            "ViT-L-14 batch-first": lambda: _batch_first_encoder(args.tiny),
            "GlocalCLIP": lambda precision=precision: _glocalclip(args.tiny, precision),
            "AnoCLIP": lambda precision=precision: _anoclip(args.tiny, precision),
            "AnoCLIP (1 view)": lambda precision=precision: _anoclip(args.tiny, precision, views="none"),
            "AnoCLIP+": lambda precision=precision: _anoclip(args.tiny, precision, tta=True),
            "GlocalCLIP 4-shot": lambda precision=precision: _few_shot(_glocalclip(args.tiny, precision)),
            "AnoCLIP 4-shot": lambda precision=precision: _few_shot(_anoclip(args.tiny, precision)),
            "WinCLIP": lambda: _winclip(args.tiny),
        }
        for name in args.models or candidates:
            model, size = candidates[name]()
            model = model.to(device).eval()
            if args.compile:
                model = _compiled(model, name, args.cuda_graphs and device.type == "cuda")
            # The plugin's models autocast themselves; the bare encoders and WinCLIP get the same context here.
            outer = autocast(device, precision) if name in SELF_CAST_FREE else contextlib.nullcontext()
            grad = torch.enable_grad() if name == "AnoCLIP+" else torch.no_grad()

            def run(images: torch.Tensor, model: nn.Module = model, outer=outer, grad=grad) -> object:  # noqa: ANN001
                with outer, grad:
                    return model(images)

            for batch_size in args.batch_sizes:
                images = torch.randn(batch_size, 3, size, size, device=device)
                try:
                    seconds, peak = _measure(run, images, args.iterations)
                except torch.OutOfMemoryError:
                    rows.append({"model": name, "precision": precision, "batch": batch_size, "error": "out of memory"})
                    torch.cuda.empty_cache()
                    continue
                rows.append({
                    "model": name,
                    "precision": precision,
                    "batch": batch_size,
                    "images_per_s": batch_size / seconds,
                    "ms_per_image": 1000 * seconds / batch_size,
                    "peak_gib": peak,
                })
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def add_ratios(rows: list[Row]) -> None:
    """Add the ratios to the rows (same precision and batch size).

    ``vs_encoder``: images/s over open_clip's encoder's; ``vs_bare``: over the bare encoder's; ``bf16_speedup``:
    bf16 over fp32.
    """
    speed = {(r["model"], r["precision"], r["batch"]): r.get("images_per_s") for r in rows}
    for row in rows:
        for key, reference in (("vs_encoder", "ViT-L-14 encoder"), ("vs_bare", "ViT-L-14 bare")):
            limit = speed.get((reference, row["precision"], row["batch"]))
            if limit and row.get("images_per_s"):
                row[key] = row["images_per_s"] / limit
        fp32 = speed.get((row["model"], "fp32", row["batch"]))
        if row["precision"] == "bf16" and fp32 and row.get("images_per_s"):
            row["bf16_speedup"] = row["images_per_s"] / fp32


def print_table(rows: list[Row], device: str, compiled: str = "") -> None:
    """A Markdown table of the rows (``compiled`` is appended to the device line)."""
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"\nDevice: {name}, torch {torch.__version__}{compiled}\n")
    print("| model | precision | batch | images/s | ms/image | peak GiB | vs encoder | vs bare | bf16 speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['precision']} | {r['batch']} | {r['error']} | | | | | |")
            continue
        ratio = f"{r['vs_encoder']:.2f}" if "vs_encoder" in r else ""
        bare = f"{r['vs_bare']:.2f}" if "vs_bare" in r else ""
        speedup = f"{r['bf16_speedup']:.2f}x" if "bf16_speedup" in r else ""
        print(
            f"| {r['model']} | {r['precision']} | {r['batch']} | {r['images_per_s']:.1f} | {r['ms_per_image']:.2f} "
            f"| {r['peak_gib']:.2f} | {ratio} | {bare} | {speedup} |",
        )


def main() -> None:
    """Parse arguments, run, print (and optionally save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP at 64 px (a CPU smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--models", nargs="+", default=None, help="subset of the rows, by name")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="vision passes under torch.compile")
    parser.add_argument("--cuda-graphs", action="store_true", help="with --compile on CUDA: replay CUDA graphs")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = benchmark(args)
    add_ratios(rows)
    compiled = (", torch.compile" + (" + CUDA graphs" if args.cuda_graphs else "")) if args.compile else ""
    print_table(rows, args.device, compiled)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
