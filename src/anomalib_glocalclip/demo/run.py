"""Offline demo: generate an auxiliary and a target dataset, learn prompts, test zero-shot, write heatmaps.

Run ``anomalib-glocalclip demo`` (options: ``cli/demo.py``). It uses real CLIP weights when they are available
offline (the OpenAI ViT-L-14-336 archive in open_clip's cache, or a file given with ``--weights``); otherwise it
says so and runs a tiny random backbone, whose scores show the pipeline working but mean nothing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from anomalib_glocalclip.cli.demo import parse_args


def _choose_backbone(args: argparse.Namespace) -> tuple[str, str | None, int, str]:
    """(backbone, pretrained, image size, sentence for the user) for this run; never touches the network."""
    from anomalib_glocalclip.backbone import TINY_CLIP_CONFIG, WeightsNotFoundError, resolve_weights

    if args.weights is not None:
        resolve_weights(args.backbone, args.weights)  # a missing file is an error, not a silent fallback
        return args.backbone, args.weights, args.image_size or 518, f"real CLIP weights from {args.weights}"
    if not args.tiny:
        try:
            path = resolve_weights(args.backbone, "openai")
        except WeightsNotFoundError:
            path = None
        if path is not None:
            return args.backbone, "openai", args.image_size or 518, f"real CLIP weights ({path})"
    note = (
        "NO CLIP WEIGHTS FOUND: this demo runs a tiny, untrained (random) CLIP. It shows every step working, "
        "but its scores mean nothing. For real results pass --weights /path/to/ViT-L-14-336px.pt or put that "
        "file into ~/.cache/clip."
    )
    return str(TINY_CLIP_CONFIG), None, args.image_size or 64, note


def run_demo(argv: Sequence[str] = ()) -> dict[str, float]:
    """Run the demo and return the zero-shot test metrics."""
    args = parse_args(argv)
    os.environ.setdefault("ANOMALIB_GLOCALCLIP_OFFLINE", "1")
    backbone, pretrained, image_size, note = _choose_backbone(args)
    banner = "=" * 100
    print(f"{banner}\n{note}\n{banner}", flush=True)

    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from anomalib_glocalclip import AuxiliarySource, AuxiliaryTransfer, GlocalCLIP

    from .datasets import generate_mvtec_ad, generate_visa

    workdir = Path(args.workdir)
    size = (image_size, image_size) if pretrained is None else (128, 128)
    visa = generate_visa(workdir / "data" / "visa", categories=("candle", "pcb1", "capsules"), image_size=size)
    mvtec = generate_mvtec_ad(
        workdir / "data" / "mvtec",
        categories=("bottle",),
        defects=("contamination", "broken_large"),
        image_size=size,
        n_test_good=4,
        seed=7,
    )
    print(f"1/3 Generated auxiliary data (VisA layout) in {visa} and target data (MVTec AD) in {mvtec}")

    common = {"backbone": backbone, "pretrained": pretrained, "image_size": image_size}
    if pretrained is None:
        common["sigma"] = 8.0 * image_size / 518  # the paper smooths 518 px maps with sigma 8
    target = MVTecAD(root=mvtec, category="bottle", eval_batch_size=4, num_workers=0)
    datamodule = AuxiliaryTransfer(
        auxiliary=AuxiliarySource("visa", str(visa)), target=target, train_batch_size=4, num_workers=0
    )
    learner = GlocalCLIP(**common)
    engine = Engine(
        default_root_dir=workdir / "results", accelerator=args.accelerator, max_epochs=args.epochs, logger=False
    )
    engine.fit(learner, datamodule=datamodule)
    prompts = learner.prompt_file_path()
    print(f"2/3 Learned prompts on the auxiliary data: {prompts}")

    zero_shot = GlocalCLIP(**common, prompt_weights=str(prompts))
    test_engine = Engine(default_root_dir=workdir / "zero_shot", accelerator=args.accelerator, logger=False)
    results = test_engine.test(zero_shot, datamodule=MVTecAD(root=mvtec, category="bottle", num_workers=0))[0]
    heatmaps = Path(test_engine.trainer.default_root_dir) / "images"
    print("3/3 Zero-shot test on the target:")
    for name, value in sorted(results.items()):
        print(f"    {name:<14} {value:.3f}")
    print(f"Heatmaps: {heatmaps}\n{note if pretrained is None else ''}")
    return results

