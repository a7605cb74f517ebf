"""Atomic file writes: a reader (another process, another rank, a rerun) sees the old file or the complete new one.

Every writer goes through :func:`atomic_path`: the content is written under a unique temporary name in the target's
folder, then renamed over the target (``os.replace``, atomic on POSIX and Windows within one file system).
"""

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import PluginError


class OutputWriteError(PluginError, OSError):
    """A result file could not be written; the message names it and the fix. The earlier file is unchanged.

    Args:
        path: the file that was to be written.
        error: the operating system's error.
    """

    def __init__(self, path: Path, error: OSError) -> None:
        if error.errno == errno.ENOSPC:
            fix = "Free disk space there, or write the results to another disk"
        elif error.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
            fix = "Make the folder writable, or write the results to another folder"
        else:
            fix = "Check the folder, or write the results to another folder"
        hint = " (e.g. --default_root_dir)" if path.suffix in {".csv", ".pt"} else ""
        super().__init__(
            error.errno,
            f"Could not write {path}: {error.strerror or error}. {fix}{hint}; an earlier {path.name} is unchanged.",
        )
        self.path = path

    def __str__(self) -> str:
        """The message alone (not ``[Errno N] ...``)."""
        return str(self.args[1])


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name next to ``path`` (``.name.<pid>-<random>.tmp``): concurrent writers never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on an error it is deleted.

    Args:
        path: the file to (re)place. Its folder is created if missing.
        fsync: flush the new content to disk before the rename, so that it survives a crash of the machine, not
            only of the process. Defaults to ``False``.

    Example:
        >>> with atomic_path("prompts.pt") as temporary:  # doctest: +SKIP
        ...     torch.save(payload, temporary)
    """
    path = Path(path)
    temporary = temporary_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        if fsync:
            _fsync_file(temporary)
        temporary.replace(path)
    except OSError as error:
        raise OutputWriteError(path, error) from error
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``.

    Args:
        path: the file to write.
        data: its new content.
        fsync: flush to disk before the rename. Defaults to ``False``.
    """
    with atomic_path(path, fsync=fsync) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically; return ``path``.

    Args:
        path: the file to write.
        text: its new content.
        encoding: text encoding. Defaults to ``"utf-8"``.
        fsync: flush to disk before the rename. Defaults to ``False``.
    """
    with atomic_path(path, fsync=fsync) as temporary:
        temporary.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any, fsync: bool = False, **dump_args: Any) -> Path:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically; return ``path``.

    Args:
        path: the file to write.
        data: any JSON-serialisable value.
        fsync: flush to disk before the rename. Defaults to ``False``.
        **dump_args: arguments of ``json.dumps`` (``allow_nan=False``, ``default=str``, ...); ``indent`` defaults
            to 2.
    """
    dump_args.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(data, **dump_args) + "\n", fsync=fsync)
