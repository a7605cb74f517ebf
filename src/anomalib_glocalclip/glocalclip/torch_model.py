"""GlocalCLIP as a plain ``nn.Module``: frozen CLIP, learnable glocal prompts, scoring.

Data flow for a batch of ``B`` normalised images ``[B, 3, S, S]`` (``S`` = 518 for ViT-L-14-336)::

    vision tower (original stream) -> CLS @ proj (no ln_post, as the reference) -> global feature f  [B, E]
    vision tower (V-V stream)       -> tokens at the feature layers -> ln_post @ proj -> F_l  [B, N, E]
    prompt learner -> text tower    -> g_n, g_a, l_n, l_a                                 [4, E]
    image score  = softmax([<f,g_n>, <f,g_a>] / τ)[anomalous]                               [B]
    S_l          = upsample(softmax([<F_l,l_n>, <F_l,l_a>] / τ))                            [B, 2, S, S]
    anomaly map  = Gaussian_σ(Σ_l S_l[anomalous])                                           [B, S, S]

Few-shot (a non-empty ``reference_bank``): nearest-reference patch distances, smoothed like ``S_l``, are mixed in
with weight ``w`` (``few_shot/``). By default every feature layer holds the last layer's V-V tokens, as in the
reference code (see the README's "Reference-compatible vs per-layer features"); ``per_layer_features`` does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from anomalib.data import InferenceBatch
from anomalib.models.components import DynamicBufferMixin
from torch import nn

from anomalib_glocalclip.backbone import DEFAULT_BACKBONE, CLIPBackbone
from anomalib_glocalclip.few_shot import DEFAULT_FEW_SHOT_WEIGHT, ReferenceBank, combine, few_shot_anomaly_map

from .anomaly_map import gaussian_blur, patch_probability_map, tempered_state_probabilities
from .prompt_learner import GlocalPromptLearner, PromptShape


class ImageFeatures(NamedTuple):
    """L2-normalised image features.

    Attributes:
        global_features: ``[B, E]`` from the original stream's CLS token.
        patch_features: ``[K, B, N, E]`` V-V patch tokens (class token dropped), one entry per map layer.
        layer_weight: how many requested layers each entry stands for (``len(feature_layers)`` in
            reference mode, where one computed layer replaces all of them; else 1).
    """

    global_features: torch.Tensor
    patch_features: torch.Tensor
    layer_weight: float


class GlocalCLIPModel(DynamicBufferMixin, nn.Module):
    """GlocalCLIP's network.

    Args:
        backbone: open_clip model name or JSON config.
        pretrained: open_clip tag, local weight file, or ``None`` for random weights.
        image_size: input size ``S`` of the vision tower.
        prompt_shape: sizes of the learnable prompts.
        feature_layers: vision layers (1-indexed) whose V-V tokens make the local maps.
        vv_start_layer: first layer of the V-V stream (6 for ViT-L-14: the reference's DPAM_layer=20).
        per_layer_features: use each layer's own V-V tokens instead of the reference behaviour.
        global_ln_post: apply ``ln_post`` to the global CLS feature (the reference does not).
        temperature: τ of the softmax over states.
        sigma: Gaussian smoothing of the anomaly map, in pixels (0 turns it off).
        round_deep_prompts_to_fp16: round deep prompts to fp16 as the reference does.
        quick_gelu: force QuickGELU on/off (``None``: decided from the weights).
        cache_dir: open_clip download cache.
        precision: backbone precision, ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``bf16`` or ``fp32``.
        compile: run the backbone's vision pass under ``torch.compile`` (see ``CLIPBackbone``).
        few_shot_weight: ``w``, share of the few-shot scores once the reference bank is filled.
    """

    def __init__(
        self,
        backbone: str | Path = DEFAULT_BACKBONE,
        pretrained: str | Path | None = "openai",
        image_size: int = 518,
        prompt_shape: PromptShape | None = None,
        feature_layers: Sequence[int] = (6, 12, 18, 24),
        vv_start_layer: int = 6,
        per_layer_features: bool = False,
        global_ln_post: bool = False,
        temperature: float = 0.07,
        sigma: float = 8.0,
        round_deep_prompts_to_fp16: bool = True,
        quick_gelu: bool | None = None,
        cache_dir: str | Path | None = None,
        precision: str = "auto",
        few_shot_weight: float = DEFAULT_FEW_SHOT_WEIGHT,
        compile: bool = False,  # noqa: A002 - torch.compile's name, as the backbone's
    ) -> None:
        super().__init__()
        from .presets import DEFAULT_PROMPT_SHAPE

        self.backbone = CLIPBackbone(backbone, pretrained=pretrained, image_size=image_size, quick_gelu=quick_gelu,
                                     cache_dir=cache_dir, precision=precision, compile=compile)
        num_layers = self.backbone.num_vision_layers
        bad = [layer for layer in feature_layers if not 1 <= layer <= num_layers]
        if bad or not feature_layers:
            msg = f"feature_layers {list(feature_layers)} must be non-empty and within 1..{num_layers} for {backbone}."
            raise ValueError(msg)
        self.feature_layers = tuple(int(layer) for layer in feature_layers)
        self.vv_start_layer, self.per_layer_features = vv_start_layer, per_layer_features
        self.global_ln_post, self.temperature, self.sigma = global_ln_post, temperature, sigma
        self.round_deep_prompts_to_fp16 = round_deep_prompts_to_fp16
        self.prompt_learner = GlocalPromptLearner(self.backbone, prompt_shape or DEFAULT_PROMPT_SHAPE)
        # Normalised [g_n, g_a, l_n, l_a], computed once per evaluation and folded into exported graphs.
        self.register_buffer("text_features", torch.empty(0))
        self.few_shot_weight = few_shot_weight
        self.reference_bank = ReferenceBank(precision=precision)  # empty: zero-shot

    @property
    def map_layers(self) -> tuple[int, ...]:
        """Layers actually computed: the requested ones, or only the last layer in reference mode."""
        return self.feature_layers if self.per_layer_features else (self.backbone.num_vision_layers,)

    def encode_text(self) -> torch.Tensor:
        """Normalised text features ``[4, E]`` of the current prompts (differentiable w.r.t. the prompts)."""
        learner = self.prompt_learner
        features = self.backbone.encode_prompt_embeddings(
            learner(), learner.eot_indices, list(learner.deep_prompts), self.round_deep_prompts_to_fp16
        )
        return nn.functional.normalize(features.float(), dim=-1)

    @torch.no_grad()
    def refresh_text_features(self) -> None:
        """Recompute the cached text features from the current prompts."""
        # Never an inference tensor (Lightning evaluates under inference mode): load_state_dict, e.g. of a
        # checkpoint given to a later test or export, must be able to update the buffer in place.
        with torch.inference_mode(mode=False):
            self.text_features = self.encode_text().detach()

    def current_text_features(self) -> torch.Tensor:
        """Cached text features in eval mode (computed if missing); fresh, differentiable ones in train mode."""
        if self.training:
            return self.encode_text()
        if self.text_features.numel() == 0:
            self.refresh_text_features()
        return self.text_features

    @torch.no_grad()
    def encode_image_raw(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen, unnormalised features in the backbone's precision: global ``[B, E]``, patch ``[K, B, N, E]``."""
        output = self.backbone.encode_image(images, self.vv_start_layer, self.map_layers)
        global_features = self.backbone.project(output.class_token, apply_ln_post=self.global_ln_post)
        patch_features = torch.stack([self.backbone.project(tokens[:, 1:]) for tokens in output.vv_tokens])
        return global_features, patch_features

    def normalize_features(self, global_features: torch.Tensor, patch_features: torch.Tensor) -> ImageFeatures:
        """fp32, L2-normalised ``ImageFeatures`` from raw features (from the encoder or the feature cache)."""
        return ImageFeatures(
            global_features=nn.functional.normalize(global_features.float(), dim=-1),
            patch_features=nn.functional.normalize(patch_features.float(), dim=-1),
            layer_weight=1.0 if self.per_layer_features else float(len(self.feature_layers)),
        )

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """Frozen image features of ``[B, 3, S, S]`` images (no gradient)."""
        return self.normalize_features(*self.encode_image_raw(images))

    def image_logits(self, global_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """``[B, 2]`` (normal, anomalous) logits of the global branch: cosines over τ."""
        return global_features @ text_features[:2].t() / self.temperature

    def probability_maps(
        self, patch_features: torch.Tensor, text_features: torch.Tensor, output_size: tuple[int, int]
    ) -> torch.Tensor:
        """``[K, B, 2, H, W]`` local (normal, anomalous) probability maps, one per computed layer."""
        probabilities = tempered_state_probabilities(patch_features, text_features[2:], self.temperature)
        layers, batch = probabilities.shape[:2]
        maps = patch_probability_map(probabilities.flatten(0, 1), self.backbone.grid_size, output_size)
        return maps.view(layers, batch, *maps.shape[1:])

    def reference_features(self, images: torch.Tensor) -> torch.Tensor:
        """``[K, B, N, E]`` patch features of reference images ``[B, 3, S, S]`` at the map layers (for the bank)."""
        return self.encode_image(images).patch_features

    def few_shot_map(self, patch_features: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """``[B, H, W]`` few-shot map in ``[0, 1]`` of ``[K, B, N, E]`` patch features, smoothed as ``S_l``."""

        def patch_map(scores: torch.Tensor) -> torch.Tensor:
            upsampled = patch_probability_map(scores.unsqueeze(-1), self.backbone.grid_size, output_size)
            return gaussian_blur(upsampled[:, 0], self.sigma)

        return few_shot_anomaly_map(self.reference_bank.nearest_distance(patch_features), patch_map)

    def forward(self, images: torch.Tensor) -> InferenceBatch:
        """Score a batch of normalised images ``[B, 3, S, S]``.

        Returns:
            ``InferenceBatch`` with ``pred_score`` ``[B]`` (anomalous probability of the global branch) and
            ``anomaly_map`` ``[B, S, S]`` (smoothed sum of the layers' anomalous probabilities), each combined
            with the few-shot scores when the reference bank is filled.
        """
        text_features = self.current_text_features()
        features = self.encode_image(images)
        pred_score = self.image_logits(features.global_features, text_features).softmax(dim=-1)[:, 1]
        output_size = tuple(images.shape[-2:])
        maps = self.probability_maps(features.patch_features, text_features, output_size)
        anomaly_map = gaussian_blur(maps[:, :, 1].sum(dim=0) * features.layer_weight, self.sigma)
        if not self.reference_bank.is_empty:
            few_shot_map = self.few_shot_map(features.patch_features, output_size)
            # The zero-shot map sums len(map_layers) probabilities, each weighted by layer_weight.
            map_scale = features.layer_weight * len(self.map_layers)
            anomaly_map, pred_score = combine(anomaly_map, few_shot_map, pred_score, self.few_shot_weight, map_scale)
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
