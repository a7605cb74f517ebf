"""``MuScModel``: the CLIP backbone's plain tokens, LNAMD and mutual scoring of one set of images, and RsCIN.

A plain ``nn.Module``: ``encode`` turns images into what the set is scored from, ``score_set`` scores a set
(optionally with reference images), ``forward`` scores one batch as a set of its own. The Lightning module
(``lightning_model.MuSc``) gathers a whole dataloader into one set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from anomalib.data import InferenceBatch
from torch import nn

from anomalib_glocalclip.backbone import CLIPBackbone

from .lnamd import aggregate_neighbourhoods, layer_norm_maps
from .mutual_scoring import DEFAULT_MAX_ELEMENTS, mutual_scores
from .rscin import rscin

logger = logging.getLogger(__name__)

MUSC_PRECISIONS = ("auto", "fp16", "fp32")
"""``auto``/``fp16``: fp16 autocast backbone and fp16 mutual-scoring inputs on CUDA (fp32 accumulation), fp32 on
CPUs; ``fp32``: fp32 everywhere. Never bf16: its rounding near cos = 1 moves distances by ~1 %."""
SCORING_RESERVE = 4
"""fp32 element budgets (``max_elements``) of free device memory kept for scoring when tokens are placed by
themselves (``tokens_on_host=None``): the similarity block, its maxima and the aggregated features."""
CHUNK_IMAGES = 16
"""Images per chunk where a whole set would make a large temporary (aggregation, upsampled maps)."""


class EncodedImages(NamedTuple):
    """What a set is scored from.

    Attributes:
        maps: one ``[N, C, h, w]`` tensor per feature layer: the layer's patch tokens, LayerNormed per image.
        class_features: ``[N, E]`` L2-normalised CLS features (``ln_post`` and ``proj``), fp32, for RsCIN.
    """

    maps: list[torch.Tensor]
    class_features: torch.Tensor

    @classmethod
    def cat(cls, parts: Sequence[EncodedImages]) -> EncodedImages:
        """The images of ``parts`` one after the other (on the host if some parts' tokens went there)."""
        host = any(maps.device.type == "cpu" for part in parts for maps in part.maps)
        maps = [torch.cat([part.maps[layer].cpu() if host else part.maps[layer] for part in parts])
                for layer in range(len(parts[0].maps))]
        return cls(maps, torch.cat([part.class_features for part in parts]))

    def select(self, indices: torch.Tensor) -> EncodedImages:
        """The images at ``indices`` (a 1-D index tensor)."""
        return EncodedImages([maps[indices.to(maps.device)] for maps in self.maps],
                             self.class_features[indices.to(self.class_features.device)])

    @property
    def count(self) -> int:
        """Number of images ``N``."""
        return len(self.class_features)


class SetScores(NamedTuple):
    """A scored set.

    Attributes:
        patch_maps: ``[N, h, w]`` float64 anomaly maps on the patch grid (distance units).
        image_scores: ``[N]`` float64 maxima of the maps upsampled to the input size (before RsCIN).
        pred_scores: ``[N]`` scores after RsCIN (in [0, 1], relative to the set), or ``image_scores`` without it.
    """

    patch_maps: torch.Tensor
    image_scores: torch.Tensor
    pred_scores: torch.Tensor


def split_set(count: int, max_set_size: int | None, seed: int) -> list[torch.Tensor]:
    """Indices of ``ceil(count / max_set_size)`` random subsets of near-equal size (one subset: all, in order).

    Never a subset of one image (it would have no other image to be scored against): fewer, larger subsets then.
    """
    parts = 1 if max_set_size is None else min(math.ceil(count / max_set_size), count // 2)
    if parts <= 1:
        return [torch.arange(count)]
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in order.tensor_split(parts)]


def outlier_threshold(image_scores: torch.Tensor, deviations: float = 3.0) -> float:
    """The set's robust outlier threshold of raw image scores: ``median + deviations * 1.4826 * MAD``.

    MuSc's premise is that most images of a set are normal, so the median and the median absolute deviation describe
    the normal images; a score above the threshold is an outlier of its set, in distance units.
    """
    median = image_scores.median()
    spread = (image_scores - median).abs().median()
    return float(median + deviations * 1.4826 * spread)


def upsample_maps(patch_maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[N, h, w]`` -> ``[N, H, W]`` bilinear with ``align_corners=True`` (the reference's), no smoothing."""
    return F.interpolate(patch_maps[:, None], size=size, mode="bilinear", align_corners=True)[:, 0]


class MuScModel(nn.Module):
    """MuSc on the shared CLIP backbone (plain residual tokens, no V-V attention).

    Args:
        backbone: open_clip model name or model-config JSON file.
        pretrained: pretrained tag, local weight file, or ``None`` for random weights.
        image_size: input size; the positional embedding is resized bicubic without antialias, as the reference.
        feature_layers: 1-indexed residual blocks whose tokens are scored.
        r_list: LNAMD aggregation degrees (odd).
        interval: ranks of the nearest-image distances averaged (``mutual_scoring.interval_bounds``).
        rscin_k: RsCIN's neighbour counts, ``None`` for none.
        quick_gelu: ``None``: as the reference (GELU for OpenAI weights at a non-native size); ``True``/``False``.
        precision: one of ``MUSC_PRECISIONS``.
        max_elements: element budget of the largest mutual-scoring temporary.
        encoder_batch_size: images per backbone pass.
        tokens_on_host: keep the set's LayerNormed tokens in host memory (pinned on CUDA), moved to the device
            a chunk at a time while scoring (ViT-L at 518 px: 11.2 MB per image in fp16). ``None``: on CUDA, each
            encoded batch goes to the host once keeping it on the device would leave less free device memory than
            ``SCORING_RESERVE`` budgets of ``max_elements`` (``keeps_tokens_on_host``); ``True``/``False`` force it.
    """

    def __init__(
        self,
        backbone: str | Path = "ViT-L-14-336",
        pretrained: str | Path | None = "openai",
        image_size: int = 518,
        feature_layers: Sequence[int] = (6, 12, 18, 24),
        r_list: Sequence[int] = (1, 3, 5),
        interval: tuple[float, float] = (0.0, 0.3),
        rscin_k: Sequence[int] | None = (1, 2, 3),
        quick_gelu: bool | None = None,
        precision: str = "auto",
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        encoder_batch_size: int = 8,
        tokens_on_host: bool | None = None,
    ) -> None:
        super().__init__()
        if precision not in MUSC_PRECISIONS:
            msg = f"MuSc's precision must be one of {MUSC_PRECISIONS}, got {precision!r} (bf16 is too coarse)."
            raise ValueError(msg)
        self.backbone = CLIPBackbone(
            backbone, pretrained, image_size=image_size, quick_gelu=quick_gelu,
            precision="fp32" if precision == "fp32" else "fp16",
            quick_gelu_at_native_size_only=True, positional_embedding_mode="bicubic",
        )
        layers = self.backbone.num_vision_layers
        if not feature_layers or any(not 1 <= layer <= layers for layer in feature_layers):
            msg = f"feature_layers must be 1-indexed blocks in 1..{layers} of {backbone}, got {tuple(feature_layers)}."
            raise ValueError(msg)
        if not r_list or any(int(r) < 1 or int(r) % 2 == 0 for r in r_list):
            msg = f"r_list must hold odd neighbourhood sizes >= 1 (the reference's (1, 3, 5)), got {tuple(r_list)}."
            raise ValueError(msg)
        if len(interval) != 2 or min(interval) < 0:
            msg = f"interval must be two bounds >= 0 (fractions below 1, counts from 1), got {tuple(interval)}."
            raise ValueError(msg)
        self.feature_layers, self.r_list = tuple(feature_layers), tuple(int(r) for r in r_list)
        self.interval = (float(interval[0]), float(interval[1]))
        self.rscin_k = None if rscin_k is None else tuple(int(k) for k in rscin_k)
        self.precision, self.max_elements, self.encoder_batch_size = precision, int(max_elements), encoder_batch_size
        self.tokens_on_host = tokens_on_host

    @property
    def device(self) -> torch.device:
        """Where the backbone's weights are."""
        return self.backbone.clip.visual.proj.device

    def _half_on_device(self) -> bool:
        return self.precision != "fp32" and self.device.type == "cuda"

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> EncodedImages:
        """Encode ``[B, 3, S, S]`` normalised images (one backbone pass per ``encoder_batch_size`` images)."""
        parts = []
        store = torch.float16 if self._half_on_device() else torch.float32
        for chunk in images.split(self.encoder_batch_size):
            output = self.backbone.encode_image(
                chunk.to(self.device), self.backbone.num_vision_layers + 1, self.feature_layers
            )
            maps = [self._keep(layer_norm_maps(tokens[:, 1:].float(), self.backbone.grid_size).to(store))
                    for tokens in output.vv_tokens]
            features = F.normalize(self.backbone.project(output.class_token).float(), dim=-1)
            parts.append(EncodedImages(maps, features))
        return EncodedImages.cat(parts)

    def _keep(self, maps: torch.Tensor) -> torch.Tensor:
        """``maps`` where the set's tokens are kept: on the device, or in (pinned) host memory."""
        if maps.device.type == "cpu" or not self.keeps_tokens_on_host(maps.numel() * maps.element_size(), maps.device):
            return maps
        return maps.cpu().pin_memory()

    def keeps_tokens_on_host(self, nbytes: int, device: torch.device) -> bool:
        """Whether ``nbytes`` of a set's tokens on CUDA ``device`` go to host memory (``tokens_on_host``'s rule)."""
        if self.tokens_on_host is not None:
            return self.tokens_on_host
        free, _ = torch.cuda.mem_get_info(device)
        return free - nbytes < SCORING_RESERVE * self.max_elements * 4

    def _features(self, maps: torch.Tensor, r: int) -> torch.Tensor:
        """LNAMD features ``[N, L, C]`` of one layer's maps, aggregated in fp32, in the mutual-scoring dtype."""
        dtype = torch.float16 if self._half_on_device() else torch.float32
        return torch.cat([aggregate_neighbourhoods(chunk.to(self.device, non_blocking=True).float(), r).to(dtype)
                          for chunk in maps.split(CHUNK_IMAGES)])

    def patch_maps(self, encoded: EncodedImages, references: EncodedImages | None = None) -> torch.Tensor:
        """``[N, h, w]`` float64: the mean over ``r_list`` and feature layers of the mutual scores of the set."""
        total = torch.zeros(encoded.count, math.prod(self.backbone.grid_size), dtype=torch.float64, device=self.device)
        for r in self.r_list:
            for layer, maps in enumerate(encoded.maps):
                reference_features = None if references is None else self._features(references.maps[layer], r)
                scores = mutual_scores(self._features(maps, r), self.interval, reference_features, self.max_elements)
                total += scores.double()
        return (total / (len(self.r_list) * len(encoded.maps))).view(encoded.count, *self.backbone.grid_size)

    def image_scores(self, patch_maps: torch.Tensor) -> torch.Tensor:
        """``[N]`` float64: each map's maximum after upsampling to the input size (as the reference scores)."""
        size = self.backbone.image_size
        return torch.cat([upsample_maps(chunk, size).amax((-2, -1)) for chunk in patch_maps.split(CHUNK_IMAGES)])

    @torch.no_grad()
    def score_set(
        self, encoded: EncodedImages, references: EncodedImages | None = None,
        max_set_size: int | None = None, split_seed: int = 0,
    ) -> SetScores:
        """Score a set (random subsets of at most ``max_set_size`` scored apart; RsCIN over all of them).

        Raises:
            ValueError: fewer than two images in all (set and references).
        """
        count = encoded.count
        if count + (0 if references is None else references.count) < 2:
            msg = "MuSc scores images against each other and needs at least two images in all."
            raise ValueError(msg)
        patch_maps = torch.empty(count, *self.backbone.grid_size, dtype=torch.float64, device=self.device)
        subsets = split_set(count, max_set_size, split_seed)
        if len(subsets) > 1:
            logger.info("MuSc: the set of %d images is scored as %d random subsets (seed %d) of sizes %s; RsCIN runs "
                        "over all of them.", count, len(subsets), split_seed, [len(s) for s in subsets])
        for subset in subsets:
            patch_maps[subset.to(self.device)] = self.patch_maps(encoded.select(subset), references)
        image_scores = self.image_scores(patch_maps)
        if self.rscin_k is not None and count < 2:
            logger.info("MuSc: RsCIN skipped (one image: its min-max needs two scores); the score is the map's max.")
            return SetScores(patch_maps, image_scores, image_scores)
        return SetScores(patch_maps, image_scores, rscin(image_scores, encoded.class_features, self.rscin_k))

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        """Score a batch ``[B, 3, S, S]`` (B >= 2) as one set: ``pred_score`` ``[B]``, ``anomaly_map`` ``[B, S, S]``."""
        scores = self.score_set(self.encode(images))
        anomaly_map = upsample_maps(scores.patch_maps, tuple(images.shape[-2:])).float()
        return InferenceBatch(pred_score=scores.pred_scores.float(), anomaly_map=anomaly_map)
