"""``anomalib-glocalclip app``: a local page to try GlocalCLIP and AnoCLIP on one's own images.

Only ``page.py`` imports gradio (the ``app`` extra), so this package imports without it.
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
    "DEFAULT_HOST", "DEFAULT_PORT", "AppInputError", "AppOptions", "ImageResult", "ModelCache", "ModelChoice",
    "build_model", "decide", "score_images", "write_csv", "write_heatmap_zip",
]
