"""What went wrong, in words: one line for result tables (``describe_error``), and the plugin's own errors.

``PluginError`` is the base of the errors whose message names the file or option and the fix; the
``anomalib-glocalclip`` command ends with that message instead of a traceback (``ANOMALIB_GLOCALCLIP_TRACEBACK=1``
brings the traceback back).
"""

from __future__ import annotations

import os

NETWORK_HINT = (
    " (the weights could not be downloaded: put them in the model's cache, e.g. open_clip's ~/.cache/clip for "
    "WinClip's ViT-B-16-plus-240 laion400m_e31, or run once online)"
)
_NETWORK_ERRORS = {"URLError", "ConnectionError", "gaierror", "HTTPError", "MaxRetryError", "LocalEntryNotFoundError"}
_NETWORK_MESSAGES = ("urlopen", "Name or service not known")
_WRAPPERS = {"LoggerRedirectError"}


def describe_error(error: BaseException, max_length: int | None = None) -> str:
    """``Type: message`` on one line (at most ``max_length`` characters), with a hint when a download failed.

    Wrapping errors (Anomalib's ``LoggerRedirectError``) are replaced by their cause; runs of whitespace, newlines
    included, become one space.
    """
    while error.__cause__ is not None and type(error).__name__ in _WRAPPERS:
        error = error.__cause__
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if type(error).__name__ in _NETWORK_ERRORS or any(message in text for message in _NETWORK_MESSAGES):
        text += NETWORK_HINT
    return text if max_length is None else text[:max_length]


TRACEBACK_ENV = "ANOMALIB_GLOCALCLIP_TRACEBACK"


class PluginError(Exception):
    """An error in the user's input or set-up whose message names the file or option and the fix.

    The ``anomalib-glocalclip`` command ends with its message only, not a traceback (``cli.main``).
    """


def plugin_error_message(error: BaseException) -> str | None:
    """The message of the plugin error that ``error`` is or was caused by; ``None`` for other errors."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PluginError):
            return str(current)
        current = current.__cause__ or current.__context__
    return None


def traceback_requested() -> bool:
    """True when ``ANOMALIB_GLOCALCLIP_TRACEBACK=1``: plugin errors end with the full traceback."""
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
