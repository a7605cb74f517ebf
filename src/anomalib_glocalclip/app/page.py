"""The local page (Gradio; README, "See it"): its layout and events, the scoring being ``scoring.py``'s.

The last run's scores and heatmaps stay in the page's ``gr.State``, so the threshold never calls the model. Every
handler shows its error in the page's words, with the fix, and leaves the results already shown in place.
Scoring is a generator: Cancel, or leaving the page (a reload), stops it after the current batch.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from anomalib_glocalclip.backbone import WeightsNotFoundError
from anomalib_glocalclip.components.heatmap_overlay import colour_bar_html
from anomalib_glocalclip.glocalclip.prompt_file import PromptFileError
from anomalib_glocalclip.utils.errors import PluginError

from .options import AppOptions
from .scoring import (
    FALLBACK_THRESHOLD,
    MAX_REFERENCES,
    METHODS,
    TABLE_COLUMNS,
    TINY_NOTE,
    UNREADABLE,
    UNTRAINED_NOTE,
    ImageResult,
    ModelCache,
    ModelChoice,
    decide,
    heatmap_range,
    image_inputs,
    model_settings,
    model_threshold,
    reference_folder,
    result_rows,
    scoring_steps,
    write_csv,
    write_heatmap_zip,
)

logger = logging.getLogger(__name__)

TITLE = "GlocalCLIP / AnoCLIP: zero-shot anomaly detection"
THRESHOLD_STEP = 0.0001
"""The slider's step: scores that differ in the third decimal are told apart."""
CSS = (
    "#heatmaps .caption-label { white-space: normal; overflow-wrap: anywhere; }"  # names shown whole
    "#heatmaps .grid-wrap { height: auto; max-height: none; }"  # every heatmap in sight, no inner scrolling
    "#threshold input[type=number], #threshold button { display: none; }"  # the box beside it is the number
)
_FIXES: Mapping[type[Exception], str] = {
    WeightsNotFoundError: "In *CLIP weights*, give the path of a weight file on this machine or an open_clip tag "
    "whose file is in the cache folder; leave it empty for the method's default.",
    PromptFileError: "Give the prompt file (prompts.pt) a GlocalCLIP training run wrote, or choose AnoCLIP.",
}


@dataclass
class Run:
    """What one press of *Score* left: the results, the folder of their heatmaps, CSV and ZIP, and their notes."""

    results: list[ImageResult]
    folder: Path
    choice: ModelChoice
    settings: dict[str, str]
    notes: str
    colour_bar: str


def error_message(error: BaseException, shown: Mapping[str, str], workdir: Path | None = None) -> str:
    """What the page says about ``error``: in its words, each path of ``shown`` by its name, with the page's fix.

    A plugin error's message is kept without its command-line advice (``Pass ...``, options, ``Fix:``) and
    without the words of the library error it was raised from; a copy in ``workdir`` is named as the user named it.
    Other errors go to the log.
    """
    if not isinstance(error, PluginError):
        logger.error("The page's request failed", exc_info=error)
        return (f"**Error:** scoring failed unexpectedly ({type(error).__name__}; the details are in the log of "
                "the terminal running the page). Check the inputs and press Score again.")
    text = str(error).split("\nFix:")[0]
    if error.__cause__ is not None:  # e.g. torch.load's own explanation
        text = text.replace(f": {error.__cause__}", "")
    for path, name in sorted(shown.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, name)
    if workdir is not None:  # a few-shot image, copied as <workdir>/references-<digest>/<index>_<name>
        text = re.sub(re.escape(str(workdir)) + r"/references-\w+/\d+_", "", text)
    sentences = re.split(r"(?<=[.?])\s+", text)
    text = " ".join(each for each in sentences if not each.startswith("Pass ") and "--" not in each)
    text = " ".join(text.split())
    fix = next((fix for kind, fix in _FIXES.items() if isinstance(error, kind)), "")
    return f"**Error:** {text}{'' if text.endswith(('.', '?')) else '.'} {fix}".rstrip()


def _caption(result: ImageResult, decision: str) -> str:
    same = f" (also {', '.join(result.same_as)})" if result.same_as else ""
    return f"{result.name}{same}: {result.score:.4f}, {decision}"


