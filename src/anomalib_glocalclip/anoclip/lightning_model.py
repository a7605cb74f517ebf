"""AnoCLIP and AnoCLIP+: zero-shot anomaly localisation with fine-grained CLIP vision-language alignment.

Paper: Deng, Zhang, Bao, Li, "Bootstrap Fine-Grained Vision-Language Alignment for Unified Zero-Shot
Anomaly Localization" (arXiv 2308.15939; first titled "AnoVL"). AnoCLIP is training-free: V-V attention
in CLIP's vision tower, a domain-aware state prompt ensemble and softmax(cos) scores. AnoCLIP+
(``tta=True``) adds a test-time adapter fitted to every test image's own patch tokens. See this folder's README.md.
"""

from __future__ import annotations

import logging
from typing import Any

from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.visualization import Visualizer
from torch import nn

from anomalib_glocalclip.components import ZeroShotCLIPMixin
from anomalib_glocalclip.few_shot import DEFAULT_FEW_SHOT_WEIGHT

from .adapter import TestTimeAdaptation
from .prompts import DOMAIN_PHRASES, Domain, clean_class_name, default_domain
from .torch_model import AnoCLIPModel

logger = logging.getLogger(__name__)

DEFAULT_CLASS_NAME = "object"
PROMPTED_FOR_KEY = "anoclip_prompted_for"


