"""GlocalCLIP as an Anomalib model: learns prompts on auxiliary data, then detects anomalies zero-shot.

Paper: GlocalCLIP (arXiv 2411.06071); reference code: github.com/YUL-git/GlocalCLIP. Without ``prompt_weights``
it learns prompts (``ONE_CLASS``: the train split is the auxiliary data); with them it is zero-shot, or few-shot
with ``few_shot``/``reference_images`` (see this folder's README.md, "Usage" and "Parameters").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.utilities.types import STEP_OUTPUT

from anomalib_glocalclip.backbone import DEFAULT_BACKBONE
from anomalib_glocalclip.components import ZeroShotCLIPMixin
from anomalib_glocalclip.few_shot import DEFAULT_FEW_SHOT_WEIGHT

from .feature_cache import CachedBatch, EncodedBatch, FeatureCacheCallback, check_storage
from .presets import resolve_prompt_shape
from .prompt_file import PromptFile, PromptFileError, fitting_shape, read_prompt_file, save_prompt_file
from .prompt_learner import PromptShape
from .torch_model import GlocalCLIPModel, ImageFeatures
from .training_data import check_training_labels
from .training_step import glocal_losses, run_compiled_cached_losses

logger = logging.getLogger(__name__)

PROMPT_FILE_NAME = "prompts.pt"
LIGHTNING_DEFAULT_EPOCHS = 1000  # what ``Trainer.fit`` runs when neither max_epochs nor max_steps is set


def check_few_shot_source(prompt_weights: str | None, few_shot: int, reference_images: str | None) -> None:
    """Refuse ``few_shot`` without prompt weights or reference images: the references would be auxiliary data."""
    if prompt_weights is None and few_shot > 0 and reference_images is None:
        msg = (
            f"GlocalCLIP(few_shot={few_shot}) without prompt_weights learns prompts on auxiliary data, whose "
            "train split holds no normal image of the target. Pass reference_images=<folder of normal images>, "
            "or learn the prompts first and then use prompt_weights=prompts.pt with few_shot."
        )
        raise ValueError(msg)


class GlocalCLIP(ZeroShotCLIPMixin, AnomalibModule):
    """GlocalCLIP: object-agnostic global and local prompts over a frozen CLIP with V-V attention.

    Args:
        backbone: open_clip model name or model-config JSON file. ``None``: the backbone the prompt file was
            learned with, where it records one, else ``backbone.DEFAULT_BACKBONE``.
        pretrained: open_clip pretrained tag, local weight file (OpenAI ``.pt``, open_clip state dict,
            ``.safetensors``), or ``None`` for a random backbone.
        image_size: input size in pixels (square).
        prompt_weights: learned prompt file (``prompts.pt``, a GlocalCLIP ``.ckpt`` or a reference ``.pth``).
            Given: zero-shot mode. ``None``: prompts are learned (one-class training on auxiliary data).
        preset: prompt sizes of one of the paper's protocols: ``visa_to_mvtec`` (13/13/9/4),
            ``mvtec_to_industrial`` (12/13/10/2), ``colondb_to_clinicdb`` (12/12/12/4),
            ``clinicdb_to_medical`` (12/12/9/4). ``None``: 12/12/9/4, or the sizes of ``prompt_weights``.
        n_ctx: N, normal context length (overrides the preset).
        n_abnormal_ctx: M, extra anomalous context length (overrides the preset).
        deep_prompt_depth: text layers with prompts (overrides the preset).
        deep_prompt_length: t, length of each deep prompt (overrides the preset).
        feature_layers: vision layers (1-indexed) of the local branch.
        vv_start_layer: first vision layer with V-V attention.
        per_layer_features: ``False`` reproduces the reference, where every feature layer holds the last
            layer's V-V tokens; ``True`` uses each layer's own tokens.
        global_ln_post: apply ``ln_post`` to the global CLS feature (the reference does not).
        temperature: τ of the softmax over states.
        gcl_weight: α, weight of the glocal contrastive loss.
        gcl_margin: margin of the glocal contrastive loss (the reference's 0 makes it a pure pull).
        sigma: Gaussian smoothing of the anomaly map in pixels.
        learning_rate: Adam learning rate.
        betas: Adam betas.
        round_deep_prompts_to_fp16: round deep prompts to fp16 as the reference does.
        precision: backbone precision: ``auto`` (bf16 autocast on GPUs, fp32 on CPUs), ``bf16`` or ``fp32``.
        compile: run the vision pass, and the loss of a training step on cached features, under
            ``torch.compile`` (compiled per input shape on first use; worth it on GPUs for long runs).
        few_shot: ``k`` normal reference images; ``0``: zero-shot, unless ``reference_images`` is given.
        reference_images: folder of normal images to take the ``k`` references from (all of them when
            ``few_shot`` is 0) instead of the datamodule's train split.
        few_shot_seed: seed of the choice of the ``k`` references.
        few_shot_weight: share of the few-shot scores in the combined map and image score.
        cache_features: train on encoder outputs cached in the first pass (each auxiliary image is encoded
            once). Applies with ``AuxiliaryTransfer`` when the training data has no random augmentation.
        cache_storage: where cached features live: ``auto`` (by size), ``device``, ``host`` or ``disk``.
        decode_on_device: with the feature cache, decode the auxiliary JPEGs on the model's device in batches
            (nvJPEG on GPUs; pixels may differ from PIL's by a grey level) instead of in the dataloader workers.
        quick_gelu: force QuickGELU on or off; ``None`` decides from the weights.
        cache_dir: open_clip download cache.
        preprocessing: resize of the default pre-processor: ``"anomalib"`` (torchvision's tensor resize) or
            ``"reference"`` (the reference code's PIL resize: 8-bit bicubic images, bilinear masks > 0.5).
        pre_processor: pre-processor, or ``True`` for bicubic resize + CLIP normalisation.
        post_processor: post-processor, or ``True`` for Anomalib's default.
        evaluator: evaluator, or ``True`` for image AUROC/AUPR/F1Max and pixel AUROC/AUPRO/F1Max.
        visualizer: visualizer, or ``True`` for Anomalib's image visualizer.
    """

    reference_image_filter = "bicubic"  # YUL-git/GlocalCLIP: Resize(S, BICUBIC) on PIL images

    # torch.compile backend and mode of the compiled step on cached features (``compile=True``): internal knobs,
    # e.g. "aot_eager" in tests, "reduce-overhead" to also replay CUDA graphs.
    compile_backend: str | Callable = "inductor"
    compile_mode: str | None = None

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: str | None = "openai",
        image_size: int = 518,
        prompt_weights: str | None = None,
        preset: str | None = None,
        n_ctx: int | None = None,
        n_abnormal_ctx: int | None = None,
        deep_prompt_depth: int | None = None,
        deep_prompt_length: int | None = None,
        feature_layers: Sequence[int] = (6, 12, 18, 24),
        vv_start_layer: int = 6,
        per_layer_features: bool = False,
        global_ln_post: bool = False,
        temperature: float = 0.07,
        gcl_weight: float = 1.0,
        gcl_margin: float = 0.0,
        sigma: float = 8.0,
        learning_rate: float = 1e-3,
        betas: Sequence[float] = (0.5, 0.999),
        round_deep_prompts_to_fp16: bool = True,
        precision: str = "auto",
        compile: bool = False,  # noqa: A002 - torch.compile's name, as the backbone's
        few_shot: int = 0,
        reference_images: str | None = None,
        few_shot_seed: int = 0,
        few_shot_weight: float = DEFAULT_FEW_SHOT_WEIGHT,
        cache_features: bool = True,
        cache_storage: str = "auto",
        decode_on_device: bool = False,
        quick_gelu: bool | None = None,
        cache_dir: str | None = None,
        preprocessing: str = "anomalib",
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        self.prompt_weights = str(prompt_weights) if prompt_weights is not None else None
        self.uses_default_pre_processor = pre_processor is True
        super().__init__(image_size=image_size, pre_processor=pre_processor, post_processor=post_processor,
                         evaluator=evaluator, visualizer=visualizer, preprocessing=preprocessing)
        self.init_few_shot(few_shot, reference_images, few_shot_seed, few_shot_weight)
        check_few_shot_source(self.prompt_weights, few_shot, reference_images)
        prompt_file = read_prompt_file(self.prompt_weights) if self.prompt_weights else None  # read once, here
        shape = self._prompt_shape(prompt_file, preset, (n_ctx, n_abnormal_ctx, deep_prompt_depth, deep_prompt_length))
        self.backbone_name = self._choose_backbone(backbone, prompt_file)
        self.model = GlocalCLIPModel(
            backbone=self.backbone_name, pretrained=pretrained, image_size=self.image_size, quick_gelu=quick_gelu,
            cache_dir=cache_dir, precision=precision, compile=compile,  # how CLIP is loaded; the method's below
            prompt_shape=shape, feature_layers=feature_layers, vv_start_layer=vv_start_layer,
            per_layer_features=per_layer_features, global_ln_post=global_ln_post, temperature=temperature,
            sigma=sigma, round_deep_prompts_to_fp16=round_deep_prompts_to_fp16, few_shot_weight=few_shot_weight,
        )
        if prompt_file is not None:
            self._load_prompts(prompt_file)
        self.gcl_weight, self.gcl_margin = gcl_weight, gcl_margin
        self.learning_rate, self.betas = learning_rate, tuple(betas)
        self.cache_features, self.cache_storage = cache_features, check_storage(cache_storage)
        self.decode_on_device = decode_on_device
        self.model.refresh_text_features()
        # Without validation data: anomalous above probability 0.5 (maps sum len(feature_layers) probabilities).
        self.set_natural_thresholds(pixel_scale=float(len(self.model.feature_layers)))

    # ----- prompts -----
    def _prompt_shape(
        self, prompt_file: PromptFile | None, preset: str | None, sizes: tuple[int | None, ...]
    ) -> PromptShape:
        """The prompt file's sizes when there is one (sizes asked for must agree), else the preset's and ``sizes``."""
        shape = resolve_prompt_shape(preset, *sizes)
        if prompt_file is None:
            return shape
        asked = preset is not None or any(size is not None for size in sizes)
        return fitting_shape(prompt_file, str(self.prompt_weights), shape, asked)

    def _choose_backbone(self, backbone: str | None, prompt_file: PromptFile | None) -> str:
        """``backbone`` if given, else the one the prompt file was learned with, else :data:`DEFAULT_BACKBONE`."""
        learned = prompt_file.backbone if prompt_file is not None else None
        if backbone is None:
            return learned or DEFAULT_BACKBONE
        if learned is not None and str(backbone) != learned:
            msg = "Prompt file %s was learned with backbone %s; using backbone %s as asked."
            logger.warning(msg, self.prompt_weights, learned, backbone)
        return str(backbone)

    def _load_prompts(self, prompt_file: PromptFile) -> None:
        learner = self.model.prompt_learner
        expected = {name: tensor.shape for name, tensor in learner.state_dict().items()}
        given = {name: tensor.shape for name, tensor in prompt_file.state_dict.items()}
        if expected != given:
            msg = (
                f"Prompt file {self.prompt_weights} does not fit this backbone: expected tensors {expected}, "
                f"found {given}. Was it learned with another CLIP model (--model.backbone)?"
            )
            if prompt_file.backbone not in {None, self.backbone_name}:
                msg += (
                    f"\nThe prompt file was learned with backbone {prompt_file.backbone!r}, but backbone "
                    f"{self.backbone_name!r} was given: leave --model.backbone out to use the prompt file's."
                )
            raise PromptFileError(msg)
        learner.load_state_dict(prompt_file.state_dict)

    def save_prompts(self, path: str | Path) -> Path:
        """Write the learned prompts to a standalone file (atomically)."""
        return save_prompt_file(self.model.prompt_learner, path, backbone=self.backbone_name)

    # ----- Anomalib -----
    @property
    def learning_type(self) -> LearningType:
        """``ZERO_SHOT`` (``FEW_SHOT`` with references) with learned prompts, ``ONE_CLASS`` while learning them."""
        if not self.prompt_weights:
            return LearningType.ONE_CLASS
        return super().learning_type

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No sanity validation; the epoch count is the user's (the paper's 15 are in the configs)."""
        return {"num_sanity_val_steps": 0}

    def configure_callbacks(self) -> list[Callback]:
        """The shared callbacks, plus the feature cache when ``cache_features`` is on (see ``feature_cache``)."""
        callbacks = super().configure_callbacks()
        if not self.cache_features:
            return callbacks
        if not self.uses_default_pre_processor:
            logger.info("Feature caching needs the model's default pre-processor; training on images instead.")
            return callbacks
        cache = FeatureCacheCallback(self, storage=self.cache_storage, decode_on_device=self.decode_on_device)
        return [*callbacks, cache]

    def configure_optimizers(self) -> torch.optim.Optimizer | None:
        """Adam over the prompt learner only (nothing to optimise in zero-shot mode)."""
        if self.learning_type != LearningType.ONE_CLASS:
            return None
        return torch.optim.Adam(self.model.prompt_learner.parameters(), lr=self.learning_rate, betas=self.betas)

    def on_fit_start(self) -> None:
        """Refuse training data without anomalies; warn when the epoch count looks like Lightning's unset default.

        Raises:
            NoAnomaliesError: the train split holds no anomalous image (checked from its labels, no image read).
        """
        check_training_labels(self.trainer.datamodule)
        if self.trainer.max_epochs == LIGHTNING_DEFAULT_EPOCHS and self.trainer.max_steps == -1:
            logger.warning("GlocalCLIP learns prompts for 1000 epochs, Lightning's default when max_epochs is not set; "
                           "the paper learns them for 15: pass max_epochs=15 (the configs do).")

    def training_step(self, batch: Batch | CachedBatch, *args: object, **kwargs: object) -> STEP_OUTPUT:
        """One step of prompt learning: global CE + local focal/dice on every map layer + α·GCL.

        With ``compile`` on, a step on cached features computes its losses in one compiled graph.
        """
        del args, kwargs
        if isinstance(batch, CachedBatch) and self.model.backbone.use_compile:
            losses = run_compiled_cached_losses(
                self.model, batch.global_features, batch.patch_features, batch.gt_label, batch.gt_mask,
                self.gcl_weight, self.gcl_margin, backend=self.compile_backend, mode=self.compile_mode,
            )
        else:
            if isinstance(batch, CachedBatch):
                features = self.model.normalize_features(batch.global_features, batch.patch_features)
            else:
                features = self.model.encode_image(batch.image)
            losses = self.compute_losses(features, batch.gt_label, batch.gt_mask)
        # Logged per epoch only: per-step values would be read back from the GPU at every step.
        logged = {f"train_{name}": value for name, value in losses.items()}
        self.log_dict(logged, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(batch.gt_label))
        return {"loss": losses["loss"]}

    def compute_losses(
        self,
        features: ImageFeatures,
        labels: torch.Tensor,
        masks: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """All loss terms of a batch and their total under ``"loss"``, for labels ``[B]`` and masks ``[B, H, W]``."""
        return glocal_losses(self.model, features, labels, masks, self.gcl_weight, self.gcl_margin)

    def encode_for_cache(self, batch: Batch) -> EncodedBatch:
        """Pre-process a batch (``image`` ``[B, 3, h, w]``) as Lightning would, then encode it for the feature cache.

        Returns:
            Raw global ``[B, E]`` and patch ``[K, B, N, E]`` features, labels ``[B]`` and masks ``[B, S, S]``
            (or ``None``), on the model's device.
        """
        images = batch.image.to(self.device, non_blocking=True)
        masks = batch.gt_mask.to(self.device, non_blocking=True) if batch.gt_mask is not None else None
        if self.pre_processor is not None:
            images, masks = self.pre_processor.transform(images, masks)
        global_features, patch_features = self.model.encode_image_raw(images)
        return global_features, patch_features, batch.gt_label.to(self.device), masks

    def prepare_references(self) -> None:
        """Before each validation, test or predict: take the few-shot references, compute the text features once."""
        super().prepare_references()
        self.model.refresh_text_features()

    def on_train_epoch_end(self) -> None:
        """Write the prompts learned so far next to the checkpoint (``prompts.pt``)."""
        self.model.refresh_text_features()
        if self.trainer.is_global_zero:
            path = self.save_prompts(self.prompt_file_path())
            logger.info("Learned prompts written to %s", path)

    def prompt_file_path(self) -> Path:
        """Where a training run writes its prompt file: beside the Lightning checkpoint."""
        callback = self.trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None) or self.trainer.default_root_dir
        return Path(folder) / PROMPT_FILE_NAME
