"""One log format for every command and worker process: logfmt ``key=value`` lines, each with
the call it is about.

A line: ``time=... level=warning logger=aligner.session call_id=call_1 msg="..." key=value``.
Modules log as usual (``logging.getLogger(__name__)``), a plain message plus, for structured
data, ``extra=fields(key=value, ...)``. The call id comes from :func:`call_scope` (a context
variable: the asyncio tasks a call's handler starts inherit it, a render job sets it in its
worker process), or from a ``call_id`` field of the line itself. Values with spaces, quotes or
``=`` are quoted with JSON escapes, so a traceback stays on its line (``exc="..."``).

>>> import logging
>>> line = logging.LogRecord("aligner.session", logging.WARNING, "", 0,
...                          "malformed %s frame at %.3f s", ("out", 0.001), None)
>>> with call_scope("call_1"):
...     print(LogfmtFormatter(with_time=False).format(line))
level=warning logger=aligner.session call_id=call_1 msg="malformed out frame at 0.001 s"
>>> line.fields = {"code": 1000, "reason": "bye now"}
>>> print(LogfmtFormatter(with_time=False).format(line))
level=warning logger=aligner.session msg="malformed out frame at 0.001 s" code=1000 reason="bye now"
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["LogfmtFormatter", "call_scope", "configured_level", "fields", "setup"]

_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_id", default=None)


@contextlib.contextmanager
def call_scope(call_id: str | None) -> Iterator[None]:
    """Lines logged inside (and in asyncio tasks started inside) are about ``call_id``."""
    token = _CALL_ID.set(call_id)
    try:
        yield
    finally:
        _CALL_ID.reset(token)


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """``extra=`` of a log call carrying ``values`` as ``key=value`` pairs of its line."""
    return {"fields": values}


def _value(v: Any) -> str:
    if isinstance(v, str):
        text = v
    elif isinstance(v, bool) or v is None:
        text = json.dumps(v)
    elif isinstance(v, int | float):
        text = repr(v)
    else:
        text = json.dumps(v, default=str, separators=(",", ":"), ensure_ascii=False)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """Formats records as logfmt lines (see the module docstring)."""

    def __init__(self, with_time: bool = True) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        extra = dict(getattr(record, "fields", None) or {})
        call_id = extra.pop("call_id", None) or _CALL_ID.get()
        pairs: list[tuple[str, Any]] = []
        if self.with_time:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            pairs.append(("time", f"{stamp}.{int(record.msecs):03d}Z"))
        pairs += [("level", record.levelname.lower()), ("logger", record.name)]
        if call_id:
            pairs.append(("call_id", call_id))
        pairs.append(("msg", record.getMessage()))
        pairs += extra.items()
        if record.exc_info:
            pairs.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{k}={_value(v)}" for k, v in pairs)


def setup(level: int = logging.WARNING) -> None:
    """Log ``level`` and above to stderr as logfmt lines (replacing this module's handler if
    set up before)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, LogfmtFormatter):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root.addHandler(handler)
    root.setLevel(level)


def configured_level() -> int | None:
    """The level :func:`setup` set in this process, None if it was not called (a library
    user's own logging): what worker processes are set up with."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, LogfmtFormatter) for h in root.handlers):
        return root.level
    return None
