"""Anomalib datasets read with the plugin's reader: the same samples, transforms and items, right pixels.

:class:`SafeImageDataset` wraps any image ``AnomalibDataset`` (``MVTecAD(...).test_data``, ``Folder`` ...) and
:class:`SafePredictDataset` wraps Anomalib's ``PredictDataset`` (or a folder). Their items equal Anomalib's bit for
bit on 8-bit RGB files; 16-bit, float, palette, RGBA and grayscale files are read right instead of clipped, and an
unusable file raises :class:`~anomalib_glocalclip.data.io.ImageReadError` naming it. Anomalib itself is not patched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from anomalib import TaskType
from anomalib.data.dataclasses import ImageBatch, ImageItem
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.predict import PredictDataset
from anomalib.data.utils import LabelName, get_image_filenames
from torch.utils.data import Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2.functional import resize
from torchvision.tv_tensors import Image, Mask

from anomalib_glocalclip.data.io import ImageReadError, read_image, read_mask

if TYPE_CHECKING:
    from collections.abc import Callable

    from torchvision.transforms.v2 import Transform

logger = logging.getLogger(__name__)


class SafeImageDataset(AnomalibDataset):
    """An image ``AnomalibDataset`` whose images and masks are read by the plugin's reader.

    Samples, their order, the augmentations, the item fields and the collate function are the wrapped dataset's;
    only the reading differs (see :func:`~anomalib_glocalclip.data.io.read_image`). Masks mark every pixel with a
    nonzero colour channel, where Anomalib's ``convert("L") > 0`` misses dark colours of zero luminance; binary
    masks read identically.

    Args:
        dataset: Dataset to wrap, set up (its ``samples`` set). Its class must use ``AnomalibDataset``'s own
            ``__getitem__`` (datasets with their own items, such as MVTec LOCO or depth datasets, are refused).
        resize_masks: Resize a mask whose size differs from its image's to the image's size (nearest neighbour)
            instead of raising. Defaults to ``False``.

    Raises:
        TypeError: ``dataset`` builds its items with its own ``__getitem__``.

    Example:
        >>> datamodule.setup()  # doctest: +SKIP
        >>> datamodule.test_data = SafeImageDataset(datamodule.test_data)  # doctest: +SKIP
    """

    def __init__(self, dataset: AnomalibDataset, *, resize_masks: bool = False) -> None:
        if type(dataset).__getitem__ is not AnomalibDataset.__getitem__:
            msg = (
                f"{type(dataset).__name__} builds its items with its own __getitem__, which SafeImageDataset does "
                "not reproduce; use the dataset as it is."
            )
            raise TypeError(msg)
        super().__init__(augmentations=dataset.augmentations)
        self.wrapped = dataset
        self.resize_masks = resize_masks
        self._samples = dataset.samples  # already sorted by Anomalib's setter; kept as is
        self._category = dataset.category

    @property
    def name(self) -> str:
        """The wrapped dataset's name."""
        return self.wrapped.name

    @property
    def collate_fn(self) -> Callable:
        """The wrapped dataset's collate function."""
        return self.wrapped.collate_fn

    def __getitem__(self, index: int) -> ImageItem:
        """Item ``index``, built like ``AnomalibDataset.__getitem__`` with the plugin's reader.

        Args:
            index: Sample index.

        Returns:
            Item with ``image`` ``[3, H, W]`` float32 in [0, 1], ``gt_mask`` ``[H, W]`` uint8 (segmentation task;
            ``None`` for unknown labels), ``gt_label`` (``None`` for unknown labels), ``image_path``, ``mask_path``.

        Raises:
            ImageReadError: The image or mask cannot be read, or the mask's size differs from the image's and
                ``resize_masks`` is off; the message names the file(s).
        """
        sample = self.samples.iloc[index]
        image_path, mask_path, label_index = sample.image_path, sample.mask_path, sample.label_index
        image = Image(read_image(image_path))
        gt_mask = None
        if self.task == TaskType.SEGMENTATION:
            if label_index == LabelName.NORMAL:
                gt_mask = Mask(torch.zeros(image.shape[-2:])).to(torch.uint8)
            elif label_index == LabelName.ABNORMAL:
                gt_mask = self._read_mask(mask_path, image_path, tuple(image.shape[-2:]))
        if self.augmentations:
            if self.task == TaskType.CLASSIFICATION:
                image = self.augmentations(image)
            elif self.task == TaskType.SEGMENTATION:
                # As in Anomalib: unknown-label samples go through with a zero mask but keep gt_mask None.
                temp_mask = gt_mask if gt_mask is not None else Mask(torch.zeros(image.shape[-2:])).to(torch.uint8)
                image, augmented_mask = self.augmentations(image, temp_mask)
                if gt_mask is not None:
                    gt_mask = augmented_mask
        gt_label = None if label_index == LabelName.UNKNOWN else torch.tensor(label_index)
        return ImageItem(image=image, gt_mask=gt_mask, gt_label=gt_label, image_path=image_path, mask_path=mask_path)

    def _read_mask(self, mask_path: object, image_path: str, image_size: tuple[int, int]) -> Mask:
        if not isinstance(mask_path, str | Path) or str(mask_path) == "":
            msg = (
                f"Anomalous image {image_path} has no mask in a pixel-level dataset. Add its mask, or use image-level "
                "data (a folder layout without masks)."
            )
            raise ImageReadError(msg)
        mask = Mask(read_mask(mask_path, None if self.resize_masks else image_size, image_path))
        if tuple(mask.shape) != image_size:
            pixels = mask.as_subclass(torch.Tensor)[None]
            mask = Mask(resize(pixels, list(image_size), interpolation=InterpolationMode.NEAREST)[0])
        return mask


