"""Progress of long work: a bar on stderr when it is a terminal, quiet otherwise.

One mechanism for every long job (``aligner align`` on long audio, ``aligner render`` building
a call's timeline, the ``mp4`` and ``picture`` renderers). A job asks :func:`reporter` for a
callable and calls it with how much is done (in the job's own unit: seconds of audio, frames,
rows), optionally with a word on what it is doing now::

    report = reporter("mp4", total=180.0, spec="auto")
    report(12.5)                       # "mp4 [##....] 7%  12.5/180.0 s  3.1x real time"
    report(180.0)                      # the bar ends with a newline at 100%

``spec`` says where the progress goes: ``"auto"`` (or None) a bar when stderr is a terminal,
True/False a bar always/never (strings ``1/true/yes/on`` count as true, as on the command
line), or a callable ``(done, total)`` that receives it instead.

>>> seen = []
>>> report = reporter("job", 4.0, lambda done, total: seen.append((done, total)))
>>> report(1.0); report(4.0)
>>> seen
[(1.0, 4.0), (4.0, 4.0)]
>>> reporter("job", 4.0, False)(2.0)     # quiet
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Report", "enabled", "reporter", "session_progress"]

#: A progress callback: ``report(done)`` or ``report(done, "what happens now")``.
Report = Callable[..., None]

_WIDTH = 30


def enabled(spec: Any) -> bool:
    """True if ``spec`` asks for a bar: ``"auto"``/None when stderr is a terminal, else its
    truth (strings ``1/true/yes/on`` are true)."""
    if spec is None or spec == "auto":
        return sys.stderr.isatty()
    if isinstance(spec, str):
        return spec.strip().lower() in ("1", "true", "yes", "on")
    return bool(spec)


def reporter(label: str, total: float, spec: Any = "auto", *, unit: str | None = "s",
             speed: str | None = "real time") -> Report:
    """A progress callback for a job of size ``total`` (see the module docstring).

    Args:
        label: the job's name, first on the line.
        total: the job's size in ``unit``.
        spec: ``"auto"``/None, True/False (or their command-line strings), or a callable
            ``(done, total)``.
        unit: the unit of ``done`` and ``total``, shown after the numbers; None shows the
            percentage and the seconds elapsed only (work measured in stages, not units).
        speed: when set, the bar shows how many ``unit`` are done per second of wall time,
            as ``"3.1x real time"`` (for seconds of audio); None shows no speed.
    """
    if callable(spec):
        return lambda done, note="": spec(done, total)
    if not enabled(spec):
        return lambda done, note="": None
    started = time.perf_counter()

    def bar(done: float, note: str = "") -> None:
        frac = min(1.0, done / total) if total else 1.0
        n = int(frac * _WIDTH)
        elapsed = max(time.perf_counter() - started, 1e-6)
        line = f"\r{label} [{'#' * n}{'.' * (_WIDTH - n)}] {frac:4.0%}"
        if unit is None:
            line += f" {elapsed:6.1f} s"
        else:
            line += f" {done:6.1f}/{total:.1f} {unit}"
            if speed:
                line += f" {done / elapsed:4.1f}x {speed}"
        if note:
            line += f"  {note}"
        sys.stderr.write(line + "\033[K")  # erase what a longer line before left
        if frac >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


def session_progress(label: str, spec: Any = "auto") -> Callable[[float, float], None] | None:
    """A ``progress(done, total)`` callback (the form :func:`aligner.session.build_timeline`
    calls) drawing a :func:`reporter` bar, or None when no bar is wanted."""
    if not callable(spec) and not enabled(spec):
        return None
    bars: dict[float, Report] = {}

    def progress(done: float, total: float) -> None:
        if total not in bars:
            bars.clear()
            bars[total] = reporter(label, total, spec)
        bars[total](done)

    return progress
