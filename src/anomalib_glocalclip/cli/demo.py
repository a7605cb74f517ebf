"""``anomalib-glocalclip demo``: its options, and the command (which imports Anomalib only when it runs)."""

import argparse
import os
from collections.abc import Sequence

from anomalib_glocalclip.demo.options import DemoOptions

DESCRIPTION = "Offline demo: generate an auxiliary and a target dataset, learn prompts, test zero-shot, write heatmaps."


def build_parser() -> argparse.ArgumentParser:
    """The options of ``anomalib-glocalclip demo`` (defaults: :class:`DemoOptions`'s)."""
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(prog="anomalib-glocalclip demo", description=DESCRIPTION)
    parser.add_argument("--workdir", default=defaults.workdir, help="folder for data, prompts and heatmaps")
    weights_help = "local CLIP weight file (OpenAI ViT-L-14-336px.pt, ...)"
    parser.add_argument("--weights", default=defaults.weights, help=weights_help)
    parser.add_argument(
        "--backbone", default=defaults.backbone, help="open_clip model name of --weights (default: GlocalCLIP's)"
    )
    size_help = "input size (default 518, tiny backbone 64)"
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help=size_help)
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs of prompt learning")
    parser.add_argument("--accelerator", default=defaults.accelerator, help="Lightning accelerator (cpu, gpu, auto)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random backbone even if weights exist")
    seed_help = "seed of the data, the prompts and the training order"
    parser.add_argument("--seed", type=int, default=defaults.seed, help=seed_help)
    return parser


def parse_args(argv: Sequence[str]) -> DemoOptions:
    """Parse the demo's command line (``--help`` prints the options and exits)."""
    return DemoOptions(**vars(build_parser().parse_args(list(argv))))


def main(argv: Sequence[str]) -> int:
    """``anomalib-glocalclip demo``."""
    from anomalib_glocalclip.demo.run import run_demo

    os.environ.setdefault("ANOMALIB_GLOCALCLIP_OFFLINE", "1")  # the command's process: the demo never downloads
    run_demo(parse_args(argv))
    return 0
