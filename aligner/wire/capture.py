"""The capture format: every frame of one call, both directions, on the session clock.

A capture is a directory (format documented in ``docs/capture.md``)::

    capture.json   header: {"format": "aligner-capture", "version": 1, call_id, protocol,
                   audio_encoding, sample_rate, url, started_at, ...}; rewritten atomically
    events.jsonl   one JSON object per line, append-only, flushed per frame:
                   {"t": 0.52, "d": "in", "text": "clear"}            a text frame
                   {"t": 0.61, "d": "in", "bin": [0, 3200]}          a binary frame: bytes
                                                                      [offset, length] of the raw file
                   {"t": 9.80, "close": {"code": 1000, "reason": "", "by": "server"}}
    agent.raw      append-only payloads of binary frames from the server ("in")
    user.raw       append-only payloads of binary frames from the client ("out")

Frames are stored as they were on the wire, so replay feeds them through the same codec
(:mod:`aligner.wire.protocol`) as the live client and yields the same events. A binary payload is
written (and flushed) before the line that points at it, and every line is one ``write`` call, so
a crash or ``kill -9`` loses at most the frame being written; the reader ignores a truncated last
line and a line pointing past the end of a raw file. The files are fsync'd about once a second
of session time.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> with CaptureWriter(d, {"audio_encoding": "s16le", "sample_rate": 16000}) as w:
...     w.write(0.5, "in", b"\\x00\\x00")
...     w.write(0.7, "in", "clear")
>>> [(s.t, s.direction, type(s.event).__name__) for s in read(d).events()]
[(0.5, 'in', 'AgentAudio'), (0.7, 'in', 'Clear')]
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CaptureError
from ..timeline import write_atomic
from .events import Stamped
from .protocol import (
    WebClientProtocol,
    decode_client_binary,
    decode_client_text,
    decode_twilio,
)

__all__ = [
    "FORMAT", "VERSION", "Capture", "CaptureWriter", "Close", "Frame", "read", "read_info",
    "update_info",
]

logger = logging.getLogger(__name__)

FORMAT = "aligner-capture"
VERSION = 1
HEADER = "capture.json"
EVENTS = "events.jsonl"
RAW = {"in": "agent.raw", "out": "user.raw"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One websocket frame as recorded: ``payload`` is ``str`` (text) or ``bytes`` (binary)."""

    t: float
    direction: str  # "in": server -> client, "out": client -> server
    payload: str | bytes


@dataclass(frozen=True, slots=True)
class Close:
    """How the websocket closed: ``by`` is ``"server"`` or ``"client"``."""

    t: float
    code: int | None
    reason: str = ""
    by: str = "server"


