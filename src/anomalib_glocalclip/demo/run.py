"""Offline demo: generate an auxiliary and a target dataset, learn prompts, test zero-shot, write heatmaps.

Uses real CLIP weights when they are available offline (open_clip's cache or ``--weights``), else says so and
runs a tiny random backbone. Seeded: the same options give the same data, prompts and metrics on every run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from .options import DemoOptions


def _choose_backbone(args: DemoOptions) -> tuple[str, str | None, int, str]:
    """(backbone, pretrained, image size, sentence for the user) for this run; never touches the network."""
    from anomalib_glocalclip.backbone import DEFAULT_BACKBONE, TINY_CLIP_CONFIG, WeightsNotFoundError, resolve_weights

    backbone = args.backbone or DEFAULT_BACKBONE
    if args.weights is not None:
        resolve_weights(backbone, args.weights)  # a missing file is an error, not a silent fallback
        return backbone, args.weights, args.image_size or 518, f"real CLIP weights from {args.weights}"
    if not args.tiny:
        try:
            path = resolve_weights(backbone, "openai")
        except WeightsNotFoundError:
            path = None
        if path is not None:
            return backbone, "openai", args.image_size or 518, f"real CLIP weights ({path})"
    note = (
        "NO CLIP WEIGHTS FOUND: running a tiny random CLIP, whose scores mean nothing. It shows every step "
        "working. For real results pass --weights /path/to/ViT-L-14-336px.pt or put that file into ~/.cache/clip."
    )
    return str(TINY_CLIP_CONFIG), None, args.image_size or 64, note


def run_demo(options: DemoOptions | None = None) -> dict[str, float]:
    """Run the demo and return the zero-shot test metrics (on Anomalib's normalised scores, as ``anomalib test``)."""
    args = options or DemoOptions()
    backbone, pretrained, image_size, note = _choose_backbone(args)
    note = textwrap.fill(note, width=79)
    banner = "=" * 79
    print(f"{banner}\n{note}\n{banner}", flush=True)

    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning import seed_everything

    from anomalib_glocalclip.data.auxiliary import AuxiliarySource, AuxiliaryTransfer
    from anomalib_glocalclip.evaluation.engine import evaluation_engine
    from anomalib_glocalclip.glocalclip.lightning_model import GlocalCLIP

    from .datasets import generate_mvtec_ad, generate_visa

    seed_everything(args.seed, workers=True, verbose=False)
    workdir = Path(args.workdir).resolve()
    size = (image_size, image_size) if pretrained is None else (128, 128)
    visa = generate_visa(workdir / "data" / "visa", categories=("candle", "pcb1", "capsules"), image_size=size,
                         seed=args.seed)
    mvtec = generate_mvtec_ad(workdir / "data" / "mvtec", categories=("bottle",),
                              defects=("contamination", "broken_large"), image_size=size, n_test_good=4,
                              seed=args.seed + 7)
    print(f"1/3 Generated data:\n    auxiliary (VisA layout): {visa}\n    target (MVTec AD layout): {mvtec}")

    common = {"backbone": backbone, "pretrained": pretrained, "image_size": image_size}
    if pretrained is None:
        common["sigma"] = 8.0 * image_size / 518  # the paper smooths 518 px maps with sigma 8
    target = MVTecAD(root=mvtec, category="bottle", eval_batch_size=4, num_workers=0)
    datamodule = AuxiliaryTransfer(auxiliary=AuxiliarySource("visa", str(visa)), target=target, train_batch_size=4,
                                   num_workers=0)
    learner = GlocalCLIP(**common)
    engine = Engine(default_root_dir=workdir / "results", accelerator=args.accelerator, max_epochs=args.epochs,
                    logger=False)
    engine.fit(learner, datamodule=datamodule)
    prompts = learner.prompt_file_path()
    print(f"2/3 Learned prompts on the auxiliary data:\n    {prompts}")

    seed_everything(args.seed, workers=True, verbose=False)
    zero_shot = GlocalCLIP(**common, prompt_weights=str(prompts))
    test_data = MVTecAD(root=mvtec, category="bottle", num_workers=0)
    test_engine = evaluation_engine(workdir / "zero_shot", zero_shot, test_data, accelerator=args.accelerator,
                                    devices="auto", enable_progress_bar=True)
    results = test_engine.test(zero_shot, datamodule=test_data, verbose=False)[0]
    heatmaps = Path(test_engine.trainer.default_root_dir) / "images"
    print("3/3 Zero-shot test on the target, metrics on Anomalib's normalised scores\n"
          "    (as `anomalib test`; `anomalib-glocalclip evaluate` reports raw scores):")
    print(format_metrics(results))
    print(f"Heatmaps: {heatmaps}")
    if pretrained is None:
        print(note)
    return results


def format_metrics(results: dict[str, float]) -> str:
    """The metrics as lines such as ``"    image_AUROC     0.667"``, image metrics first (fits 80 columns)."""
    names = sorted(results, key=lambda name: (not name.startswith("image_"), name))
    return "\n".join(f"    {name:<16}{float(results[name]):.3f}" for name in names)