class AnoCLIP(ZeroShotCLIPMixin, AnomalibModule):
    """AnoCLIP (training-free) and, with ``tta=True``, AnoCLIP+ (per-image test-time adapter).

    Nothing is trained; the text prompts are encoded in ``setup`` once the class name is known. Few-shot
    (``few_shot=k`` or ``reference_images``) fills the reference bank before the first batch.

    Args:
        backbone: open_clip model name (e.g. ``"ViT-B-16-plus-240"``, ``"ViT-L-14-336"``) or config JSON file.
        pretrained: open_clip pretrained tag (e.g. ``"laion400m_e32"``, ``"openai"``), local weight file, or
            ``None`` for random weights (tests only).
        image_size: input size of the vision tower and of the pre-processor's resize.
        class_name: class name in the prompts. ``None``: the datamodule's ``category`` (``"macaroni1"`` and
            ``"macaroni2"`` become ``"macaroni"``), or ``"object"`` if it has none (e.g. ``Folder``).
        domain: prompt domain, ``"object"`` or ``"texture"``. ``None``: ``"texture"`` for the MVTec AD
            texture categories (carpet, grid, leather, tile, wood), else ``"object"``.
        feature_layer: vision layer (1-indexed) whose V-V tokens give the anomaly map; ``None`` = the last.
        image_score_views: ``"reference"``: image score averaged over the image and 21 augmented views, as
            in the reference code; ``"none"``: the image alone (22 times cheaper scoring).
        tta: run AnoCLIP+'s test-time adapter (needs gradients at test time; cannot be exported).
        tta_steps: AdamW steps per image.
        tta_lr: AdamW learning rate.
        tta_weight_decay: AdamW weight decay.
        tta_noise_std: standard deviation of the noise that makes the pseudo-anomalous tokens.
        tta_seed: seed of the adapter initialisation and noise, the same for every image, so scores depend
            neither on the batch size nor on the order of the images.
        encoder_batch_size: most images per vision-tower pass (each image adds 21 augmented views);
            ``None``: no limit. Lower it if memory runs out.
        precision: backbone precision: ``auto`` (bf16 autocast on GPUs, fp32 on CPUs), ``bf16`` or ``fp32``.
        compile: run the vision pass under ``torch.compile`` (compiled per input shape on first use; worth it on
            GPUs for long runs).
        few_shot: ``k`` normal reference images; ``0``: zero-shot, unless ``reference_images`` is given.
        reference_images: folder of normal images to take the ``k`` references from (all of them when
            ``few_shot`` is 0) instead of the datamodule's train split.
        few_shot_seed: seed of the choice of the ``k`` references.
        few_shot_weight: share of the few-shot scores in the combined map and image score.
        preprocessing: resize of the default pre-processor: ``"anomalib"`` (torchvision's tensor bicubic resize)
            or ``"reference"`` (the reference code's PIL resize: 8-bit bilinear images, bilinear masks > 0.5).
        pre_processor: pre-processor, ``True`` for the default (``preprocessing``'s resize + CLIP normalisation).
        post_processor: post-processor, ``True`` for ``PostProcessor()``.
        evaluator: evaluator, ``True`` for the plugin's zero-shot evaluator.
        visualizer: visualizer, ``True`` for Anomalib's default.
    """

    reference_image_filter = "bilinear"  # hq-deng/AnoVL: transforms.Resize((S, S)) on PIL images, PIL's bilinear

    def __init__(
        self,
        backbone: str = "ViT-B-16-plus-240",
        pretrained: str | None = "laion400m_e32",
        image_size: int = 240,
        class_name: str | None = None,
        domain: str | None = None,
        feature_layer: int | None = None,
        image_score_views: str = "reference",
        tta: bool = False,
        tta_steps: int = 5,
        tta_lr: float = 1e-3,
        tta_weight_decay: float = 0.01,
        tta_noise_std: float = 0.055,
        tta_seed: int = 111,
        encoder_batch_size: int | None = 64,
        precision: str = "auto",
        compile: bool = False,  # noqa: A002 - torch.compile's name, as the backbone's
        few_shot: int = 0,
        reference_images: str | None = None,
        few_shot_seed: int = 0,
        few_shot_weight: float = DEFAULT_FEW_SHOT_WEIGHT,
        preprocessing: str = "anomalib",
        pre_processor: nn.Module | bool = True,
        post_processor: nn.Module | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        if domain is not None and domain not in DOMAIN_PHRASES:
            msg = f"domain must be one of {sorted(DOMAIN_PHRASES)} or None, got {domain!r}."
            raise ValueError(msg)
        super().__init__(image_size=image_size, pre_processor=pre_processor, post_processor=post_processor,
                         evaluator=evaluator, visualizer=visualizer, preprocessing=preprocessing)
        self.init_few_shot(few_shot, reference_images, few_shot_seed, few_shot_weight)
        self.class_name, self.domain, self.tta = class_name, domain, tta
        adaptation = TestTimeAdaptation(steps=tta_steps, lr=tta_lr, weight_decay=tta_weight_decay,
                                        noise_std=tta_noise_std, seed=tta_seed) if tta else None
        self.model = AnoCLIPModel(
            backbone=backbone, pretrained=pretrained, image_size=image_size, feature_layer=feature_layer,
            image_score_views=image_score_views, adaptation=adaptation, encoder_batch_size=encoder_batch_size,
            precision=precision, compile=compile, few_shot_weight=few_shot_weight,
        )
        self._prompted_for: tuple[str, str] | None = None
        # Without validation data: anomalous when closer to the anomalous than to the normal state embedding.
        self.set_natural_thresholds()

    def setup(self, stage: str) -> None:
        """Encode the prompt ensemble for the class name (on the trainer's device), unless already encoded for it."""
        super().setup(stage)
        class_name = self._resolve_class_name()
        domain: Domain = self.domain or default_domain(class_name)  # type: ignore[assignment]
        if self.model.has_prompts and self._prompted_for == (class_name, domain):
            return
        trainer = self.attached_trainer
        if trainer is not None:
            self.model.to(trainer.strategy.root_device)
        logger.info("Encoding AnoCLIP prompts for class %r (%s domain).", class_name, domain)
        self.model.setup_prompts(class_name, domain)
        self._prompted_for = (class_name, domain)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also record which class and domain the text buffers were encoded for."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[PROMPTED_FOR_KEY] = list(self._prompted_for) if self._prompted_for else None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the class and domain of the loaded text buffers, so ``setup`` re-encodes only on a change."""
        super().on_load_checkpoint(checkpoint)
        prompted_for = checkpoint.get(PROMPTED_FOR_KEY)
        self._prompted_for = tuple(prompted_for) if prompted_for else None

    def _resolve_class_name(self) -> str:
        """Class name: the init argument, else the datamodule's category, else ``"object"``."""
        if self.class_name:
            return clean_class_name(self.class_name)
        trainer = self.attached_trainer
        category = getattr(getattr(trainer, "datamodule", None), "category", None)
        if isinstance(category, str) and category.strip():
            return clean_class_name(category)
        logger.info("No class name given and the datamodule has no category: prompting for %r.", DEFAULT_CLASS_NAME)
        return DEFAULT_CLASS_NAME

    @staticmethod
    def configure_optimizers() -> None:
        """Nothing is trained (AnoCLIP+'s adapters are fitted and discarded inside each test step)."""
        return

    @property
    def trainer_arguments(self) -> dict[str, object]:
        """With ``tta``, evaluate under ``no_grad`` instead of ``inference_mode`` (the adapter needs autograd)."""
        return {"inference_mode": False} if self.tta else {}

    # ----- export: per-image optimisation is not a static graph -----
    def export_refusal(self) -> str | None:
        """AnoCLIP+ (``tta=True``) cannot be exported; AnoCLIP can."""
        if not self.tta:
            return None
        return ("AnoCLIP+ (tta=True) optimises an adapter for every image, which cannot be exported. "
                "Export AnoCLIP with tta=False instead.")

    def prepare_export(self) -> None:
        """Encode the prompts for ``class_name`` or ``"object"`` unless a run or a checkpoint already did."""
        if not self.model.has_prompts:
            self.setup("export")
