"""The benchmarks' processes: start a server command, wait for its aligner, read what the
machine's /proc says about it (memory, open files, CPU pressure); time a program run."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import time
from pathlib import Path

import aiohttp

__all__ = ["cpu_pressure", "open_files", "rss_mb", "start", "stop", "timed_run", "wait_ready"]


def timed_run(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run a program to its end: (wall s, CPU s of the child, the finished process with its
    text output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, done


async def start(cmd: list[str]) -> tuple[subprocess.Popen, str]:
    """Start a server command that prints its ``http://127.0.0.1:PORT`` URL; returns the process
    and that URL (its output keeps being drained so it never blocks on a full pipe)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = await loop.run_in_executor(None, proc.stdout.readline)
        if not line:
            break
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if m:
            loop.run_in_executor(None, lambda: [None for _ in proc.stdout])
            return proc, f"http://127.0.0.1:{m.group(1)}"
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} did not start")


def stop(*procs: subprocess.Popen | None) -> None:
    """Terminate the processes still running (None: never started), killing any that take
    over a minute."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def wait_ready(base: str) -> None:
    """Wait until the service has loaded its aligner (its first alignment is slow)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(1200):
            async with http.get(f"{base}/healthz") as resp:
                if (await resp.json()).get("aligner_ready"):
                    return
            await asyncio.sleep(0.1)


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return kids


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int, field: str = "VmRSS") -> tuple[float, float]:
    """``field`` (``VmRSS`` now, ``VmHWM`` the peak) of ``pid`` and the sum over it and its
    children (worker processes), in MB."""
    main = _status_mb(pid, field)
    return main, main + sum(_status_mb(k, field) for k in _children(pid))


def open_files(pid: int) -> tuple[int, int]:
    """Open file descriptors (files, sockets, pipes) of ``pid``, and of it and its children."""
    def count(p: int) -> int:
        try:
            return len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            return 0

    main = count(pid)
    return main, main + sum(count(k) for k in _children(pid))


def cpu_pressure() -> str:
    """The machine's CPU contention (Linux PSI: share of time some task waited for a CPU) and
    load: the figures depend on them, as every process here shares the CPUs."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split()[1:4]
    except OSError:
        some = ["unavailable"]
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"CPU pressure {' '.join(some)}, load average {' '.join(load)}"