def read_safely(datamodule: Any, resize_masks: bool = False) -> list[str]:
    """Read a set-up datamodule's test and validation data with the plugin's reader (``SafeImageDataset``).

    Datasets already wrapped are left alone; datasets with items of their own stay Anomalib's (logged).

    Args:
        datamodule: a set-up Anomalib datamodule.
        resize_masks: see :class:`SafeImageDataset`. Defaults to ``False``.

    Returns:
        The names of the attributes wrapped now (``"test_data"``, ``"val_data"``).
    """
    wrapped = []
    for name in ("test_data", "val_data"):
        dataset = getattr(datamodule, name, None)
        if not isinstance(dataset, AnomalibDataset) or isinstance(dataset, SafeImageDataset):
            continue
        try:
            setattr(datamodule, name, SafeImageDataset(dataset, resize_masks=resize_masks))
        except TypeError as error:  # a dataset with items of its own: read by Anomalib, as it is
            logger.info("%s of %s read by Anomalib's reader: %s", name, type(datamodule).__name__, error)
            continue
        wrapped.append(name)
    return wrapped


class SafePredictDataset(Dataset):
    """Images of a folder (or one file) for prediction, read by the plugin's reader, unreadable files skipped.

    Every file is decoded once when the dataset is built; unreadable ones are left out with a warning naming each
    and listed in :attr:`skipped`, so that a caller can report them and exit non-zero.

    Args:
        source: Anomalib ``PredictDataset`` to take the files and transform from, or a folder or image path.
        transform: Transform applied to each image; ignored when ``source`` is a ``PredictDataset`` (its own is
            used). Defaults to ``None``.
        skip_unreadable: Leave unreadable files out; otherwise the first one raises. Defaults to ``True``.

    Raises:
        ImageReadError: ``source`` holds no image files, or (without ``skip_unreadable``) a file is unreadable.

    Attributes:
        image_filenames: The readable files, in Anomalib's order.
        skipped: ``(path, reason)`` of every file left out.
    """

    def __init__(
        self,
        source: str | Path | PredictDataset,
        transform: Transform | None = None,
        *,
        skip_unreadable: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(source, PredictDataset):
            filenames, self.transform = list(source.image_filenames), source.transform
        else:
            filenames, self.transform = _image_filenames(Path(source)), transform
        self.image_filenames: list[Path] = []
        self.skipped: list[tuple[Path, str]] = []
        for filename in filenames:
            reason = _unreadable_reason(Path(filename), raise_it=not skip_unreadable)
            if reason is None:
                self.image_filenames.append(Path(filename))
            else:
                logger.warning("Skipping unreadable image %s: %s", filename, reason)
                self.skipped.append((Path(filename), reason))

    def __len__(self) -> int:
        """Number of readable images."""
        return len(self.image_filenames)

    def __getitem__(self, index: int) -> ImageItem:
        """Item ``index``, like ``PredictDataset``'s: ``image`` ``[3, H, W]`` (after the transform), ``image_path``.

        Args:
            index: Image index.

        Returns:
            The item.
        """
        image_filename = self.image_filenames[index]
        image = Image(read_image(image_filename))
        if self.transform:
            image = self.transform(image)
        return ImageItem(image=image, image_path=str(image_filename))

    @property
    def collate_fn(self) -> Callable:
        """``PredictDataset``'s collate function."""
        return ImageBatch.collate


def _unreadable_reason(path: Path, *, raise_it: bool) -> str | None:
    """Why ``path`` cannot be read (fully decoded), or ``None`` when it can; with ``raise_it`` the error is raised."""
    try:
        read_image(path)
    except (ImageReadError, FileNotFoundError) as exc:
        if raise_it:
            raise
        return str(exc)
    return None


def _image_filenames(path: Path) -> list[Path]:
    """Anomalib's list of image files under ``path``, with an error naming the path when there are none."""
    if not path.exists():
        msg = f"Prediction input {path} does not exist; point it at an image file or a folder of images."
        raise ImageReadError(msg)
    try:
        return get_image_filenames(path)
    except ValueError as exc:
        msg = (
            f"No image files in {path} ({exc}). Put images with an image extension (.png, .jpg, .bmp, .tiff ...) "
            "there, or point the input at another folder."
        )
        raise ImageReadError(msg) from exc
