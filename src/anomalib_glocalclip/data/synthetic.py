"""Training samples with synthetic anomalies drawn into a user's own normal images (``SyntheticSource``).

See the README's "Learn prompts from your own normal images". Anomalib's ``SyntheticAnomalyDataset`` is not used:
it reads 8-bit RGB only, looks for textures in ``./datasets/dtd`` only, draws without a seed, and replaces normal
images instead of adding to them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anomalib import TaskType
from anomalib.data import AnomalibDataModule, ImageItem
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import Transform
from torchvision.tv_tensors import Image, Mask

from .dataset import SampleDataset
from .io import read_image
from .layouts import get_layout
from .layouts.base import SAMPLE_COLUMNS
from .perlin import PerlinSynthesizer, to_float
from .synthetic_cache import default_cache_dir, fingerprint, write_manifest, write_sample

logger = logging.getLogger(__name__)

REGENERATE_MODES = ("once", "epoch")
SYNTHETIC_LABEL = "synthetic"
# Columns a synthetic dataset adds to a samples table; rows read from files have the fill values.
SYNTHETIC_COLUMNS = {"synthesizer": "", "synthetic_index": -1, "source_path": "", "redraw": False}


@dataclass
class SyntheticSource:
    """Normal images of one domain that become training samples with synthetic anomalies.

    The images come from ``datamodule`` (the normal images of its train split, e.g. ``MVTecAD(category="bottle")``
    or ``Folder(normal_dir=...)``) or from ``root`` read with ``layout`` (its normal images of ``split``).

    ``N`` normal images give ``N`` normal samples and ``max(1, round(N * r / (1 - r)))`` anomalous ones; sample
    ``k`` is drawn into image ``perm[k % N]`` of a permutation seeded with ``seed``.

    Attributes:
        root: folder of normal images (with the default ``layout``, the images directly inside it).
        datamodule: Anomalib datamodule whose train split holds the normal images (instead of ``root``).
        layout: dataset layout of ``root``: ``normal_folder`` (a flat folder of images), ``folder`` (``good/``),
            ``mvtec_ad``, ... (see ``data.layouts``); anomalous images of the layout are left out.
        categories: categories of ``layout`` to use; ``None`` = all.
        split: split of ``layout`` to take the normal images from.
        anomaly_ratio: fraction of anomalous samples among this source's samples, in (0, 1).
        anomaly_source_path: folder of textures that fill the anomalies (as DRAEM's DTD); ``None``: Perlin noise.
        seed: seed of the anomalies (and of which images receive them).
        regenerate: ``once``: drawn once per seed and stored (encoder outputs can be cached); ``epoch``: new
            anomalies every epoch, drawn from ``(seed, epoch)``.
        blend_factor: weight of the anomaly when blended into the image: a value or a ``(min, max)`` range.
        rotation_range: rotation range of the Perlin shapes in degrees.
        dual_mask: sometimes combine two Perlin shapes into one anomaly.
        cache_dir: where the drawn samples are stored; ``None``: ``synthetic_cache.default_cache_dir()``.
    """

    root: str | None = None
    datamodule: AnomalibDataModule | None = None
    layout: str = "normal_folder"
    categories: list[str] | None = None
    split: str = "train"
    anomaly_ratio: float = 0.5
    anomaly_source_path: str | None = None
    seed: int = 0
    regenerate: Literal["once", "epoch"] = "once"
    blend_factor: float | tuple[float, float] = (0.2, 1.0)
    rotation_range: tuple[float, float] = (-90.0, 90.0)
    dual_mask: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        """Check the options."""
        if (self.root is None) == (self.datamodule is None):
            msg = "A SyntheticSource needs exactly one of root (a folder of normal images) and datamodule."
            raise ValueError(msg)
        if not 0.0 < self.anomaly_ratio < 1.0:
            msg = f"anomaly_ratio, the fraction of anomalous samples, must lie in (0, 1), got {self.anomaly_ratio}."
            raise ValueError(msg)
        if self.regenerate not in REGENERATE_MODES:
            msg = f"regenerate must be one of {REGENERATE_MODES}, got {self.regenerate!r}."
            raise ValueError(msg)

    @property
    def name(self) -> str:
        """The source's name: the folder's name or the datamodule's category."""
        if self.datamodule is not None:
            return str(_datamodule_category(self.datamodule))
        return Path(self.root).expanduser().resolve().name

    @cached_property
    def synthesizer(self) -> PerlinSynthesizer:
        """The anomaly generator of this source."""
        return PerlinSynthesizer(self.seed, self.anomaly_source_path, self.blend_factor, self.rotation_range,
                                 self.dual_mask)

    def normal_samples(self) -> pd.DataFrame:
        """The normal images of this source, as a samples table (sorted by image path)."""
        if self.datamodule is not None:
            table = _datamodule_normals(self.datamodule)
        else:
            layout = get_layout(self.layout)
            categories = self.categories or layout.categories(self.root)
            table = pd.concat([layout.samples(self.root, c, self.split) for c in categories], ignore_index=True)
        anomalous = int((table["label_index"] != 0).sum())
        if anomalous:
            logger.info("Synthetic source %s: leaving out %d anomalous images.", self.name, anomalous)
        table = table[table["label_index"] == 0].sort_values("image_path", ignore_index=True)
        if table.empty:
            msg = f"Synthetic source {self.root or self.name} has no normal images to draw anomalies into."
            raise ValueError(msg)
        return table

    def samples(self, num_workers: int = 0) -> pd.DataFrame:
        """The samples of this source: its normal images, then its anomalous samples (drawn and stored if new).

        Args:
            num_workers: processes drawing the samples not stored yet.
        """
        normals = self.normal_samples()
        count = max(1, round(len(normals) * self.anomaly_ratio / (1.0 - self.anomaly_ratio)))
        order = np.random.default_rng(self.seed).permutation(len(normals))
        sources = [str(normals["image_path"].iloc[order[k % len(normals)]]) for k in range(count)]
        options = self._generator_options()
        cache_dir = Path(self.cache_dir or default_cache_dir()).expanduser()
        folder = cache_dir / f"{self.name}-{fingerprint(options, sources)}"
        image_paths = [folder / "images" / f"{k:06d}.png" for k in range(count)]
        mask_paths = [folder / "masks" / f"{k:06d}.png" for k in range(count)]
        missing = [k for k in range(count) if not (image_paths[k].is_file() and mask_paths[k].is_file())]
        if missing:
            write_manifest(folder, {**options, "sources": sources})
            _draw_all(self.synthesizer, [(k, sources[k], image_paths[k], mask_paths[k]) for k in missing], num_workers)
        logger.info("Synthetic source %s: %d normal and %d anomalous samples (%d newly drawn) in %s",
                    self.name, len(normals), count, len(missing), folder)
        anomalous = pd.DataFrame({
            "path": str(folder), "split": normals["split"].iloc[0], "label": SYNTHETIC_LABEL,
            "image_path": [str(path) for path in image_paths], "mask_path": [str(path) for path in mask_paths],
            "label_index": 1, "category": [normals["category"].iloc[order[k % len(normals)]] for k in range(count)],
            "pixel_labels": True, "synthesizer": self.key(), "synthetic_index": range(count), "source_path": sources,
            "redraw": self.regenerate == "epoch",
        })
        table = pd.concat([normals.assign(**SYNTHETIC_COLUMNS), anomalous], ignore_index=True)
        table["source"] = f"synthetic:{self.root or self.name}"
        table.attrs["task"] = TaskType.SEGMENTATION
        return table

    def key(self) -> str:
        """Names this source's synthesizer in a samples table (equal for sources that draw alike)."""
        return f"{self.name}:{fingerprint(self._generator_options(), [])}"

    def dataset(self, num_workers: int = 0, augmentations: Transform | None = None) -> SyntheticDataset:
        """This source's samples as a dataset."""
        return SyntheticDataset(self.samples(num_workers), {self.key(): self.synthesizer}, augmentations=augmentations,
                                name=f"synthetic_{self.name}")

    def _generator_options(self) -> dict[str, object]:
        """Everything besides the source images that decides the drawn pixels."""
        textures = self.synthesizer.textures
        return {"seed": self.seed, "blend_factor": self.blend_factor, "rotation_range": list(self.rotation_range),
                "dual_mask": self.dual_mask, "textures": fingerprint({}, textures) if textures else None}


class SyntheticDataset(SampleDataset):
    """A ``SampleDataset`` some of whose rows are synthetic anomalies, possibly redrawn every epoch.

    Rows with ``redraw`` set are drawn anew for every epoch ``e > 0`` from their source image with key
    ``(e, synthetic_index)``; epoch 0 is the stored draw. The epoch comes with the index: ``dataset[(e, i)]`` (see
    ``EpochSampler``); ``dataset[i]`` is epoch 0. Other rows are read as in ``SampleDataset``.

    Args:
        samples: samples table; synthetic rows have the columns ``synthesizer`` (a key of ``synthesizers``),
            ``synthetic_index``, ``source_path`` and ``redraw``.
        synthesizers: key -> anomaly generator of the rows drawn every epoch.
        task: ``segmentation`` or ``classification``; default: ``samples.attrs["task"]``.
        augmentations: transforms applied to image and mask together.
        name: dataset name shown by Anomalib.
    """

    def __init__(
        self, samples: pd.DataFrame, synthesizers: Mapping[str, PerlinSynthesizer], task: TaskType | str | None = None,
        augmentations: Transform | None = None, name: str = "synthetic",
    ) -> None:
        for column, fill in SYNTHETIC_COLUMNS.items():
            values = samples[column] if column in samples else pd.Series(fill, index=samples.index)
            samples = samples.assign(**{column: values.fillna(fill).astype(type(fill))})
        unknown = set(samples.loc[samples["redraw"], "synthesizer"]) - set(synthesizers)
        if unknown:
            msg = f"No synthesizer given for the samples of {sorted(unknown)}."
            raise ValueError(msg)
        super().__init__(samples, task=task, augmentations=augmentations, name=name)
        self.synthesizers = dict(synthesizers)

    @property
    def redraws_every_epoch(self) -> bool:
        """Whether some samples change from epoch to epoch (then their encoder outputs cannot be cached)."""
        return bool(self.samples["redraw"].any())

    def __getitem__(self, key: int | tuple[int, int]) -> ImageItem:
        """Sample ``key`` (an index, or ``(epoch, index)``): image ``[3, H, W]`` in [0, 1], mask ``[H, W]``, label."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        row = self.samples.iloc[index]
        if not row.redraw or epoch == 0:
            return super().__getitem__(index)
        synthesizer = self.synthesizers[row.synthesizer]
        image, mask = synthesizer(read_image(row.source_path), (int(epoch), int(row.synthetic_index)))
        image, mask = Image(to_float(image)), Mask(mask.to(torch.uint8))
        if self.augmentations is not None:
            image, mask = self.augmentations(image, mask)
        return ImageItem(
            image=image,
            gt_mask=mask,
            gt_label=torch.tensor(1),
            image_path=str(row.image_path),  # holds the epoch-0 draw of this sample
            mask_path=str(row.mask_path),
        )


def _datamodule_normals(datamodule: AnomalibDataModule) -> pd.DataFrame:
    """The normal images of ``datamodule``'s train split, as a samples table."""
    if getattr(datamodule, "train_data", None) is None:
        datamodule.setup()
    table = datamodule.train_data.samples
    category = str(_datamodule_category(datamodule))
    rows = table.assign(path=table.get("path", ""), split="train", label="good", mask_path="", category=category,
                        pixel_labels=True)
    return rows[SAMPLE_COLUMNS].reset_index(drop=True)


def _datamodule_category(datamodule: AnomalibDataModule) -> str:
    try:
        category = datamodule.category
    except (AttributeError, NotImplementedError):
        category = None
    return category or datamodule.name


class _Draws(Dataset):
    """Draws and stores one synthetic sample per item (run by dataloader workers in parallel)."""

    def __init__(self, synthesizer: PerlinSynthesizer, jobs: list[tuple[int, str, Path, Path]]) -> None:
        self.synthesizer = synthesizer
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> int:
        k, source, image_path, mask_path = self.jobs[index]
        try:
            image, mask = self.synthesizer(read_image(source), (0, k))
        except ValueError as error:
            msg = f"Cannot draw synthetic anomaly {k} into {source}: {error}"
            raise ValueError(msg) from error
        write_sample(image, mask, image_path, mask_path)
        return k


def _draw_all(synthesizer: PerlinSynthesizer, jobs: list[tuple[int, str, Path, Path]], num_workers: int) -> None:
    """Draw and store the samples of ``jobs`` (epoch 0), with ``num_workers`` processes."""
    # A generator of its own: iterating a DataLoader draws a seed, which must not shift the global random state
    # (a first run, which draws, would otherwise shuffle its training batches unlike a later one, which reads).
    loader = DataLoader(_Draws(synthesizer, jobs), batch_size=None, num_workers=min(num_workers, len(jobs)),
                        generator=torch.Generator())
    for _ in loader:
        pass
