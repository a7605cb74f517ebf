"""Files of Anomalib's own datasets that its reader would get wrong, refused by name at the start of a run.

Anomalib's datamodules (``--data MVTecAD``, ``Folder`` ...) read with ``Image.open(path).convert("RGB")``, which
clips 16-bit and float images and stops at a truncated file with an error naming none; the plugin's datamodules
read with ``data/io.py`` and need no check. ``predict`` on a folder is checked by ``predict_input``.
"""

from __future__ import annotations

from pathlib import Path

from anomalib.data import AnomalibDataset
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset

from anomalib_glocalclip.data.checks import check_samples, raise_for_problems
from anomalib_glocalclip.data.dataset import SampleDataset
from anomalib_glocalclip.utils.errors import PluginError

# The plugin's layout that reads the folders of an Anomalib datamodule (see ``data/layouts``).
LAYOUT_OF = {"MVTecAD": "mvtec_ad", "Visa": "visa", "MPDD": "mpdd", "BTech": "btad", "Kolektor": "ksdd",
             "Folder": "folder"}


class EmptySplitError(PluginError, ValueError):
    """A test split without the anomalous (or, from Anomalib's datamodules, normal) images its metrics need."""


class ReaderCheck(Callback):
    """Refuse, before the first batch, the files of Anomalib's datasets that its reader would read wrong or fail on.

    The models add it in ``configure_callbacks``. The ``on_*_start`` hooks look at the public ``samples`` of the
    datasets of the run's dataloaders, loaded by then; each file's header is read and its pixel data verified, about
    1 ms for a 900 x 900 PNG that Anomalib's reader decodes in 10-30 ms, so the run's decoding stays the one pass
    over the pixels (see ``data.checks.inspect_image_file``). On ``test`` the test split's labels are checked too.

    Raises:
        DataCheckError: a file is missing, unreadable, or read wrong by Anomalib's reader; the message names each
            file and the fix.
        EmptySplitError: see :func:`check_test_split`.
    """

    def __init__(self) -> None:
        self._checked: set[str] = set()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the train split's files."""
        del pl_module
        self._check(trainer, trainer.train_dataloader, "train data")

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the validation split's files."""
        del pl_module
        self._check(trainer, trainer.val_dataloaders, "validation data")

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the test split's labels, then its files."""
        del pl_module
        for dataset in _datasets(trainer.test_dataloaders):
            check_test_split(dataset, trainer.datamodule)
        self._check(trainer, trainer.test_dataloaders, "test data")

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the files of the predicted datasets (folders are ``PredictionTable``'s, see ``predict_input``)."""
        del pl_module
        self._check(trainer, trainer.predict_dataloaders, "predict data")

    def _check(self, trainer: Trainer, loaders: object, what: str) -> None:
        for dataset in _datasets(loaders):
            if not isinstance(dataset, AnomalibDataset) or isinstance(dataset, SampleDataset):
                continue  # the plugin's datasets are read by the plugin's reader
            samples = dataset.samples[~dataset.samples["image_path"].astype(str).isin(self._checked)]
            source = trainer.datamodule or dataset
            problems = check_samples(samples, verify=True, misread_fix=plugin_datamodule_fix(source))
            raise_for_problems(problems, what=f"The {what} of {type(source).__name__}", limit=10)
            self._checked.update(samples["image_path"].astype(str))


def check_test_split(dataset: Dataset, datamodule: LightningDataModule | None = None) -> None:
    """Refuse a test split without anomalous images, or one of Anomalib's datasets without normal ones.

    With no anomalous image there is nothing to find and every metric is undefined. The plugin's datamodules test
    anomalous-only sets as they are (polyps, ISIC, TN3K: pixel metrics only); Anomalib's datamodules fill a test
    folder without normal images from the train split (one image for a category without ``test/``), so there an
    anomalous-only or normal-only split is refused.

    Args:
        dataset: the test split, with its ``samples`` table; other datasets are left alone.
        datamodule: the datamodule it comes from, named in the message (``None``: the dataset is named).

    Raises:
        EmptySplitError: the message names the split, the datamodule and category, and the counts.
    """
    if not hasattr(dataset, "samples"):
        return
    labels = dataset.samples["label_index"].astype(int)
    anomalous, normal = int((labels == 1).sum()), int((labels == 0).sum())
    plugin = isinstance(dataset, SampleDataset)
    if anomalous and (normal or plugin):
        return
    source = datamodule or dataset
    source = getattr(source, "target", None) or source  # AuxiliaryTransfer tests on its target
    root, category = getattr(source, "root", None), getattr(source, "category", None) or ""
    where = f"{Path(root) / category}" if root is not None else "the data"
    why = (
        "there is nothing to detect and every metric is undefined"
        if not anomalous
        else "image metrics are undefined without normal images"
    )
    needs = "anomalous images" if plugin else "anomalous and normal (test/good) images"
    msg = (
        f"The test split of {where} ({type(source).__name__}) holds {anomalous} anomalous and {normal} normal "
        f"images: {why}. Test on a category whose test folder holds {needs}."
    )
    raise EmptySplitError(msg)


def plugin_datamodule_fix(datamodule: LightningDataModule | Dataset) -> str:
    """The fix for a file of ``datamodule`` that Anomalib's reader gets wrong: the plugin datamodule to use."""
    source = getattr(datamodule, "target", None) or datamodule  # AuxiliaryTransfer tests on its target
    layout = LAYOUT_OF.get(type(source).__name__)
    if layout is None:
        return (
            "read the data with the plugin's reader: --data LayoutDataModule --data.layout <the dataset's layout> "
            "(layouts: anomalib_glocalclip.data.layouts.LAYOUTS), or re-export the file as 8-bit"
        )
    category = getattr(source, "category", None)
    options = f"--data.layout {layout} --data.root {source.root}" + (f" --data.category {category}" if category else "")
    return (
        f"use --data LayoutDataModule {options} (in Python LayoutDataModule(..., layout={layout!r})), which reads "
        "it right, or re-export the file as 8-bit"
    )


def _datasets(loaders: object) -> list[Dataset]:
    """The datasets of a trainer's dataloaders: one loader, a list or a dict of them, or ``None``."""
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
    return [loader.dataset for loader in loaders if isinstance(loader, DataLoader)]
