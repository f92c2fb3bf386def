"""Recordings of proxied calls: one folder per call, renderers in a bounded worker pool, /calls API.

Layout under the recordings root::

    <root>/<call_id>/call.json        state, close code/reason, counters, outputs, errors
    <root>/<call_id>/capture/         the capture (aligner.wire.capture), every frame with its time
    <root>/<call_id>/timeline.json    built when the call ends (aligner.session)
    <root>/<call_id>/call.vtt ...     one output per configured renderer
    <root>/<call_id>/recording.wav    both voices as heard, mixed: built on first request
                                      (``GET /calls/{call_id}/recording.wav``, the call object's
                                      ``recording_url``)

When a call ends the store queues a render job; ``workers`` jobs run at a time in worker
processes (CPU-heavy renderers never hold the event loop's GIL) and at most ``max_pending`` wait.
Files are served only by exact name from the folder's own listing, call ids must match
:data:`CALL_ID_RE`, and neither a call's folder nor a file in it may be a symlink, so no request
can reach a path outside the root.

>>> valid_call_id("call_1a2b"), valid_call_id("../etc")
(True, False)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import AlignerError
from ..logs import call_scope, fields
from ..timeline import write_atomic
from ..workers import process_pool

__all__ = ["CALL_ID_RE", "RESTARTED", "RecordingStore", "add_recording_routes", "recording_wav",
           "recover_calls", "render_call", "valid_call_id"]

log = logging.getLogger(__name__)

CALL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_CONTENT_TYPES = {
    ".json": "application/json", ".jsonl": "application/x-ndjson", ".vtt": "text/vtt",
    ".srt": "application/x-subrip", ".mp4": "video/mp4", ".wav": "audio/wav",
    ".txt": "text/plain", ".ass": "text/x-ssa", ".ttml": "application/ttml+xml",
}


#: The close reason of a call the service stopped during (killed, crashed), as its next start
#: finds it.
RESTARTED = "service_restarted"


def valid_call_id(call_id: str) -> bool:
    """True if ``call_id`` is safe to use as a folder name (letters, digits, ``_``, ``-``)."""
    return bool(CALL_ID_RE.match(call_id))


def render_call(call_dir: str, names: list[str], voice_profiles: str | None = None,
                call_id: str | None = None) -> dict[str, Any]:
    """Build the timeline of a finished call and run the renderers (runs in a worker process;
    its log lines carry the call's id).

    Args:
        call_dir: the call's folder (holding ``capture/``).
        names: renderer names, e.g. ``["vtt", "visemes"]``.
        voice_profiles: where the voice profiles are (a folder or a Redis URL:
            :func:`aligner.service.profiles.open_profiles`): the agent's (by the capture's
            ``agent_id``) aligns the call, and what the call teaches it is added to it (unless
            the call's live events, or an earlier render of it, added it already).
        call_id: the call's id, for the logs (default: the folder's name).

    Returns:
        ``{"outputs": [file names], "errors": {renderer: message}}``.
    """
    with call_scope(call_id or Path(call_dir).name):
        return _render_call(Path(call_dir), names, voice_profiles, call_id)


def _render_call(folder: Path, names: list[str], voice_profiles: str | None,
                 call_id: str | None) -> dict[str, Any]:
    import renderers

    from ..session import build_timeline
    from ..wire.capture import read

    outputs: list[str] = []
    errors: dict[str, str] = {}
    try:
        capture = read(folder / "capture")
        agent = capture.info.get("agent_id") if voice_profiles else None
        store = profile = None
        if agent:
            from .profiles import open_profiles

            store = open_profiles(voice_profiles)
            profile = store.load(str(agent))
            before = profile.stats
        timeline = build_timeline(capture, audio_dir=folder, voice=profile)
        if store is not None and (learned := profile.learned_since(before)) is not None:
            store.merge(profile.key, learned,
                        source=str(call_id or capture.info.get("call_id") or folder.name))
        timeline.save(folder / "timeline.json")
        outputs += [name for name in ("timeline.json", "agent.wav", "user.wav")
                    if (folder / name).is_file()]
    except Exception as exc:  # a broken capture must not kill the worker
        log.exception("timeline failed")
        return {"outputs": outputs, "errors": {"timeline": f"{type(exc).__name__}: {exc}"}}
    for name in names:
        try:
            paths = renderers.get(name)().render(timeline, folder, stem="call", base=folder)
            outputs += [Path(p).name for p in paths]
        except Exception as exc:
            log.exception("renderer failed", extra=fields(renderer=name))
            errors[name] = f"{type(exc).__name__}: {exc}"
    return {"outputs": outputs, "errors": errors}


def recording_wav(call_dir: str | Path) -> Path:
    """Write ``recording.wav`` of a finished call (both voices as heard, mixed, at the call's
    rate) from its capture, atomically, unless it exists; returns its path."""
    from ..audio import mix, wav_bytes
    from ..session import build_timeline
    from ..wire.capture import read

    path = Path(call_dir) / "recording.wav"
    if not path.is_file():
        timeline = build_timeline(read(Path(call_dir) / "capture"), align=False)
        rate = timeline.audio[0].sample_rate
        write_atomic(path, wav_bytes(mix(*(t.samples for t in timeline.audio)), rate))
    return path


class RecordingStore:
    """Owns the recordings root, the render queue and the worker pool.

    Args:
        root: folder of all recordings (created).
        renderers: renderer names to run on every finished call (may be empty: capture only).
        workers: render jobs running at once (worker processes).
        max_pending: render jobs allowed to wait; more are refused and marked in call.json.
        executor: an executor to use instead of the process pool (tests, embedding).
        voice_profiles: a folder or Redis URL of voice profiles for the timelines (see
            :func:`render_call`).

    Attributes:
        io: the threads that do the recordings' file work (call.json, captures; they fsync).
            Kept apart from asyncio's default pool, which also resolves host names for the
            upstream connections: 100 calls starting at once must not queue those behind
            fsyncs.
    """

    def __init__(self, root: str | Path, renderers: list[str] | tuple[str, ...] = (),
                 workers: int = 1, max_pending: int = 64, executor: Executor | None = None,
                 voice_profiles: str | Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.renderers = list(renderers)
        self.voice_profiles = str(voice_profiles) if voice_profiles else None
        self.workers = max(1, workers)
        self.max_pending = max_pending
        # Admission is a semaphore taken before any await (a check of a bounded queue followed
        # by file work and then a put lost the jobs that came in between); the queue itself is
        # unbounded, so a put never fails.
        self._slots = asyncio.Semaphore(max_pending)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._executor = executor
        self._own_executor = executor is None
        self._tasks: list[asyncio.Task] = []
        self.rendered = 0
        self.refused = 0
        self.opened = time.time()  # calls begun before this are a previous run's
        self.io = ThreadPoolExecutor(2, thread_name_prefix="recordings")

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the render workers (call inside the running loop)."""
        if self.renderers and not self._tasks:
            if self._executor is None:
                self._executor = process_pool(self.workers)
            self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def close(self, timeout: float = 60.0) -> None:
        """Finish every queued render job (up to ``timeout`` s), then stop the workers."""
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                log.warning("render jobs unfinished at shutdown",
                            extra=fields(jobs=self._queue.qsize()))
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self.io.shutdown(wait=True)

    # --- calls ---------------------------------------------------------------------------------
    def call_dir(self, call_id: str) -> Path:
        """The folder of ``call_id`` (not created).

        Raises:
            AlignerError: ``call_id`` is not a safe name.
        """
        if not valid_call_id(call_id):
            raise AlignerError(f"invalid call id {call_id[:80]!r}")
        return self.root / call_id

    def folder(self, call_id: str) -> Path | None:
        """The folder of ``call_id`` if it is a real folder in the root, else None: a symlink
        in its place (to a folder anywhere) is never followed."""
        try:
            folder = self.call_dir(call_id)
            return folder if stat.S_ISDIR(os.lstat(folder).st_mode) else None
        except (AlignerError, OSError):
            return None

    def begin(self, call_id: str, info: dict[str, Any]) -> Path:
        """Create the call's folder and its ``call.json`` (state ``recording``); returns the folder.

        Blocking file work (fsync): call it in a thread from the event loop.

        Raises:
            AlignerError: an unsafe call id, or something else than a folder in its place.
        """
        self.call_dir(call_id).mkdir(exist_ok=True)
        folder = self.folder(call_id)
        if folder is None:
            raise AlignerError(f"{self.call_dir(call_id)} is not a folder of the recordings")
        self._write_info(folder, {"call_id": call_id, "state": "recording",
                                  "started": time.time(), **info})
        return folder

    async def finish(self, call_id: str, info: dict[str, Any]) -> None:
        """Record how the call ended and queue its render job (file work in a thread).

        With ``max_pending`` jobs already waiting the job is refused: the call is ``failed``
        with the reason under ``errors.queue`` (its capture is kept)."""
        folder = self.call_dir(call_id)
        state = "queued" if self.renderers else "done"
        if self.renderers and self._slots.locked():
            state = "failed"
            info = {**info, "errors": {"queue": f"render queue full ({self.max_pending} jobs "
                                                "waiting); capture kept"}}
            self.refused += 1
        elif self.renderers:
            await self._slots.acquire()  # free now: returns at once, before any other await
        try:
            await self._io(self._update, folder, {"state": state, "ended": time.time(),
                                                  "renderers": self.renderers, **info})
        finally:
            if state == "queued":
                self._queue.put_nowait(call_id)

    async def render(self, call_id: str, changes: dict[str, Any] | None = None) -> None:
        """Queue a render job for a recorded call, waiting for room in the queue; ``changes``
        go into its ``call.json`` first (state ``queued``)."""
        await self._slots.acquire()
        try:
            await self._io(self._update, self.call_dir(call_id),
                           {**(changes or {}), "state": "queued", "renderers": self.renderers})
        finally:
            self._queue.put_nowait(call_id)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            call_id = await self._queue.get()
            self._slots.release()
            folder = self.call_dir(call_id)
            try:
                await self._io(self._update, folder, {"state": "rendering"})
                t0 = time.perf_counter()
                result = await loop.run_in_executor(self._executor, render_call, str(folder),
                                                    self.renderers, self.voice_profiles)
                state = "failed" if "timeline" in result["errors"] else "done"
                await self._io(self._update, folder, {
                    "state": state, **result, "render_seconds": round(time.perf_counter() - t0, 3)})
                self.rendered += 1
                log.info("recording rendered", extra=fields(
                    call_id=call_id, state=state, outputs=result["outputs"],
                    errors=list(result["errors"])))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dead worker process, say: mark it, keep serving
                log.exception("render job failed", extra=fields(call_id=call_id))
                await self._io(self._update, folder, {
                    "state": "failed", "errors": {"worker": f"{type(exc).__name__}: {exc}"}})
            finally:
                self._queue.task_done()

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    # --- call.json -----------------------------------------------------------------------------
    def info(self, call_id: str) -> dict[str, Any] | None:
        """The call's ``call.json`` plus its file list, or None if there is no such recording."""
        folder = self.folder(call_id)
        if folder is None:
            return None
        try:
            data = json.loads((folder / "call.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        data["files"] = self.files(call_id)
        return data

    def recorded(self, call_id: str) -> bool:
        """True if the call has a capture here."""
        try:
            return (self.call_dir(call_id) / "capture").is_dir()
        except AlignerError:
            return False

    def files(self, call_id: str) -> list[str]:
        """Names of the plain files in the call's folder (what ``/files/{name}`` can serve)."""
        folder = self.folder(call_id)
        try:
            entries = list(os.scandir(folder)) if folder is not None else []
        except OSError:
            return []
        return sorted(e.name for e in entries
                      if _FILE_RE.match(e.name) and e.is_file(follow_symlinks=False))

    def calls(self) -> list[dict[str, Any]]:
        """Summaries of every recording, newest first."""
        out = []
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and valid_call_id(entry.name):
                data = self.info(entry.name)
                if data is not None:
                    out.append({k: data.get(k) for k in
                                ("call_id", "state", "started", "ended", "close_code",
                                 "close_reason")})
        return sorted(out, key=lambda d: d.get("started") or 0, reverse=True)

    def _write_info(self, folder: Path, data: dict[str, Any]) -> None:
        write_atomic(folder / "call.json", json.dumps(data, indent=1, sort_keys=True))

    def _update(self, folder: Path, changes: dict[str, Any]) -> None:
        try:
            data = json.loads((folder / "call.json").read_text("utf-8"))
        except (OSError, ValueError):
            data = {"call_id": folder.name}
        data.update(changes)
        self._write_info(folder, data)

    # --- HTTP API ------------------------------------------------------------------------------
    def add_routes(self, app: web.Application,
                   authorized: Callable[[web.Request, str | None], bool],
                   refusal: Callable[[], web.HTTPException]) -> None:
        """``GET /calls``, ``GET /calls/{call_id}``, ``GET /calls/{call_id}/files/{name}``,
        ``GET /calls/{call_id}/recording.wav``, each behind ``authorized``
        (:func:`add_recording_routes`)."""
        add_recording_routes(app, self, authorized, refusal)

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.calls()})

    async def _get(self, request: web.Request) -> web.Response:
        data = self.info(request.match_info["call_id"])
        if data is None:
            raise web.HTTPNotFound(text="no such call")
        return web.json_response(data)

    async def _recording(self, request: web.Request) -> web.StreamResponse:
        data = self.info(request.match_info["call_id"])
        if data is None or data.get("state") == "recording" or not self.recorded(data["call_id"]):
            raise web.HTTPNotFound(text="no recording of an ended call")
        try:
            path = await self._io(recording_wav, self.call_dir(data["call_id"]))
        except Exception as exc:  # a broken capture: say so, keep serving
            log.exception("recording.wav failed", extra=fields(call_id=data["call_id"]))
            raise web.HTTPInternalServerError(text=f"recording unavailable: {exc}") from exc
        return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                               "X-Content-Type-Options": "nosniff"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        call_id, name = request.match_info["call_id"], request.match_info["name"]
        # Only an exact name from the folder's own listing is served: "..", "/", "%2F", absolute
        # paths and symlinks can never name anything outside it.
        if name not in self.files(call_id):
            raise web.HTTPNotFound(text="no such file")
        path = self.folder(call_id) / name
        ctype = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers={"Content-Type": ctype,
                                               "X-Content-Type-Options": "nosniff"})


