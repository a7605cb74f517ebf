"""``ZeroShotCLIPMixin``: what the Anomalib modules GlocalCLIP and AnoCLIP share.

The CLIP pre-processor, Anomalib's post-processor, the plugin's evaluator and visualizer, the ``predictions.csv``
callback, the validation step, natural thresholds for runs without validation data, the export guard and few-shot
references (``components/few_shot.py``). Subclasses build ``self.model`` (whose forward returns an
``InferenceBatch`` and which has a ``reference_bank`` and ``reference_features``).

A mixin placed before ``AnomalibModule`` (as Anomalib's ``MemoryBankMixin``), not a subclass of it: Anomalib lists
models by ``AnomalibModule.__subclasses__()``, direct subclasses only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import nn

from anomalib_glocalclip.compat import check_versions, set_post_processor_thresholds
from anomalib_glocalclip.data.reader_check import ReaderCheck
from anomalib_glocalclip.utils.errors import PluginError

from .evaluator import zero_shot_evaluator
from .few_shot import REFERENCE_PATHS_KEY, check_few_shot_args, choose_reference_paths, fill_reference_bank
from .pre_processor import check_preprocessing, clip_pre_processor
from .prediction_table import PredictionTable
from .visualizer import PluginImageVisualizer

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 224


class ExportRefusedError(PluginError, RuntimeError):
    """The model cannot be exported as configured; the message says why and what to change."""


def set_natural_thresholds(post_processor: Any, pixel_scale: float = 1.0) -> None:
    """Thresholds and ranges for runs without validation data, for scores that are probabilities.

    An image or pixel is anomalous when its anomalous probability exceeds 0.5; scores range over [0, 1] (pixel
    scores over ``[0, pixel_scale]`` when a map sums ``pixel_scale`` probabilities). Validation on the target,
    when there is one, replaces all of them. Post-processors other than Anomalib's are left alone.
    """
    if not isinstance(post_processor, PostProcessor):
        return
    set_post_processor_thresholds(post_processor, image=0.5, pixel=0.5 * pixel_scale)
    post_processor.image_min.fill_(0.0)
    post_processor.image_max.fill_(1.0)
    post_processor.pixel_min.fill_(0.0)
    post_processor.pixel_max.fill_(pixel_scale)


def no_validation_data(model_name: str, validated_before: bool = False) -> list:
    """What a zero-shot model's own ``val_dataloader`` returns: nothing, with a warning when that matters.

    Anomalib validates zero-shot models before ``test``/``predict`` to set thresholds. Without a datamodule
    (e.g. ``anomalib predict`` on a folder) Lightning falls back to the model's ``val_dataloader``; an empty
    one skips validation, so the natural thresholds of ``set_natural_thresholds`` apply, unless an earlier
    validation on data already set thresholds (``validated_before``), which then stay.
    """
    if validated_before:
        logger.info("No validation data: %s keeps the thresholds of its earlier validation.", model_name)
        return []
    logger.warning(
        "No validation data: %s uses natural thresholds (anomalous probability 0.5). Pass a datamodule of the "
        "target to set thresholds and normalisation from its validation split.",
        model_name,
    )
    return []


class ZeroShotCLIPMixin:
    """Components and steps of a CLIP model evaluated zero-shot, for ``class Model(ZeroShotCLIPMixin, AnomalibModule)``.

    Subclasses call ``self.init_few_shot`` before building ``self.model`` (a torch model whose forward maps
    ``[B, 3, S, S]`` images to an ``InferenceBatch``), and ``self.set_natural_thresholds`` once it exists.

    Args:
        image_size: input size of the vision tower and of the pre-processor's resize, in pixels (square).
        pre_processor: pre-processor, or ``True`` for ``configure_pre_processor(image_size)``.
        post_processor: post-processor, or ``True`` for Anomalib's.
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
        self.validated_on_data = False
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

    @staticmethod
    def configure_post_processor() -> PostProcessor:
        """Anomalib's post-processor: thresholds and normalisation from validation on the target."""
        return PostProcessor()

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

        ``ReaderCheck`` refuses the files Anomalib's datasets would read wrong; ``PredictionTable`` also checks
        ``predict`` folders.
        """
        return [ReaderCheck(), *super().configure_callbacks(), PredictionTable()]

    @property
    def learning_type(self) -> LearningType:
        """Zero- or few-shot: thresholds come from validation on the target."""
        return LearningType.FEW_SHOT if self.is_few_shot else LearningType.ZERO_SHOT

    # ----- few-shot -----
    def init_few_shot(self, few_shot: int, reference_images: str | Path | None, seed: int, weight: float) -> None:
        """Record (and check) the few-shot settings; ``prepare_references`` fills the bank.

        ``few_shot = 0`` with no ``reference_images`` folder is zero-shot; ``reference_images`` ``None`` takes the
        references from the datamodule's train split; ``weight`` (the few-shot scores' share) is used by ``self.model``.
        """
        check_few_shot_args(few_shot, reference_images, weight)
        self.few_shot = few_shot
        self.reference_images = str(reference_images) if reference_images is not None else None
        self.few_shot_seed = int(seed)
        self.reference_paths: list[str] = []

    @property
    def is_few_shot(self) -> bool:
        """Whether the model scores with reference images (``few_shot > 0`` or a reference folder)."""
        # getattr: Anomalib may ask an instance made by __new__ (before __init__) for its learning type.
        return getattr(self, "few_shot", 0) > 0 or getattr(self, "reference_images", None) is not None

    @property
    def attached_trainer(self) -> Trainer | None:
        """The trainer running this model, or ``None`` outside a run (where Lightning's ``trainer`` raises)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def prepare_references(self) -> None:
        """Fill the reference bank once, if few-shot and not already filled (by a run or a checkpoint)."""
        bank = self.model.reference_bank
        if not self.is_few_shot or not bank.is_empty:
            return
        datamodule = getattr(self.attached_trainer, "datamodule", None)
        paths = choose_reference_paths(self.few_shot, self.reference_images, self.few_shot_seed, datamodule, self.name)
        transform = getattr(self.pre_processor, "transform", None)
        if transform is None:
            transform = self.configure_pre_processor((self.image_size, self.image_size)).transform
        fill_reference_bank(bank, paths, transform, self.model.reference_features, self.device)
        self.reference_paths = [str(path) for path in paths]
        logger.info(
            "%s few-shot: %d reference images (seed %d): %s", self.name, len(paths), self.few_shot_seed,
            ", ".join(self.reference_paths)
        )

    def on_validation_start(self) -> None:
        """Take the few-shot references before the first batch."""
        super().on_validation_start()
        self.prepare_references()

    def on_test_start(self) -> None:
        """Take the few-shot references before the first batch."""
        super().on_test_start()
        self.prepare_references()

    def on_predict_start(self) -> None:
        """Take the few-shot references before the first batch."""
        super().on_predict_start()
        self.prepare_references()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also record the paths of the reference images in the bank."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[REFERENCE_PATHS_KEY] = list(self.reference_paths)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the paths of the reference images in the loaded bank."""
        super().on_load_checkpoint(checkpoint)
        self.reference_paths = list(checkpoint.get(REFERENCE_PATHS_KEY) or [])

    def set_natural_thresholds(self, pixel_scale: float = 1.0) -> None:
        """Thresholds of runs without validation data, pixel scores up to ``pixel_scale``."""
        set_natural_thresholds(self.post_processor, pixel_scale=pixel_scale)

    def val_dataloader(self) -> list:
        """Nothing: without a datamodule validation is skipped and the natural thresholds apply."""
        return no_validation_data(self.name, validated_before=self.validated_on_data)

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Score the target's validation batch; the post-processor fits thresholds and normalisation on it."""
        del args, kwargs
        self.validated_on_data = True
        predictions = self.model(batch.image)
        return batch.update(**predictions._asdict())

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a checkpoint; evaluator metric buffers (e.g. AUPRO's ``fpr_limit``) follow this model's evaluator."""
        own = {key: value for key, value in self.state_dict(keep_vars=True).items() if key.startswith("evaluator.")}
        state_dict = {key: value for key, value in state_dict.items() if not key.startswith("evaluator.")}
        return super().load_state_dict({**state_dict, **own}, strict=strict, assign=assign)

    # ----- export -----
    def export_refusal(self) -> str | None:
        """Why this model cannot be exported, or ``None`` if it can (subclasses override)."""
        return None

    def prepare_export(self) -> None:
        """Get ready for export (e.g. encode prompts); nothing by default."""

    def _export(self, method: str, *args: Any, **kwargs: Any) -> Any:
        reason = self.export_refusal()
        if reason is not None:
            raise ExportRefusedError(reason)
        self.prepare_export()
        return getattr(super(), method)(*args, **kwargs)

    def to_torch(self, *args: Any, **kwargs: Any) -> Any:
        """Export to a torch pickle; a model that refuses export raises ``ExportRefusedError`` saying why."""
        return self._export("to_torch", *args, **kwargs)

    def to_onnx(self, *args: Any, **kwargs: Any) -> Any:
        """Export to ONNX; a model that refuses export raises ``ExportRefusedError`` saying why."""
        return self._export("to_onnx", *args, **kwargs)

    def to_openvino(self, *args: Any, **kwargs: Any) -> Any:
        """Export to OpenVINO; a model that refuses export raises ``ExportRefusedError`` saying why."""
        return self._export("to_openvino", *args, **kwargs)
