"""The plugin's one engine path: how ``evaluate``, ``benchmark`` and the demo build Anomalib's ``Engine`` to test.

Public arguments only. Where the validation split is the test split and the post-processor thresholds raw scores
(the sweep's default), validation is off (``limit_val_batches=0``) and
:class:`~anomalib_glocalclip.evaluation.one_pass.ThresholdsFromTest` fits the thresholds on the test pass, then
draws the heatmaps with them; elsewhere Anomalib validates first, as in ``anomalib test`` (MuSc's post-processor
fits nothing; MuSc keeps the set it scored at validation for the test of the same files, so it encodes once). On one
CUDA device the model stays there between runs (``evaluation/device.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anomalib.data import AnomalibDataModule
from anomalib.engine import Engine
from anomalib.models import AnomalibModule
from lightning.pytorch import Callback

from .device import sweep_strategy
from .models import heatmap_visualizer
from .one_pass import ThresholdsFromTest, can_fit_on_test_pass

QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
"""Trainer arguments of the plugin's commands: they print their own progress and results."""


def validation_is_test_split(datamodule: AnomalibDataModule) -> bool:
    """Whether ``datamodule``'s validation items are its test items: same files, same augmentations.

    ``val_split_mode="same_as_test"`` (MVTec AD's, VisA's, the plugin's default) and one augmentations object.
    """
    from anomalib.data.utils import ValSplitMode

    return (
        getattr(datamodule, "val_split_mode", None) == ValSplitMode.SAME_AS_TEST
        and getattr(datamodule, "val_augmentations", None) is getattr(datamodule, "test_augmentations", None)
    )


def runs_in_one_pass(model: AnomalibModule, datamodule: AnomalibDataModule) -> bool:
    """Whether the test pass fits ``model``'s thresholds itself on ``datamodule`` (no validation pass)."""
    return validation_is_test_split(datamodule) and can_fit_on_test_pass(getattr(model, "post_processor", None))


def evaluation_engine(
    root: str | Path, model: AnomalibModule, datamodule: AnomalibDataModule, *, accelerator: str = "auto",
    devices: int | str | list[int] = 1, heatmap_dir: str | Path | None = None, callbacks: Sequence[Callback] = (),
    **trainer_args: object
) -> Engine:
    """An ``Engine`` that tests (or fits and tests) ``model`` on ``datamodule`` the plugin's way (see the module).

    Sets ``model.visualizer`` where ``heatmap_dir`` asks for heatmaps (to ``None`` on the one-pass path, whose
    heatmaps ``ThresholdsFromTest`` draws once it has fitted the thresholds); without ``heatmap_dir`` the two-pass
    path keeps the model's own.

    Args:
        root: the Engine's ``default_root_dir``.
        model: the model to test (its post-processor decides one pass or two).
        datamodule: the data it is tested on.
        accelerator: Lightning accelerator.
        devices: Lightning devices.
        heatmap_dir: folder of the heatmaps, or ``None``.
        callbacks: further trainer callbacks.
        **trainer_args: further Lightning ``Trainer`` arguments, over ``QUIET``.
    """
    callbacks = list(callbacks)
    arguments = {**QUIET, **trainer_args, **sweep_strategy(accelerator, devices)}
    if runs_in_one_pass(model, datamodule):
        model.visualizer = None
        callbacks.append(ThresholdsFromTest(heatmap_visualizer(heatmap_dir) if heatmap_dir is not None else None))
        arguments["limit_val_batches"] = 0
    elif heatmap_dir is not None:
        model.visualizer = heatmap_visualizer(heatmap_dir)
    return Engine(default_root_dir=root, callbacks=callbacks, accelerator=accelerator, devices=devices, **arguments)
