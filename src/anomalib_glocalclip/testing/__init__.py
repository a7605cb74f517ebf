"""Test kit (tests only; offline): the tiny random CLIP and generators of small datasets in the papers' layouts.

The MVTec AD and VisA writers and the product drawing are the demo's (``anomalib_glocalclip.demo``), re-exported.
"""

from anomalib_glocalclip.backbone import TINY_CLIP_CONFIG
from anomalib_glocalclip.demo.datasets import VISA_CATEGORIES, generate_mvtec_ad, generate_visa
from anomalib_glocalclip.demo.products import DEFECT_KINDS, PATTERNS, CategoryStyle, category_style, make_image
from anomalib_glocalclip.testing.datasets import generate_folder, generate_normal_folder
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

__all__ = [
    "DEFECT_KINDS", "OFFICIAL_LAYOUT_GENERATORS", "PATTERNS", "TINY_CLIP_CONFIG", "VISA_CATEGORIES",
    "CategoryStyle", "category_style", "generate_br35h", "generate_brainmri", "generate_btad",
    "generate_cvc_clinicdb", "generate_cvc_colondb", "generate_dagm", "generate_dtd_synthetic", "generate_endotect",
    "generate_folder", "generate_headct", "generate_isic2016", "generate_ksdd", "generate_kvasir_seg",
    "generate_mpdd", "generate_mvtec_ad", "generate_normal_folder", "generate_tn3k", "generate_visa", "make_image",
]
