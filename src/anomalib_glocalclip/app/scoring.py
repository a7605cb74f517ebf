"""What the local page does, without gradio: build a model per choice, score images, decide, write results.

Images are read by the plugin's reader, passed through the model's own pre-processor transform and scored by its
torch model in batches; the raw scores and heatmaps are kept, so ``decide`` re-decides without scoring again.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from anomalib_glocalclip.components.heatmap_overlay import draw_heatmap
from anomalib_glocalclip.data.io import read_image
from anomalib_glocalclip.data.layouts.base import IMAGE_SUFFIXES, image_files
from anomalib_glocalclip.utils.errors import PluginError

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule

logger = logging.getLogger(__name__)

METHODS = ("AnoCLIP", "GlocalCLIP")
DEFAULT_THRESHOLD = 0.5
"""Anomalous above this image score: the models' scores are anomalous probabilities (no validation data here)."""
MAX_REFERENCES = 8
HEATMAP_JPEG_QUALITY = 90
"""Heatmaps are JPEG files: an overlay on a photo, written several times faster than PNG and smaller."""
ANOMALOUS, NORMAL, UNREADABLE = "anomalous", "normal", "unreadable"
TINY_IMAGE_SIZE = 64
TINY_NOTE = (
    "Tiny random CLIP (--tiny): its scores mean nothing. It shows the page working offline; start the app "
    "without --tiny for real CLIP weights."
)
CSV_COLUMNS = ("file", "score", "threshold", "decision", "error")


class AppInputError(PluginError, ValueError):
    """Input the page cannot use (no images, a missing folder or prompt file); the message says what to give."""


@dataclass(frozen=True)
class ModelChoice:
    """One model the page can build; equal choices share one built model (``ModelCache``'s key).

    Args:
        method: ``"AnoCLIP"`` (training-free: the object's name is the only input) or ``"GlocalCLIP"``.
        object_name: the object in AnoCLIP's prompts (``"pcb"``, ``"screw"``).
        prompt_file: GlocalCLIP's learned prompt file (``prompts.pt``).
        backbone: open_clip model name or config file; ``None`` (as ``weights``, ``image_size``): the method's.
        weights: open_clip pretrained tag or local weight file.
        image_size: input size.
        tiny: the tiny random CLIP (offline; its scores mean nothing); ``backbone`` and ``weights`` are ignored.
        reference_images: folder of the few-shot normal images; ``None``: zero-shot.
    """

    method: str = "AnoCLIP"
    object_name: str = "object"
    prompt_file: str | None = None
    backbone: str | None = None
    weights: str | None = None
    image_size: int | None = None
    tiny: bool = False
    reference_images: str | None = None

    def model_arguments(self) -> dict[str, object]:
        """Keyword arguments of the model's constructor (the method's defaults where the choice gives none)."""
        from anomalib_glocalclip.backbone import TINY_CLIP_NAME

        arguments: dict[str, object] = {"evaluator": False, "visualizer": False}
        if self.tiny:
            arguments.update(backbone=TINY_CLIP_NAME, pretrained=None, image_size=self.image_size or TINY_IMAGE_SIZE)
        else:
            given = {"backbone": self.backbone, "pretrained": self.weights, "image_size": self.image_size}
            arguments.update({name: value for name, value in given.items() if value})
        if self.reference_images is not None:
            count = len(image_paths_in(self.reference_images))
            arguments.update(few_shot=count, reference_images=self.reference_images)
        return arguments


def build_model(choice: ModelChoice) -> AnomalibModule:
    """Build the model of ``choice`` in eval mode, prompts encoded and few-shot references taken.

    Raises:
        AppInputError: GlocalCLIP without a prompt file (allowed with the tiny CLIP only), or an unknown method.
        PluginError: missing weights, a bad prompt file, an unreadable reference image (the message says which).
    """
    from anomalib_glocalclip.anoclip import AnoCLIP
    from anomalib_glocalclip.anoclip.prompts import clean_class_name
    from anomalib_glocalclip.glocalclip import GlocalCLIP

    arguments = choice.model_arguments()
    if choice.method == "AnoCLIP":
        model = AnoCLIP(class_name=clean_class_name(choice.object_name) or None, **arguments)
        model.setup("predict")  # the model's own prompt encoding: its class name and domain rules
    elif choice.method == "GlocalCLIP":
        if not choice.prompt_file and not choice.tiny:
            msg = "GlocalCLIP scores with learned prompts: give its prompt file (prompts.pt), or choose AnoCLIP."
            raise AppInputError(msg)
        model = GlocalCLIP(prompt_weights=choice.prompt_file or None, **arguments)
    else:
        msg = f"Unknown method {choice.method!r}; choose one of {', '.join(METHODS)}."
        raise AppInputError(msg)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    if model.is_few_shot:
        model.prepare_references()
    return model


class ModelCache:
    """The models built so far (by ``build``), by choice; the least recently used goes past ``size`` (CLIP: ~1 GB)."""

    def __init__(self, size: int = 2, build: Callable[[ModelChoice], AnomalibModule] = build_model) -> None:
        self.size = size
        self.build = build
        self.builds = 0
        self._models: OrderedDict[ModelChoice, AnomalibModule] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> AnomalibModule:
        """The model of ``choice``, built on first use."""
        with self._lock:
            if choice in self._models:
                self._models.move_to_end(choice)
                return self._models[choice]
            model = self.build(choice)
            self.builds += 1
            self._models[choice] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model


