"""Few-shot settings of a model and the filling of its reference bank (issue 15), shared by GlocalCLIP and AnoCLIP.

A model is few-shot when ``few_shot = k > 0`` or ``reference_images`` names a folder. Before its first evaluation
batch it takes ``k`` seeded images of that folder (all when ``k = 0``), else ``k`` seeded normal images of the
datamodule's train split, encodes them and fills its ``ReferenceBank`` (a buffer: checkpoints and exports carry
it, and a loaded bank is never refilled). README "Few-shot" has the details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from anomalib.data import AnomalibDataModule
from lightning.pytorch import Trainer

from anomalib_glocalclip.few_shot import (
    ReferenceBank,
    read_reference_images,
    reference_images_from_datamodule,
    reference_images_from_folder,
)

logger = logging.getLogger(__name__)

REFERENCE_PATHS_KEY = "few_shot_reference_paths"
"""Checkpoint entry holding the paths of the reference images in the bank."""


def check_few_shot_args(few_shot: int, reference_images: str | Path | None, weight: float) -> None:
    """Reject (``ValueError``) a negative ``few_shot``, an empty ``reference_images`` and a weight outside [0, 1]."""
    if isinstance(few_shot, bool) or not isinstance(few_shot, int) or few_shot < 0:
        msg = f"few_shot must be a number of reference images >= 0 (0: zero-shot), got {few_shot!r}."
        raise ValueError(msg)
    if reference_images is not None and not str(reference_images).strip():
        msg = "reference_images is empty: pass a folder of normal images, or leave it unset."
        raise ValueError(msg)
    if not 0.0 <= weight <= 1.0:
        msg = f"few_shot_weight must lie in [0, 1], got {weight}."
        raise ValueError(msg)


def choose_reference_paths(
    few_shot: int, reference_images: str | Path | None, seed: int, datamodule: AnomalibDataModule | None,
    model_name: str,
) -> list[Path]:
    """The ``few_shot`` seeded reference images: of ``reference_images`` (all for 0), else of the train split.

    Raises:
        ValueError: no folder is given and there is no datamodule to take normal images from.
    """
    if reference_images is not None:
        return reference_images_from_folder(reference_images, few_shot or None, seed)
    if datamodule is None:
        msg = (
            f"{model_name} is few-shot (few_shot={few_shot}) but there is no datamodule to take normal reference "
            "images from (e.g. predict on a folder). Pass a folder of normal images: "
            "--model.reference_images ./good (GlocalCLIP/AnoCLIP(reference_images=...)), or a checkpoint of a "
            "few-shot run (--ckpt_path), whose bank is kept."
        )
        raise ValueError(msg)
    return reference_images_from_datamodule(datamodule, few_shot, seed)


@torch.no_grad()
def fill_reference_bank(
    bank: ReferenceBank, paths: list[Path], transform: Callable[[torch.Tensor], torch.Tensor],
    encode: Callable[[torch.Tensor], torch.Tensor], device: torch.device, batch_size: int = 16
) -> None:
    """Read, pre-process and encode the reference images into ``bank``.

    Args:
        bank: the (empty) bank to fill.
        paths: reference image files.
        transform: the model's pre-processing of one ``[3, H, W]`` image in ``[0, 1]``.
        encode: the model's ``[B, 3, S, S] -> [L, B, N, E]`` patch features at its map layers.
        device: where the model runs.
        batch_size: images per vision-tower pass.
    """
    for start in range(0, len(paths), batch_size):
        images = read_reference_images(paths[start : start + batch_size], transform)
        bank.add(encode(images.to(device)))


class FewShotMixin:
    """Mixin before ``AnomalibModule``: few-shot settings, and the reference bank filled before the first batch.

    The model calls :meth:`init_few_shot` before building ``self.model``, which has a ``reference_bank`` and
    ``reference_features``; checkpoints also record the reference images' paths.
    """

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

    def forget_references(self) -> None:
        """Drop the references taken so far: the next run takes them anew (e.g. of another category)."""
        self.model.reference_bank.clear()

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
