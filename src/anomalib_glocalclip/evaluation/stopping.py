"""SIGINT and SIGTERM during a sweep: a stop, not a failure.

While :func:`stop_on_signals` is active, the first SIGINT or SIGTERM in the sweep's process raises
:class:`SweepStopped` where the main thread is. It derives from ``BaseException`` but not from
``KeyboardInterrupt``, because Lightning turns a ``KeyboardInterrupt`` inside ``trainer.test`` into
``sys.exit(1)``; Lightning lets any other exception through after tearing its run down (data loader workers
included). Forked data loader workers inherit the handlers; there a signal keeps its default effect (a worker
given SIGTERM ends, one given SIGINT raises ``KeyboardInterrupt``, which PyTorch's worker loop absorbs).

The sweep records the running category as ``interrupted`` (redone on resume), writes the tables of what finished
and re-raises; ``anomalib-glocalclip evaluate`` then exits with ``128 + signal number`` (130 for SIGINT, 143 for
SIGTERM), as a shell reports a process killed by that signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepStopped(BaseException):
    """The sweep was stopped by a signal.

    Args:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")

    @property
    def exit_status(self) -> int:
        """The shell's status of a process ended by the signal: ``128 + signum`` (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


class StopSignals:
    """The signal received while :func:`stop_on_signals` was active (``None`` if none)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def raise_if_received(self) -> None:
        """Raise :class:`SweepStopped` if a stop signal came (e.g. while an error of a killed worker was handled).

        Raises:
            SweepStopped: a signal came.
        """
        if self.signum is not None:
            raise SweepStopped(self.signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopSignals]:
    """Turn SIGINT and SIGTERM in this process into :class:`SweepStopped` while the block runs.

    Outside the main thread (where Python cannot set handlers) nothing is installed.

    Yields:
        The received signal's record.
    """
    received = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        del frame
        if os.getpid() != owner:  # a forked data loader worker: the signal's default effect
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if received.signum is None:
            received.signum = signum
            raise SweepStopped(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
