"""The plugin's one engine path: how ``evaluate``, ``benchmark`` and the demo build Anomalib's ``Engine`` to test.

``anomalib test`` runs a zero-shot model the way Anomalib runs its own (validation to fit the thresholds, then the
test). The plugin's commands build their engine here instead, through public arguments only:

* **one pass where validation would score the test files again**: where the datamodule's validation split is its
  test split and the model's post-processor thresholds raw scores (the ``evaluate`` sweep's default), validation
  is off (the trainer argument ``limit_val_batches=0``) and
  :class:`~anomalib_glocalclip.components.one_pass.ThresholdsFromTest` fits the thresholds on the test pass, then
  draws the heatmaps with them; elsewhere (e.g. normalised scores, as ``benchmark`` and the demo report) Anomalib
  validates first;
* **heatmaps on background threads** (``components/heatmap_writer.py``) on the one-pass path; on the two-pass
  path the visualizer draws them in the test loop, as in ``anomalib test``;
* **the model stays on its device** between runs on one CUDA device (``evaluation/device.py``), so a sweep does
  not copy it to the host and back for every category.

Example:
    >>> from anomalib.data import MVTecAD
    >>> from anomalib_glocalclip import AnoCLIP
    >>> model, datamodule = AnoCLIP(), MVTecAD(category="bottle")  # doctest: +SKIP
    >>> engine = evaluation_engine("results", model, datamodule, accelerator="cpu")  # doctest: +SKIP
    >>> metrics = engine.test(model, datamodule=datamodule)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anomalib.engine import Engine
from anomalib.models import AnomalibModule
from lightning.pytorch import Callback

from anomalib_glocalclip.components.heatmap_writer import HeatmapWriter
from anomalib_glocalclip.components.one_pass import ThresholdsFromTest, can_fit_on_test_pass

from .device import sweep_strategy
from .models import heatmap_visualizer

QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
"""Trainer arguments of the plugin's commands: they print their own progress and results."""


def validation_is_test_split(datamodule: Any) -> bool:
    """Whether ``datamodule``'s validation items are its test items: same files, same augmentations.

    True for Anomalib datamodules with ``val_split_mode="same_as_test"`` (MVTec AD's, VisA's and the plugin's
    default) whose validation and test augmentations are the same object (both ``None`` by default).
    """
    from anomalib.data.utils import ValSplitMode

    return (
        getattr(datamodule, "val_split_mode", None) == ValSplitMode.SAME_AS_TEST
        and getattr(datamodule, "val_augmentations", None) is getattr(datamodule, "test_augmentations", None)
    )


def runs_in_one_pass(model: AnomalibModule, datamodule: Any) -> bool:
    """Whether the test pass fits ``model``'s thresholds itself (no validation pass) on ``datamodule``.

    Where the validation split is the test split and the post-processor is Anomalib's, thresholding raw scores.
    """
    return validation_is_test_split(datamodule) and can_fit_on_test_pass(getattr(model, "post_processor", None))


def evaluation_engine(
    root: str | Path,
    model: AnomalibModule,
    datamodule: Any,
    *,
    accelerator: str = "auto",
    devices: int | str | list[int] = 1,
    heatmap_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    **trainer_args: Any,
) -> Engine:
    """An ``Engine`` that tests (or fits and tests) ``model`` on ``datamodule`` the plugin's way (see the module).

    Sets ``model.visualizer`` where ``heatmap_dir`` asks for heatmaps (and to ``None`` on the one-pass path, whose
    heatmaps the background writer draws); a model without ``heatmap_dir`` keeps its own visualizer on the
    two-pass path.

    Args:
        root: the Engine's ``default_root_dir``.
        model: the model to test (its post-processor decides one pass or two).
        datamodule: the data it is tested on.
        accelerator: Lightning accelerator. Defaults to ``"auto"``.
        devices: Lightning devices. Defaults to ``1``.
        heatmap_dir: folder of the heatmaps (``heatmap_visualizer``), or ``None``. Defaults to ``None``.
        callbacks: further trainer callbacks (e.g. progress, reading checks). Defaults to none.
        **trainer_args: further Lightning ``Trainer`` arguments (``max_epochs``, ``precision``...); the plugin's
            commands log nothing by default (``QUIET``).

    Returns:
        The engine; call its ``test`` (or ``fit`` then ``test``) with ``model`` and ``datamodule``.
    """
    callbacks = list(callbacks)
    arguments = {**QUIET, **trainer_args, **sweep_strategy(accelerator, devices)}
    if runs_in_one_pass(model, datamodule):
        model.visualizer = None
        heatmaps = _writer_factory(Path(heatmap_dir), datamodule) if heatmap_dir is not None else None
        callbacks.append(ThresholdsFromTest(heatmaps=heatmaps))
        arguments["limit_val_batches"] = 0
    elif heatmap_dir is not None:
        model.visualizer = heatmap_visualizer(heatmap_dir)
    return Engine(default_root_dir=root, callbacks=callbacks, accelerator=accelerator, devices=devices, **arguments)


def _writer_factory(heatmap_dir: Path, datamodule: Any) -> Any:
    """Factory of a test run's background heatmap writer, with Anomalib's file names under ``heatmap_dir``."""

    def build() -> HeatmapWriter:
        return HeatmapWriter(
            heatmap_visualizer(heatmap_dir),
            heatmap_dir,
            dataset_name=getattr(datamodule, "name", None),
            category=getattr(datamodule, "category", None),
        )

    return build
