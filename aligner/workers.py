"""Worker processes that never outlive the process that started them.

The service's pools and the emulator's recognition workers are shut down with their app; if the
app dies without cleaning up (killed, a crashed test), each worker notices within a second that
its parent is gone and exits, so no orphaned worker processes are left behind.

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

__all__ = ["exit_with_parent", "process_pool"]

_PARENT_CHECK = 1.0  # s between a worker's checks that the service still runs


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (no fork of the event loop's process) that exit
    when the process that made the pool dies."""
    return ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(),))


def exit_with_parent(parent: int) -> None:
    """In a worker: start a daemon thread that ends the worker once ``parent`` is gone (also a
    pool initializer)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
