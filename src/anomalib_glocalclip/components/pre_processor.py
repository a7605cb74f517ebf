"""CLIP pre-processing: bicubic resize to the backbone's input size and CLIP normalisation."""

from __future__ import annotations

from anomalib.pre_processing import PreProcessor
from torchvision.transforms.v2 import Compose, InterpolationMode, Normalize, Resize

from anomalib_glocalclip.backbone import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


def clip_pre_processor(image_size: int | tuple[int, int]) -> PreProcessor:
    """Anomalib's ``PreProcessor`` with a bicubic resize and CLIP normalisation.

    Anomalib copies this ``Resize`` into the datasets' augmentations, so images of different native sizes
    collate, and masks are resized with their images.

    Args:
        image_size: input size of the vision tower, ``S`` or ``(H, W)``.

    Returns:
        PreProcessor: maps ``[B, 3, h, w]`` images in ``[0, 1]`` to normalised ``[B, 3, H, W]`` images.

    Example:
        >>> pre_processor = clip_pre_processor(224)
        >>> pre_processor.transform.transforms[0].size
        [224, 224]
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return PreProcessor(
        transform=Compose([
            Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=True),
            Normalize(mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD),
        ]),
    )
