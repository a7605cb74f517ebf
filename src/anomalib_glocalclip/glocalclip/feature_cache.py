"""Train prompts on cached encoder outputs: every auxiliary image is encoded once, not once per epoch.

The image encoder is frozen and the protocol has no augmentation, so an image's features are the same in
every epoch. The first ``fit`` pass encodes the whole train split (in the encoder's own precision) and
keeps the raw features, labels and masks, then every epoch reads batches from them. Where they are kept is
chosen by size: the GPU when they fill less than half of its free memory, else (pinned) host memory when
they fill less than half of the available RAM, else memory-mapped files on disk.

How the cache reaches the training loop (data never calls the model): a datamodule whose train split is
deterministic offers a ``train_cache`` attribute (``AuxiliaryTransfer``, see ``TrainSplitCache`` there).
``GlocalCLIP.configure_callbacks`` adds a ``FeatureCacheCallback`` when ``cache_features`` is on; in
``setup("fit")`` the callback registers itself there, and when the datamodule builds its train dataloader it
hands the split to the callback, which encodes it once with the model's ``encode_for_cache`` (a
``FeatureEncoder``) and returns a dataloader of ``CachedBatch``. ``CachedBatch`` carries no image and a
mask already at the model's input size, so the model's ``PreProcessor`` passes it through untouched
(its transform leaves ``None`` alone and resizes the mask to the size it has), and the training step sees
either a ``CachedBatch`` or an Anomalib ``Batch``. The callback frees the cache at the end of ``fit``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image as PILImage
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2.functional import to_dtype
from torchvision.tv_tensors import Image, Mask

logger = logging.getLogger(__name__)

STORAGES = ("auto", "device", "host", "disk")
DEVICE_DECODED_MODES = ("RGB", "L")  # JPEG colour modes decode_jpeg turns into the same RGB as the PIL reader


EncodedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


@dataclass
class CachedBatch:
    """A training batch read from the cache.

    Attributes:
        global_features: ``[B, E]`` raw global features (before normalisation).
        patch_features: ``[K, B, N, E]`` raw patch features of the map layers.
        gt_label: ``[B]`` image labels.
        gt_mask: ``[B, H, W]`` bool masks (pre-processed, at the model's input size), or ``None``.
        image: always ``None``: the images were pre-processed and encoded when the cache was built.
    """

    global_features: torch.Tensor
    patch_features: torch.Tensor
    gt_label: torch.Tensor
    gt_mask: torch.Tensor | None
    image: None = None


class FeatureEncoder(Protocol):
    """What the cache needs of a model: its device and a pre-processing encoder of image batches."""

    device: torch.device

    def encode_for_cache(self, batch: Any) -> EncodedBatch:
        """Batch -> (global ``[B, E]``, patch ``[K, B, N, E]``, label ``[B]``, mask ``[B, H, W]`` or ``None``)."""


class _Indices(Dataset):
    """``0..n-1``: the cache serves whole batches from index lists (see ``FeatureCache.collate``)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> int:
        return index


def available_host_memory() -> int:
    """Bytes of RAM available now (Linux ``sysconf``; 8 GiB assumed elsewhere)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-Linux
        return 8 << 30


def choose_storage(nbytes: int, device: torch.device) -> str:
    """``device`` if the cache fits in half the GPU's free memory, else ``host`` in half the free RAM, else ``disk``."""
    if device.type == "cuda" and nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]:
        return "device"
    if nbytes < 0.5 * available_host_memory():
        return "host"
    return "disk"


