"""Test kit: a tiny random CLIP and generators of small datasets in the layouts Anomalib and the papers use.

Used by the test suite and by the offline demo; nothing here touches the network.
"""

from pathlib import Path

from anomalib_glocalclip.testing.datasets import (
    DEFECT_KINDS,
    PATTERNS,
    VISA_CATEGORIES,
    CategoryStyle,
    category_style,
    generate_folder,
    generate_mvtec_ad,
    generate_normal_folder,
    generate_visa,
    make_image,
)

TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
"""open_clip model config of a 24-layer, 64-wide random ViT (64 px, 8 px patches) with a 12-layer text tower."""

__all__ = [
    "DEFECT_KINDS",
    "PATTERNS",
    "TINY_CLIP_CONFIG",
    "VISA_CATEGORIES",
    "CategoryStyle",
    "category_style",
    "generate_folder",
    "generate_mvtec_ad",
    "generate_normal_folder",
    "generate_visa",
    "make_image",
]
