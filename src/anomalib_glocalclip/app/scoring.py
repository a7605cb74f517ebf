"""What the local page does, without gradio: build a model per choice, score images, decide, write results.

Images are read by the plugin's reader, passed through the model's own pre-processor transform and scored by its
torch model in batches; the raw scores and heatmaps are kept, so ``decide`` re-decides without scoring again.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import logging
import math
import shutil
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import torch

from anomalib_glocalclip.components.heatmap_overlay import draw_heatmap
from anomalib_glocalclip.data.io import read_image
from anomalib_glocalclip.data.layouts.base import IMAGE_SUFFIXES
from anomalib_glocalclip.utils.errors import PluginError

if TYPE_CHECKING:
    from anomalib.models.components import AnomalibModule

logger = logging.getLogger(__name__)

METHODS = ("AnoCLIP", "GlocalCLIP")
FALLBACK_THRESHOLD = 0.5
"""The threshold of a model whose post-processor holds none: the scores are anomalous probabilities."""
MAX_REFERENCES = 8
HEATMAP_JPEG_QUALITY = 90
"""Heatmaps are JPEG files: an overlay on a photo, written several times faster than PNG and smaller."""
ANOMALOUS, NORMAL, UNREADABLE = "anomalous", "normal", "unreadable"
TINY_IMAGE_SIZE = 64
TINY_NOTE = (
    "Tiny random CLIP (--tiny): its scores mean nothing. It shows the page working offline; start the app "
    "without --tiny for real CLIP weights."
)
PROMPTS_SECTION = '"Learn prompts from your own normal images" (or "GlocalCLIP, 1. Learn prompts on auxiliary data")'
UNTRAINED_NOTE = (
    "Without a prompt file GlocalCLIP scores with untrained prompts: its scores mean little. The README's section "
    f"{PROMPTS_SECTION} makes one (prompts.pt); give it here, or choose AnoCLIP."
)
TABLE_COLUMNS = ("file", "score", "decision", "same content as", "error")
SETTING_COLUMNS = ("method", "backbone", "weights", "prompt file", "references")
CSV_COLUMNS = ("file", "score", "threshold", "decision", "same content as", "error", *SETTING_COLUMNS)


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
        AppInputError: an unknown method.
        PluginError: missing weights, a bad prompt file, an unreadable reference image (the message says which).
    """
    from anomalib_glocalclip.anoclip import AnoCLIP
    from anomalib_glocalclip.anoclip.prompts import clean_class_name
    from anomalib_glocalclip.glocalclip import GlocalCLIP

    arguments = choice.model_arguments()
    if choice.method == "AnoCLIP":
        model = AnoCLIP(class_name=clean_class_name(choice.object_name) or None, **arguments)
        model.setup("predict")  # the model's own prompt encoding: its class name and domain rules
    elif choice.method == "GlocalCLIP":  # without a prompt file: untrained prompts (the page says so)
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
    """One scored (or unreadable) image: its raw score and heatmap file, or the reader's error.

    ``name`` is the file's path relative to the folder given, or the uploaded file's name (unique in a run);
    ``same_as`` names the other files of the run with the same content, scored once as this one.
    """

    name: str
    path: str
    score: float | None = None
    heatmap: str | None = None
    error: str | None = None
    same_as: list[str] = field(default_factory=list)


def image_paths_in(folder: str | Path) -> list[Path]:
    """The image files inside ``folder`` and its sub-folders, sorted by their relative path (hidden ones skipped).

    Raises:
        AppInputError: ``folder`` is not a folder, or holds no image.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        msg = f"Image folder not found: {folder}. Give the path of a folder of images on this machine."
        raise AppInputError(msg)
    paths = sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not paths:
        msg = f"No image in {folder} or its sub-folders (looked for {', '.join(sorted(IMAGE_SUFFIXES))})."
        raise AppInputError(msg)
    return paths


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with a repeated one numbered: ``a.png``, ``a (2).png``, ... (skipping numbers already in ``names``)."""
    originals, unique = set(names), []
    for name in names:
        path, number, candidate = PurePosixPath(name), 1, name
        while candidate in unique or (number > 1 and candidate in originals):
            number += 1
            candidate = str(path.with_name(f"{path.stem} ({number}){path.suffix}"))
        unique.append(candidate)
    return unique


