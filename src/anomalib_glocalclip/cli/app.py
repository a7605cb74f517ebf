"""``anomalib-glocalclip app``: its options, and the command that serves the local page (``app/``)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The options of ``anomalib-glocalclip app``."""
    parser = argparse.ArgumentParser(
        prog="anomalib-glocalclip app",
        description="A local web page: drop images, see heatmaps, scores and decisions of AnoCLIP or GlocalCLIP.",
    )
    parser.add_argument("--port", type=int, default=7860, help="port of the page (default 7860)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--share", action="store_true", help="also ask gradio for a PUBLIC share link (off by default)")
    parser.add_argument("--tiny", action="store_true", help="tiny random CLIP, offline (scores mean nothing)")
    parser.add_argument("--model", dest="method", choices=("anoclip", "glocalclip"), default="anoclip",
                        help="method shown first")
    parser.add_argument("--object", dest="object_name", default="object", help="AnoCLIP's object name (pcb, screw ...)")
    parser.add_argument("--prompts", dest="prompt_file", metavar="PROMPTS",
                        help="GlocalCLIP's learned prompt file (prompts.pt)")
    parser.add_argument("--backbone", default=None, help="open_clip model name or config file (default: the method's)")
    parser.add_argument("--weights", default=None, help="open_clip pretrained tag or local weight file")
    parser.add_argument("--image-size", type=int, default=None, help="input size (default: the method's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``anomalib-glocalclip app``: serve the page until interrupted.

    Returns:
        0 after the server stops, 1 when gradio is not installed.
    """
    arguments = build_parser().parse_args(argv)
    if importlib.util.find_spec("gradio") is None:
        print('anomalib-glocalclip app: the app needs gradio: pip install "anomalib-glocalclip[app]"', file=sys.stderr)
        return 1
    # Gradio's documented switch for its usage statistics: nothing leaves the machine unless --share asks.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from anomalib_glocalclip.app import AppOptions
    from anomalib_glocalclip.app.page import serve

    method = {"anoclip": "AnoCLIP", "glocalclip": "GlocalCLIP"}[arguments.method]
    serve(AppOptions(**{**vars(arguments), "method": method}))
    return 0
