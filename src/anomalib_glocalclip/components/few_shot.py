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

import torch
from anomalib.data import AnomalibDataModule

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
