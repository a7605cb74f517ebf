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
from anomalib_glocalclip.testing.official_layouts import (
    OFFICIAL_LAYOUT_GENERATORS,
    generate_br35h,
    generate_brainmri,
    generate_btad,
    generate_cvc_clinicdb,
    generate_cvc_colondb,
    generate_dagm,
    generate_dtd_synthetic,
    generate_endotect,
    generate_headct,
    generate_isic2016,
    generate_ksdd,
    generate_kvasir_seg,
    generate_mpdd,
    generate_tn3k,
)

TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
"""open_clip model config of a 24-layer, 64-wide random ViT (64 px, 8 px patches) with a 12-layer text tower."""

__all__ = [
    "DEFECT_KINDS",
    "OFFICIAL_LAYOUT_GENERATORS",
    "PATTERNS",
    "TINY_CLIP_CONFIG",
    "VISA_CATEGORIES",
    "CategoryStyle",
    "category_style",
    "generate_br35h",
    "generate_brainmri",
    "generate_btad",
    "generate_cvc_clinicdb",
    "generate_cvc_colondb",
    "generate_dagm",
    "generate_dtd_synthetic",
    "generate_endotect",
    "generate_folder",
    "generate_headct",
    "generate_isic2016",
    "generate_ksdd",
    "generate_kvasir_seg",
    "generate_mpdd",
    "generate_mvtec_ad",
    "generate_normal_folder",
    "generate_tn3k",
    "generate_visa",
    "make_image",
]
