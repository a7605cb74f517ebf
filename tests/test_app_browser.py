"""``anomalib-glocalclip app`` in a real browser: heatmaps appear, the broken file is named, the slider re-decides.

The page is served in this process with the tiny CLIP, so a forward hook on the model counts its calls. The
screenshot goes to ``$ANOMALIB_GLOCALCLIP_SCREENSHOTS/app.png`` when that variable is set (the README's picture).
"""

from __future__ import annotations

import io
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image

from anomalib_glocalclip.app import AppOptions, ModelCache
from anomalib_glocalclip.app.scoring import CSV_COLUMNS
from anomalib_glocalclip.demo.products import make_image
from browser import PageWatch, chromium  # noqa: F401

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytest.importorskip("gradio")
pytestmark = pytest.mark.slow
SCREENSHOTS_ENV = "ANOMALIB_GLOCALCLIP_SCREENSHOTS"
TIMEOUT_MS = 120_000  # two shared cores: the first scoring also builds the model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Served:
    """The page served with the tiny CLIP: its address, the model's forward calls, and a delay per call."""

    url: str
    calls: list[int] = field(default_factory=list)
    delay_s: list[float] = field(default_factory=lambda: [0.0])  # slows scoring down to cancel it midway


@pytest.fixture(scope="module")
def app() -> Iterator[Served]:
    """The page served with the tiny CLIP, a forward hook counting the model's calls; closed after the module."""
    from anomalib_glocalclip.app.page import serve

    previous = os.environ.get("GRADIO_ANALYTICS_ENABLED")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # as the command sets it
    options = AppOptions(tiny=True, object_name="bottle", port=_free_port())
    cache = ModelCache()
    served = Served("")

    def count(_module: object, inputs: tuple[torch.Tensor, ...], _output: object) -> None:
        served.calls.append(len(inputs[0]))
        time.sleep(served.delay_s[0])

    model = cache.get(options.choice())  # the model the page's first choice will find in the cache
    hook = model.model.register_forward_hook(count)
    page = serve(options, cache, block=False)
    served.url = page.local_url
    try:
        yield served
    finally:
        page.close()
        hook.remove()
        if previous is None:
            os.environ.pop("GRADIO_ANALYTICS_ENABLED", None)
        else:
            os.environ["GRADIO_ANALYTICS_ENABLED"] = previous


def _product(path: Path, seed: int, anomalous: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_image(np.random.default_rng(seed), (160, 200), "bottle", anomalous=anomalous)[0]).save(path)
    return path


@pytest.fixture
def uploads(tmp_path: Path) -> list[Path]:
    """Two product images (one with a defect) and a file that is not an image."""
    paths = [_product(tmp_path / "good.png", 3), _product(tmp_path / "scratched.png", 4, anomalous=True)]
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    return [*paths, tmp_path / "broken.png"]


def _open(browser: Browser, app: Served) -> tuple[Page, PageWatch]:
    watch = PageWatch()
    page = watch.attach(browser.new_page(viewport={"width": 1280, "height": 900}))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url)
    page.get_by_text("its scores mean nothing").first.wait_for()  # the tiny CLIP's banner
    return page, watch


def _set_threshold(page: Page, value: float) -> None:
    box = page.locator("#threshold-box input")
    box.fill(str(value))
    box.press("Enter")


def _decisions(page: Page) -> list[str]:
    """The decision column of the results table, sorted."""
    return sorted(re.findall(r"\b(anomalous|normal|unreadable)\b", page.locator("#results").inner_text()))


def _screenshot(page: Page, name: str) -> None:
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
        shot.quantize(colors=128).save(Path(folder) / name, optimize=True)  # small enough to commit


