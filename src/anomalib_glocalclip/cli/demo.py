"""``anomalib-glocalclip demo``: its options, and the command (which imports Anomalib only when it runs)."""

import argparse
from collections.abc import Sequence

DEFAULT_BACKBONE = "ViT-L-14-336"
DESCRIPTION = "Offline demo: generate an auxiliary and a target dataset, learn prompts, test zero-shot, write heatmaps."


def build_parser() -> argparse.ArgumentParser:
    """The options of ``anomalib-glocalclip demo``."""
    parser = argparse.ArgumentParser(prog="anomalib-glocalclip demo", description=DESCRIPTION)
    parser.add_argument("--workdir", default="glocalclip_demo", help="folder for data, prompts and heatmaps")
    parser.add_argument("--weights", default=None, help="local CLIP weight file (OpenAI ViT-L-14-336px.pt, ...)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help="open_clip model name of --weights")
    parser.add_argument("--image-size", type=int, default=None, help="input size (default 518, tiny backbone 64)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of prompt learning")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random backbone even if weights exist")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the prompts and the training order")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the demo's command line (``--help`` prints the options and exits)."""
    return build_parser().parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    """``anomalib-glocalclip demo``."""
    from anomalib_glocalclip.demo import run_demo

    run_demo(argv)
    return 0
