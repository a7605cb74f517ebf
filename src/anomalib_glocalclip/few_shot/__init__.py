"""Few-shot scoring shared by GlocalCLIP and AnoCLIP: a bank of normal reference patches (issue 15).

How the models use it (wired in ``components/few_shot.py``, ``ZeroShotCLIPMixin.prepare_references`` and
both torch models' ``forward``)::

    # __init__(..., few_shot: int = 0, reference_images: str | None = None)
    self.reference_bank = ReferenceBank(precision=precision)   # bf16 on CUDA under auto, fp32 on CPU
    # learning_type: LearningType.FEW_SHOT if few_shot > 0 else ZERO_SHOT

    # once, before fit/test (e.g. on_fit_start / setup), only while the bank is empty and few_shot > 0:
    paths = (reference_images_from_folder(reference_images, k, seed) if reference_images
             else reference_images_from_datamodule(trainer.datamodule, k, seed))   # record the paths + seed
    images = read_reference_images(paths, pre_processor.transform)                # [K, 3, S, S]
    reference_bank.add(patch_features_of(images))                                 # [L, K, N, E]

    # forward, after the zero-shot outputs (skipped entirely while the bank is empty, so k = 0 is unchanged):
    distances = reference_bank.nearest_distance(patch_features)                   # [L, B, N, E] -> [B, N]
    few_shot_map = few_shot_anomaly_map(distances, patch_map)                     # [B, H, W] in [0, 1]
    anomaly_map, pred_score = combine(zero_shot_map, few_shot_map, zero_shot_score, map_scale=...)

``patch_features`` are the features the zero-shot maps use, at the same layers: GlocalCLIP's
``encode_image(images).patch_features`` (``[K, B, N, E]`` over ``map_layers``, already normalised) and AnoCLIP's
V-V patch embeddings at ``feature_layer`` (``[B, N, E]``, add a leading layer axis), taken before AnoCLIP+'s
per-image test-time adapter, for the references and the test images alike. ``patch_map`` is the model's
own ``[B, N] -> [B, H, W]`` step: for GlocalCLIP the bilinear upsampling of ``patch_probability_map``
(``align_corners=False``) followed by ``gaussian_blur(sigma)``; for AnoCLIP ``patch_anomaly_map`` (3x3 mean, then
bilinear with ``align_corners=True``). ``map_scale`` is the zero-shot map's range: ``layer_weight * len(map_layers)``
for GlocalCLIP (its map sums layer probabilities), 1 for AnoCLIP. The bank is a persistent buffer of
``reference_bank``, so checkpoints and ``anomalib export`` carry it; it resizes itself when a checkpoint is loaded.
"""

from .reference_bank import DEFAULT_MAX_ELEMENTS, ReferenceBank, bank_dtype
from .references import (
    REFERENCE_IMAGE_SUFFIXES,
    read_reference_images,
    reference_images_from_datamodule,
    reference_images_from_folder,
    select_reference_indices,
)
from .scoring import DEFAULT_FEW_SHOT_WEIGHT, CombinedScores, PatchMapFunction, combine, few_shot_anomaly_map

__all__ = [
    "DEFAULT_FEW_SHOT_WEIGHT",
    "DEFAULT_MAX_ELEMENTS",
    "REFERENCE_IMAGE_SUFFIXES",
    "CombinedScores",
    "PatchMapFunction",
    "ReferenceBank",
    "bank_dtype",
    "combine",
    "few_shot_anomaly_map",
    "read_reference_images",
    "reference_images_from_datamodule",
    "reference_images_from_folder",
    "select_reference_indices",
]
