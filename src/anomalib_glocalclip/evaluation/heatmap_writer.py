"""``HeatmapWriter``: draws and saves an Anomalib visualizer's pictures on background threads.

Drawing a heatmap panel costs tens of milliseconds per image on the host; inline it holds up the test loop. The
writer draws on a small thread pool (PIL's encoders and NumPy release the GIL), keeps at most ``max_pending``
batches in flight (the loop waits when it is ahead), and re-raises the first drawing error at
:meth:`HeatmapWriter.close`.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from anomalib_glocalclip.components.visualizer import save_pictures

if TYPE_CHECKING:
    from anomalib.data import ImageBatch
    from anomalib.visualization import ImageVisualizer

DEFAULT_THREADS = min(4, os.cpu_count() or 1)


class HeatmapWriter:
    """Saves ``visualizer.visualize_item`` of every item of the batches it is given, in the background.

    File names are Anomalib's (with ``dataset_name`` and ``category``); ``max_pending`` batches (``None``:
    ``2 * threads``) may be queued or drawn before :meth:`submit` waits.
    """

    def __init__(
        self, visualizer: ImageVisualizer, output_dir: str | Path, dataset_name: str | None = None,
        category: str | None = None, threads: int = DEFAULT_THREADS, max_pending: int | None = None
    ) -> None:
        self.visualizer = visualizer
        self.output_dir = Path(output_dir)
        self.dataset_name = dataset_name
        self.category = category
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="heatmaps")
        self._slots = threading.BoundedSemaphore(max_pending or 2 * max(1, threads))
        self._futures: list[Future] = []

    def submit(self, batch: ImageBatch) -> None:
        """Queue ``batch``'s items for drawing (waits while ``max_pending`` batches are in flight).

        Raises the first drawing error of an earlier batch (drawing stops at the first error).
        """
        self._raise_first_error(done_only=True)
        self._slots.acquire()
        try:
            future = self._pool.submit(self._write, batch)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def close(self) -> None:
        """Wait for every queued picture, stop the threads, and re-raise the first drawing error, if any."""
        try:
            self._raise_first_error(done_only=False)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _raise_first_error(self, done_only: bool) -> None:
        for future in list(self._futures):
            if done_only and not future.done():
                continue
            future.result()  # raises the drawing error, if any
            self._futures.remove(future)

    def _write(self, batch: ImageBatch) -> None:
        save_pictures(self.visualizer, batch, self.output_dir, self.dataset_name, self.category)
