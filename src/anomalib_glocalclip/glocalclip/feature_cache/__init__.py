"""Train prompts on cached encoder outputs: every auxiliary image is encoded once, not once per epoch.

The encoder is frozen and the protocol has no augmentation, so the first ``fit`` pass encodes the train split and
keeps raw features, labels and masks (on the GPU, in host memory or on disk, by size: ``storage``). A datamodule
with a deterministic train split offers a ``train_cache`` attribute (``data.TrainSplitCache``); the model's
``FeatureCacheCallback`` (``callback``) registers there and turns the split into batches of ``CachedBatch``, which
hold no image and a mask already at the input size, so the ``PreProcessor`` passes them through.
``jpeg_decoding`` serves ``decode_on_device``.
"""

from .callback import FeatureCacheCallback
from .jpeg_decoding import JpegSample, JpegSamples, decode_samples
from .storage import STORAGES, CachedBatch, EncodedBatch, FeatureCache, FeatureEncoder, check_storage, choose_storage

__all__ = [
    "STORAGES",
    "CachedBatch",
    "EncodedBatch",
    "FeatureCache",
    "FeatureCacheCallback",
    "FeatureEncoder",
    "JpegSample",
    "JpegSamples",
    "check_storage",
    "choose_storage",
    "decode_samples",
]
