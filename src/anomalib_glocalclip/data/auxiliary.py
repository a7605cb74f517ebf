"""Auxiliary-transfer datamodule: learn prompts on other datasets, validate and test on the target.

GlocalCLIP learns its prompts on the *test* split (anomalies with masks) of every category of auxiliary datasets
(or on synthetic anomalies) and is then used zero-shot elsewhere; no stock Anomalib datamodule puts anomalies into
a train split. The README shows the command lines (``--data AuxiliaryTransfer``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import pandas as pd
from anomalib.data import AnomalibDataModule
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import Transform

from anomalib_glocalclip.utils.model_config import normalise_spec

from .dataset import SampleDataset
from .epoch_sampler import epoch_dataloader
from .layouts import get_layout
from .synthetic import SyntheticDataset, SyntheticSource

logger = logging.getLogger(__name__)
_Source = TypeVar("_Source")


@dataclass
class AuxiliarySource:
    """One auxiliary dataset.

    Attributes:
        layout: dataset layout name (``mvtec_ad``, ``visa``, ``folder``, ...; see ``data.layouts``).
        root: dataset root in its official download layout.
        categories: categories to use; ``None`` = all found under ``root``.
        split: which split to learn from; the paper uses ``test`` (anomalies with masks).
    """

    layout: str
    root: str
    categories: list[str] | None = None
    split: str = "test"

    def samples(self) -> pd.DataFrame:
        """The samples of every selected category, as one table."""
        layout = get_layout(self.layout)
        categories = self.categories or layout.categories(self.root)
        tables = [layout.samples(self.root, category, self.split) for category in categories]
        table = pd.concat(tables, ignore_index=True)
        table["source"] = f"{layout.name}:{self.root}"
        return table


class TrainSplitCache(Protocol):
    """Serves a deterministic train split in a cheaper form (GlocalCLIP's ``FeatureCacheCallback`` registers one).

    A model that wants it sets it as ``AuxiliaryTransfer.train_cache``; the datamodule knows nothing of the model.
    """

    def dataloader(self, dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader | None:
        """A dataloader standing in for the images of ``dataset``, or ``None`` to train on the images."""


class AuxiliaryTransfer(AnomalibDataModule):
    """Train on auxiliary datasets; validate and test on a target datamodule.

    Args:
        auxiliary: one or more auxiliary sources (their samples are pooled into the train split).
            Optional when ``synthetic`` is given.
        target: any Anomalib datamodule of the target (e.g. ``MVTecAD(category="bottle")``), or its config as
            the CLI takes it (``{"class_path": "MVTecAD", "init_args": {"category": "bottle"}}``; a class name or a
            dotted path); its validation split sets thresholds and normalisation, its test split is tested.
            ``None``: no validation/test.
        train_batch_size: training batch size (8 in the paper).
        eval_batch_size: batch size of validation and test (overrides the target's).
        num_workers: dataloader workers (overrides the target's).
        train_augmentations: augmentations of the auxiliary images (none in the paper).
        augmentations: augmentations of every split, unless a split-specific one is given.
        seed: seed of Anomalib's split utilities.
        synthetic: one or more sources of normal images that receive synthetic anomalies (pooled with the
            auxiliary samples). With ``regenerate="epoch"`` on any of them, encoder outputs are not cached.
    """

    def __init__(
        self,
        auxiliary: AuxiliarySource | Sequence[AuxiliarySource] | None = None,
        target: AnomalibDataModule | dict[str, object] | str | None = None,
        train_batch_size: int = 8,
        eval_batch_size: int = 8,
        num_workers: int = 4,
        train_augmentations: Transform | None = None,
        augmentations: Transform | None = None,
        seed: int | None = None,
        synthetic: SyntheticSource | Sequence[SyntheticSource] | None = None,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            train_augmentations=train_augmentations, augmentations=augmentations, seed=seed,
        )
        self.auxiliary = _as_sources(auxiliary, AuxiliarySource)
        self.synthetic = _as_sources(synthetic, SyntheticSource)
        if not self.auxiliary and not self.synthetic:
            msg = (
                "AuxiliaryTransfer needs at least one source to learn from: auxiliary datasets with anomalies "
                "(auxiliary=...) or normal images that receive synthetic anomalies (synthetic=...)."
            )
            raise ValueError(msg)
        self.train_cache: TrainSplitCache | None = None
        self.target = target = _as_datamodule(target)
        if target is not None:
            target.eval_batch_size = eval_batch_size
            target.num_workers = num_workers
            self.category = target.category or getattr(target, "name", "target")
        else:
            self.category = "auxiliary"

    @property
    def name(self) -> str:
        """``<auxiliary layouts>_to_<target>``, used in Anomalib's result paths."""
        names = [*(get_layout(s.layout).name for s in self.auxiliary), *("synthetic" for _ in self.synthetic)]
        sources = "+".join(dict.fromkeys(names))
        target = self.target.name if self.target is not None else "none"
        return f"{sources}_to_{target}"

    def prepare_data(self) -> None:
        """Draw the synthetic samples not stored yet (once, not on every rank); let the target prepare its data."""
        for source in self.synthetic:
            source.samples(num_workers=self.num_workers)
        if self.target is not None:
            self.target.prepare_data()

    def _setup(self, _stage: str | None = None) -> None:
        tables = [source.samples() for source in self.auxiliary]
        tables += [source.samples(num_workers=self.num_workers) for source in self.synthetic]
        table = pd.concat(tables, ignore_index=True)
        table["split"] = "train"
        pixel_labels = bool(table["pixel_labels"].any())
        table.attrs["task"] = "segmentation" if pixel_labels else "classification"
        if self.synthetic:
            synthesizers = {source.key(): source.synthesizer for source in self.synthetic}
            self.train_data = SyntheticDataset(table, synthesizers, name=self.name)
        else:
            self.train_data = SampleDataset(table, name=self.name)
        with_masks = int(((table["label_index"] == 1) & table["pixel_labels"]).sum())
        logger.info("Auxiliary training data: %d images (%d anomalous, %d with masks) from %d categories",
                    len(table), int(table["label_index"].sum()), with_masks, table["category"].nunique())
        if self.target is not None:
            self.target.setup()
            self.val_data = self.target.val_data
            self.test_data = self.target.test_data

    def _create_test_split(self) -> None:
        """The target datamodule made its own test split."""

    def _create_val_split(self) -> None:
        """The target datamodule made its own validation split."""

    def train_dataloader(self) -> DataLoader:
        """The auxiliary images, or what a registered ``train_cache`` serves in their place.

        Only a deterministic train split (no augmentation, no anomaly redrawn every epoch) goes to ``train_cache``;
        redrawn samples get the epoch with every index instead.
        """
        if getattr(self.train_data, "redraws_every_epoch", False):
            logger.info("Synthetic anomalies are redrawn every epoch: training on images, not on cached features.")
            collate_fn = self.external_collate_fn or self.train_data.collate_fn
            return epoch_dataloader(self.train_data, self.train_batch_size, self.num_workers, collate_fn,
                                    epoch=self._current_epoch)
        if self.train_cache is not None and self.train_augmentations is None:
            loader = self.train_cache.dataloader(self.train_data, self.train_batch_size, self.num_workers)
            if loader is not None:
                return loader
        return super().train_dataloader()

    def _current_epoch(self) -> int:
        """The epoch the trainer runs (0 without a trainer)."""
        return self.trainer.current_epoch if self.trainer is not None else 0

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The target's validation data, or nothing without a target."""
        return super().val_dataloader() if self.target is not None else []

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        """The target's test data, or nothing without a target."""
        return super().test_dataloader() if self.target is not None else []


def _as_sources(sources: _Source | dict | Sequence[_Source | dict] | None, cls: type[_Source]) -> list[_Source]:
    """``None``, one source, or a sequence of sources (dataclass instances or dicts of their fields), as a list."""
    if sources is None:
        return []
    sources = [sources] if isinstance(sources, (cls, dict)) else list(sources)
    return [cls(**source) if isinstance(source, dict) else source for source in sources]


def _as_datamodule(target: object) -> AnomalibDataModule | None:
    """A datamodule as it is, or built from ``{"class_path": ..., "init_args": {...}}`` or a class name.

    Raises:
        TypeError: ``target`` is neither, or names a class that is not an Anomalib datamodule.
    """
    if target is None or isinstance(target, AnomalibDataModule):
        return target
    if not isinstance(target, str | dict):
        msg = f"AuxiliaryTransfer target must be an Anomalib datamodule or its config, got {type(target).__name__}."
        raise TypeError(msg)
    spec = normalise_spec(target)
    class_path = spec["class_path"]
    module_name, _, name = class_path.rpartition(".")  # a class name alone is one of anomalib.data
    cls = getattr(importlib.import_module(module_name or "anomalib.data"), name, None)
    if not (isinstance(cls, type) and issubclass(cls, AnomalibDataModule)):
        msg = (
            f"AuxiliaryTransfer target {class_path!r} is not an Anomalib datamodule. Give a class of anomalib.data "
            "(e.g. MVTecAD, Folder) or a dotted path to a datamodule class."
        )
        raise TypeError(msg)
    return cls(**spec["init_args"])