class FeatureCache:
    """Raw encoder outputs, labels and masks of a whole training split.

    Args:
        tensors: name -> ``[N, ...]`` storage (torch tensors, or numpy memmaps for ``disk``).
        storage: where they live (``device``, ``host`` or ``disk``).
        device: the model's device (batches are moved there by Lightning).
        folder: temporary folder of the memmaps, removed by ``release``.
    """

    def __init__(self, tensors: dict, storage: str, device: torch.device, folder: Path | None = None) -> None:
        self.tensors = tensors
        self.storage = storage
        self.device = device
        self.folder = folder

    def __len__(self) -> int:
        """Number of cached samples."""
        return len(self.tensors["gt_label"])

    @classmethod
    def build(
        cls,
        batches: Sequence | DataLoader,
        encode: Callable[[Any], EncodedBatch],
        length: int,
        device: torch.device,
        storage: str = "auto",
        scratch: Path | None = None,
    ) -> FeatureCache:
        """Encode every batch once and keep the results.

        Args:
            batches: the training split in a fixed order (no shuffling).
            encode: batch -> (global ``[B, E]``, patch ``[K, B, N, E]``, label ``[B]``, mask ``[B, H, W]`` or None).
            length: number of samples.
            device: the model's device.
            storage: ``auto`` (by size), ``device``, ``host`` or ``disk``.
            scratch: folder for ``disk`` storage (a temporary folder inside it is used and removed).
        """
        if storage not in STORAGES:
            msg = f"feature cache storage must be one of {STORAGES}, got {storage!r}."
            raise ValueError(msg)
        cache: FeatureCache | None = None
        start = 0
        for batch in batches:
            global_features, patch_features, labels, masks = encode(batch)
            parts = {
                "global_features": global_features,
                "patch_features": patch_features.transpose(0, 1),  # stored sample-first: [N, K, P, E]
                "gt_label": labels,
            }
            if masks is not None:
                parts["gt_mask"] = masks.bool()
            if cache is None:
                cache = cls._allocate(parts, length, device, storage, scratch)
            stop = start + len(labels)
            cache._write(parts, start, stop)  # noqa: SLF001 - an instance of this class
            start = stop
        if cache is None or start != length:
            msg = f"The feature cache expected {length} samples and got {start}."
            raise RuntimeError(msg)
        return cache

    @classmethod
    def _allocate(
        cls,
        parts: dict,
        length: int,
        device: torch.device,
        storage: str,
        scratch: Path | None,
    ) -> FeatureCache:
        batch = len(parts["gt_label"])
        nbytes = sum(t.element_size() * t.numel() // batch * length for t in parts.values())
        if storage == "auto":
            storage = choose_storage(nbytes, device)
        logger.info("Caching encoder outputs of %d training images (%.2f GB, %s)", length, nbytes / 1e9, storage)
        shapes = {name: (length, *tensor.shape[1:]) for name, tensor in parts.items()}
        if storage == "disk":
            folder = Path(tempfile.mkdtemp(prefix="glocalclip_features_", dir=scratch))
            tensors = {}
            for name, tensor in parts.items():
                numpy_dtype = torch.empty(0, dtype=_storage_dtype(tensor.dtype)).numpy().dtype
                memmap = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=numpy_dtype,
                                                   shape=shapes[name])
                tensors[name] = _Memmap(memmap, tensor.dtype)
            return cls(tensors, storage, device, folder)
        target = device if storage == "device" else torch.device("cpu")
        pin = storage == "host" and device.type == "cuda"
        tensors = {
            name: torch.empty(shapes[name], dtype=tensor.dtype, device=target, pin_memory=pin)
            for name, tensor in parts.items()
        }
        return cls(tensors, storage, device)

    def _write(self, parts: dict, start: int, stop: int) -> None:
        for name, tensor in parts.items():
            stored = self.tensors[name]
            if isinstance(stored, _Memmap):
                stored.write(start, stop, tensor)
            else:
                stored[start:stop].copy_(tensor)

    def collate(self, indices: list[int]) -> CachedBatch:
        """The samples ``indices`` as one batch (on the cache's storage; Lightning moves it to the model)."""
        index = torch.as_tensor(indices, dtype=torch.long)
        on_storage: dict[torch.device, torch.Tensor] = {}  # one host-to-device copy of the index per step

        def take(name: str) -> torch.Tensor | None:
            stored = self.tensors.get(name)
            if stored is None:
                return None
            if isinstance(stored, _Memmap):
                return stored.read(index.numpy())
            if stored.device not in on_storage:
                on_storage[stored.device] = index.to(stored.device)
            return stored[on_storage[stored.device]]

        return CachedBatch(
            global_features=take("global_features"),
            patch_features=take("patch_features").transpose(0, 1),
            gt_label=take("gt_label"),
            gt_mask=_as_mask(take("gt_mask")),
        )

    def dataloader(self, batch_size: int, shuffle: bool = True) -> DataLoader:
        """Batches of the cache, shuffled like an image dataloader would be."""
        return DataLoader(
            _Indices(len(self)),
            batch_size=batch_size,
            shuffle=shuffle,
            collate_fn=self.collate,
            num_workers=0,
            pin_memory=False,
        )

    def release(self) -> None:
        """Drop the cache (and its files)."""
        self.tensors = {}
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _as_mask(tensor: torch.Tensor | None) -> Mask | None:
    """Masks as ``tv_tensors.Mask``, so that the pre-processor's transform treats them as masks."""
    return Mask(tensor) if tensor is not None else None


