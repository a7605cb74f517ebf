"""An Anomalib dataset over a samples table, reading every image robustly and checking every mask."""

from __future__ import annotations

import pandas as pd
import torch
from anomalib import TaskType
from anomalib.data import AnomalibDataset, ImageItem
from torchvision.transforms.v2 import Transform
from torchvision.tv_tensors import Image, Mask

from .io import read_image, read_mask


class SampleDataset(AnomalibDataset):
    """Images and masks listed in a samples table (see ``anomalib_glocalclip.data.layouts``).

    Unlike Anomalib's stock datasets it reads 16-bit, grayscale, RGBA and palette images correctly, checks
    that each mask exists and has its image's size, and names the file in every error.

    Args:
        samples: samples table with Anomalib's columns, plus ``pixel_labels`` (bool) and ``category``.
        task: ``segmentation`` or ``classification``; default: ``samples.attrs["task"]``.
        augmentations: transforms applied to image and mask together.
        name: dataset name shown by Anomalib.
    """

    def __init__(
        self,
        samples: pd.DataFrame,
        task: TaskType | str | None = None,
        augmentations: Transform | None = None,
        name: str = "samples",
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

    @property
    def name(self) -> str:
        """Dataset name."""
        return self._name

    @property
    def task(self) -> TaskType:
        """Segmentation if any row has masks (or all-zero masks of normal images), else classification."""
        return self._task

    def __getitem__(self, index: int) -> ImageItem:
        """Image ``[3, H, W]`` in [0, 1], mask ``[H, W]`` and label of one sample."""
        row = self.samples.iloc[index]
        image = read_image(row.image_path)
        gt_mask = self.mask_of(row, tuple(image.shape[-2:]))
        image = Image(image)
        if self.augmentations is not None:
            if gt_mask is None:
                image = self.augmentations(image)
            else:
                image, gt_mask = self.augmentations(image, Mask(gt_mask))
        return ImageItem(
            image=image,
            gt_mask=Mask(gt_mask) if gt_mask is not None else None,
            gt_label=torch.tensor(int(row.label_index)),
            image_path=str(row.image_path),
            mask_path=str(row.mask_path) or None,
        )

    def mask_of(self, row: pd.Series, size: tuple[int, int]) -> torch.Tensor | None:
        """Mask ``[H, W]`` of the sample ``row`` whose image has ``size`` (``None`` for classification data).

        Anomalous rows without pixel labels get an empty mask, which marks them as image-labelled (see
        ``has_pixel_labels``).
        """
        if self.task != TaskType.SEGMENTATION:
            return None
        if int(row.label_index) == 0 or not bool(row.pixel_labels):
            return torch.zeros(size, dtype=torch.uint8)
        return read_mask(row.mask_path, expected_size=size, image_path=row.image_path)


def has_pixel_labels(gt_label: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: which samples carry pixel labels.

    Normal images do (every pixel is normal); anomalous images do when their mask marks some pixels. An
    anomalous image with an empty mask has an image label only (image-level data, or a defect lost when the
    mask was resized) and must not teach that all its pixels are normal.
    """
    normal = gt_label.view(-1).to(gt_mask.device) == 0
    return normal | gt_mask.flatten(1).any(dim=1)
