"""What went wrong, in words: one line for result tables (``describe_error``), and the plugin's own errors.

``PluginError`` is the base of the errors whose message names the file or option and the fix (missing
weights, unreadable images, prompt files, skipped predictions, refused exports ...). :func:`install_error_hook`
makes an uncaught one end a command with its message instead of a traceback; ``ANOMALIB_GLOCALCLIP_TRACEBACK=1``
brings the traceback back.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

NETWORK_HINT = (
    " (the weights could not be downloaded: put them in the model's cache, e.g. open_clip's ~/.cache/clip for "
    "WinClip's ViT-B-16-plus-240 laion400m_e31, or run once online)"
)
_NETWORK_ERRORS = {"URLError", "ConnectionError", "gaierror", "HTTPError", "MaxRetryError", "LocalEntryNotFoundError"}
_NETWORK_MESSAGES = ("urlopen", "Name or service not known")
_WRAPPERS = {"LoggerRedirectError"}


def describe_error(error: BaseException, max_length: int | None = None) -> str:
    """``Type: message`` on one line, with a hint when a download failed.

    Wrapping errors (Anomalib's ``LoggerRedirectError``) are replaced by their cause; runs of whitespace, newlines
    included, become one space.

    Args:
        error: the exception.
        max_length: cut the text to this many characters; ``None`` keeps all of it. Defaults to ``None``.
    """
    while error.__cause__ is not None and type(error).__name__ in _WRAPPERS:
        error = error.__cause__
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if type(error).__name__ in _NETWORK_ERRORS or any(message in text for message in _NETWORK_MESSAGES):
        text += NETWORK_HINT
    return text if max_length is None else text[:max_length]


TRACEBACK_ENV = "ANOMALIB_GLOCALCLIP_TRACEBACK"
_RECENT_MESSAGES: deque[str] = deque(maxlen=8)


class PluginError(Exception):
    """An error in the user's input or set-up whose message names the file or option and the fix.

    An uncaught one ends a command with its message only, not a traceback (see :func:`install_error_hook`).
    Each message is also remembered, so that a wrapper quoting it (jsonargparse's ``Does not validate against
    any of the Union subtypes`` when a model's ``__init__`` raises under Anomalib's CLI) is recognised.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        _RECENT_MESSAGES.append(str(self))


def plugin_error_message(error: BaseException) -> str | None:
    """The message of the plugin error that ``error`` is, was caused by, or quotes; ``None`` for other errors.

    Args:
        error: an uncaught exception.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PluginError):
            return str(current)
        current = current.__cause__ or current.__context__
    text = str(error)
    for message in reversed(_RECENT_MESSAGES):
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        if first_line and first_line in text:
            return message
    return None


def traceback_requested() -> bool:
    """True when ``ANOMALIB_GLOCALCLIP_TRACEBACK=1``: plugin errors end with the full traceback."""
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def install_error_hook() -> None:
    """Have an uncaught plugin error end the process with ``Error: <message>`` instead of a traceback.

    Wraps the current ``sys.excepthook`` (Anomalib's CLI installs rich's when it is imported, so this is called
    once a model is built, after that import); other errors, and every error with ``ANOMALIB_GLOCALCLIP_TRACEBACK=1``,
    go to the wrapped hook unchanged. The exit status of an uncaught error stays 1. Calling it again does nothing.
    """
    previous = sys.excepthook
    if getattr(previous, "anomalib_glocalclip", False):
        return

    def hook(error_type: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        message = None if traceback_requested() else plugin_error_message(error)
        if message is None:
            previous(error_type, error, traceback)
            return
        print(f"Error: {message}\n(Set {TRACEBACK_ENV}=1 to see the traceback.)", file=sys.stderr)

    hook.anomalib_glocalclip = True  # type: ignore[attr-defined]
    sys.excepthook = hook
