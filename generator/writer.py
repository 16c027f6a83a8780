"""Storing pictures on one background thread while the next batch renders.

A rendered picture still needs its PNG encoded (zlib), its infotext and sidecar written
and two files fsync'd: tens of milliseconds a picture that would otherwise keep the GPU
waiting. ``Writer`` hands them to one thread through a bounded queue (about two batches:
the renderer runs ahead, never far), so memory stays bounded and order is kept.

Failure modes: when a store raises (disk full, a bug), the renderer's next ``put`` or
the ``close`` raises that error, so the build fails with it; every picture stored before
it stays stored (``Cache.put`` is atomic), and the ones queued behind it are still
tried. Ctrl-C in the build (the main thread) lets the writer store what was already
rendered before the build reports how many were saved.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from .plan import Node

StoreFunction = Callable[["Node", "Image.Image", float], None]
_DONE = object()  # the last item: the thread ends


class Writer:
    """``put`` queues a picture for ``store``; one thread stores them in order."""

    def __init__(self, store: StoreFunction, depth: int):
        self._store = store
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._ending = False  # the thread was told to end
        # A daemon: a second Ctrl-C while it drains ends the process, as before.
        self._thread = threading.Thread(target=self._run, name="genimg-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _DONE:
                    return
                self._store(*item)
            except BaseException as exc:  # reported in the build's thread: the first one
                self._error = self._error or exc
            finally:
                self._queue.task_done()

    def put(self, node: Node, image: Image.Image, seconds: float) -> None:
        """Queue one picture (waits while the queue is full); raises a failed store's
        error."""
        self._raise()
        self._queue.put((node, image, seconds))

    def flush(self) -> None:
        """Wait until every queued picture is stored (a picture the next wave reads from
        the cache must be there)."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Store what is queued, end the thread; raises a failed store's error."""
        if not self._ending:
            self._queue.put(_DONE)
            self._ending = True
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        """Drain the queue whatever happened, even through one Ctrl-C while draining (a
        second one ends the process: the thread is a daemon). A store's error is raised
        only when the block raised nothing: else the block's error is what the user sees."""
        try:
            try:
                self.close()
            except KeyboardInterrupt:
                self.close()
                raise
        except BaseException:
            if kind is None:
                raise
