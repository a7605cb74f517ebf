"""The local page (Gradio; README, "See it"): its layout and events, the scoring being ``scoring.py``'s.

The last run's scores and heatmaps stay in the page's ``gr.State``, so the threshold slider never calls the model.
Every handler shows its error's message on the page, never a traceback (unexpected errors go to the log).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from anomalib_glocalclip.utils.errors import PluginError, describe_error

from .options import AppOptions
from .scoring import (
    CSV_COLUMNS,
    DEFAULT_THRESHOLD,
    MAX_REFERENCES,
    METHODS,
    TINY_NOTE,
    UNREADABLE,
    AppInputError,
    ImageResult,
    ModelCache,
    decide,
    image_paths_in,
    reference_folder,
    result_rows,
    score_images,
    write_csv,
    write_heatmap_zip,
)

logger = logging.getLogger(__name__)

TITLE = "GlocalCLIP / AnoCLIP: zero-shot anomaly detection"


@dataclass
class Run:
    """What one press of *Score* left: the results and the folder of their heatmaps, CSV and ZIP."""

    results: list[ImageResult]
    folder: Path


def error_message(error: BaseException) -> str:
    """What the page says about ``error``: a plugin error's own message, else one line (traceback to the log)."""
    if isinstance(error, PluginError):
        return str(error)
    logger.error("The page's request failed", exc_info=error)
    return describe_error(error)


def _gallery(run: Run | None, threshold: float) -> list[tuple[str, str]]:
    if run is None:
        return []
    decisions = decide(run.results, threshold)
    return [
        (result.heatmap, f"{result.name}: {result.score:.4f}, {decision}")
        for result, decision in zip(run.results, decisions, strict=True)
        if result.heatmap is not None
    ]


def _unreadable_message(results: Sequence[ImageResult]) -> str:
    failed = [result for result in results if result.error is not None]
    if not failed:
        return ""
    lines = [f"- **{result.name}**: {result.error}" for result in failed]
    return f"**{len(failed)} file(s) could not be read** (the others are scored):\n" + "\n".join(lines)


def _paths(images: list[str] | None, folder: str | None) -> list[str]:
    """The dropped images, then those of the folder; refuses when there is none."""
    paths = [*(images or []), *(map(str, image_paths_in(folder)) if (folder or "").strip() else [])]
    if not paths:
        msg = "Drop one or more images, or give the path of a folder of images."
        raise AppInputError(msg)
    return paths


def views(run: Run | None, threshold: float) -> tuple[list[tuple[str, str]], list[list[object]], list[str] | None]:
    """(gallery items, table rows, download files) of ``run`` at ``threshold``; never calls the model."""
    if run is None:
        return [], [], None
    files = [str(write_csv(run.results, threshold, run.folder / "results.csv")), str(run.folder / "heatmaps.zip")]
    return _gallery(run, threshold), result_rows(run.results, threshold), files


class Handlers:
    """The page's event handlers, around one model cache and one working folder."""

    def __init__(self, options: AppOptions, cache: ModelCache, workdir: Path) -> None:
        self.options = options
        self.cache = cache
        self.workdir = workdir

    def score(
        self,
        method: str,
        object_name: str,
        prompt_path: str,
        prompt_upload: str | None,
        weights: str,
        images: list[str] | None,
        folder: str,
        normals: list[str] | None,
        threshold: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio's way to report progress
    ) -> tuple[Run | None, list, list, str, list[str] | None]:
        """Build (or reuse) the chosen model and score the images: (state, gallery, table, message, downloads)."""
        try:
            paths = _paths(images, folder)
            references = str(reference_folder(normals, self.workdir)) if normals else None
            choice = self.options.choice(method, object_name, prompt_upload or prompt_path, weights, references)
            progress(0.0, desc="Building the model (once per choice)")
            model = self.cache.get(choice)
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.workdir))
            results = score_images(
                model, paths, run_dir / "heatmaps",
                on_progress=lambda done, total: progress(done / total, desc=f"Scored {done} of {total} images"),
            )
            write_heatmap_zip(results, run_dir / "heatmaps.zip")
            run = Run(results, run_dir)
            gallery, table, files = views(run, threshold)
        except Exception as error:  # noqa: BLE001 - the page's boundary: a message, never a traceback
            return None, [], [], f"**Error:** {error_message(error)}", None
        return run, gallery, table, _unreadable_message(results), files

    @staticmethod
    def redecide(run: Run | None, threshold: float) -> tuple[list, list, str, list[str] | None]:
        """Re-decide the last run at ``threshold`` from the kept scores: (gallery, table, message, files)."""
        try:
            gallery, table, files = views(run, threshold)
        except Exception as error:  # noqa: BLE001 - the page's boundary: a message, never a traceback
            return [], [], f"**Error:** {error_message(error)}", None
        return gallery, table, _unreadable_message(run.results) if run is not None else "", files

    @staticmethod
    def show_method(method: str) -> tuple[Any, Any, Any]:
        """AnoCLIP asks for the object's name, GlocalCLIP for a prompt file."""
        glocal = method == "GlocalCLIP"
        return gr.Textbox(visible=not glocal), gr.Textbox(visible=glocal), gr.File(visible=glocal)


