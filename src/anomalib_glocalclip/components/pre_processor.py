"""CLIP pre-processing: resize to the backbone's input size and CLIP normalisation.

``preprocessing="anomalib"``: torchvision's tensor ``Resize`` (bicubic, antialiased), masks nearest;
``"reference"``: the model's reference code's PIL pipeline (``ReferenceResize``).
"""

from __future__ import annotations

from typing import Any

from anomalib.pre_processing import PreProcessor
from torchvision.transforms.v2 import Compose, InterpolationMode, Normalize, Resize, Transform

from anomalib_glocalclip.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .reference_resize import ReferenceResize

PREPROCESSING_MODES = ("anomalib", "reference")


def check_preprocessing(preprocessing: str) -> str:
    """``preprocessing`` if it is one of ``PREPROCESSING_MODES``, else a ``ValueError`` naming them."""
    if preprocessing not in PREPROCESSING_MODES:
        msg = (
            f"preprocessing must be one of {list(PREPROCESSING_MODES)}, got {preprocessing!r}: 'reference' for the "
            "reference code's PIL resize, 'anomalib' for torchvision's tensor resize."
        )
        raise ValueError(msg)
    return preprocessing


def clip_transform(
    image_size: tuple[int, int], preprocessing: str = "anomalib", reference_image_filter: str = "bicubic"
) -> Compose:
    """Resize to ``image_size`` ``(H, W)`` (as ``preprocessing`` says) and CLIP normalisation."""
    if check_preprocessing(preprocessing) == "reference":
        resize: Transform = ReferenceResize(image_size, image_filter=reference_image_filter)
    else:
        resize = Resize(image_size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return Compose([resize, Normalize(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD)])


def _dense_resizes(transform: Transform | None) -> Transform | None:
    """``transform`` with its ``ReferenceResize`` steps switched to coefficients built in the graph (in place)."""
    for step in getattr(transform, "transforms", [transform]):
        if isinstance(step, ReferenceResize):
            step.exact = False
    return transform


class CLIPPreProcessor(PreProcessor):
    """Anomalib's ``PreProcessor`` with the CLIP transform of ``clip_transform``.

    The reference resize is no transform Anomalib can persist as plain data, so a checkpoint stores the
    ``preprocessing`` mode, size and image filter instead, and loading rebuilds the transform from them. In the
    exported graph the reference resize computes its coefficients from the input's size (``pil_resize_dense``).
    """

    def __init__(
        self, image_size: tuple[int, int], preprocessing: str = "anomalib", reference_image_filter: str = "bicubic"
    ) -> None:
        super().__init__(transform=clip_transform(image_size, preprocessing, reference_image_filter))
        self.image_size = tuple(image_size)
        self.preprocessing = preprocessing
        self.reference_image_filter = reference_image_filter
        # Anomalib's export copy of the transform (antialias off, exportable crops), with the in-graph resize.
        self.export_transform = _dense_resizes(self.export_transform)

    def checkpoint_config(self) -> dict[str, Any]:
        """Anomalib's transform spec, or, for the reference resize, the mode, size and filter it is rebuilt from."""
        if self.preprocessing == "reference":
            return {
                "preprocessing": "reference",
                "image_size": list(self.image_size),
                "reference_image_filter": self.reference_image_filter,
            }
        return super().checkpoint_config()

    def load_checkpoint_config(self, config: dict[str, Any]) -> None:
        """Restore what ``checkpoint_config`` stored (checkpoints from before the filter was stored: bicubic)."""
        if config.get("preprocessing") == "reference":
            self.image_size = tuple(config["image_size"])
            self.preprocessing = "reference"
            self.reference_image_filter = config.get("reference_image_filter", "bicubic")
            config_args = (self.image_size, "reference", self.reference_image_filter)
            self.transform = clip_transform(*config_args)
            self.export_transform = _dense_resizes(clip_transform(*config_args))
        else:
            super().load_checkpoint_config(config)
            self.preprocessing = "anomalib"


def clip_pre_processor(
    image_size: int | tuple[int, int], preprocessing: str = "anomalib", reference_image_filter: str = "bicubic"
) -> CLIPPreProcessor:
    """Anomalib's ``PreProcessor`` mapping ``[B, 3, h, w]`` images in ``[0, 1]`` to normalised ``[B, 3, H, W]``.

    Anomalib copies the resize into the datasets' augmentations, so images of different native sizes
    collate, and masks are resized with their images.

    Args:
        image_size: input size of the vision tower, ``S`` or ``(H, W)``.
        preprocessing: ``"anomalib"`` (torchvision's tensor bicubic resize) or ``"reference"`` (a reference's PIL
            resize).
        reference_image_filter: PIL filter of the images in ``"reference"`` mode: ``"bicubic"`` (GlocalCLIP) or
            ``"bilinear"`` (AnoCLIP).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return CLIPPreProcessor(size, preprocessing, reference_image_filter)
