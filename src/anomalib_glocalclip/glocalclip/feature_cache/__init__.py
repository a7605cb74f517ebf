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

Modules: ``storage`` (the cache and where it lives), ``jpeg_decoding`` (``decode_on_device``), ``callback``
(``FeatureCacheCallback``).
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
