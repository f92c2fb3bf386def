"""Worker process pools of the service that never outlive it.

A pool's workers are shut down with the app; if the service dies without cleaning up (killed,
a crashed test), each worker notices within a second that its parent is gone and exits, so no
orphaned worker processes are left behind.

>>> pool = process_pool(1)
>>> pool.submit(pow, 2, 5).result()
32
>>> pool.shutdown()
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool"]

_PARENT_CHECK = 1.0  # s between a worker's checks that the service still runs


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (no fork of the event loop's process) that exit
    when the process that made the pool dies."""
    return ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_watch_parent, initargs=(os.getpid(),))


def _watch_parent(parent: int) -> None:
    """Worker initializer: a daemon thread that ends the worker once ``parent`` is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
