"""The callback that hands the datamodule a cached train split (see the package's docstring for the flow)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset

from .jpeg_decoding import JpegSample, JpegSamples, decode_samples
from .storage import EncodedBatch, FeatureCache, FeatureEncoder, check_storage

logger = logging.getLogger(__name__)


class FeatureCacheCallback(Callback):
    """Serve the train split as cached encoder outputs, for datamodules that accept a ``train_cache``.

    Implements ``anomalib_glocalclip.data.TrainSplitCache``: the datamodule calls ``dataloader`` with its
    train split when Lightning asks it for the train dataloader (the model is on its device by then).

    Args:
        encoder: the model (``encode_for_cache`` and ``device``).
        storage: ``auto`` (by size), ``device``, ``host`` or ``disk``.
        decode_on_device: decode the split's RGB and grayscale JPEGs on the model's device, in batches, instead
            of with PIL in the dataloader workers. Needs a dataset with a samples table (``data.SampleDataset``);
            other files and datasets are read as usual.
    """

    def __init__(self, encoder: FeatureEncoder, storage: str = "auto", decode_on_device: bool = False) -> None:
        self.encoder = encoder
        self.storage = check_storage(storage)
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
        """Encode ``dataset`` (the augmentation-free train split) once, return shuffled batches of its features."""
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