def _model_inputs(options: AppOptions) -> tuple[Any, ...]:
    """The model's fields: method, object name, prompt file (path or upload), weights."""
    glocal = options.method == "GlocalCLIP"
    method = gr.Radio(list(METHODS), value=options.method, label="Method", elem_id="method")
    object_name = gr.Textbox(
        value=options.object_name, label="Object name (AnoCLIP: the only input, e.g. pcb, screw)",
        visible=not glocal, elem_id="object-name",
    )
    prompt_path = gr.Textbox(value=options.prompt_file or "", label="Prompt file (GlocalCLIP): path", visible=glocal)
    prompt_upload = gr.File(label="or upload the prompt file", type="filepath", visible=glocal)
    weights = gr.Textbox(
        value=options.weights or "", label="CLIP weights: open_clip tag or local file (empty: the method's default)",
        visible=not options.tiny,
    )
    return method, object_name, prompt_path, prompt_upload, weights


def _image_inputs() -> tuple[Any, ...]:
    """The images to score (files or a folder) and the optional few-shot normal images."""
    images = gr.File(label="Images to score", file_count="multiple", type="filepath", elem_id="images")
    folder = gr.Textbox(label="or a folder of images on this machine", placeholder="/path/to/images")
    normals = gr.File(
        label=f"Optional: 1-{MAX_REFERENCES} normal images of the product (few-shot)", file_count="multiple",
        type="filepath", elem_id="normals",
    )
    return images, folder, normals


def build_page(options: AppOptions, cache: ModelCache, workdir: Path) -> gr.Blocks:
    """The page, its handlers scoring with the models of ``cache`` and writing their results under ``workdir``."""
    handlers = Handlers(options, cache, workdir)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown(f"## {TITLE}")
        if options.tiny:
            gr.Markdown(f"**{TINY_NOTE}**", elem_id="tiny-banner")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                model_inputs = _model_inputs(options)
                image_inputs = _image_inputs()
                score = gr.Button("Score", variant="primary", elem_id="score")
            with gr.Column(scale=2):
                threshold = gr.Slider(0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.01, elem_id="threshold",
                                      label=f"Threshold: anomalous above this image score ({UNREADABLE}: not read)")
                message = gr.Markdown(elem_id="messages")
                gallery = gr.Gallery(label="Heatmaps", columns=3, height="auto", elem_id="heatmaps")
                table = gr.Dataframe(headers=list(CSV_COLUMNS), interactive=False, elem_id="results")
                downloads = gr.File(label="Download: results.csv, heatmaps.zip", file_count="multiple",
                                    interactive=False, elem_id="downloads")
        model_inputs[0].change(handlers.show_method, model_inputs[0], [model_inputs[1], *model_inputs[2:4]])
        score.click(handlers.score, [*model_inputs, *image_inputs, threshold],
                    [state, gallery, table, message, downloads], api_name="score")
        threshold.change(handlers.redecide, [state, threshold], [gallery, table, message, downloads],
                         api_name="decide", show_progress="hidden")
    return page


def serve(options: AppOptions, cache: ModelCache | None = None, block: bool = True) -> gr.Blocks:
    """Build the page and start its server at ``options.host:options.port``.

    Args:
        options: the page's options.
        cache: the model cache (a new one by default; tests pass theirs to watch the model).
        block: serve until interrupted (the command), or return at once (tests, benchmarks: call ``close()``).

    Returns:
        The running page (``page.local_url`` is its address).
    """
    workdir = Path(tempfile.mkdtemp(prefix="anomalib_glocalclip_app_"))
    page = build_page(options, cache or ModelCache(), workdir)
    page.queue(default_concurrency_limit=1)
    page.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        prevent_thread_lock=not block,
        allowed_paths=[str(workdir)],
        footer_links=["settings"],
    )
    if block:  # the server has stopped: its uploads, heatmaps and tables go with it
        shutil.rmtree(workdir, ignore_errors=True)
    return page
