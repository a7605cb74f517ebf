"""An Anomalib dataset over a samples table whose every image and mask is read by the plugin's reader (``io``)."""

from __future__ import annotations

import pandas as pd
import torch
from anomalib import TaskType
from anomalib.data import AnomalibDataset, ImageItem
from anomalib.data.utils import LabelName
from torchvision.transforms.v2 import InterpolationMode, Transform
from torchvision.transforms.v2.functional import resize
from torchvision.tv_tensors import Image, Mask

from .io import ImageReadError, read_image, read_mask


class SampleDataset(AnomalibDataset):
    """Images and masks listed in a samples table (see ``data.layouts``), read by the plugin's reader.

    Its items are Anomalib's ``ImageItem`` built as ``AnomalibDataset`` builds them; on 8-bit RGB files with binary
    masks they equal Anomalib's bit for bit.

    Args:
        samples: samples table with Anomalib's columns, plus ``pixel_labels`` (bool) and ``category``.
        task: ``segmentation`` or ``classification``; default: ``samples.attrs["task"]``.
        augmentations: transforms applied to image and mask together.
        name: dataset name shown by Anomalib.
        resize_masks: resize a mask of another size than its image to the image's size (nearest neighbour)
            instead of raising.
    """

    def __init__(
        self, samples: pd.DataFrame, task: TaskType | str | None = None, augmentations: Transform | None = None,
        name: str = "samples", resize_masks: bool = False,
    ) -> None:
        super().__init__(augmentations=augmentations)
        task = TaskType(task or samples.attrs.get("task", TaskType.SEGMENTATION))
        if "pixel_labels" not in samples:
            samples = samples.assign(pixel_labels=task == TaskType.SEGMENTATION)
        samples = samples.assign(mask_path=samples["mask_path"].fillna("").astype(str))
        self.samples = samples
        self.samples.attrs["task"] = task
        self._task = task
        self._name = name
        self.resize_masks = resize_masks

    @property
    def name(self) -> str:
        """Dataset name."""
        return self._name

    @property
    def task(self) -> TaskType:
        """Segmentation if any row has masks (or all-zero masks of normal images), else classification."""
        return self._task

    def __getitem__(self, index: int) -> ImageItem:
        """Image ``[3, H, W]`` float32 in [0, 1], mask ``[H, W]`` uint8 (segmentation) and label of one sample.

        As in Anomalib, a sample of unknown label (``label_index`` other than 0 and 1) has no label and no mask.

        Raises:
            ImageReadError: the image or mask cannot be read, or the mask's size differs from the image's
                (without ``resize_masks``); the message names the file(s).
        """
        row = self.samples.iloc[index]
        image = Image(read_image(row.image_path))
        gt_mask = self.mask_of(row, tuple(image.shape[-2:]))
        if self.augmentations:
            if self.task == TaskType.CLASSIFICATION:
                image = self.augmentations(image)
            else:  # unknown-label samples are augmented with a zero mask, as in Anomalib, but keep no mask
                zeros = Mask(torch.zeros(image.shape[-2:], dtype=torch.uint8))
                image, augmented = self.augmentations(image, gt_mask if gt_mask is not None else zeros)
                gt_mask = augmented if gt_mask is not None else None
        known = int(row.label_index) in {LabelName.NORMAL, LabelName.ABNORMAL}
        return ImageItem(
            image=image,
            gt_mask=gt_mask,
            gt_label=torch.tensor(row.label_index) if known else None,
            image_path=row.image_path,
            mask_path=row.mask_path,
        )

    def mask_of(self, row: pd.Series, size: tuple[int, int]) -> Mask | None:
        """Mask ``[H, W]`` of the sample ``row`` whose image has ``size``.

        ``None`` for classification data and for samples of unknown label. Anomalous rows without pixel labels
        get an empty mask, which marks them as image-labelled (see ``has_pixel_labels``).
        """
        label = int(row.label_index)
        if self.task != TaskType.SEGMENTATION or label not in {LabelName.NORMAL, LabelName.ABNORMAL}:
            return None
        if label == LabelName.NORMAL or not bool(row.pixel_labels):
            return Mask(torch.zeros(size, dtype=torch.uint8))
        if not row.mask_path:
            msg = (
                f"Anomalous image {row.image_path} has no mask in a pixel-level dataset. Add its mask, or use "
                "image-level data (a folder layout without masks)."
            )
            raise ImageReadError(msg)
        mask = read_mask(row.mask_path, expected_size=None if self.resize_masks else size, image_path=row.image_path)
        if tuple(mask.shape) != size:
            mask = resize(mask[None], list(size), interpolation=InterpolationMode.NEAREST)[0]
        return Mask(mask)


def has_pixel_labels(gt_label: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: which samples carry pixel labels.

    Normal images do (every pixel is normal); anomalous images do when their mask marks some pixels. An
    anomalous image with an empty mask has an image label only (image-level data, or a defect lost when the
    mask was resized) and must not teach that all its pixels are normal.
    """
    normal = gt_label.view(-1).to(gt_mask.device) == 0
    return normal | gt_mask.flatten(1).any(dim=1)
