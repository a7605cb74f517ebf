"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright's Python package.

Playwright's own browser builds are never downloaded: the tests launch the system's chromium through
``executable_path`` (``.ci/run`` installs it with apt-get when missing). Without chromium or Playwright the tests
skip with that reason; under CI (``CI=true``) they fail instead, so a broken install cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

CHROMIUM_ENV = "ANOMALIB_GLOCALCLIP_CHROMIUM"
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """The chromium executable: ``$ANOMALIB_GLOCALCLIP_CHROMIUM`` or the first of the usual names on ``PATH``."""
    if os.environ.get(CHROMIUM_ENV):
        return os.environ[CHROMIUM_ENV]
    return next((path for name in _CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class PageWatch:
    """What a page did: console errors, uncaught page errors and requests to anything but the loopback host."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        """Record ``page``'s console errors, page errors and non-local requests; returns the page."""
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self._request)
        return page

    def _request(self, request: Request) -> None:
        url = request.url
        local = url.startswith(("file:", "data:", "blob:", "about:")) or any(
            url.startswith(f"{scheme}://{host}") for scheme in ("http", "https", "ws")
            for host in ("127.0.0.1", "localhost", "[::1]")
        )
        if not local:
            self.external_requests.append(url)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """A headless Chromium (Playwright ``Browser``); skipped, with the reason, where it cannot be had."""
    path = chromium_path()
    if path is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()
