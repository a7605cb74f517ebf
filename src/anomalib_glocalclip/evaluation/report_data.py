"""What a sweep's report needs of one category, collected during its test pass and kept beside its result.

:class:`ReportCollector` keeps, in bounded memory, each image's path, raw score and label, the maps of the worst
cases and pixel-score histograms. Trainer callbacks see a batch before the model's post-processor: scores are raw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning.pytorch import Callback
from torch.nn import functional

from anomalib_glocalclip.utils.files import atomic_path

from .store import ResultStore

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from lightning.pytorch import LightningModule, Trainer

N_WORST = 4
MAP_SIZE = 128
PIXEL_BINS = 1024


def report_data_path(output: str | Path, category: str) -> Path:
    """Where the sweep in ``output`` keeps ``category``'s report data: ``categories/<category>.report.npz``."""
    return ResultStore(output).path(category).with_suffix(".report.npz")


class PixelHistograms:
    """Counts of normal and anomalous pixel scores in ``bins`` shared bins of equal width, over a growing range.

    The bins lie on a grid: bin ``k`` holds the scores in ``[(first + k) * width, (first + k + 1) * width)``,
    ``width`` a power of two, so a score's bin ``floor(score / width)`` is exact in floating point. A value outside
    the range widens the bins by powers of two (old bins fall whole into new ones: counts stay exact), so the ROC
    drawn from the counts is exact at the bin edges and linear between them.
    """

    def __init__(self, bins: int = PIXEL_BINS) -> None:
        self.counts = np.zeros((2, bins), dtype=np.int64)  # [normal, anomalous]
        self.width = math.nan
        self.first = 0

    @property
    def edges(self) -> np.ndarray:
        """Bin edges, shape ``[bins + 1]``."""
        return (self.first + np.arange(self.counts.shape[1] + 1)) * self.width

    def add(self, scores: torch.Tensor, anomalous: torch.Tensor) -> None:
        """Count ``scores`` (any shape) by ``anomalous`` (same shape, bool); non-finite scores are left out."""
        scores, anomalous = scores.detach().flatten(), anomalous.detach().flatten().bool()
        if not torch.isfinite(scores).all():
            finite = torch.isfinite(scores)
            scores, anomalous = scores[finite], anomalous[finite]
        if scores.numel() == 0:
            return
        scores = scores if scores.dtype in {torch.float32, torch.float64} else scores.float()
        self._cover(float(scores.min()), float(scores.max()))
        bins = self.counts.shape[1]
        # Dividing by a power of two is exact: the bin of a score is exact in its own precision.
        index = torch.floor(scores / self.width).long() - self.first + bins * anomalous.long()
        self.counts += torch.bincount(index, minlength=2 * bins).reshape(2, bins).cpu().numpy()

    def _cover(self, low: float, high: float) -> None:
        """Widen the bins (by powers of two) and move the range until it holds ``[low, high]`` and every count."""
        bins = self.counts.shape[1]
        used = np.flatnonzero(self.counts.any(axis=0))
        if used.size:
            low = min(low, (self.first + used[0]) * self.width)
            high = max(high, (self.first + used[-1]) * self.width)
            width = self.width
        else:
            span = high - low or max(abs(low), 1.0) * 2.0**-20
            width = 2.0 ** math.ceil(math.log2(span / (bins - 2)))
        while math.floor(high / width) - math.floor(low / width) >= bins:
            width *= 2
        first = math.floor(low / width)
        if used.size:  # an old bin falls whole into the new bin of its lower edge (exact: powers of two)
            target = np.floor((self.first + used) * self.width / width).astype(np.int64) - first
            counts = np.zeros_like(self.counts)
            for row in range(2):
                np.add.at(counts[row], target, self.counts[row, used])
            self.counts = counts
        self.width, self.first = width, first


