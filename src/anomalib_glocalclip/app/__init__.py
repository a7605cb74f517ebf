"""``anomalib-glocalclip app``: a local page to try GlocalCLIP and AnoCLIP on one's own images.

``scoring.py`` builds a model per choice and scores images (no gradio); ``page.py`` is the Gradio page and its
server (needs the ``app`` extra: ``pip install "anomalib-glocalclip[app]"``); ``options.py`` holds what the page
starts with. This package never imports gradio itself, so it imports without the extra.
"""

from .options import DEFAULT_HOST, DEFAULT_PORT, AppOptions
from .scoring import (
    AppInputError,
    ImageResult,
    ModelCache,
    ModelChoice,
    build_model,
    decide,
    score_images,
    write_csv,
    write_heatmap_zip,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "AppInputError",
    "AppOptions",
    "ImageResult",
    "ModelCache",
    "ModelChoice",
    "build_model",
    "decide",
    "score_images",
    "write_csv",
    "write_heatmap_zip",
]
