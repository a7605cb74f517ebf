"""A dataset of any layout as an Anomalib datamodule whose every file is read by the plugin's reader.

The validation split is the test split (``same_as_test``) unless asked otherwise; a test split is the dataset's own
(anomalous-only sets stay so, no normal images are borrowed).
"""

from __future__ import annotations

from typing import ClassVar

from anomalib.data import AnomalibDataModule
from anomalib.data.utils import ValSplitMode
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import Transform

from .dataset import SampleDataset
from .layouts import DatasetLayout, DatasetLayoutError, get_layout


class LayoutDataModule(AnomalibDataModule):
    """Datamodule over one category of a dataset layout.

    Args:
        root: dataset root in its official download layout.
        category: category to load; ``None`` for single-category datasets.
        layout: layout name (see ``layouts.LAYOUTS``); subclasses fix it with ``default_layout``.
        train_batch_size: batch size of the train split (when the dataset has one).
        eval_batch_size: batch size of validation and test.
        num_workers: dataloader workers.
        train_augmentations: augmentations of the train split.
        val_augmentations: augmentations of the validation split.
        test_augmentations: augmentations of the test split.
        augmentations: augmentations of every split without its own.
        val_split_mode: ``same_as_test`` (default), ``from_test`` or ``none``.
        val_split_ratio: fraction of the test split used for validation with ``from_test``.
        seed: seed of the validation split.
        resize_masks: resize masks of another size than their image to the image's size (nearest neighbour)
            instead of refusing them.
    """

    default_layout: ClassVar[DatasetLayout | None] = None

    def __init__(
        self,
        root: str = "./datasets",
        category: str | None = None,
        layout: str | None = None,
        train_batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 8,
        train_augmentations: Transform | None = None,
        val_augmentations: Transform | None = None,
        test_augmentations: Transform | None = None,
        augmentations: Transform | None = None,
        val_split_mode: ValSplitMode | str = ValSplitMode.SAME_AS_TEST,
        val_split_ratio: float = 0.5,
        seed: int | None = None,
        resize_masks: bool = False,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            train_augmentations=train_augmentations, val_augmentations=val_augmentations,
            test_augmentations=test_augmentations, augmentations=augmentations,
            val_split_mode=val_split_mode, val_split_ratio=val_split_ratio, seed=seed,
        )
        if layout is None and self.default_layout is None:
            msg = f"{type(self).__name__} needs a layout name (see anomalib_glocalclip.data.layouts.LAYOUTS)."
            raise ValueError(msg)
        self.layout = get_layout(layout) if layout is not None else self.default_layout
        self.root = root
        self.category = category or ""
        self.resize_masks = resize_masks

    @property
    def name(self) -> str:
        """The datamodule's class name, or the layout's for the generic class."""
        return type(self).__name__ if self.default_layout is not None else self.layout.name

    def _setup(self, _stage: str | None = None) -> None:
        category = self.category or None
        test = self.layout.samples(self.root, category, "test")
        self.category = str(test["category"].iloc[0])
        self.test_data = SampleDataset(test, name=self.name, resize_masks=self.resize_masks)
        try:
            train = self.layout.samples(self.root, self.category, "train")
        except DatasetLayoutError:
            return  # test-only dataset
        self.train_data = SampleDataset(train, name=self.name, resize_masks=self.resize_masks)

    def _create_test_split(self) -> None:
        """The test split is the dataset's own, as downloaded (anomalous-only sets stay anomalous-only)."""

    def train_dataloader(self) -> DataLoader:
        """The train split, or a clear error for datasets that have none."""
        if not hasattr(self, "train_data"):
            msg = (
                f"{self.name} ({self.root}, category {self.category!r}) has no train split; it can only be used "
                "for zero-shot testing, or as auxiliary data through AuxiliaryTransfer."
            )
            raise DatasetLayoutError(msg)
        return super().train_dataloader()