def histogram_roc(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every bin edge of :class:`PixelHistograms`' ``counts`` (``[2, B]``).

    A pixel is called anomalous where its score is ``>= edge``; the lowest edge calls every pixel anomalous.

    Returns:
        ``(fpr, tpr)``, each of shape ``[B + 1]``, non-increasing; ``nan`` for a class without pixels.
    """
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # pixels at or above each bin's lower edge
    above = np.concatenate([above, np.zeros((2, 1), dtype=above.dtype)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = above / above[:, :1]
    return rates[0], rates[1]


@dataclass
class ReportData:
    """One category's report data.

    Attributes:
        paths: image files, ``[N]``.
        scores: raw image scores, ``[N]`` float32.
        labels: ground-truth labels (1 anomalous), ``[N]`` int8.
        threshold: the post-processor's image threshold on the same scale (``nan``: none fitted).
        kept: indices into ``paths`` of the images whose maps are kept (worst-case candidates), ``[K]``.
        maps: their anomaly maps, ``[K, MAP_SIZE, MAP_SIZE]`` float16 (empty without maps).
        map_range: lowest and highest anomaly-map value of the whole category, ``[2]``.
        pixel_edges: pixel histogram bin edges, ``[B + 1]`` (empty without masks).
        pixel_counts: normal and anomalous pixel counts per bin, ``[2, B]`` (empty without masks).
    """

    paths: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    threshold: float = math.nan
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    maps: np.ndarray = field(default_factory=lambda: np.zeros((0, MAP_SIZE, MAP_SIZE), np.float16))
    map_range: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    pixel_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pixel_counts: np.ndarray = field(default_factory=lambda: np.zeros((2, 0), np.int64))

    def worst(self, anomalous: bool, n: int = N_WORST) -> list[int]:
        """Indices (into ``paths``) of the worst false negatives (``anomalous``) or false positives, worst first.

        Anomalib predicts anomalous where ``score > threshold``; none without a threshold.
        """
        if math.isnan(self.threshold):
            return []
        labels, scores = self.labels, self.scores
        wrong = (labels == 1) & (scores <= self.threshold) if anomalous else (labels == 0) & (scores > self.threshold)
        chosen = np.flatnonzero(wrong)
        # Ties in the order of the collector's candidates (the earlier image first), so their maps are kept.
        order = np.argsort(scores[chosen] if anomalous else -scores[chosen], kind="stable")
        return [int(index) for index in chosen[order][:n]]

    def map_of(self, index: int) -> np.ndarray | None:
        """The kept anomaly map of image ``index`` (``[MAP_SIZE, MAP_SIZE]`` float32), or ``None``."""
        where = np.flatnonzero(self.kept == index)
        return self.maps[where[0]].astype(np.float32) if len(where) and len(self.maps) else None

    def save(self, path: str | Path) -> Path:
        """Write the data to ``path`` (``.npz``) atomically."""
        with atomic_path(path) as temporary, temporary.open("wb") as file:
            np.savez_compressed(file, paths=np.asarray(self.paths, dtype=str), threshold=np.float64(self.threshold),
                                **{name: getattr(self, name) for name in _ARRAYS})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ReportData:
        """Read data written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as stored:
            return cls(paths=[str(each) for each in stored["paths"]], threshold=float(stored["threshold"]),
                       **{name: stored[name] for name in _ARRAYS})


_ARRAYS = ("scores", "labels", "kept", "maps", "map_range", "pixel_edges", "pixel_counts")


class ReportCollector(Callback):
    """Collect a category's :class:`ReportData` during its test pass (``n_worst`` cases per kind, maps ``map_size``)."""

    def __init__(self, n_worst: int = N_WORST, map_size: int = MAP_SIZE) -> None:
        self.n_worst = n_worst
        self.map_size = map_size
        self.reset()

    def reset(self) -> None:
        """Forget what was collected."""
        self._paths: list[str] = []
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._candidates: list[tuple[float, int, int, np.ndarray]] = []  # (score, label, index, map)
        self._map_range = [math.inf, -math.inf]
        self._pixels = PixelHistograms()
        self._threshold = math.nan

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start afresh."""
        del trainer, pl_module
        self.reset()

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: ImageBatch, *_: object) -> None:
        """Keep the batch's paths, scores, labels, worst-case candidates' maps and pixel counts."""
        del trainer, pl_module
        maps = outputs.anomaly_map
        scores = outputs.pred_score
        if scores is None:  # as Anomalib's post-processor: the map's maximum
            scores = torch.amax(maps, dim=(-2, -1))
        scores = scores.detach().float().flatten().cpu().numpy()
        labels = np.full(len(scores), -1, np.int8)  # unknown, should a batch come without labels
        if outputs.gt_label is not None:
            labels = outputs.gt_label.detach().flatten().cpu().numpy().astype(np.int8)
        first = len(self._paths)
        self._paths += [str(path) for path in outputs.image_path or [""] * len(scores)]
        self._scores.append(scores)
        self._labels.append(labels)
        if maps is None:
            return
        maps = maps.detach().float().reshape(len(scores), 1, *maps.shape[-2:])
        self._map_range = [min(self._map_range[0], float(maps.min())), max(self._map_range[1], float(maps.max()))]
        small = functional.interpolate(maps, size=(self.map_size, self.map_size), mode="area")[:, 0]
        small = small.to(torch.float16).cpu().numpy()
        for offset, (score, label) in enumerate(zip(scores, labels, strict=True)):
            self._candidates.append((float(score), int(label), first + offset, small[offset]))
        # Only the n_worst highest-scored normal and lowest-scored anomalous images' maps are kept.
        normal = sorted((each for each in self._candidates if each[1] == 0), key=lambda each: -each[0])
        anomalous = sorted((each for each in self._candidates if each[1] == 1), key=lambda each: each[0])
        self._candidates = normal[: self.n_worst] + anomalous[: self.n_worst]
        if outputs.gt_mask is not None:
            masks = outputs.gt_mask.reshape(len(scores), 1, *outputs.gt_mask.shape[-2:])
            if masks.shape != maps.shape:
                masks = functional.interpolate(masks.float(), size=maps.shape[-2:], mode="nearest")
            self._pixels.add(maps, masks > 0)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Read the image threshold the post-processor holds after the test (fitted by then)."""
        del trainer
        threshold = getattr(getattr(pl_module, "post_processor", None), "image_threshold", None)
        self._threshold = float(threshold) if isinstance(threshold, torch.Tensor) else math.nan

    @property
    def data(self) -> ReportData:
        """What was collected."""
        has_pixels = self._pixels.counts.sum() > 0
        return ReportData(
            paths=list(self._paths),
            scores=np.concatenate(self._scores) if self._scores else np.zeros(0, np.float32),
            labels=np.concatenate(self._labels) if self._labels else np.zeros(0, np.int8),
            threshold=self._threshold,
            kept=np.asarray([each[2] for each in self._candidates], dtype=np.int64),
            maps=np.stack([each[3] for each in self._candidates]) if self._candidates else ReportData().maps,
            map_range=np.asarray(self._map_range if self._candidates else [math.nan, math.nan]),
            pixel_edges=self._pixels.edges if has_pixels else np.zeros(0),
            pixel_counts=self._pixels.counts.copy() if has_pixels else np.zeros((2, 0), np.int64),
        )

    def save(self, path: str | Path) -> Path:
        """Write what was collected to ``path`` (see :meth:`ReportData.save`)."""
        return self.data.save(path)
