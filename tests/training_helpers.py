"""Helpers of the training tests: a callback recording every training step."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from anomalib_glocalclip.glocalclip.feature_cache import CachedBatch


class StepRecorder(Callback):
    """Losses of every step and the kind of batch each step saw."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.cached: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        self.cached.append(isinstance(batch, CachedBatch))
