"""MuSc: zero-shot anomaly detection by mutual scoring of the images of one set (Li et al., ICLR 2024).

API (for scripts): ``MuSc(backbone="ViT-L-14-336", pretrained="openai", image_size=518, feature_layers=(6, 12, 18,
24), r_list=(1, 3, 5), interval=(0.0, 0.3), rscin_k=(1, 2, 3), preprocessing="reference", quick_gelu=None,
precision="auto", max_set_size=None, set_split_seed=0, few_shot=0, reference_images=None, few_shot_seed=0,
pre_processor=True, post_processor=True, evaluator=True, visualizer=True, label_threshold=None,
max_elements=2**28, encoder_batch_size=8, tokens_on_host=None)``.

Each dataloader of a validation, test or predict run is one set: at the run's start the whole set is encoded once and
scored, and every step returns its images' share. ``Engine.predict`` / ``Engine.test`` batches carry:

- ``pred_score``: the reference's image score: the maximum of the map, then RsCIN (min-max scaled within the set, so
  in [0, 1] and relative to the set); the map's maximum when ``rscin_k=None`` or the set has one image.
- ``anomaly_map``: ``[B, S, S]`` mean interval distance (the reference's map, distance units, not normalised).
- ``pred_label`` / ``pred_mask``: the image's map maximum / the pixel above a threshold in distance units, either
  ``label_threshold`` or, by default, the set's robust outlier threshold (``torch_model.outlier_threshold``). The
  default post-processor neither normalises nor re-thresholds (no threshold or range carries from one set to
  another); the evaluator's AUROC, AUPR, F1Max and AUPRO do not depend on thresholds. The post-processor's
  ``image_threshold``/``pixel_threshold`` and ``pixel_min``/``pixel_max`` state the last scored set's threshold and
  map range (so reports and the page show the threshold the labels and masks used); with its thresholding and
  normalisation off Anomalib applies neither.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import nn
from torch.utils.data import DataLoader, Dataset

from anomalib_glocalclip.compat import set_post_processor_thresholds
from anomalib_glocalclip.components import ZeroShotCLIPMixin
from anomalib_glocalclip.components.few_shot import choose_reference_paths
from anomalib_glocalclip.few_shot import read_reference_images
from anomalib_glocalclip.utils.errors import PluginError

from .mutual_scoring import DEFAULT_MAX_ELEMENTS
from .torch_model import EncodedImages, MuScModel, SetScores, outlier_threshold, upsample_maps

logger = logging.getLogger(__name__)

SMALL_SET = 20
"""Below this many images a set is smaller than any the method was published on (42 to 201): a warning."""


class SetTooSmallError(PluginError, ValueError):
    """MuSc was given a set of one image and no reference images."""


@dataclass
class ScoredSet:
    """One dataloader's set, scored: its image keys (paths), ``SetScores``, label threshold and augmentations."""

    keys: list[str]
    scores: SetScores | None
    label_threshold: float
    augmentations: str = "None"
    """``repr`` of the dataset's augmentations: a set is kept only for the same files read the same way."""

    def __post_init__(self) -> None:
        """Index the keys once: ``positions[key]`` is the image's place in the set."""
        self.positions = {key: position for position, key in enumerate(self.keys)}

    def index(self, keys: list[str]) -> torch.Tensor:
        """Positions of ``keys`` in the set; a clear error for a key the set does not hold."""
        positions = self.positions
        missing = [key for key in keys if key not in positions]
        if missing:
            msg = f"MuSc: images {missing[:3]} were not in the set scored at the start of the run."
            raise RuntimeError(msg)
        return torch.tensor([positions[key] for key in keys])


def _dataset_paths(dataset: Dataset) -> list[str] | None:
    """The image paths of an Anomalib dataset without reading its images, if it lists them."""
    samples = getattr(dataset, "samples", None)
    if samples is not None and "image_path" in getattr(samples, "columns", ()):
        return [str(path) for path in samples["image_path"]]
    filenames = getattr(dataset, "image_filenames", None)
    return [str(path) for path in filenames] if filenames is not None else None


def _batch_keys(batch: Batch) -> list[str]:
    """The batch's image paths: how each image finds its place in the set."""
    paths = getattr(batch, "image_path", None)
    if not paths:
        msg = "MuSc needs each image's path (batch.image_path) to find it in its set; this dataset gives none."
        raise ValueError(msg)
    return [str(path) for path in paths]


