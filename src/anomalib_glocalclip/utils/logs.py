"""Log records to a file while a block runs (a sweep's ``evaluate.log``, a benchmark's ``benchmark.log``)."""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

DEFAULT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


@contextlib.contextmanager
def log_to_file(
    path: str | Path, logger_name: str | None = None, log_format: str = DEFAULT_FORMAT, level: int = logging.INFO
) -> Iterator[None]:
    """Also send the records of a logger (``level`` and up) to ``path`` while the block runs.

    The logger's own level is lowered to ``level`` for the block if it is higher (or unset), then restored; its
    other handlers are left alone. The file is appended to.

    ``logger_name`` ``None`` is the root logger (every package's records); the file's folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(log_format))
    logger = logging.getLogger(logger_name)
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(previous_level, level) if previous_level else level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()
