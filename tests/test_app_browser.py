"""``anomalib-glocalclip app`` in a real browser: heatmaps appear, the broken file is named, the slider re-decides.

The page is served in this process with the tiny CLIP, so a forward hook on the model counts its calls. The
screenshot goes to ``$ANOMALIB_GLOCALCLIP_SCREENSHOTS/app.png`` when that variable is set (the README's picture).
"""

from __future__ import annotations

import io
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from anomalib_glocalclip.app import AppOptions, ModelCache
from anomalib_glocalclip.demo.products import make_image
from browser import PageWatch, chromium  # noqa: F401

pytest.importorskip("gradio")
SCREENSHOTS_ENV = "ANOMALIB_GLOCALCLIP_SCREENSHOTS"
TIMEOUT_MS = 120_000  # two shared cores: the first scoring also builds the model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[str, list[int]]]:
    """(address, forward calls of the model) of the page served with the tiny CLIP; closed after the module."""
    from anomalib_glocalclip.app.page import serve

    previous = os.environ.get("GRADIO_ANALYTICS_ENABLED")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # as the command sets it
    options = AppOptions(tiny=True, object_name="bottle", port=_free_port())
    cache = ModelCache()
    calls: list[int] = []
    model = cache.get(options.choice())  # the model the page's first choice will find in the cache
    hook = model.model.register_forward_hook(lambda _module, inputs, _output: calls.append(len(inputs[0])))
    page = serve(options, cache, block=False)
    try:
        yield page.local_url, calls
    finally:
        page.close()
        hook.remove()
        if previous is None:
            os.environ.pop("GRADIO_ANALYTICS_ENABLED", None)
        else:
            os.environ["GRADIO_ANALYTICS_ENABLED"] = previous


@pytest.fixture
def uploads(tmp_path: Path) -> list[Path]:
    """Two product images (one with a defect) and a file that is not an image."""
    rng = np.random.default_rng(3)
    paths = []
    for name, anomalous in (("good.png", False), ("scratched.png", True)):
        Image.fromarray(make_image(rng, (160, 200), "bottle", anomalous=anomalous)[0]).save(tmp_path / name)
        paths.append(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    return [*paths, tmp_path / "broken.png"]


def _set_threshold(page: Any, value: float) -> None:
    box = page.locator("#threshold input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _decisions(page: Any) -> list[str]:
    """The decision column of the results table, sorted."""
    return sorted(re.findall(r"\b(anomalous|normal|unreadable)\b", page.locator("#results").inner_text()))


def test_page_scores_names_the_broken_file_and_re_decides_without_the_model(chromium, app, uploads) -> None:  # noqa: F811
    url, calls = app
    watch = PageWatch()
    page = watch.attach(chromium.new_page(viewport={"width": 1280, "height": 900}))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_text("its scores mean nothing").wait_for()  # the tiny CLIP's banner
    page.locator("#images input[type=file]").set_input_files([str(path) for path in uploads])
    page.wait_for_function("document.querySelector('#images').innerText.includes('broken')")  # uploaded
    page.locator("#score").click()
    page.locator("#messages").get_by_text("broken.png").wait_for()
    page.locator("#heatmaps img").nth(1).wait_for()
    assert page.locator("#heatmaps img").count() == 2
    assert "could not be read" in page.locator("#messages").inner_text()
    assert len(_decisions(page)) == 3
    assert _decisions(page)[-1] == "unreadable"
    scored = list(calls)
    assert sum(scored) == 2  # the two readable images, in one batch

    _set_threshold(page, 0)
    page.wait_for_function("document.querySelector('#results').innerText.split('anomalous').length === 3")
    assert _decisions(page) == ["anomalous", "anomalous", "unreadable"]
    _set_threshold(page, 1)
    page.wait_for_function("!document.querySelector('#results').innerText.includes('anomalous')")
    assert _decisions(page) == ["normal", "normal", "unreadable"]
    assert calls == scored  # the slider never called the model

    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        _set_threshold(page, 0.5)
        page.wait_for_timeout(1000)
        Path(folder).mkdir(parents=True, exist_ok=True)
        shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
        shot.quantize(colors=128).save(Path(folder) / "app.png", optimize=True)  # small enough to commit
    assert watch.page_errors == []
    assert watch.external_requests == []  # nothing leaves the machine: no fonts, analytics or CDN
    assert watch.console_errors == []
