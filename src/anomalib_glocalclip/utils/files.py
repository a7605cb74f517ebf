"""Atomic file writes: a reader (another process, another rank, a rerun) sees the old file or the complete new one.

Every writer goes through :func:`atomic_path`: the content is written under a unique temporary name in the target's
folder, then renamed over the target (``os.replace``, atomic on POSIX and Windows within one file system).
"""

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        if fsync:
            _fsync_file(temporary)
        temporary.replace(path)
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


def atomic_write_json(path: str | Path, data: Any, fsync: bool = False, **dump_args: Any) -> Path:  # noqa: ANN401
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
