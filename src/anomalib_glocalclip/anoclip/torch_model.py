"""PyTorch model of AnoCLIP (training-free) and AnoCLIP+ (with the per-image test-time adapter).

The data flow is drawn in this folder's README.md ("Architecture"). Few-shot mixes in nearest-reference distances
of the V-V tokens before the adapter (``few_shot/``). The text side is encoded once per class by ``setup_prompts``
and kept in buffers, so ``forward`` needs only the vision tower and exports without the text tower.
"""

from __future__ import annotations

from pathlib import Path

import torch
from anomalib.data import InferenceBatch
from anomalib.models.components import DynamicBufferMixin
from torch import nn

from anomalib_glocalclip.backbone import CLIPBackbone
from anomalib_glocalclip.few_shot import DEFAULT_FEW_SHOT_WEIGHT, ReferenceBank, combine, few_shot_anomaly_map

from .adapter import TestTimeAdaptation
from .prompts import Domain, encode_state_prompts
from .scoring import cosine_state_probabilities, image_anomaly_score, patch_anomaly_map
from .views import augmented_views

IMAGE_SCORE_VIEWS = ("reference", "none")


class AnoCLIPModel(DynamicBufferMixin, nn.Module):
    """AnoCLIP: V-V attention, domain-aware state prompts, optional test-time adapter (AnoCLIP+).

    Args:
        backbone: open_clip model name or model-config JSON file.
        pretrained: open_clip pretrained tag, local weight file, or ``None`` for random weights.
        image_size: input size of the vision tower.
        feature_layer: layer (1-indexed) whose V-V tokens give the anomaly map; ``None`` = the last layer.
        image_score_views: ``"reference"``: average the image score over the image and its 21 augmented
            views; ``"none"``: score the image alone.
        adaptation: AnoCLIP+'s test-time adaptation, or ``None`` for training-free AnoCLIP.
        encoder_batch_size: most images per vision-tower pass (views included); ``None``: no limit.
        precision: backbone precision (``auto``: bf16 autocast on CUDA, fp32 elsewhere); scoring is in fp32.
        compile: run the backbone's vision pass under ``torch.compile`` (see ``CLIPBackbone``).
        few_shot_weight: ``w``, share of the few-shot scores once the reference bank is filled.
    """

    def __init__(
        self,
        backbone: str | Path = "ViT-B-16-plus-240",
        pretrained: str | Path | None = "laion400m_e32",
        image_size: int = 240,
        feature_layer: int | None = None,
        image_score_views: str = "reference",
        adaptation: TestTimeAdaptation | None = None,
        encoder_batch_size: int | None = 64,
        precision: str = "auto",
        few_shot_weight: float = DEFAULT_FEW_SHOT_WEIGHT,
        compile: bool = False,  # noqa: A002 - torch.compile's name, as the backbone's
    ) -> None:
        super().__init__()
        if image_score_views not in IMAGE_SCORE_VIEWS:
            msg = f"image_score_views must be one of {IMAGE_SCORE_VIEWS}, got {image_score_views!r}."
            raise ValueError(msg)
        if encoder_batch_size is not None and encoder_batch_size < 1:
            msg = f"encoder_batch_size must be positive or None, got {encoder_batch_size}."
            raise ValueError(msg)
        self.backbone = CLIPBackbone(backbone, pretrained, image_size=image_size, precision=precision, compile=compile)
        num_layers = self.backbone.num_vision_layers
        self.feature_layer = num_layers if feature_layer is None else feature_layer
        if not 1 <= self.feature_layer <= num_layers:
            msg = f"feature_layer must be in 1..{num_layers} for this backbone, got {feature_layer}."
            raise ValueError(msg)
        self.image_score_views = image_score_views
        self.adaptation = adaptation
        self.encoder_batch_size = encoder_batch_size

        self.register_buffer("state_embeddings", torch.empty(0))  # [2, E]
        self.register_buffer("sentence_embeddings", torch.empty(0))  # [2, K, E]
        self.few_shot_weight = few_shot_weight
        self.reference_bank = ReferenceBank(precision=precision)  # empty: zero-shot

    @property
    def has_prompts(self) -> bool:
        """Whether the text embeddings have been computed (or loaded)."""
        return self.state_embeddings.numel() > 0

    def setup_prompts(self, class_name: str, domain: Domain) -> None:
        """Encode the state prompt ensemble of ``class_name`` in ``domain`` into the text buffers."""
        prompts = encode_state_prompts(self.backbone, class_name, domain)
        self.state_embeddings = prompts.state_embeddings.float()
        self.sentence_embeddings = prompts.sentence_embeddings.float()

    def _vision_passes(self, images: torch.Tensor, with_vv: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected class tokens ``[B, E]`` and, ``with_vv``, projected V-V patch tokens ``[B, N, E]``."""
        num_layers = self.backbone.num_vision_layers
        chunk = self.encoder_batch_size
        chunks = [images] if chunk is None or torch.compiler.is_exporting() else images.split(chunk)
        class_tokens, patch_tokens = [], []
        for part in chunks:
            # vv_start_layer past the last layer runs plain CLIP, which is all the augmented views need.
            start, layers = (1, [self.feature_layer]) if with_vv else (num_layers + 1, [])
            output = self.backbone.encode_image(part, vv_start_layer=start, out_layers=layers)
            class_tokens.append(self.backbone.project(output.class_token))
            if with_vv:
                patch_tokens.append(self.backbone.project(output.vv_tokens[0][:, 1:]))
        # Scoring and the test-time adapter run in fp32, whatever precision the encoder ran in.
        return torch.cat(class_tokens).float(), torch.cat(patch_tokens).float() if with_vv else None

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class tokens ``[B, V, E]`` of ``V`` views (the image first) and V-V patch tokens ``[B, N, E]`` of images."""
        class_tokens, patch_tokens = self._vision_passes(images, with_vv=True)
        class_tokens = class_tokens.unsqueeze(1)
        if self.image_score_views == "reference":
            views = augmented_views(images)
            view_tokens, _ = self._vision_passes(views.flatten(0, 1), with_vv=False)
            class_tokens = torch.cat([class_tokens, view_tokens.view(*views.shape[:2], -1)], dim=1)
        return class_tokens, patch_tokens

    @torch.no_grad()
    def reference_features(self, images: torch.Tensor) -> torch.Tensor:
        """``[1, B, N, E]`` V-V patch embeddings of reference images ``[B, 3, H, W]`` at ``feature_layer``."""
        return self._vision_passes(images, with_vv=True)[1].unsqueeze(0)

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        """``pred_score`` ``[B]`` and ``anomaly_map`` ``[B, H, W]`` of CLIP-normalised images ``[B, 3, H, W]``."""
        if not self.has_prompts:
            msg = "AnoCLIP's text embeddings are empty: call setup_prompts(class_name, domain) first."
            raise RuntimeError(msg)
        class_embeddings, patch_embeddings = self.encode_images(images)
        pred_score = image_anomaly_score(class_embeddings, self.state_embeddings)
        vv_embeddings = patch_embeddings
        if self.adaptation is not None:
            patch_embeddings = self.adaptation(patch_embeddings, self.state_embeddings, self.sentence_embeddings)
        patch_scores = cosine_state_probabilities(patch_embeddings, self.state_embeddings)[..., 1]
        anomaly_map = patch_anomaly_map(patch_scores, self.backbone.grid_size, images.shape[-2:])
        if not self.reference_bank.is_empty:
            distances = self.reference_bank.nearest_distance(vv_embeddings.unsqueeze(0))
            few_shot_map = few_shot_anomaly_map(
                distances, lambda scores: patch_anomaly_map(scores, self.backbone.grid_size, images.shape[-2:])
            )
            anomaly_map, pred_score = combine(anomaly_map, few_shot_map, pred_score, self.few_shot_weight)
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
