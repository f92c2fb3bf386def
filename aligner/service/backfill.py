"""Backfill: queue renders of captures recorded earlier (``aligner render --queue``).

A source is a local capture (a folder holding ``capture.json``), a recording (a folder holding
``capture/``), a folder of recordings, or a store URL: every call in it
(``s3://bucket/prefix``) or one call (``s3://bucket/prefix/CALL_ID``). Local captures go up to
the store first (a call already there is not uploaded again); then one render job per call goes
on the queue, and :func:`wait` follows them to the end.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AlignerError
from ..wire.capture import HEADER, read_info
from .recordings import valid_call_id
from .store import ObjectStore, StoreError, open_store
from .stored import CALL
from .uploads import CAPTURE_FILES, capture_key

__all__ = ["Call", "find_calls", "wait"]

_TERMINAL = ("complete", "failed", "aborted")


@dataclass(frozen=True, slots=True)
class Call:
    """One call to render: where it is (or goes), and its local capture if it is not there."""

    store: ObjectStore
    call_id: str
    local: Path | None = None


def _local_captures(path: Path) -> list[Path]:
    if (path / HEADER).is_file():
        return [path]
    if (path / "capture" / HEADER).is_file():
        return [path / "capture"]
    if path.is_dir():
        return sorted(p / "capture" for p in path.iterdir() if (p / "capture" / HEADER).is_file())
    return []


def find_calls(sources: list[str], store_url: str | None, endpoint: str | None) -> list[Call]:
    """The calls named by ``sources`` (module docstring).

    Raises:
        AlignerError: a source names nothing, or local captures come without ``store_url``.
    """
    calls: list[Call] = []
    for source in sources:
        if "://" in source:
            store = open_store(source, endpoint)
            if store.get_or_none(f"capture/{HEADER}") is not None:  # the URL names one call
                parent, _, call_id = source.rstrip("/").rpartition("/")
                calls.append(Call(open_store(parent, endpoint), call_id))
                continue
            found = [c for c in store.folders() if valid_call_id(c)
                     and store.get_or_none(capture_key(c, HEADER)) is not None]
            if not found:
                raise AlignerError(f"no recorded calls in {source}")
            calls += [Call(store, c) for c in found]
            continue
        captures = _local_captures(Path(source))
        if not captures:
            raise AlignerError(f"{source} is no capture, recording or folder of recordings")
        if not store_url:
            raise AlignerError(f"{source} is a local capture: --store URL says where it goes")
        store = open_store(store_url, endpoint)
        for capture in captures:
            call_id = str(read_info(capture).get("call_id") or "")
            if not valid_call_id(call_id):
                call_id = capture.parent.name if capture.name == "capture" else capture.name
            if not valid_call_id(call_id):
                raise AlignerError(f"{capture}: no usable call id")
            calls.append(Call(store, call_id, capture))
    return calls


def upload(call: Call, renderers: list[str]) -> bool:
    """Send a local capture to the store with its ``call.json`` (unless the store has the call
    already); returns True if it was sent. Blocking."""
    if call.local is None or call.store.get_or_none(f"{call.call_id}/{CALL}") is not None:
        return False
    for name in (*CAPTURE_FILES, HEADER):
        path = call.local / name
        if path.is_file():
            call.store.put(capture_key(call.call_id, name), path.read_bytes())
    info = read_info(call.local)
    record = {"call_id": call.call_id, "state": "queued", "started": info.get("started_at"),
              "ended": info.get("ended_at") or time.time(), "renderers": renderers,
              "source": "backfill", "audio_encoding": info.get("audio_encoding"),
              "sample_rate": info.get("sample_rate")}
    call.store.put(f"{call.call_id}/{CALL}", json.dumps(record, indent=1).encode())
    return True


async def wait(queue, keys: list[str], progress: Callable[[int, int], None],
               poll: float = 0.5) -> dict[str, str]:
    """Follow the jobs ``keys`` until each has ended; ``progress(done, failed)`` after each
    change. Returns each job's last status (``complete``, ``failed``, ``aborted``). Redis away
    for a while only delays it."""
    last: dict[str, str] = {}
    reported = (-1, -1)
    while len(last) < len(keys) or any(s not in _TERMINAL for s in last.values()):
        try:
            statuses = await queue.statuses(keys)
        except (StoreError, OSError, ConnectionError, TimeoutError):
            statuses = [last.get(k) for k in keys]
        except Exception as exc:  # the Redis client's own errors: keep waiting
            if "Connection" not in type(exc).__name__ and "Timeout" not in type(exc).__name__:
                raise
            statuses = [last.get(k) for k in keys]
        for key, status in zip(keys, statuses, strict=True):
            last[key] = status or last.get(key) or "queued"
        done = sum(s == "complete" for s in last.values())
        failed = sum(s in ("failed", "aborted") for s in last.values())
        if (done, failed) != reported:
            reported = (done, failed)
            progress(done, failed)
        if done + failed < len(keys):
            await asyncio.sleep(poll)
    return last