def _storage_dtype(dtype: torch.dtype) -> torch.dtype:
    """Numpy has no bfloat16: such tensors are stored as their raw 16-bit patterns."""
    return torch.int16 if dtype == torch.bfloat16 else dtype


class _Memmap:
    """A numpy memmap holding a torch tensor's data (bf16 kept bit for bit as int16)."""

    def __init__(self, array: np.memmap, torch_dtype: torch.dtype) -> None:
        self.array = array
        self.torch_dtype = torch_dtype

    def __len__(self) -> int:
        return len(self.array)

    def write(self, start: int, stop: int, tensor: torch.Tensor) -> None:
        data = tensor.detach().cpu()
        if self.torch_dtype == torch.bfloat16:
            data = data.view(torch.int16)
        self.array[start:stop] = data.numpy()

    def read(self, index: np.ndarray) -> torch.Tensor:
        data = torch.from_numpy(np.ascontiguousarray(self.array[index]))
        return data.view(torch.bfloat16) if self.torch_dtype == torch.bfloat16 else data


@dataclass
class JpegSample:
    """A training sample whose JPEG image is still encoded, or, for other files, as its dataset reads it.

    Attributes:
        data: ``[n]`` uint8 bytes of the JPEG file, or ``None`` when ``image`` holds the image.
        image: ``[3, H, W]`` image read and augmented by the dataset (not a device-decodable JPEG), or ``None``.
        gt_mask: ``[H, W]`` mask at the file's size (augmented with ``image`` when that is set), or ``None``.
        gt_label: image label.
        image_path: the image file, named by decoding errors.
    """

    data: torch.Tensor | None
    image: torch.Tensor | None
    gt_mask: torch.Tensor | None
    gt_label: torch.Tensor
    image_path: str


class JpegSamples(Dataset):
    """The samples of a ``SampleDataset`` with RGB and grayscale JPEGs left encoded, to be decoded on the device.

    Args:
        dataset: a dataset with a ``samples`` table and ``mask_of(row, size)`` (``data.SampleDataset``).
    """

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
        return JpegSample(
            data=read_file(str(row.image_path)),
            image=None,
            gt_mask=self.dataset.mask_of(row, (height, width)),
            gt_label=torch.tensor(int(row.label_index)),
            image_path=str(row.image_path),
        )


