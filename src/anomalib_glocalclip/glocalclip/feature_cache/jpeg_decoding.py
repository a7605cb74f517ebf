"""The caching pass's JPEGs decoded on the model's device in batches (``torchvision.io.decode_jpeg``; nvJPEG on CUDA).

Only RGB and grayscale JPEGs are left encoded (:data:`DEVICE_DECODED_MODES`), which ``decode_jpeg`` turns into the
same RGB as the plugin's PIL reader; every other file is read by its dataset as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from anomalib.data import ImageBatch
from PIL import Image as PILImage
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2.functional import to_dtype
from torchvision.tv_tensors import Image, Mask

from anomalib_glocalclip.data.io import ImageReadError

DEVICE_DECODED_MODES = ("RGB", "L")  # JPEG colour modes decode_jpeg turns into the same RGB as the PIL reader


@dataclass
class JpegSample:
    """A training sample whose JPEG image is still encoded, or, for other files, as its dataset reads it.

    Attributes:
        data: ``[n]`` uint8 bytes of the JPEG file, or ``None`` when ``image`` holds the image.
        image: ``[3, H, W]`` image read and augmented by the dataset (not a device-decodable JPEG), or ``None``.
        gt_mask: ``[H, W]`` mask at the file's size (augmented with ``image`` when that is set), or ``None``.
    """

    data: torch.Tensor | None
    image: torch.Tensor | None
    gt_mask: torch.Tensor | None
    gt_label: torch.Tensor
    image_path: str


class JpegSamples(Dataset):
    """The samples of a ``SampleDataset`` (``samples`` table, ``mask_of(row, size)``), JPEGs left encoded."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.dataset)

    def __getitem__(self, index: int) -> JpegSample:
        """Sample ``index``: its JPEG bytes and mask, or the dataset's item for any other file."""
        row = self.dataset.samples.iloc[index]
        header = _jpeg_header(Path(row.image_path))
        if header is None:  # another format, mode, or a file PIL cannot open: the dataset reads it (or names it)
            item = self.dataset[index]
            return JpegSample(None, item.image, item.gt_mask, item.gt_label, str(row.image_path))
        width, height = header
        mask, label = self.dataset.mask_of(row, (height, width)), torch.tensor(int(row.label_index))
        return JpegSample(read_file(str(row.image_path)), None, mask, label, str(row.image_path))


def _jpeg_header(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG whose mode is in ``DEVICE_DECODED_MODES`` (header only), else ``None``."""
    try:
        with PILImage.open(path) as img:
            return img.size if img.format == "JPEG" and img.mode in DEVICE_DECODED_MODES else None
    except (OSError, ValueError):
        return None


def decode_samples(samples: list[JpegSample], device: torch.device, augmentations: Transform | None) -> ImageBatch:
    """An ``ImageBatch`` of ``samples``, their JPEGs decoded on ``device`` in one batched call.

    Decoded images are scaled to ``[0, 1]`` and augmented (with their masks) by the dataset's ``augmentations``,
    as the dataset does for images it reads, so on the CPU the batch equals the dataset's own.

    Raises:
        ImageReadError: a JPEG that cannot be decoded; the message names the file.
    """
    encoded = [sample for sample in samples if sample.data is not None]
    decoded = iter(_decode_jpegs(encoded, device))
    images, masks = [], []
    for sample in samples:
        mask = sample.gt_mask.to(device) if sample.gt_mask is not None else None
        if sample.data is None:
            image = sample.image.to(device)
        else:
            image = Image(to_dtype(next(decoded), torch.float32, scale=True))
            if augmentations is not None:
                if mask is None:
                    image = augmentations(image)
                else:
                    image, mask = augmentations(image, Mask(mask))
        images.append(image)
        masks.append(mask)
    return ImageBatch(
        image=Image(torch.stack(images)),
        gt_mask=Mask(torch.stack(masks)) if all(mask is not None for mask in masks) else None,
        gt_label=torch.stack([sample.gt_label for sample in samples]),
    )


def _decode_jpegs(samples: list[JpegSample], device: torch.device) -> list[torch.Tensor]:
    """uint8 ``[3, H, W]`` images of the samples' JPEG bytes, decoded on ``device`` in one call."""
    if not samples:
        return []
    try:
        return decode_jpeg([sample.data for sample in samples], mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        for sample in samples:  # find the file
            _decode_one(sample, device)
        raise


def _decode_one(sample: JpegSample, device: torch.device) -> None:
    """Decode one sample's JPEG, or raise ``ImageReadError`` naming its file."""
    try:
        decode_jpeg(sample.data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:
        msg = (f"The image {sample.image_path} could not be decoded ({error}). Replace the file, or train with "
               "decode_on_device=False to read it with PIL.")
        raise ImageReadError(msg) from error
