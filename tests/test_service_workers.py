"""The service's worker processes never outlive it, even when it is killed without cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_SERVICE = """
import os, time
from aligner.workers import process_pool
pool = process_pool(1)
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for its new parent to reap it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_when_the_service_is_killed():
    service = subprocess.Popen([sys.executable, "-c", _SERVICE], stdout=subprocess.PIPE,
                               text=True)
    try:
        worker = int(service.stdout.readline())
        assert _running(worker)
        os.kill(service.pid, signal.SIGKILL)  # no cleanup: the pool is never shut down
        service.wait()
        deadline = time.monotonic() + 15
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the worker outlived the killed service"
    finally:
        service.kill()
        service.wait()


def test_workers_keep_numpy_to_one_blas_thread():
    # the workers share the cores: a BLAS thread per core in each made lip-sync chunks late
    from threadpoolctl import threadpool_info

    from aligner.workers import process_pool

    pool = process_pool(1)
    try:
        blas = [lib for lib in pool.submit(threadpool_info).result()
                if lib["user_api"] == "blas"]
    finally:
        pool.shutdown()
    assert blas and all(lib["num_threads"] == 1 for lib in blas)
