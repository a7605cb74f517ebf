"""The models' post-processor: Anomalib's, with labels and masks drawn at the thresholds it holds.

Anomalib 2.7's ``PostProcessor`` labels scores above ``1 - sensitivity`` whether or not it normalises them: the
fitted threshold on normalised scores, a raw 0.5 that nothing fitted on raw ones. :class:`FittedThresholdPostProcessor`
overrides the two public properties Anomalib's ``forward`` and ``threshold_batch`` compare with, so that raw scores
are labelled at ``image_threshold``/``pixel_threshold``: either way those are the raw-score thresholds applied (with
the default sensitivity 0.5). Without validation data the natural thresholds (:func:`set_natural_thresholds`) apply.
"""

from __future__ import annotations

import logging

import torch
from anomalib.data import Batch
from anomalib.post_processing import PostProcessor

from anomalib_glocalclip.compat import set_post_processor_thresholds

logger = logging.getLogger(__name__)


class FittedThresholdPostProcessor(PostProcessor):
    """Anomalib's ``PostProcessor`` whose labels and masks use the fitted thresholds on raw scores too.

    Takes Anomalib's arguments. With normalisation on it is Anomalib's; with it off, ``pred_label`` is
    ``pred_score > image_threshold`` and ``pred_mask`` is ``anomaly_map > pixel_threshold``.
    """

    @property
    def normalized_image_threshold(self) -> torch.Tensor:
        """What image scores are compared with: ``1 - sensitivity`` when normalised, else ``image_threshold``."""
        return super().normalized_image_threshold if self.enable_normalization else self.image_threshold

    @property
    def normalized_pixel_threshold(self) -> torch.Tensor:
        """What anomaly maps are compared with: ``1 - sensitivity`` when normalised, else ``pixel_threshold``."""
        return super().normalized_pixel_threshold if self.enable_normalization else self.pixel_threshold


def set_natural_thresholds(post_processor: object, pixel_scale: float = 1.0) -> None:
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


class ValidationThresholds:
    """Mixin before ``AnomalibModule``: thresholds fitted on the target's validation split, natural without one.

    ``FittedThresholdPostProcessor`` fits on the validation batches; ``val_dataloader`` (Lightning's fallback
    without a datamodule) is empty, so the natural thresholds, or those of an earlier validation on data, stay.
    """

    validated_on_data = False
    """Whether thresholds were fitted on data (validation, or the sweep's test pass)."""

    @staticmethod
    def configure_post_processor() -> FittedThresholdPostProcessor:
        """Anomalib's post-processor (thresholds and normalisation from validation on the target), applying them."""
        return FittedThresholdPostProcessor()

    def set_natural_thresholds(self, pixel_scale: float = 1.0) -> None:
        """Thresholds of runs without validation data, pixel scores up to ``pixel_scale``."""
        set_natural_thresholds(self.post_processor, pixel_scale=pixel_scale)

    def val_dataloader(self) -> list:
        """Nothing, with a warning where the natural thresholds apply (no earlier validation on data).

        Anomalib validates zero-shot models before ``test``/``predict`` to set thresholds. Without a datamodule
        (e.g. ``anomalib predict`` on a folder) Lightning falls back to this, and an empty one skips validation.
        """
        if self.validated_on_data:
            logger.info("No validation data: %s keeps the thresholds of its earlier validation.", self.name)
        else:
            logger.warning("No validation data: %s uses natural thresholds (anomalous probability 0.5). Pass a "
                           "datamodule of the target to set thresholds and normalisation from its validation split.",
                           self.name)
        return []

    def validation_step(self, batch: Batch, *args: object, **kwargs: object) -> Batch:
        """Score the target's validation batch; the post-processor fits thresholds and normalisation on it."""
        del args, kwargs
        self.validated_on_data = True
        predictions = self.model(batch.image)
        return batch.update(**predictions._asdict())