def _jpeg_header(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG whose mode is in ``DEVICE_DECODED_MODES`` (header only), else ``None``."""
    try:
        with PILImage.open(path) as img:
            return img.size if img.format == "JPEG" and img.mode in DEVICE_DECODED_MODES else None
    except (OSError, ValueError):
        return None


def decode_samples(samples: list[JpegSample], device: torch.device, augmentations: Any = None) -> Any:
    """An ``ImageBatch`` of ``samples``, their JPEGs decoded on ``device`` in one batched call.

    Decoded images are scaled to ``[0, 1]`` and augmented (with their masks) as the dataset does for images it
    reads, so on the CPU the batch equals the dataset's own.

    Args:
        samples: from ``JpegSamples``.
        device: where to decode (``cuda``: nvJPEG).
        augmentations: the dataset's augmentations (e.g. Anomalib's model resize), or ``None``.

    Raises:
        ImageReadError: a JPEG that cannot be decoded; the message names the file.
    """
    from anomalib.data import ImageBatch

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
    from anomalib_glocalclip.data import ImageReadError

    if not samples:
        return []
    try:
        return decode_jpeg([sample.data for sample in samples], mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        for sample in samples:  # find the file
            _decode_one(sample, device, ImageReadError)
        raise


def _decode_one(sample: JpegSample, device: torch.device, error_type: type[Exception]) -> torch.Tensor:
    """Decode one sample's JPEG, or raise ``error_type`` naming its file."""
    try:
        return decode_jpeg(sample.data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:
        msg = (f"The image {sample.image_path} could not be decoded ({error}). Replace the file, or train with "
               "decode_on_device=False to read it with PIL.")
        raise error_type(msg) from error


class FeatureCacheCallback(Callback):
    """Serve the train split as cached encoder outputs, for datamodules that accept a ``train_cache``.

    Implements ``anomalib_glocalclip.data.TrainSplitCache``: the datamodule calls ``dataloader`` with its
    train split when Lightning asks it for the train dataloader (the model is on its device by then).

    Args:
        encoder: the model (``encode_for_cache`` and ``device``).
        storage: ``auto`` (by size), ``device``, ``host`` or ``disk``. Defaults to ``"auto"``.
        decode_on_device: decode the split's RGB and grayscale JPEGs on the model's device, in batches
            (``torchvision.io.decode_jpeg``; nvJPEG on CUDA), instead of with PIL in the dataloader workers. Needs
            a dataset with a samples table (``data.SampleDataset``); other files and datasets are read as usual.
            Defaults to ``False``.

    Example:
        >>> from anomalib_glocalclip import GlocalCLIP  # doctest: +SKIP
        >>> model = GlocalCLIP(cache_features=True)  # doctest: +SKIP
        >>> [type(c).__name__ for c in model.configure_callbacks()][-1]  # doctest: +SKIP
        'FeatureCacheCallback'
    """

    def __init__(self, encoder: FeatureEncoder, storage: str = "auto", decode_on_device: bool = False) -> None:
        if storage not in STORAGES:
            msg = f"cache_storage must be one of {STORAGES}, got {storage!r}."
            raise ValueError(msg)
        self.encoder = encoder
        self.storage = storage
        self.decode_on_device = decode_on_device
        self.cache: FeatureCache | None = None
        self._source: Dataset | None = None
        self._scratch: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Offer the cache to the datamodule of a ``fit`` (if it accepts one)."""
        del pl_module
        datamodule = getattr(trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "train_cache"):
            datamodule.train_cache = self
            self._scratch = Path(trainer.default_root_dir)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Withdraw the offer and free the cache."""
        del pl_module, stage
        datamodule = getattr(trainer, "datamodule", None)
        if getattr(datamodule, "train_cache", None) is self:
            datamodule.train_cache = None
        self.release()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The cache is only for this fit."""
        del trainer, pl_module
        self.release()

    def dataloader(self, dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
        """Encode ``dataset`` once (in a fixed order) and return shuffled batches of its cached features.

        Args:
            dataset: the train split, free of random augmentations.
            batch_size: training batch size.
            num_workers: workers of the one encoding pass.
        """
        if self.cache is None or self._source is not dataset:
            self.release()
            # A generator of its own: iterating a DataLoader draws a seed, which must not shift the global RNG
            # that shuffles the training batches (the cached run then sees the same batches as an uncached one).
            source, collate_fn, encode = dataset, getattr(dataset, "collate_fn", None), self.encoder.encode_for_cache
            if self.decode_on_device and hasattr(dataset, "mask_of"):
                source, collate_fn = JpegSamples(dataset), list
                augmentations = getattr(dataset, "augmentations", None)
                device = self.encoder.device

                def encode(samples: list[JpegSample]) -> EncodedBatch:
                    return self.encoder.encode_for_cache(decode_samples(samples, device, augmentations))

            elif self.decode_on_device:
                logger.info("decode_on_device: %s has no samples table; decoding its images with PIL.",
                            type(dataset).__name__)
            images = DataLoader(source, batch_size=max(batch_size, 32), shuffle=False, num_workers=num_workers,
                                collate_fn=collate_fn, generator=torch.Generator(),
                                pin_memory=self.encoder.device.type == "cuda")  # host-to-device copies overlap decoding
            self.cache = FeatureCache.build(images, encode, len(dataset), self.encoder.device,
                                            storage=self.storage, scratch=self._scratch)
            self._source = dataset
        return self.cache.dataloader(batch_size, shuffle=True)

    def release(self) -> None:
        """Free the cached features (GPU memory, pinned memory or files)."""
        if self.cache is not None:
            self.cache.release()
        self.cache, self._source = None, None
