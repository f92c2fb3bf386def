"""Recordings in an object store, shared by every instance: what ``aligner serve --redis`` uses
instead of :class:`~aligner.service.recordings.RecordingStore` (same methods for the app).

An instance writes each call's capture in a local *spool* folder as a single process does
(``<spool>/<call_id>/capture``), and :class:`~aligner.service.uploads.CaptureUpload` sends it to
the store in segments while the call runs (every ``segment_interval`` s). When the call ends the
whole capture and ``call.json`` go up, a render job is queued (:mod:`aligner.service.jobs`) and
the spool folder is removed. If the store or the queue is unreachable, the call waits in the
spool and is retried every few seconds (and at the next start of an instance on that spool), so
nothing is lost; ``/stats`` shows the backlog and the upload lag.

Store layout per call (a ``file://`` store is today's recordings folder)::

    <call_id>/call.json     written by the instance holding the call (or by recovery)
    <call_id>/render.json   written by the render job: state, outputs, errors, attempts
    <call_id>/capture/...   the capture (aligner.service.uploads)
    <call_id>/call.vtt ...  the outputs, each written once

A call's ``state``: ``recording`` (call.json), then ``queued``; ``rendering``, ``done`` or
``failed`` once render.json exists. ``/calls``, ``/calls/{id}`` and ``/calls/{id}/files/{name}``
answer from the store, so every instance lists the same calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import AlignerError
from ..logs import fields
from ..timeline import write_atomic
from .recordings import add_recording_routes, recording_wav, valid_call_id
from .store import FileStore, ObjectStore, StoreError
from .uploads import CaptureUpload, fetch_capture, send_segment

__all__ = ["StoredRecordings", "call_record", "update_record"]

log = logging.getLogger(__name__)

CALL = "call.json"
RENDER = "render.json"
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_CONTENT_TYPES = {
    ".json": "application/json", ".jsonl": "application/x-ndjson", ".vtt": "text/vtt",
    ".srt": "application/x-subrip", ".mp4": "video/mp4", ".wav": "audio/wav",
    ".txt": "text/plain", ".ass": "text/x-ssa", ".ttml": "application/ttml+xml",
}
_SUMMARY = ("call_id", "state", "started", "ended", "close_code", "close_reason")
_RETRY = 2.0  # s between attempts to send a finished call that is still in the spool


def _load(store: ObjectStore, key: str) -> dict[str, Any] | None:
    data = store.get_or_none(key)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        log.warning("%s in %s is not JSON", key, store.url)
        return None
    return value if isinstance(value, dict) else None


def call_record(store: ObjectStore, call_id: str, files: bool = True) -> dict[str, Any] | None:
    """A call as ``/calls/{id}`` shows it: call.json, then render.json over it, and its files.

    Returns None when the store holds no such call. Blocking: call it from a thread.
    """
    call = _load(store, f"{call_id}/{CALL}")
    if call is None:
        return None
    render = _load(store, f"{call_id}/{RENDER}") or {}
    record = {**call, **render}
    if files:
        record["files"] = sorted(k.split("/", 1)[1] for k in store.list(f"{call_id}/")
                                 if k.count("/") == 1 and _FILE_RE.match(k.split("/", 1)[1]))
    return record


def update_record(store: ObjectStore, call_id: str, name: str, changes: dict[str, Any]) -> dict:
    """Read-modify-write ``<call_id>/<name>`` (``call.json`` or ``render.json``); returns it.

    Each file has one writer at a time (the instance holding the call; the job holding the
    call's render lock), so no update is lost. Blocking: call it from a thread.
    """
    data = _load(store, f"{call_id}/{name}") or {"call_id": call_id}
    data.update(changes)
    store.put(f"{call_id}/{name}", json.dumps(data, indent=1, sort_keys=True).encode())
    return data


class StoredRecordings:
    """Recordings of this instance's calls, kept in a shared store; ``/calls`` over the store.

    Args:
        spool: local folder where captures are written before they reach the store.
        store: the shared store.
        renderers: renderer names run on every finished call (empty: capture only).
        enqueue: ``await enqueue(store_url, call_id, renderers)`` queues a render job (raises
            when the queue is unreachable: the call is retried later).
        instance: this instance's id (in call.json).
        segment_interval: seconds between segments of a live call.
    """

    def __init__(self, spool: Path, store: ObjectStore, renderers: tuple[str, ...] = (),
                 enqueue: Callable[..., Any] | None = None, instance: str = "",
                 segment_interval: float = 1.0) -> None:
        self.root = Path(spool).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        if isinstance(store, FileStore) and store.root == self.root:
            raise AlignerError(f"the spool {self.root} must not be the store itself")
        self.store = store
        self.renderers = list(renderers)
        self.enqueue = enqueue
        self.instance = instance
        self.segment_interval = segment_interval
        self.io = ThreadPoolExecutor(8, thread_name_prefix="store")
        self._uploaders = None  # processes sending segments (started with the app)
        self._stepping: dict[str, asyncio.Future] = {}  # each live call's segment in flight
        self._seen: set[str] = set()  # calls seen in the store (for recorded())
        self._live: dict[str, _Live] = {}  # calls being recorded
        self._ended: dict[str, dict[str, Any]] = {}  # finished calls not yet all in the store
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self.rendered = 0  # this instance renders nothing itself: the workers count theirs
        self.refused = 0
        self.segments = 0
        self.upload_failures = 0
        self.queued = 0

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start sending (call inside the running loop); calls left in the spool by an earlier
        run are finished first."""
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and valid_call_id(entry.name) and (entry / "capture").is_dir():
                info = _read_local(entry)
                if info.get("state") == "recording":  # the instance stopped mid-call
                    info.update(state="queued" if info.get("renderers", self.renderers)
                                else "done", ended=time.time(), close_code=1011,
                                close_reason="instance_restarted", closed_by="restart")
                info.setdefault("renderers", self.renderers)
                self._ended[entry.name] = info
                log.info("spool: a call left by an earlier run goes to the store",
                         extra=fields(call_id=entry.name))
        from ..workers import process_pool

        # Segments go up from processes: the store client's CPU work (signing, HTTP, parsing)
        # in this process's threads held the GIL long enough to delay the relay (p99 +3-7 ms
        # with 50 calls uploading every second, against 0.8-3 ms without uploads).
        self._uploaders = process_pool(2)
        self._tasks = [asyncio.create_task(self._segments()),
                       asyncio.create_task(self._send_ended())]

    async def close(self, timeout: float = 60.0) -> None:
        """Send the finished calls (up to ``timeout`` s, at most 15: what is left stays in the
        spool and goes at the next start)."""
        deadline = time.monotonic() + min(timeout, 15.0)
        self._wake.set()
        while self._ended and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self._ended:
            log.warning("spool: %d calls not yet in the store stay in %s", len(self._ended),
                        self.root)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.io.shutdown(wait=True)
        if self._uploaders is not None:
            self._uploaders.shutdown(wait=True, cancel_futures=True)

    # --- calls ---------------------------------------------------------------------------------
    def begin(self, call_id: str, info: dict[str, Any]) -> Path:
        """Create the call's spool folder and local call.json; its capture is sent from now on.

        Blocking file work: call it in a thread. Store errors never reach the call.
        """
        if not valid_call_id(call_id):
            raise AlignerError(f"invalid call id {call_id[:80]!r}")
        folder = self.root / call_id
        folder.mkdir(parents=True, exist_ok=True)
        record = {"call_id": call_id, "state": "recording", "started": time.time(),
                  "instance": self.instance, **info}
        write_atomic(folder / CALL, json.dumps(record, indent=1, sort_keys=True))
        self._live[call_id] = _Live(CaptureUpload(self.store, call_id, folder / "capture"),
                                    record)
        return folder

    async def finish(self, call_id: str, info: dict[str, Any]) -> None:
        """The call ended: record how, then send it all and queue its render (in the
        background; retried until the store and the queue take it)."""
        state = "queued" if self.renderers else "done"
        changes = {"state": state, "ended": time.time(), "renderers": self.renderers, **info}
        folder = self.root / call_id
        await self._io(_update_local, folder, changes)
        live = self._live.pop(call_id, None)
        self._ended[call_id] = {**(live.record if live else {}), **changes}
        if live is not None:
            self._ended[call_id]["_live"] = live
        self._wake.set()

    async def recover(self, call_id: str, instance: str) -> bool:
        """Mark a call of a dead ``instance`` ended and queue what reached the store.

        Returns False if the store has no such call recording (nothing to do).
        """
        def mark() -> bool:
            record = _load(self.store, f"{call_id}/{CALL}")
            if record is None:
                return False
            if record.get("state") != "recording":  # marked before, but was it queued?
                return record.get("closed_by") == "recovery" and record.get("state") == "queued"
            update_record(self.store, call_id, CALL, {
                "state": "queued" if record.get("renderers", self.renderers) else "done",
                "ended": time.time(), "close_code": 1011, "close_reason": "instance_lost",
                "closed_by": "recovery", "lost_instance": instance})
            return True

        if not await self._io(mark):
            return False
        log.warning("recovery: a call of a lost instance ended; its render is queued",
                    extra=fields(call_id=call_id, instance=instance))
        if self.renderers and self.enqueue is not None:
            await self.enqueue(self.store.url, call_id, self.renderers)
            self.queued += 1
        return True

    # --- sending -------------------------------------------------------------------------------
    async def _segments(self) -> None:
        while True:
            await asyncio.sleep(self.segment_interval)
            live = list(self._live.items())
            results = await asyncio.gather(*(self._step(cid, up) for cid, up in live),
                                           return_exceptions=True)
            for (call_id, _), result in zip(live, results, strict=True):
                if isinstance(result, StoreError | OSError):
                    self.upload_failures += 1
                    log.warning("upload delayed", extra=fields(call_id=call_id,
                                                               error=str(result)))
                elif isinstance(result, BaseException):
                    log.error("upload failed", exc_info=result, extra=fields(call_id=call_id))

    async def _step(self, call_id: str, live: _Live) -> None:
        first = None if live.record_sent else (
            f"{call_id}/{CALL}", json.dumps(live.record, indent=1, sort_keys=True).encode())
        step = asyncio.get_running_loop().run_in_executor(self._uploaders, send_segment,
                                                          live.upload, first)
        self._stepping[call_id] = step
        try:
            live.upload, sent = await step
        finally:
            self._stepping.pop(call_id, None)
        live.record_sent = True
        self.segments += bool(sent)

    async def _send_ended(self) -> None:
        while True:
            for call_id in list(self._ended):
                try:
                    await self._send_one(call_id)
                except (StoreError, OSError, ConnectionError, TimeoutError, AlignerError) as exc:
                    self.upload_failures += 1
                    log.warning("the call stays in the spool for now",
                                extra=fields(call_id=call_id, error=str(exc)))
                except Exception as exc:  # the queue's client errors, say: retry later
                    self.upload_failures += 1
                    log.warning("the call stays in the spool for now",
                                extra=fields(call_id=call_id, error=repr(exc)))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _RETRY if self._ended else None)

    async def _send_one(self, call_id: str) -> None:
        entry = self._ended[call_id]
        folder = self.root / call_id
        if call_id in self._stepping:  # its last segment first (then the whole capture)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stepping[call_id])
        if not entry.get("_sent"):
            live = entry.get("_live")  # its upload as the last segment left it
            upload = live.upload if live else CaptureUpload(self.store, call_id,
                                                            folder / "capture")
            record = {k: v for k, v in entry.items() if not k.startswith("_")}
            await self._io(self._complete, call_id, upload, record)
            entry["_sent"] = True
        if entry.get("state") == "queued" and self.enqueue is not None:
            await self.enqueue(self.store.url, call_id, entry.get("renderers") or self.renderers)
            self.queued += 1
        del self._ended[call_id]
        self._seen.add(call_id)
        await self._io(shutil.rmtree, folder, True)
        log.info("call in the store", extra=fields(call_id=call_id,
                                                   queued=entry.get("state") == "queued"))

    def _complete(self, call_id: str, upload: CaptureUpload, record: dict[str, Any]) -> None:
        if (upload.folder / "capture.json").is_file():
            upload.complete()
        stored = _load(self.store, f"{call_id}/{CALL}") or {}
        if stored.get("closed_by") == "recovery":  # marked ended while this instance was away
            record = {**record, **{k: stored[k] for k in ("ended", "lost_instance")}}
        self.store.put(f"{call_id}/{CALL}", json.dumps({**stored, **record}, indent=1,
                                                       sort_keys=True).encode())

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    # --- state ---------------------------------------------------------------------------------
    def upload_lag(self) -> float:
        """Seconds the store is behind this instance's calls (the oldest unsent data)."""
        lags = [live.upload.lag() for live in list(self._live.values())]
        lags += [time.time() - e.get("ended", time.time()) for e in self._ended.values()]
        return round(max(lags, default=0.0), 3)

    def stats(self) -> dict[str, Any]:
        """What ``/stats`` shows about the recordings of this instance."""
        return {"store": self.store.url, "uploads_pending": len(self._ended),
                "upload_lag_s": self.upload_lag(), "segments_uploaded": self.segments,
                "upload_failures": self.upload_failures, "jobs_queued_here": self.queued}

    # --- HTTP API ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application,
                   authorized: Callable[[web.Request, str | None], bool],
                   refusal: Callable[[], web.HTTPException]) -> None:
        """``GET /calls``, ``GET /calls/{call_id}``, ``GET /calls/{call_id}/files/{name}``,
        ``GET /calls/{call_id}/recording.wav``, each behind ``authorized``
        (:func:`aligner.service.recordings.add_recording_routes`)."""
        add_recording_routes(app, self, authorized, refusal)

    def recorded(self, call_id: str) -> bool:
        """True if the call is recorded here or known to be in the store (no store request:
        the event loop calls it)."""
        if call_id in self._live or call_id in self._ended or call_id in self._seen:
            return True
        if isinstance(self.store, FileStore) and valid_call_id(call_id):
            return (self.store.root / call_id / CALL).is_file()
        return False

    def calls(self) -> list[dict[str, Any]]:
        """Summaries of every recording in the store, newest first (blocking: a thread)."""
        ids = [c for c in self.store.folders() if valid_call_id(c)]
        self._seen.update(ids)
        with ThreadPoolExecutor(8) as pool:
            records = pool.map(lambda c: call_record(self.store, c, files=False), ids)
            out = [{k: r.get(k) for k in _SUMMARY} for r in records if r is not None]
        return sorted(out, key=lambda d: (d.get("started") or 0, d["call_id"]), reverse=True)

    async def _store_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._io(fn, *args)
        except StoreError as exc:
            log.warning("store unavailable: %s", exc)
            raise web.HTTPServiceUnavailable(text=f"recordings store unavailable: {exc}") from exc

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": await self._store_call(self.calls)})

    async def _get(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        data = await self._store_call(call_record, self.store, call_id) \
            if valid_call_id(call_id) else None
        if data is None:
            raise web.HTTPNotFound(text="no such call")
        return web.json_response(data)

    async def _recording(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        record = await self._store_call(call_record, self.store, call_id, False) \
            if valid_call_id(call_id) else None
        if record is None or record.get("state") == "recording":
            raise web.HTTPNotFound(text="no recording of an ended call")
        data = await self._store_call(self.store.get_or_none, f"{call_id}/recording.wav")
        if data is None:
            try:
                data = await self._io(self._build_recording, call_id)
            except Exception as exc:  # a broken capture: say so, keep serving
                log.exception("recording failed", extra=fields(call_id=call_id))
                raise web.HTTPInternalServerError(text=f"recording unavailable: {exc}") from exc
        return web.Response(body=data, headers={"Content-Type": "audio/wav",
                                                "X-Content-Type-Options": "nosniff"})

    def _build_recording(self, call_id: str) -> bytes:
        """``recording.wav`` of a call in the store: built from its capture, written once."""
        with tempfile.TemporaryDirectory(prefix="aligner-recording-") as tmp:
            fetch_capture(self.store, call_id, Path(tmp))
            data = recording_wav(tmp).read_bytes()
        self.store.put(f"{call_id}/recording.wav", data, once=True)
        return data

    async def _file(self, request: web.Request) -> web.StreamResponse:
        call_id, name = request.match_info["call_id"], request.match_info["name"]
        if not valid_call_id(call_id) or not _FILE_RE.match(name):
            raise web.HTTPNotFound(text="no such file")
        ctype = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        headers = {"Content-Type": ctype, "X-Content-Type-Options": "nosniff"}
        key = f"{call_id}/{name}"
        if isinstance(self.store, FileStore):  # only a plain file, never a link out of the store
            path = self.store.path(key)
            if path.is_file() and not path.is_symlink():
                return web.FileResponse(path, headers=headers)
            raise web.HTTPNotFound(text="no such file")
        data = await self._store_call(self.store.get_or_none, key)
        if data is None:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(body=data, headers=headers)


@dataclass(slots=True)
class _Live:
    """A call being recorded: its upload and its call.json (sent once, first)."""

    upload: CaptureUpload
    record: dict[str, Any]
    record_sent: bool = False


def _read_local(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / CALL).read_text("utf-8"))
    except (OSError, ValueError):
        data = {"call_id": folder.name}
    return data if isinstance(data, dict) else {"call_id": folder.name}


def _update_local(folder: Path, changes: dict[str, Any]) -> None:
    write_atomic(folder / CALL, json.dumps({**_read_local(folder), **changes}, indent=1,
                                           sort_keys=True))