def image_inputs(uploads: Sequence[str | Path], folder: str | Path | None) -> list[ImageResult]:
    """The results to fill, one per distinct file: uploads named as the browser sent them, then ``folder``'s images.

    A folder's image is named by its path relative to ``folder`` (``good/000.png``); names are made unique. Files of
    equal content are scored once: the first keeps its row and names the others in ``same_as``.

    Raises:
        AppInputError: neither uploads nor a folder, or a folder without images.
    """
    if not uploads and folder is None:
        msg = "Drop one or more images, or give the path of a folder of images."
        raise AppInputError(msg)
    root = Path(folder).expanduser() if folder is not None else None
    folder_paths = image_paths_in(root) if root is not None else []
    names = [Path(path).name for path in uploads] + [path.relative_to(root).as_posix() for path in folder_paths]
    results: list[ImageResult] = []
    by_content: dict[str, ImageResult] = {}
    for name, path in zip(unique_names(names), [*map(str, uploads), *map(str, folder_paths)], strict=True):
        try:
            content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            content = f"unreadable:{path}"  # the reader names the problem when it is scored
        if content in by_content:
            by_content[content].same_as.append(name)
            continue
        by_content[content] = ImageResult(name=name, path=path)
        results.append(by_content[content])
    return results


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
    """Score ``paths`` with ``model``, one result per path (named by the file's name); see :func:`scoring_steps`."""
    results = [ImageResult(name=Path(path).name, path=str(path)) for path in paths]
    for done in scoring_steps(model, results, heatmap_dir, batch_size):
        if on_progress is not None:
            on_progress(done, len(results))
    return results


def scoring_steps(
    model: AnomalibModule, results: Sequence[ImageResult], heatmap_dir: str | Path, batch_size: int = 8
) -> Iterator[int]:
    """Score ``results``' files with ``model`` batch by batch, yielding the number done after each batch.

    Each result gets its raw score and heatmap file (``heatmap_dir/<index>.jpg``), or the reader's error. Stopping
    the iteration stops the scoring (the page's Cancel).
    """
    heatmap_dir = Path(heatmap_dir)
    heatmap_dir.mkdir(parents=True, exist_ok=True)
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
                result.heatmap = str(heatmap_dir / f"{index:04d}.jpg")
                draw_heatmap(image, anomaly_map, value_range).save(result.heatmap, quality=HEATMAP_JPEG_QUALITY)
        yield min(start + batch_size, len(results))


def _read(result: ImageResult) -> torch.Tensor | None:
    """The image ``[3, H, W]`` in [0, 1], or ``None`` with the reader's message (the file by its name) in ``error``."""
    try:
        return read_image(result.path)
    except (PluginError, OSError) as error:
        result.error = str(error).replace(result.path, result.name)  # an upload's path is the page's temporary one
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


def model_threshold(model: AnomalibModule) -> float:
    """The raw image-score threshold ``model`` applies: its post-processor's, else ``FALLBACK_THRESHOLD``."""
    threshold = getattr(model.post_processor, "image_threshold", None)
    value = float(threshold) if threshold is not None else math.nan
    return value if math.isfinite(value) else FALLBACK_THRESHOLD


def model_settings(
    choice: ModelChoice, model: AnomalibModule, prompt_name: str = "", reference_names: Sequence[str] = ()
) -> dict[str, str]:
    """What produced a run's scores, ``SETTING_COLUMNS``: the method, backbone, weights, prompt file and references.

    ``prompt_name`` and ``reference_names`` are the files as the user named them (not where the page keeps them).
    """
    from anomalib_glocalclip.backbone import TINY_CLIP_NAME

    defaults = inspect.signature(type(model)).parameters
    backbone = choice.backbone or getattr(model, "backbone_name", None) or defaults["backbone"].default
    weights = choice.weights or f"{defaults['pretrained'].default} (the method's default)"
    if choice.tiny:
        backbone, weights = TINY_CLIP_NAME, "random (tiny CLIP): scores mean nothing"
    prompts = prompt_name or ("none: untrained prompts" if choice.method == "GlocalCLIP" else "")
    references = "; ".join(reference_names) or "none (zero-shot)"
    return dict(zip(SETTING_COLUMNS, (choice.method, str(backbone), weights, prompts, references), strict=True))


def result_rows(results: Sequence[ImageResult], threshold: float, digits: int | None = 4) -> list[list[object]]:
    """One row per result, ``TABLE_COLUMNS``: name, score (to ``digits``; empty if unread), decision, ..."""
    return [
        [result.name, "" if result.score is None else round(result.score, digits) if digits else result.score,
         decision, "; ".join(result.same_as), result.error or ""]
        for result, decision in zip(results, decide(results, threshold), strict=True)
    ]


def write_csv(
    results: Sequence[ImageResult], threshold: float, path: str | Path, settings: Mapping[str, str] | None = None
) -> Path:
    """Write the results (``CSV_COLUMNS``: full-precision scores, the threshold, ``settings``) to ``path``."""
    path = Path(path)
    described = [(settings or {}).get(column, "") for column in SETTING_COLUMNS]
    with path.open("w", newline="", encoding="utf-8") as file:
        rows = ([*row[:2], threshold, *row[2:], *described] for row in result_rows(results, threshold, digits=None))
        csv.writer(file).writerows([CSV_COLUMNS, *rows])
    return path


def write_heatmap_zip(results: Sequence[ImageResult], path: str | Path) -> Path:
    """Write the heatmaps of the scored results into the ZIP file ``path`` as ``<name>.jpg``; returns it."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for result in results:
            if result.heatmap is not None:
                archive.write(result.heatmap, arcname=f"{result.name}.jpg")
    return path
