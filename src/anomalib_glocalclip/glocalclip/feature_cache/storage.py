"""Where the cached encoder outputs live: GPU memory, (pinned) host memory or memory-mapped files, by size."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch
from anomalib.data import ImageBatch
from torch.utils.data import DataLoader, Dataset
from torchvision.tv_tensors import Mask

logger = logging.getLogger(__name__)
_Batch = TypeVar("_Batch")

STORAGES = ("auto", "device", "host", "disk")


def check_storage(storage: str) -> str:
    """``storage`` if it is one of :data:`STORAGES`, else a ``ValueError``."""
    if storage not in STORAGES:
        msg = f"cache_storage must be one of {STORAGES}, got {storage!r}."
        raise ValueError(msg)
    return storage


EncodedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


@dataclass
class CachedBatch:
    """A training batch read from the cache: raw global ``[B, E]`` and patch ``[K, B, N, E]`` features.

    ``gt_mask`` is ``[B, H, W]`` bool at the model's input size (or ``None``); ``image`` is always ``None``.
    """

    global_features: torch.Tensor
    patch_features: torch.Tensor
    gt_label: torch.Tensor
    gt_mask: torch.Tensor | None
    image: None = None


class FeatureEncoder(Protocol):
    """What the cache needs of a model: its device and a pre-processing encoder of image batches."""

    device: torch.device

    def encode_for_cache(self, batch: ImageBatch) -> EncodedBatch:
        """Batch -> (global ``[B, E]``, patch ``[K, B, N, E]``, label ``[B]``, mask ``[B, H, W]`` or ``None``), raw."""


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
        batches: Iterable[_Batch],
        encode: Callable[[_Batch], EncodedBatch],
        length: int,
        device: torch.device,
        storage: str = "auto",
        scratch: Path | None = None,
    ) -> FeatureCache:
        """Encode every batch of the split (``length`` samples in a fixed order) once with ``encode`` and keep them.

        ``scratch`` holds ``disk`` storage (in a temporary folder inside it, removed by ``release``).
        """
        check_storage(storage)
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
        cls, parts: dict, length: int, device: torch.device, storage: str, scratch: Path | None
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

        mask = take("gt_mask")  # a tv_tensors.Mask, so that the pre-processor's transform treats it as a mask
        mask = Mask(mask) if mask is not None else None
        return CachedBatch(take("global_features"), take("patch_features").transpose(0, 1), take("gt_label"), mask)

    def dataloader(self, batch_size: int, shuffle: bool = True) -> DataLoader:
        """Batches of the cache, shuffled like an image dataloader would be."""
        return DataLoader(_Indices(len(self)), batch_size=batch_size, shuffle=shuffle, collate_fn=self.collate)

    def release(self) -> None:
        """Drop the cache (and its files)."""
        self.tensors = {}
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


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