class MuSc(ZeroShotCLIPMixin, AnomalibModule):
    """MuSc: every image of a set scored against all the others (no training, no prompts, no normal images).

    Args:
        backbone: open_clip model name or model-config JSON file.
        pretrained: open_clip pretrained tag, local weight file, or ``None`` for random weights (tests only).
        image_size: input size of the vision tower and the pre-processor's resize (the reference: 518).
        feature_layers: 1-indexed residual blocks whose plain tokens are scored (the reference's ``[5, 11, 17, 23]``
            plus one; ``(3, 6, 9, 12)`` for 12-block towers such as ViT-B-16).
        r_list: LNAMD aggregation degrees (odd neighbourhood sizes).
        interval: ranks of each patch's nearest-image distances that are averaged: values below 1 are fractions of
            the other images, truncated as the reference does (at least one image); values of 1 or more are counts.
        rscin_k: RsCIN's neighbour counts; ``None`` switches RsCIN off. VisA's preset is ``(1, 8, 9)``; a k larger
            than the set is clamped to it, with a warning.
        preprocessing: ``"reference"``: the reference's PIL bicubic squash to ``image_size``; ``"anomalib"``:
            torchvision's tensor resize.
        quick_gelu: ``None``: as the reference (GELU when OpenAI's weights run at a size other than their native one,
            QuickGELU otherwise); ``True``/``False`` force it.
        precision: ``"auto"``/``"fp16"``: fp16 autocast backbone and fp16 mutual-scoring inputs (fp32 accumulation)
            on CUDA, fp32 on CPUs; ``"fp32"``: fp32 everywhere. Never bf16.
        max_set_size: sets larger than this are split into random subsets (seeded by ``set_split_seed``, never by
            label; never of one image), each scored apart; RsCIN runs over all of them (the reference's
            ``divide_num``).
        set_split_seed: seed of that split.
        few_shot: ``k`` normal reference images (of the datamodule's train split, or of ``reference_images``): they
            join every image's "other images" but are never scored and take no part in RsCIN.
        reference_images: folder of normal reference images (all of them when ``few_shot`` is 0).
        few_shot_seed: seed of the choice of the ``k`` references.
        pre_processor: pre-processor, ``True`` for the default (``preprocessing``'s resize + CLIP normalisation).
        post_processor: post-processor, ``True`` for Anomalib's with normalisation and thresholding off.
        evaluator: evaluator, ``True`` for the plugin's zero-shot evaluator.
        visualizer: visualizer, ``True`` for the plugin's default.
        label_threshold: distance above which an image (its map's maximum) and a pixel are labelled anomalous;
            ``None``: the set's robust outlier threshold (median + 3 x 1.4826 x MAD of the image maxima).
        max_elements: element budget of the largest mutual-scoring temporary (2**28: 1 GiB of fp32).
        encoder_batch_size: images per backbone pass.
        tokens_on_host: keep the set's tokens in host memory while scoring; ``None``: on CUDA, when they would not
            leave room for scoring on the device (``MuScModel.keeps_tokens_on_host``).
    """

    reference_image_filter = "bicubic"  # xrli-U/MuSc: open_clip's Resize((S, S), BICUBIC) on PIL images

    def __init__(
        self,
        backbone: str = "ViT-L-14-336",
        pretrained: str | None = "openai",
        image_size: int = 518,
        feature_layers: tuple[int, ...] = (6, 12, 18, 24),
        r_list: tuple[int, ...] = (1, 3, 5),
        interval: tuple[float, float] = (0.0, 0.3),
        rscin_k: tuple[int, ...] | None = (1, 2, 3),
        preprocessing: str = "reference",
        quick_gelu: bool | None = None,
        precision: str = "auto",
        max_set_size: int | None = None,
        set_split_seed: int = 0,
        few_shot: int = 0,
        reference_images: str | None = None,
        few_shot_seed: int = 0,
        pre_processor: nn.Module | bool = True,
        post_processor: nn.Module | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
        label_threshold: float | None = None,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        encoder_batch_size: int = 8,
        tokens_on_host: bool | None = None,
    ) -> None:
        if max_set_size is not None and max_set_size < 2:
            msg = f"max_set_size must be at least 2 (or None for no split), got {max_set_size}."
            raise ValueError(msg)
        super().__init__(image_size=image_size, pre_processor=pre_processor, post_processor=post_processor,
                         evaluator=evaluator, visualizer=visualizer, preprocessing=preprocessing)
        self.init_few_shot(few_shot, reference_images, few_shot_seed, weight=1.0)
        self.model = MuScModel(
            backbone=backbone, pretrained=pretrained, image_size=image_size, feature_layers=feature_layers,
            r_list=r_list, interval=interval, rscin_k=rscin_k, quick_gelu=quick_gelu, precision=precision,
            max_elements=max_elements, encoder_batch_size=encoder_batch_size, tokens_on_host=tokens_on_host,
        )
        self.max_set_size, self.set_split_seed, self.label_threshold = max_set_size, set_split_seed, label_threshold
        self.references: EncodedImages | None = None
        self.scored_sets: list[ScoredSet] = []

    @staticmethod
    def configure_post_processor() -> PostProcessor:
        """Anomalib's post-processor with normalisation and thresholding off: scores and maps as the reference's.

        MuSc's scores are relative to their set; a range or threshold fitted on one set would not carry to another.
        Labels come from the model (``label_threshold``).
        """
        return PostProcessor(enable_normalization=False, enable_thresholding=False)

    @staticmethod
    def configure_optimizers() -> None:
        """Nothing is trained."""
        return

    @property
    def trainer_arguments(self) -> dict[str, object]:
        """No special trainer arguments."""
        return {}

    def val_dataloader(self) -> list:
        """Nothing: without a datamodule there is no validation (MuSc needs none)."""
        return []

    # ----- references -----
    def forget_references(self) -> None:
        """Drop the encoded references: the next run encodes them anew (e.g. of another category)."""
        self.references = None

    def prepare_references(self) -> None:
        """Encode the few-shot reference images once (they join every set's "other images")."""
        if not self.is_few_shot or self.references is not None:
            return
        datamodule = getattr(self.attached_trainer, "datamodule", None)
        paths = choose_reference_paths(self.few_shot, self.reference_images, self.few_shot_seed, datamodule, self.name)
        self.references = self.model.encode(read_reference_images(paths, self._transform()))
        self.reference_paths = [str(path) for path in paths]
        logger.info("MuSc: %d normal reference images (seed %d) join every set: %s", len(paths), self.few_shot_seed,
                    ", ".join(self.reference_paths))

    def _transform(self) -> nn.Module:
        transform = getattr(self.pre_processor, "transform", None)
        if transform is None:
            transform = self.configure_pre_processor((self.image_size, self.image_size), self.preprocessing).transform
        return transform

    # ----- sets: one per dataloader, scored at the start of a run -----
    def on_validation_start(self) -> None:
        """Score each validation dataloader's set (after the references)."""
        super().on_validation_start()
        self.prepare_sets(self.trainer.val_dataloaders)

    def on_test_start(self) -> None:
        """Score each test dataloader's set, unless the same files were scored at validation."""
        super().on_test_start()
        self.prepare_sets(self.trainer.test_dataloaders)

    def on_predict_start(self) -> None:
        """Score each predict dataloader's set: its readable images (``PredictionTable`` left the others out first)."""
        super().on_predict_start()
        self.prepare_sets(self.trainer.predict_dataloaders)

    def on_test_end(self) -> None:
        """Drop the scored sets."""
        super().on_test_end()
        self.scored_sets = []

    def on_predict_end(self) -> None:
        """Drop the scored sets."""
        super().on_predict_end()
        self.scored_sets = []

    def prepare_sets(self, loaders: DataLoader | list[DataLoader] | None) -> None:
        """Score the set of each dataloader; a set of the same files as one already scored is kept, others dropped.

        Each set is read through a fresh unshuffled ``DataLoader`` over the loader's dataset (iterating the trainer's
        own loader here would exhaust its sampler) and the pre-processor's transform.
        """
        loaders = [] if loaders is None else list(loaders) if isinstance(loaders, list | tuple) else [loaders]
        previous = {(frozenset(scored.keys), scored.augmentations): scored for scored in self.scored_sets}
        scored_sets = []
        for loader in loaders:
            paths = _dataset_paths(loader.dataset)
            augmentations = repr(getattr(loader.dataset, "augmentations", None))
            kept = previous.get((frozenset(paths), augmentations)) if paths else None
            if kept is not None:
                logger.info("MuSc: the set of %d images was scored earlier in this run; its scores are kept.",
                            len(paths))
            scored_sets.append(kept or self.score_loader(loader, augmentations))
        self.scored_sets = scored_sets

    def score_loader(self, loader: DataLoader, augmentations: str = "None") -> ScoredSet:
        """Encode every image of ``loader``'s dataset once and score them as one set."""
        # The encoder's batch, not the loader's: a predict folder comes in batches of one, and the backbone runs
        # ~2.5x slower per image at batch 1 on a CPU (scores do not depend on it: LayerNorm is per image).
        fresh = DataLoader(loader.dataset, batch_size=self.model.encoder_batch_size, shuffle=False,
                           num_workers=loader.num_workers, collate_fn=loader.collate_fn)
        transform, keys, parts = self._transform(), [], []
        for batch in fresh:
            keys += _batch_keys(batch)
            parts.append(self.model.encode(transform(batch.image)))
        if not parts:
            return ScoredSet([], None, float("nan"), augmentations)
        return self.score_encoded(keys, EncodedImages.cat(parts), augmentations)

    def score_encoded(self, keys: list[str], encoded: EncodedImages, augmentations: str = "None") -> ScoredSet:
        """Score the encoded images (named by ``keys``) as one set, with the references; its label threshold.

        The post-processor is given the set's threshold and map range to state (the page's threshold box and
        colour bar, the sweep's report); with its thresholding and normalisation off Anomalib applies neither.

        Raises:
            SetTooSmallError: one image and no references.
        """
        self._check_set_size(keys)
        scores = self.model.score_set(encoded, self.references, self.max_set_size, self.set_split_seed)
        threshold = self.label_threshold
        if threshold is None:
            threshold = outlier_threshold(scores.image_scores)
        if isinstance(self.post_processor, PostProcessor):
            set_post_processor_thresholds(self.post_processor, image=threshold, pixel=threshold)
            self.post_processor.pixel_min.fill_(float(scores.patch_maps.min()))
            self.post_processor.pixel_max.fill_(float(scores.patch_maps.max()))
        logger.info("MuSc: scored a set of %d images%s; label threshold %.4g (distance units, %s).", len(keys),
                    f" with {self.references.count} references" if self.references is not None else "", threshold,
                    "label_threshold" if self.label_threshold is not None else "the set's outlier threshold")
        return ScoredSet(keys, scores, threshold, augmentations)

    def _check_set_size(self, keys: list[str]) -> None:
        references = 0 if self.references is None else self.references.count
        if len(keys) + references < 2:
            msg = (
                f"MuSc scores the images of a set against each other, but the set holds one image ({keys[0]}) and "
                "there are no reference images. Score a folder of images of one product and view (anomalib predict "
                "--model MuSc --data <folder>), or give normal reference images (--model.few_shot k with a "
                "datamodule, or --model.reference_images <folder of normal images>)."
            )
            raise SetTooSmallError(msg)
        if len(keys) < SMALL_SET:
            logger.warning("MuSc: a set of %d images is small (the method was published on 42 to 201 per set); its "
                           "scores are less reliable.", len(keys))

    # ----- steps: each batch's share of its set -----
    def set_step(self, batch: Batch, dataloader_idx: int = 0) -> Batch:
        """Fill the batch with its images' maps, scores and labels from the set scored at the start of the run."""
        scored = self.scored_sets[dataloader_idx]
        indices = scored.index(_batch_keys(batch))
        scores = scored.scores
        maps = upsample_maps(scores.patch_maps[indices.to(scores.patch_maps.device)], tuple(batch.image.shape[-2:]))
        image_scores = scores.image_scores[indices.to(scores.image_scores.device)]
        device = batch.image.device
        return batch.update(
            pred_score=scores.pred_scores[indices.to(scores.pred_scores.device)].float().to(device),
            anomaly_map=maps.float().to(device),
            pred_label=(image_scores > scored.label_threshold).to(device),
            pred_mask=(maps > scored.label_threshold).to(device),
        )

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> STEP_OUTPUT:
        """The batch's share of its validation set."""
        del batch_idx
        return self.set_step(batch, dataloader_idx)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> STEP_OUTPUT:
        """The batch's share of its test set."""
        del batch_idx
        return self.set_step(batch, dataloader_idx)

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> STEP_OUTPUT:
        """The batch's share of its predict set."""
        del batch_idx
        return self.set_step(batch, dataloader_idx)

    # ----- export -----
    def export_refusal(self) -> str:
        """MuSc is never exported: it scores a set of images together, not one image through a graph."""
        return (
            "MuSc cannot be exported: it scores a whole set of images against each other (set-level), which is not "
            "a per-image graph. Run it with `anomalib test`/`anomalib predict` on a folder or datamodule instead."
        )