def _notes(results: Sequence[ImageResult], choice: ModelChoice) -> str:
    """The run's notes: untrained prompts, duplicates scored once, files that could not be read."""
    notes = [f"**{UNTRAINED_NOTE}**"] if choice.method == "GlocalCLIP" and not choice.prompt_file else []
    notes += [f"- **{', '.join(result.same_as)}**: the same content as **{result.name}**, scored once"
              for result in results if result.same_as]
    failed = [result for result in results if result.error is not None]
    if failed:
        notes.append(f"**{len(failed)} file(s) could not be read** (the others are scored):")
        notes += [f"- **{result.name}**: {result.error}" for result in failed]
    return "\n".join(notes)


def views(run: Run | None, threshold: float) -> tuple[list[tuple[str, str]], list[list[object]], list[str] | None]:
    """(gallery items, table rows, download files) of ``run`` at ``threshold``; never calls the model."""
    if run is None:
        return [], [], None
    csv_file = write_csv(run.results, threshold, run.folder / "results.csv", run.settings)
    gallery = [(result.heatmap, _caption(result, decision))
               for result, decision in zip(run.results, decide(run.results, threshold), strict=True)
               if result.heatmap is not None]
    return gallery, result_rows(run.results, threshold), [str(csv_file), str(run.folder / "heatmaps.zip")]


class Handlers:
    """The page's event handlers, around one model cache and one working folder."""

    def __init__(self, options: AppOptions, cache: ModelCache, workdir: Path) -> None:
        self.options = options
        self.cache = cache
        self.workdir = workdir

    def score(
        self, method: str, object_name: str, prompt_path: str, prompt_upload: str | None, weights: str,
        images: list[str] | None, folder: str, normals: list[str] | None, threshold: float, last: Run | None,
    ) -> Iterator[tuple[object, ...]]:
        """Build (or reuse) the chosen model and score the images, yielding progress, then the run's views.

        Each yield is (state, gallery, table, message, downloads, threshold, colour bar); an error changes the
        message only. A new model starts from the threshold it applies, a rerun of the same one keeps the user's.
        """
        keep = (gr.skip(),) * 3
        shown = {path: Path(path).name for path in [*(images or []), *(normals or []), prompt_upload or ""] if path}
        try:
            results = image_inputs(images or [], folder.strip() or None)
            references = str(reference_folder(normals, self.workdir)) if normals else None
            choice = self.options.choice(method, object_name, prompt_upload or prompt_path, weights, references)
            yield *keep, "Building the model (once per choice)...", *keep
            model = self.cache.get(choice)
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.workdir))
            for done in scoring_steps(model, results, run_dir / "heatmaps"):
                yield *keep, f"Scored {done} of {len(results)} images...", *keep
            write_heatmap_zip(results, run_dir / "heatmaps.zip")
            prompt_name = shown.get(prompt_upload or "", choice.prompt_file or "")
            settings = model_settings(choice, model, prompt_name, [Path(path).name for path in normals or []])
            scale = "pixel score, one scale for every heatmap of this model"
            run = Run(results, run_dir, choice, settings, _notes(results, choice),
                      colour_bar_html(heatmap_range(model), scale))
            if last is None or last.choice != choice:
                threshold = model_threshold(model)
            gallery, table, files = views(run, threshold)
        except Exception as error:  # noqa: BLE001 - the page's boundary: a message, never a traceback
            yield *keep, error_message(error, shown, self.workdir), *keep
            return
        yield run, gallery, table, run.notes, files, threshold, run.colour_bar

    @staticmethod
    def redecide(run: Run | None, threshold: float | None) -> tuple[object, ...]:
        """Re-decide the last run at ``threshold`` from the kept scores: (gallery, table, message, files)."""
        if threshold is None:
            return gr.skip(), gr.skip(), "**Error:** type a number as the threshold.", gr.skip()
        try:
            gallery, table, files = views(run, threshold)
        except Exception as error:  # noqa: BLE001 - the page's boundary: a message, never a traceback
            return gr.skip(), gr.skip(), error_message(error, {}), gr.skip()
        return gallery, table, run.notes if run is not None else "", files

    @staticmethod
    def show_method(method: str) -> tuple[gr.Textbox, gr.Textbox, gr.File, gr.Markdown]:
        """AnoCLIP asks for the object's name, GlocalCLIP for a prompt file (and says what none means)."""
        glocal = method == "GlocalCLIP"
        return (gr.Textbox(visible=not glocal), gr.Textbox(visible=glocal), gr.File(visible=glocal),
                gr.Markdown(visible=glocal))