def test_page_scores_names_the_broken_file_and_re_decides_without_the_model(chromium, app, uploads) -> None:  # noqa: F811
    page, watch = _open(chromium, app)
    page.locator("#images input[type=file]").set_input_files([str(path) for path in uploads])
    page.wait_for_function("document.querySelector('#images').innerText.includes('broken')")  # uploaded
    page.locator("#score").click()
    page.locator("#messages").get_by_text("broken.png").wait_for()
    page.locator("#heatmaps img").nth(1).wait_for()
    assert page.locator("#heatmaps img").count() == 2
    assert "could not be read" in page.locator("#messages").inner_text()
    assert tempfile.gettempdir() not in page.locator("#messages").inner_text() + page.locator("#results").inner_text()
    assert "one scale for every heatmap" in page.locator("#colour-bar").inner_text()
    assert len(_decisions(page)) == 3
    assert _decisions(page)[-1] == "unreadable"
    scored = list(app.calls)
    assert sum(scored) == 2  # the two readable images, in one batch
    slider = page.locator("#threshold input[type=range]")

    _set_threshold(page, 0)
    page.wait_for_function("document.querySelector('#results').innerText.split('anomalous').length === 3")
    assert _decisions(page) == ["anomalous", "anomalous", "unreadable"]
    low, high = sorted(float(value) for value in re.findall(r"\b0\.\d+\b", page.locator("#results").inner_text()))
    between = round((low + high) / 2, 4)  # scores differing in the third decimal are told apart
    _set_threshold(page, between)
    page.wait_for_function("document.querySelector('#results').innerText.split('anomalous').length === 2")
    assert float(slider.input_value()) == pytest.approx(between)  # the slider follows the typed value
    slider.fill("1")  # and the box follows the slider
    page.wait_for_function("!document.querySelector('#results').innerText.includes('anomalous')")
    assert float(page.locator("#threshold-box input").input_value()) == 1
    assert _decisions(page) == ["normal", "normal", "unreadable"]
    assert app.calls == scored  # the threshold never called the model

    _set_threshold(page, 0.5)
    page.wait_for_timeout(500)
    _screenshot(page, "app.png")

    page.locator("#folder textarea, #folder input").first.fill("/no/such/folder")
    page.locator("#score").click()
    page.locator("#messages").get_by_text("Image folder not found").wait_for()
    assert _decisions(page) == ["normal", "normal", "unreadable"]  # an error leaves the results shown
    assert watch.page_errors == []
    assert watch.external_requests == []  # nothing leaves the machine: no fonts, analytics or CDN
    assert watch.console_errors == []


def test_rows_are_named_by_relative_path_or_upload_name_and_duplicates_scored_once(chromium, app, tmp_path) -> None:  # noqa: F811
    folder = tmp_path / "folder"
    _product(folder / "good" / "000.png", 5)
    _product(folder / "crack" / "000.png", 6, anomalous=True)
    (folder / "crack" / "copy.png").write_bytes((folder / "good" / "000.png").read_bytes())
    uploads = [_product(tmp_path / "a" / "000.png", 7), _product(tmp_path / "b" / "000.png", 8)]  # one name, twice
    page, _ = _open(chromium, app)
    page.locator("#method").get_by_text("GlocalCLIP").click()
    assert "untrained prompts" in page.locator("#prompt-note").inner_text()
    assert "Learn prompts from your own normal images" in page.locator("#prompt-note").inner_text()
    page.locator("#method").get_by_text("AnoCLIP").click()
    page.locator("#images input[type=file]").set_input_files([str(path) for path in uploads])
    page.wait_for_function("document.querySelectorAll('#images .file-name, #images tr').length >= 2")
    page.locator("#folder textarea, #folder input").first.fill(str(folder))
    assert "sub-folders" in page.locator("#folder").inner_text()
    page.locator("#score").click()
    page.locator("#heatmaps img").nth(3).wait_for()
    rows = page.locator("#results").inner_text()
    for name in ("000.png", "000 (2).png", "crack/000.png", "good/000.png"):
        assert name in rows
    assert len(_decisions(page)) == 4  # crack/copy.png: the same content as good/000.png, scored once
    assert "crack/copy.png" in page.locator("#messages").inner_text()
    assert "the same content as" in page.locator("#messages").inner_text()
    csv_link = page.locator("#downloads a[href*='results.csv']").first.get_attribute("href")
    header = page.request.get(csv_link if csv_link.startswith("http") else app.url.rstrip("/") + csv_link).text()
    assert header.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert "AnoCLIP,tiny-clip,random (tiny CLIP)" in header


def _settled(page: Page, app: Served) -> int:
    """The model's forward calls once they stop coming (none for two seconds)."""
    while True:
        calls = len(app.calls)
        page.wait_for_timeout(2000)
        if len(app.calls) == calls:
            return calls


def test_cancel_and_reload_stop_the_run(chromium, app, tmp_path) -> None:  # noqa: F811
    for index in range(64):  # 8 batches of 8, a second each
        Image.new("RGB", (48, 40), (index * 4, 90, 160)).save(tmp_path / f"{index:02d}.png")
    app.delay_s[0] = 1.0
    try:
        page, _ = _open(chromium, app)
        page.locator("#folder textarea, #folder input").first.fill(str(tmp_path))
        before = len(app.calls)
        page.locator("#score").click()
        page.locator("#messages").get_by_text("Scored 8 of 64").wait_for()
        page.locator("#cancel").click()
        page.locator("#messages").get_by_text("Cancelled").wait_for()
        cancelled = _settled(page, app)
        assert cancelled - before < 8  # Cancel stopped the run after the batch it was in

        page.locator("#score").click()
        page.locator("#messages").get_by_text("Scored 8 of 64").wait_for()
        page.reload()  # leaving the page stops its run too
        assert _settled(page, app) - cancelled < 8
    finally:
        app.delay_s[0] = 0.0
