"""``ZeroShotCLIPMixin``: what the Anomalib modules GlocalCLIP and AnoCLIP share.

The CLIP pre-processor, the plugin's evaluator and visualizer, ``ReaderCheck`` and the ``predictions.csv`` callback,
and three concerns each in its own mixin: few-shot references (``FewShotMixin``, ``few_shot.py``), thresholds
(``ValidationThresholds``, ``post_processor.py``) and the export guard (``ExportGuard``, ``export.py``). Subclasses
build ``self.model`` (whose forward returns an ``InferenceBatch`` and which has a ``reference_bank`` and
``reference_features``).

A mixin placed before ``AnomalibModule`` (as Anomalib's ``MemoryBankMixin``), not a subclass of it: Anomalib lists
models by ``AnomalibModule.__subclasses__()``, direct subclasses only.
"""

from __future__ import annotations

from typing import Any

from anomalib import LearningType
from anomalib.metrics import Evaluator
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from torch import nn

from anomalib_glocalclip.compat import check_versions
from anomalib_glocalclip.data.reader_check import ReaderCheck

from .evaluator import zero_shot_evaluator
from .export import ExportGuard
from .few_shot import FewShotMixin
from .post_processor import ValidationThresholds
from .pre_processor import check_preprocessing, clip_pre_processor
from .prediction_table import PredictionTable
from .visualizer import PluginImageVisualizer

DEFAULT_IMAGE_SIZE = 224


class ZeroShotCLIPMixin(FewShotMixin, ValidationThresholds, ExportGuard):
    """Components and steps of a CLIP model evaluated zero-shot, for ``class Model(ZeroShotCLIPMixin, AnomalibModule)``.

    Subclasses call ``self.init_few_shot`` before building ``self.model`` (a torch model whose forward maps
    ``[B, 3, S, S]`` images to an ``InferenceBatch``), and ``self.set_natural_thresholds`` once it exists.

    Args:
        image_size: input size of the vision tower and of the pre-processor's resize, in pixels (square).
        pre_processor: pre-processor, or ``True`` for ``configure_pre_processor(image_size)``.
        post_processor: post-processor, or ``True`` for ``configure_post_processor()``.
        evaluator: evaluator, or ``True`` for ``zero_shot_evaluator()``.
        visualizer: visualizer, or ``True`` for ``configure_visualizer()``.
        preprocessing: resize of the default pre-processor: ``"anomalib"`` (torchvision's tensor resize) or
            ``"reference"`` (the reference code's PIL resize, see ``ReferenceResize``).
    """

    reference_image_filter: str
    """PIL filter of the images in the model's reference code, which ``preprocessing="reference"`` resizes with
    (``"bicubic"`` or ``"bilinear"``); each model class sets it."""

    def __init__(
        self, image_size: int = DEFAULT_IMAGE_SIZE, pre_processor: nn.Module | bool = True,
        post_processor: nn.Module | bool = True, evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True, preprocessing: str = "anomalib"
    ) -> None:
        check_versions()  # an untested Anomalib, Lightning or open_clip fails here, with the fix
        self.image_size = int(image_size)
        self.preprocessing = check_preprocessing(preprocessing)
        if pre_processor is True:
            pre_processor = self.configure_pre_processor((self.image_size, self.image_size), preprocessing)
        super().__init__(
            pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )

    @classmethod
    def configure_pre_processor(
        cls,
        image_size: tuple[int, int] | None = None,
        preprocessing: str = "anomalib",
    ) -> PreProcessor:
        """Resize to ``image_size`` ``(H, W)`` (``None``: 224 x 224) and CLIP normalisation (``clip_pre_processor``)."""
        size = tuple(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE
        return clip_pre_processor(size, preprocessing, cls.reference_image_filter)

    @classmethod
    def configure_visualizer(cls) -> PluginImageVisualizer:
        """Anomalib's image visualizer whose "Image" panel is read by the plugin's reader (16-bit files right)."""
        return PluginImageVisualizer()

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """Image AUROC/AUPR/F1Max and pixel AUROC/AUPRO/F1Max (pixel metrics skipped without masks)."""
        return zero_shot_evaluator()

    def configure_callbacks(self) -> list[Callback]:
        """Anomalib's components, ``ReaderCheck`` and ``predictions.csv`` of ``predict``.

        ``ReaderCheck`` refuses the files Anomalib's datasets would read wrong; ``PredictionTable`` leaves those of
        ``predict`` folders out, named.
        """
        return [ReaderCheck(), *super().configure_callbacks(), PredictionTable()]

    @property
    def learning_type(self) -> LearningType:
        """Zero- or few-shot: thresholds come from validation on the target."""
        return LearningType.FEW_SHOT if self.is_few_shot else LearningType.ZERO_SHOT

    def load_state_dict(
        self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False
    ) -> tuple[list[str], list[str]]:
        """Load a checkpoint; evaluator metric buffers (e.g. AUPRO's ``fpr_limit``) follow this model's evaluator."""
        own = {key: value for key, value in self.state_dict(keep_vars=True).items() if key.startswith("evaluator.")}
        state_dict = {key: value for key, value in state_dict.items() if not key.startswith("evaluator.")}
        return super().load_state_dict({**state_dict, **own}, strict=strict, assign=assign)