@dataclass
class ImageResult:
    """One scored (or unreadable) image: its raw score and heatmap file, or the reader's error."""

    name: str
    path: str
    score: float | None = None
    heatmap: str | None = None
    error: str | None = None


def image_paths_in(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted.

    Raises:
        AppInputError: ``folder`` is not a folder, or holds no image.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        msg = f"Image folder not found: {folder}. Give the path of a folder of images on this machine."
        raise AppInputError(msg)
    paths = image_files(folder)
    if not paths:
        msg = f"No image in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})."
        raise AppInputError(msg)
    return paths


def reference_folder(paths: Sequence[str | Path], root: str | Path) -> Path:
    """Copy the few-shot normal images into a folder of ``root`` named by their content; returns the folder.

    The same images give the same folder, so a ``ModelChoice`` holding it finds the model already built.

    Raises:
        AppInputError: fewer than 1 or more than ``MAX_REFERENCES`` images.
    """
    if not 1 <= len(paths) <= MAX_REFERENCES:
        msg = f"Give 1 to {MAX_REFERENCES} normal images for few-shot, got {len(paths)}."
        raise AppInputError(msg)
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes())
    folder = Path(root) / f"references-{digest.hexdigest()[:16]}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for index, path in enumerate(paths):
            shutil.copyfile(path, folder / f"{index}_{Path(path).name}")
    return folder


def score_images(
    model: AnomalibModule,
    paths: Sequence[str | Path],
    heatmap_dir: str | Path,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[ImageResult]:
    """Score ``paths`` with ``model``, one result per path; a file the reader cannot use gets its error.

    Args:
        model: a model of ``build_model``.
        paths: image files.
        heatmap_dir: where the heatmaps are written (``<index>_<name>.jpg``).
        batch_size: images per forward pass.
        on_progress: called with (images done, images in all) after each batch.
    """
    heatmap_dir = Path(heatmap_dir)
    heatmap_dir.mkdir(parents=True, exist_ok=True)
    results = [ImageResult(name=Path(path).name, path=str(path)) for path in paths]
    value_range = heatmap_range(model)
    for start in range(0, len(results), batch_size):
        chunk = list(enumerate(results[start : start + batch_size], start))
        images = {index: image for index, result in chunk if (image := _read(result)) is not None}
        if images:
            with torch.inference_mode():
                batch = torch.cat([model.pre_processor.transform(image[None]) for image in images.values()])
                output = model.model(batch.to(model.device))
            for (index, image), score, anomaly_map in zip(
                images.items(), output.pred_score.cpu(), output.anomaly_map.cpu(), strict=True
            ):
                result = results[index]
                result.score = float(score)
                result.heatmap = str(heatmap_dir / f"{index:03d}_{Path(result.name).stem}.jpg")
                draw_heatmap(image, anomaly_map, value_range).save(result.heatmap, quality=HEATMAP_JPEG_QUALITY)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(results)), len(results))
    return results


def _read(result: ImageResult) -> torch.Tensor | None:
    """The image ``[3, H, W]`` in [0, 1], or ``None`` with the reader's message in ``result.error``."""
    try:
        return read_image(result.path)
    except (PluginError, OSError) as error:
        result.error = str(error)
        return None


def heatmap_range(model: AnomalibModule) -> tuple[float, float]:
    """(low, high) pixel scores of the heatmap colours: the model's post-processor range without validation data."""
    post_processor = model.post_processor
    low, high = getattr(post_processor, "pixel_min", None), getattr(post_processor, "pixel_max", None)
    if low is None or high is None or not float(high) > float(low):
        return 0.0, 1.0
    return float(low), float(high)


def decide(results: Sequence[ImageResult], threshold: float) -> list[str]:
    """``anomalous`` (score above ``threshold``, as Anomalib decides), ``normal`` or ``unreadable``, per result."""
    return [UNREADABLE if result.score is None else ANOMALOUS if result.score > threshold else NORMAL
            for result in results]


def result_rows(results: Sequence[ImageResult], threshold: float, digits: int | None = 4) -> list[list[object]]:
    """One row per result, ``CSV_COLUMNS``: name, score (to ``digits``; empty if unread), threshold, decision, error."""
    return [
        [result.name, "" if result.score is None else round(result.score, digits) if digits else result.score,
         threshold, decision, result.error or ""]
        for result, decision in zip(results, decide(results, threshold), strict=True)
    ]


def write_csv(results: Sequence[ImageResult], threshold: float, path: str | Path) -> Path:
    """Write the results table (``CSV_COLUMNS``, full-precision scores) to ``path``; returns it."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([CSV_COLUMNS, *result_rows(results, threshold, digits=None)])
    return path


def write_heatmap_zip(results: Sequence[ImageResult], path: str | Path) -> Path:
    """Write the heatmaps of the scored results into the ZIP file ``path`` (by their file names); returns it."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for result in results:
            if result.heatmap is not None:
                archive.write(result.heatmap, arcname=Path(result.heatmap).name)
    return path
