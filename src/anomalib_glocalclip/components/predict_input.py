"""``predict`` on a folder: every image read right (16-bit, palette, RGBA ...), unreadable files skipped and named.

``Engine.predict(data_path=...)``, and so ``anomalib predict --data <folder>``, wraps the folder in Anomalib's
``PredictDataset``, whose reader clips 16-bit images to white and stops the whole run at the first unreadable
file. :func:`read_predict_folders_safely`, called from a ``setup("predict")`` hook, puts a
:class:`~anomalib_glocalclip.data.safe_datasets.SafePredictDataset` over the same files in its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from torch.utils.data import DataLoader

from anomalib_glocalclip.compat import map_predict_dataloaders

if TYPE_CHECKING:
    from lightning.pytorch import Trainer


class PredictInput(NamedTuple):
    """What :func:`read_predict_folders_safely` found.

    Attributes:
        skipped: ``(path, reason)`` of every file left out, in the folders' order.
        readable: number of images left to predict in the swapped loaders.
        other_data: ``predict`` has data besides the swapped loaders (other loaders, a datamodule).
    """

    skipped: list[tuple[Path, str]]
    readable: int
    other_data: bool


def read_predict_folders_safely(trainer: Trainer) -> PredictInput:
    """Swap the ``PredictDataset`` loaders given to ``trainer.predict`` for ones that read with the plugin's reader.

    Each file is decoded once up front; an unreadable one is left out with a warning naming it. Loaders over
    other datasets, and datamodules, are kept as they are.

    Args:
        trainer: the trainer, in a ``setup("predict")`` hook.

    Returns:
        The files left out, the number of readable ones, and whether there is other data.
    """
    # Imported here: the data package imports Anomalib's model registry, which imports the models being defined.
    from anomalib.data.predict import PredictDataset

    from anomalib_glocalclip.data.safe_datasets import SafePredictDataset

    skipped: list[tuple[Path, str]] = []
    readable = 0
    swapped = 0

    def replace(loader: DataLoader) -> DataLoader:
        nonlocal readable, swapped
        if type(loader.dataset) is not PredictDataset:
            return loader
        dataset = SafePredictDataset(loader.dataset)
        skipped.extend(dataset.skipped)
        readable += len(dataset)
        swapped += 1
        options: dict[str, Any] = {"num_workers": loader.num_workers, "pin_memory": loader.pin_memory}
        if loader.num_workers > 0:
            options["persistent_workers"] = loader.persistent_workers
        return DataLoader(dataset, batch_size=loader.batch_size, collate_fn=dataset.collate_fn, **options)

    total = map_predict_dataloaders(trainer, replace)
    return PredictInput(skipped, readable, other_data=total != swapped)
