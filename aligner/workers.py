"""Worker processes that never outlive the process that started them, one BLAS thread each.

The service's pools and the emulator's recognition workers are shut down with their app; if the
app dies without cleaning up (killed, a crashed test), each worker notices within a second that
its parent is gone and exits, so no orphaned worker processes are left behind.

Each worker also limits numpy's BLAS to one thread (threadpoolctl): the workers already share the
cores, and a BLAS spinning up a thread per core in each of them made the phone model's matrix
products 2-3x dearer in CPU on a loaded 2-core machine (20 lip-sync calls: every chunk's events
late, against 12 of 260 with one thread each).

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

from .logs import configured_level, setup

__all__ = ["exit_with_parent", "one_blas_thread", "process_pool", "start_worker"]

_PARENT_CHECK = 1.0  # s between a worker's checks that the service still runs


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes (no fork of the event loop's process) that exit
    when the process that made the pool dies, and log as it does."""
    return ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker,
                               initargs=(os.getpid(), configured_level()))


def start_worker(parent: int, log_level: int | None = None) -> None:
    """What a worker process does first (a pool initializer): exit with ``parent``
    (:func:`exit_with_parent`), keep numpy's BLAS to one thread, and log in the one format
    (:mod:`aligner.logs`) at ``log_level`` when the parent does (None: it does not)."""
    if log_level is not None:
        setup(log_level)
    one_blas_thread()
    exit_with_parent(parent)


def one_blas_thread() -> None:
    """Keep numpy's BLAS to one thread in this process (workers, and the servers whose workers
    share the cores with them)."""
    import numpy  # noqa: F401  (loads its BLAS, which the limit can only reach once loaded)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def exit_with_parent(parent: int) -> None:
    """In a worker: start a daemon thread that ends the worker once ``parent`` is gone (also a
    pool initializer)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
