"""One line that says what went wrong, for result tables and stored results (the traceback goes to the log)."""

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
