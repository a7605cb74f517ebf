"""SIGINT and SIGTERM during a sweep: a stop, not a failure.

While :func:`stop_on_signals` is active, the first SIGINT or SIGTERM raises :class:`SweepStopped` in the main
thread. It is not a ``KeyboardInterrupt``, which Lightning turns into ``sys.exit(1)`` inside ``trainer.test``;
any other exception Lightning lets through after tearing its run down (loader workers included). Forked loader
workers keep the signal's default effect. ``anomalib-glocalclip evaluate`` exits with ``128 + signal number``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepStopped(BaseException):
    """The sweep was stopped by the signal ``signum``."""

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
        """Raise :class:`SweepStopped` if a stop signal came (e.g. while an error of a killed worker was handled)."""
        if self.signum is not None:
            raise SweepStopped(self.signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopSignals]:
    """Turn SIGINT and SIGTERM into :class:`SweepStopped` while the block runs (main thread only); yield the record."""
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
