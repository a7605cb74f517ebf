"""Atomic file writes: a reader (another process, another rank, a rerun) sees the old file or the complete new one.

The content is written under a unique temporary name in the target's folder, then renamed over the target
(``os.replace``, atomic on POSIX and Windows within one file system).
"""

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import PluginError


class OutputWriteError(PluginError, OSError):
    """A result file (``path``) could not be written; the message names it and the fix; the old file is unchanged."""

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
            only of the process.
    """
    path = Path(path)
    # A unique hidden name next to ``path``: concurrent writers never share one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
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


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (``fsync``: flush to disk before the rename); return ``path``."""
    with atomic_path(path, fsync=fsync) as temporary:
        temporary.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_json(path: str | Path, data: object, fsync: bool = False, **dump_args: object) -> Path:
    """Write ``data`` as JSON (``json.dumps(**dump_args)``, indent 2 by default) atomically; return ``path``."""
    dump_args.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(data, **dump_args) + "\n", fsync=fsync)