def _model_inputs(options: AppOptions) -> tuple[gr.Radio, gr.Textbox, gr.Textbox, gr.File, gr.Markdown, gr.Textbox]:
    """The model's fields: method, object name, prompt file (path or upload, and what none means), weights."""
    glocal = options.method == "GlocalCLIP"
    method = gr.Radio(list(METHODS), value=options.method, label="Method", elem_id="method")
    object_name = gr.Textbox(
        value=options.object_name, label="Object name (AnoCLIP: the only input, e.g. pcb, screw)",
        visible=not glocal, elem_id="object-name",
    )
    prompt_path = gr.Textbox(value=options.prompt_file or "", label="Prompt file (GlocalCLIP): path", visible=glocal)
    prompt_upload = gr.File(label="or upload the prompt file", type="filepath", visible=glocal)
    prompt_note = gr.Markdown(UNTRAINED_NOTE, visible=glocal, elem_id="prompt-note")
    weights = gr.Textbox(
        value=options.weights or "", label="CLIP weights: open_clip tag or local file (empty: the method's default)",
        visible=not options.tiny,
    )
    return method, object_name, prompt_path, prompt_upload, prompt_note, weights


def _image_inputs() -> tuple[gr.File, gr.Textbox, gr.File]:
    """The images to score (files or a folder) and the optional few-shot normal images."""
    images = gr.File(label="Images to score", file_count="multiple", type="filepath", elem_id="images")
    folder = gr.Textbox(label="or a folder of images on this machine (its sub-folders are read too)",
                        placeholder="/path/to/images", elem_id="folder")
    normals = gr.File(
        label=f"Optional: 1-{MAX_REFERENCES} normal images of the product (few-shot)", file_count="multiple",
        type="filepath", elem_id="normals",
    )
    return images, folder, normals


def _threshold_inputs() -> tuple[gr.Number, gr.Slider]:
    """The threshold: a number box (any value) and a fine slider over [0, 1] tied to it."""
    label = f"Threshold: anomalous above this raw image score ({UNREADABLE}: not read)"
    number = gr.Number(value=FALLBACK_THRESHOLD, label=label, elem_id="threshold-box", step=THRESHOLD_STEP)
    slider = gr.Slider(0.0, 1.0, value=FALLBACK_THRESHOLD, step=THRESHOLD_STEP, elem_id="threshold",
                       label=f"or slide it (steps of {THRESHOLD_STEP})")
    return number, slider


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
                with gr.Row():
                    score = gr.Button("Score", variant="primary", elem_id="score")
                    cancel = gr.Button("Cancel", elem_id="cancel")
            with gr.Column(scale=2):
                number, slider = _threshold_inputs()
                message = gr.Markdown(elem_id="messages")
                colour_bar = gr.HTML(elem_id="colour-bar")
                gallery = gr.Gallery(label="Heatmaps", columns=3, height="auto", elem_id="heatmaps")
                table = gr.Dataframe(headers=list(TABLE_COLUMNS), interactive=False, elem_id="results")
                downloads = gr.File(label="Download: results.csv, heatmaps.zip", file_count="multiple",
                                    interactive=False, elem_id="downloads")
        method, object_name, prompt_path, prompt_upload, prompt_note, weights = model_inputs
        method.change(handlers.show_method, method, [object_name, prompt_path, prompt_upload, prompt_note])
        inputs = [method, object_name, prompt_path, prompt_upload, weights, *image_inputs, number, state]
        scoring = score.click(handlers.score, inputs, [state, gallery, table, message, downloads, number, colour_bar],
                              api_name="score", show_progress="minimal")
        cancel.click(lambda: "Cancelled: the results shown are the earlier run's.", None, message, cancels=[scoring])
        slider.input(lambda value: value, slider, number, show_progress="hidden", queue=False)
        number.change(lambda value: gr.skip() if value is None else min(max(value, 0.0), 1.0), number, slider,
                      show_progress="hidden", queue=False)
        number.change(handlers.redecide, [state, number], [gallery, table, message, downloads],
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
        css=CSS,
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