class CaptureWriter:
    """Append frames of one call to a capture directory as they happen.

    Args:
        path: the capture directory (created; must not already hold a capture).
        info: header fields (``call_id``, ``protocol``, ``audio_encoding``, ``sample_rate``,
            ``url``...); ``format``, ``version`` and ``started_at`` are added.
        fsync_interval: seconds of session time between fsyncs.

    Raises:
        CaptureError: the directory already holds a capture or cannot be written.

    Call :meth:`write` for every frame, :meth:`write_close` when the socket closes, and
    :meth:`close` (or use it as a context manager) at the end.
    """

    def __init__(self, path: str | Path, info: dict[str, Any] | None = None, *,
                 fsync_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_interval = fsync_interval
        self.frames = 0
        self.closed = False
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if (self.path / HEADER).exists() or (self.path / EVENTS).exists():
                raise CaptureError(f"{self.path} already holds a capture; choose another folder")
            self.info: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                                         "started_at": time.time(), **(info or {})}
            write_atomic(self.path / HEADER, json.dumps(self.info, indent=1))
            self._events = os.open(self.path / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                                   0o644)
        except OSError as exc:
            raise CaptureError(f"cannot write a capture in {self.path}: {exc}") from exc
        self._raw: dict[str, int] = {}
        self._offset = {"in": 0, "out": 0}
        self._synced_at = 0.0

    def write(self, t: float, direction: str, payload: str | bytes) -> None:
        """Append one frame seen at ``t`` (session clock) going ``direction`` ("in"/"out")."""
        if direction not in RAW:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        if isinstance(payload, str):
            line = f'{{"t":{t:.6f},"d":"{direction}","text":{json.dumps(payload)}}}\n'
        else:
            fd = self._raw.get(direction)
            if fd is None:
                fd = self._raw[direction] = os.open(self.path / RAW[direction],
                                                    os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            off = self._offset[direction]
            _write_all(fd, payload)
            self._offset[direction] = off + len(payload)
            line = f'{{"t":{t:.6f},"d":"{direction}","bin":[{off},{len(payload)}]}}\n'
        _write_all(self._events, line.encode("utf-8"))
        self.frames += 1
        if t - self._synced_at >= self.fsync_interval:
            self.sync()
            self._synced_at = t

    def write_close(self, t: float, code: int | None, reason: str = "", by: str = "server") -> None:
        """Record how the websocket closed."""
        close = {"code": code, "reason": reason, "by": by}
        _write_all(self._events, (json.dumps({"t": round(t, 6), "close": close}) + "\n").encode())

    def update_info(self, **fields: Any) -> None:
        """Add fields to the header (``capture.json`` is rewritten atomically)."""
        self.info.update(fields)
        write_atomic(self.path / HEADER, json.dumps(self.info, indent=1, default=str))

    def sync(self) -> None:
        """Flush the events and raw files to the disk (fdatasync where the OS has it)."""
        for fd in (self._events, *self._raw.values()):
            _datasync(fd)

    def close(self) -> None:
        """Flush everything to disk and close the files (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.sync()
        for fd in (self._events, *self._raw.values()):
            os.close(fd)
        self.update_info(frames=self.frames, ended_at=time.time())

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_datasync = getattr(os, "fdatasync", os.fsync)  # data and size, not timestamps: cheaper


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Capture:
    """A capture directory opened for reading (see :func:`read`).

    Attributes:
        path: the directory.
        info: the header (``call_id``, ``protocol``, ``audio_encoding``, ``sample_rate``, ...).
        close: how the websocket closed (:class:`Close`), or None if the capture ends without it
            (a crash, or a recorder killed mid-call).
        skipped: number of unreadable lines that were skipped (e.g. a truncated last line).
    """

    def __init__(self, path: Path, info: dict[str, Any], lines: list[dict[str, Any]],
                 raw: dict[str, bytes], skipped: int) -> None:
        self.path = path
        self.info = info
        self.skipped = skipped
        self._lines = lines
        self._raw = raw
        closes = [c for c in lines if "close" in c and "d" not in c]
        self.close: Close | None = None
        if closes:
            c = closes[-1]["close"]
            self.close = Close(closes[-1]["t"], c.get("code"), c.get("reason") or "",
                               c.get("by", "server"))

    @property
    def protocol(self) -> str:
        """``"web"`` or ``"twilio"``."""
        return self.info.get("protocol", "web")

    @property
    def duration(self) -> float:
        """Session time of the last line."""
        return self._lines[-1]["t"] if self._lines else 0.0

    def __len__(self) -> int:
        """Number of frames."""
        return sum(1 for line in self._lines if "d" in line)

    def frames(self) -> Iterator[Frame]:
        """The recorded frames in order, payloads as on the wire."""
        raw = self._raw
        for line in self._lines:
            d = line.get("d")
            if d is None:
                continue
            if "bin" in line:  # as the reader checked it: a byte span first, else text
                off, n = line["bin"]
                yield Frame(line["t"], d, raw[d][off:off + n])
            else:
                yield Frame(line["t"], d, line["text"])

    def events(self) -> Iterator[Stamped]:
        """The events of the call, in order, decoded through the same codec as the live client.

        Yields:
            :class:`~aligner.wire.events.Stamped` with ``t`` in seconds since the websocket opened and
            ``direction`` ``"in"`` (server → client) or ``"out"`` (client → server).
        """
        twilio = self.protocol == "twilio"
        proto = WebClientProtocol(twilio=twilio, answer_pings=False)
        for frame in self.frames():
            if frame.direction == "in":
                if isinstance(frame.payload, str):
                    proto.receive_text(frame.payload)
                else:
                    proto.receive_binary(frame.payload)
                for ev in proto.events_received():
                    yield Stamped(frame.t, "in", ev)
            elif twilio:
                yield Stamped(frame.t, "out", decode_twilio(frame.payload))
            elif isinstance(frame.payload, str):
                yield Stamped(frame.t, "out", decode_client_text(frame.payload))
            else:
                yield Stamped(frame.t, "out", decode_client_binary(frame.payload))


def read(path: str | Path) -> Capture:
    """Open a capture directory.

    Tolerates what a crash leaves: a truncated last line, or a line pointing past the end of a
    raw file (both skipped and counted in :attr:`Capture.skipped`), and what damage leaves: a line
    of the wrong shape, or timed more than :data:`MAX_GAP` after every line before it (a live
    call never goes that long without a frame; one such time would make the timeline of a short
    call years long).

    Raises:
        CaptureError: no capture there, an unknown format, or a newer version.
    """
    path = Path(path)
    info = read_info(path)
    try:
        data = (path / EVENTS).read_bytes()
        raw = {d: (path / name).read_bytes() if (path / name).exists() else b""
               for d, name in RAW.items()}
    except OSError as exc:
        raise CaptureError(f"cannot read capture {path}: {exc}") from exc
    lines, skipped, latest = [], 0, 0.0
    for n, chunk in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        if not chunk:
            continue
        try:
            line = _checked(json.loads(chunk), raw)
            if line["t"] > latest + MAX_GAP:
                raise ValueError(f"time {line['t']} s is more than {MAX_GAP:.0f} s after "
                                 f"{latest} s, the latest before it")
        except (ValueError, RecursionError) as exc:
            skipped += 1
            if skipped <= _SKIPS_LOGGED:
                logger.warning("%s line %d skipped (%s)", path / EVENTS, n, exc)
            continue
        latest = max(latest, line["t"])
        lines.append(line)
    if skipped > _SKIPS_LOGGED:
        logger.warning("%s: %d lines skipped in all", path / EVENTS, skipped)
    return Capture(path, info, lines, raw, skipped)


MAX_GAP = 3600.0  # s: no line of a capture comes later than this after the lines before it
_SKIPS_LOGGED = 3  # skipped lines logged one by one; the rest are only counted


def _checked(line: Any, raw: dict[str, bytes]) -> dict[str, Any]:
    """An events.jsonl line as the reader uses it, or ValueError saying what is wrong with it:
    a frame (``d`` with ``text``, or ``bin`` inside its raw file), a close record, or a line of
    another kind (kept, ignored: a newer writer's); its time a finite number of seconds >= 0."""
    if not isinstance(line, dict):
        raise ValueError("not a JSON object")
    t = line.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < math.inf:
        raise ValueError(f"bad time {t!r:.40}")
    line["t"] = float(t)
    if "d" in line:
        d = line["d"]
        if not isinstance(d, str) or d not in RAW:
            raise ValueError(f"unknown direction {d!r:.40}")
        if "bin" in line:
            span = line["bin"]
            if not (isinstance(span, list) and len(span) == 2 and all(
                    isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in span)):
                raise ValueError(f"bad byte span {span!r:.40}")
            if span[0] + span[1] > len(raw[d]):
                raise ValueError("points past the end of the raw file")
        elif not isinstance(line.get("text"), str):
            raise ValueError("frame line without text or bin")
    elif "close" in line:
        close = line["close"]
        if not (isinstance(close, dict)
                and (close.get("code") is None or (isinstance(close["code"], int)
                                                   and not isinstance(close["code"], bool)))
                and isinstance(close.get("reason") or "", str)
                and isinstance(close.get("by", "server"), str)):
            raise ValueError(f"bad close record {close!r:.60}")
    return line


def update_info(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Add fields to the header of the capture at ``path`` (rewritten atomically); returns it.

    Raises:
        CaptureError: no capture there.
    """
    info = read_info(path)
    info.update(fields)
    write_atomic(Path(path) / HEADER, json.dumps(info, indent=1, default=str))
    return info


def read_info(path: str | Path) -> dict[str, Any]:
    """The header of the capture at ``path``.

    Raises:
        CaptureError: no capture there, an unknown format, or a newer version.
    """
    path = Path(path)
    try:
        info = json.loads((path / HEADER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaptureError(f"{path} is not a capture: no {HEADER}") from None
    except (OSError, ValueError) as exc:
        raise CaptureError(f"cannot read {path / HEADER}: {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CaptureError(f"{path / HEADER} is not an {FORMAT} header")
    version = info.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CaptureError(f"capture version {version!r} is newer than this reader ({VERSION})")
    return info