def add_recording_routes(app: web.Application, store: Any,
                         authorized: Callable[[web.Request, str | None], bool],
                         refusal: Callable[[], web.HTTPException]) -> None:
    """The recordings API of ``store`` (a :class:`RecordingStore`, or the cluster's
    :class:`~aligner.service.stored.StoredRecordings`): ``GET /calls``, ``/calls/{call_id}``,
    ``/calls/{call_id}/files/{name}``, ``/calls/{call_id}/recording.wav``.

    ``authorized(request, call_id)`` says whether a request may see the list (``call_id``
    None) or a call's recording; a request it refuses gets ``refusal()``, before anything about
    the call is looked at."""
    def guard(handler: Callable[[web.Request], Any], whole_list: bool = False):
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not authorized(request, None if whole_list else request.match_info["call_id"]):
                raise refusal()
            return await handler(request)
        return guarded

    app.router.add_get("/calls", guard(store._list, whole_list=True))
    app.router.add_get("/calls/{call_id}", guard(store._get))
    app.router.add_get("/calls/{call_id}/files/{name}", guard(store._file))
    app.router.add_get("/calls/{call_id}/recording.wav", guard(store._recording))


async def recover_calls(store: RecordingStore) -> list[str]:
    """Finish the calls a previous run of the service left behind in ``store``'s folder.

    A call still ``recording`` (the service was killed during it: its capture holds every frame
    up to then) is marked ended, ``close_reason`` :data:`RESTARTED`, at the time its capture was
    last written; it and the calls left ``queued`` or ``rendering`` get their render job again
    (waiting for room in the queue). Without renderers a recovered call is ``done``. Calls
    begun since the store was made are this run's and left alone, so it may run while the
    service takes calls.

    Returns:
        The ids of the calls it finished or re-queued.
    """
    loop = asyncio.get_running_loop()
    left = await loop.run_in_executor(store.io, _left_behind, store)
    for call_id, state, ended in left:
        changes: dict[str, Any] = {"recovered": time.time()}
        if state == "recording":
            changes.update(ended=ended, close_code=None, close_reason=RESTARTED,
                           closed_by="service")
        log.warning("recovering a call left behind", extra=fields(call_id=call_id, state=state))
        if store.renderers:
            await store.render(call_id, changes)
        else:
            await store._io(store._update, store.call_dir(call_id), {**changes, "state": "done"})
    return [call_id for call_id, _, _ in left]


def _left_behind(store: RecordingStore) -> list[tuple[str, str, float]]:
    """(call id, state, time its capture was last written) of the unfinished calls, oldest
    first."""
    out = []
    for entry in os.scandir(store.root):
        if not (entry.is_dir(follow_symlinks=False) and valid_call_id(entry.name)):
            continue
        info = store.info(entry.name)
        if info is None or info.get("state") not in ("recording", "queued", "rendering") \
                or (info.get("started") or 0) >= store.opened:
            continue
        folder = Path(entry.path)
        written = [p.stat().st_mtime for p in (folder / "capture").glob("*") if p.is_file()]
        out.append((entry.name, info["state"], max(written, default=info.get("started") or 0)))
    return sorted(out, key=lambda c: c[2])
