"""The aiohttp application of ``aligner serve``: routes, upstream, limits, health, shutdown.

Routes::

    POST /register-call              passed to the upstream; the answer gains "observer_token"
    GET  /get-call/{call_id}         passed to the upstream; an ended call's recording_url and
                                     public_log_url point at the service's own recording
    GET  /audio-websocket/{call_id}  the drop-in audio websocket (aligner.service.proxy)
    GET  /live/{call_id}?token=T     observers: websocket, or SSE with Accept: text/event-stream
    GET  /calls, /calls/{id}, /calls/{id}/files/{name}, /calls/{id}/recording.wav
                                     recordings (aligner.service.recordings)
    GET  /healthz, /stats            liveness; counters and added-latency percentiles (and,
                                     with --redis: instance, queue depth, jobs, upload lag)
    POST /stats/reset                zero the counters (loopback only; for benchmarks)
    GET  /                           the demo page (static/), /samples/{name}.wav its clips
    GET  /client.js                  the browser client module (static/client.js)
    GET  /blendshapes                the blend-shape avatar example page
    POST /demo/register-call         the service's own pages' calls (ServiceConfig.fallback_key)

Recordings hold people's voices: ``/calls`` needs ``Authorization: Bearer <access key>`` (the
API key, or ``access_key`` when set); a call's own recording (``/calls/{id}``, its files, its
``recording.wav``) also opens with that call's observer token (``?token=T`` or Bearer), the
token ``/register-call`` handed out, and so does ``/get-call/{id}`` without an Authorization of
its own (the service's key is lent for it); the URLs get-call gives for the service's recording
carry the token.

The upstream is a base URL (the real service, or an emulator) or, when none is given, an
embedded :class:`aligner.emulator.EmbeddedEmulator` started with the app. Where the service
stands in for the server it answers as the server does: the API's requests go to the upstream
with the caller's own ``Authorization`` (the service's key only with ``fallback_key``), and
the audio websocket's refusals come from :mod:`aligner.wire.answers`, as the emulator's do.
Shutdown is graceful: live calls are closed with 1001 ``service_shutting_down``, their
captures are closed and queued, and queued render jobs finish before the process exits.

With ``redis`` set the app is one instance of many (``docs/service.md``): observers of calls held
by other instances go through Redis (:mod:`aligner.service.cluster`), recordings live in a shared
store (:mod:`aligner.service.stored`) and render jobs go on a Redis queue for ``aligner worker``
(:mod:`aligner.service.jobs`).

>>> cfg = ServiceConfig(upstream="http://127.0.0.1:9")
>>> cfg.limits.max_frame_bytes
65536
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from yarl import URL

from ..errors import AlignerError
from ..logs import call_scope, fields
from ..wire.answers import CALL_ALREADY_USED, UNKNOWN_CALL
from ..wire.capture import CaptureWriter
from .cluster import default_instance_id
from .jobs import JobPolicy
from .lipsync import AlignWorkers, LipSync
from .observers import ObserverHub, TokenIssuer
from .options import CallOptions, Limits, ProxyStats
from .profiles import open_profiles
from .proxy import ProxyCall
from .recorder import CallRecorder
from .recordings import RecordingStore, recover_calls, valid_call_id
from .store import FileStore, open_store

__all__ = ["ServiceConfig", "create_app"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"  # package data

# typed application keys
CONFIG = web.AppKey("config", object)
SERVICE = web.AppKey("service", object)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Everything ``aligner serve`` can be told.

    Attributes:
        upstream: base URL of the upstream (``http(s)://host:port``); None: embedded emulator.
        api_key: the service's Bearer key for the upstream: its own look-ups of call objects,
            and with ``fallback_key`` the API requests that bring none.
        fallback_key: lend ``api_key`` to register-call and get-call requests without an
            ``Authorization`` header, and to the demo page (off: they get the upstream's 401,
            as from the server itself; the demo page then works with the embedded emulator
            only, whose key is the service's own).
        recordings: folder of the recordings.
        renderers: renderer names run on every finished call.
        render_workers: render jobs at once (worker processes).
        align_workers: processes aligning agent chunks for word/viseme events.
        viseme_set: viseme set of the viseme events (``oculus``, ``azure``, ``polly``, ``rhubarb``).
        limits: per-call limits.
        secret: secret of the observer tokens (random per process when None).
        access_key: the Bearer key of the recordings API (None: the API key).
        emulator: options of the embedded emulator (``EmulatorConfig`` fields).
        shutdown_timeout: seconds shutdown waits for render jobs.
        redis: ``redis://HOST:PORT/DB``: run as one instance of many (None: one process).
        store: URL of the recordings store with ``redis`` (``file:///path``, ``s3://bucket/
            prefix``; None: ``recordings`` as a ``file://`` store).
        store_endpoint: the S3 endpoint URL (None: AWS or ``AWS_ENDPOINT_URL``).
        spool: with ``redis``, the local folder captures are written to before the store.
        instance_id: this instance's name (None: ``host-pid``).
        segment_interval: with ``redis``, seconds between uploads of a live call's capture.
        heartbeat_ttl: with ``redis``, seconds of silence after which an instance is dead.
        job_policy: retries and heartbeats of the render jobs queued.
        voice_profiles: where the voice profiles are, one per agent id: a folder, or a Redis URL
            that every instance and worker shares (:mod:`aligner.service.profiles`). A call's
            agent audio is aligned with what earlier calls of its agent learned, and adds what
            it learns (live word/viseme events and the recording's timeline). None: no
            adaptation.
    """

    upstream: str | None = None
    api_key: str = "dev-key"
    fallback_key: bool = False
    recordings: Path = Path("recordings")
    renderers: tuple[str, ...] = ()
    render_workers: int = 1
    align_workers: int = 2
    viseme_set: str = "oculus"
    limits: Limits = field(default_factory=Limits)
    secret: bytes | None = None
    access_key: str | None = None
    emulator: dict[str, Any] = field(default_factory=dict)
    shutdown_timeout: float = 120.0
    redis: str | None = None
    store: str | None = None
    store_endpoint: str | None = None
    spool: Path = Path("spool")
    instance_id: str | None = None
    segment_interval: float = 1.0
    heartbeat_ttl: float = 10.0
    job_policy: JobPolicy = field(default_factory=JobPolicy)
    voice_profiles: str | Path | None = None


class _Service:
    """State of one running app (created in the app's cleanup context, not at import)."""

    def __init__(self, config: ServiceConfig) -> None:
        if config.voice_profiles:  # a bad location, or Redis without its client: now, not per call
            open_profiles(config.voice_profiles)
        self.config = config
        self.tokens = TokenIssuer(config.secret)
        self.stats = ProxyStats()
        self.cluster: Cluster | None = None
        self.queue: RenderQueue | None = None
        if config.redis:
            from .cluster import Cluster
            from .jobs import RenderQueue
            from .stored import StoredRecordings

            self.instance = config.instance_id or default_instance_id()
            store = open_store(config.store or config.recordings.resolve().as_uri(),
                               config.store_endpoint)
            self.queue = RenderQueue(config.redis, config.job_policy)
            self.store = StoredRecordings(config.spool, store, config.renderers,
                                          self.queue.enqueue, self.instance,
                                          config.segment_interval)
            self.cluster = Cluster(config.redis, self.instance, self.store.recover,
                                   ttl=config.heartbeat_ttl)
            self.hub = self.cluster.hub
        else:
            self.instance = config.instance_id or default_instance_id()
            recordings = config.recordings
            if config.store:
                local = open_store(config.store)
                if not isinstance(local, FileStore):
                    raise AlignerError(f"--store {config.store} needs --redis (render workers "
                                       "read it); one process keeps recordings in a folder")
                recordings = local.root
            self.hub = ObserverHub()
            self.store = RecordingStore(recordings, config.renderers, config.render_workers,
                                        voice_profiles=config.voice_profiles)
        self.calls: dict[str, ProxyCall] = {}
        self.call_objects: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.base_url = (config.upstream or "").rstrip("/")
        self.api_key = config.api_key
        self.session: aiohttp.ClientSession | None = None
        self.align_workers: AlignWorkers | None = None
        self.started = time.time()
        self.stopping = False
        self.aligner_ready = False  # the aligner has been loaded (first alignment done)

    # --- upstream HTTP -----------------------------------------------------------------------------
    def _auth(self, request: web.Request, lend: bool | None = None) -> dict[str, str]:
        """The ``Authorization`` to send upstream: the request's own, or the service's key
        when lending it (``fallback_key``, or ``lend``)."""
        auth = request.headers.get("Authorization")
        if auth:
            return {"Authorization": auth}
        if self.config.fallback_key if lend is None else lend:
            return {"Authorization": f"Bearer {self.api_key}"}
        return {}

    def _remember(self, call: dict[str, Any]) -> None:
        call_id = call.get("call_id")
        if isinstance(call_id, str):
            self.call_objects[call_id] = call
            self.call_objects.move_to_end(call_id)
            while len(self.call_objects) > 10_000:
                self.call_objects.popitem(last=False)

    async def demo_register_call(self, request: web.Request) -> web.Response:
        """The demo page's register-call: with the service's key when it may lend it (the
        embedded emulator's key is the service's own; a real upstream's only with
        ``fallback_key``)."""
        if not (self.config.fallback_key or self.config.upstream is None):
            raise web.HTTPForbidden(text="the demo page registers calls with the service's "
                                         "key: start aligner serve with --fallback-key")
        return await self.register_call(request, lend=True)

    async def register_call(self, request: web.Request, lend: bool | None = None
                            ) -> web.Response:
        body = await request.read()
        if len(body) > 1024 * 1024:
            raise web.HTTPRequestEntityTooLarge(max_size=1024 * 1024, actual_size=len(body))
        try:
            async with self.session.post(f"{self.base_url}/register-call", data=body,
                                         headers={**self._auth(request, lend),
                                                  "Content-Type": "application/json"}) as resp:
                status, data = resp.status, await resp.read()
        except aiohttp.ClientError as exc:
            raise web.HTTPBadGateway(text=f"upstream unavailable: {exc}") from exc
        headers = {}
        if 200 <= status < 300:
            try:
                call = json.loads(data)
            except ValueError:
                call = None
            if isinstance(call, dict) and valid_call_id(str(call.get("call_id", ""))):
                self._remember(call)
                token = self.tokens.issue(call["call_id"])
                call = {**call, "observer_token": token}
                data = json.dumps(call).encode()
                headers["X-Observer-Token"] = token
        return web.Response(status=status, body=data, content_type="application/json",
                            headers=headers)

    def authorized(self, request: web.Request, call_id: str | None = None) -> bool:
        """Whether ``request`` may read recordings: the access key as a Bearer token, or (for
        ``call_id``'s own) that call's observer token (``?token=`` or Bearer)."""
        bearer = _bearer(request)
        key = self.config.access_key or self.api_key
        if bearer is not None and hmac.compare_digest(bearer.encode(), key.encode()):
            return True
        token = request.query.get("token") or bearer
        return call_id is not None and valid_call_id(call_id) and self.tokens.check(call_id, token)

    async def get_call(self, request: web.Request) -> web.Response:
        """The upstream's answer, whatever the id (sent percent-encoded, so the upstream
        judges it as it would); an ended call this service recorded gets the URLs of the
        service's own recording and log."""
        call_id = request.match_info["call_id"]
        # the call's own token (or the access key) opens its call object with the service's
        # key; a request with its own Authorization is the upstream's to judge
        lend = True if "Authorization" not in request.headers and self.authorized(
            request, call_id) else None
        url = URL(f"{self.base_url}/get-call/{quote(call_id, safe='')}", encoded=True)
        try:
            async with self.session.get(url, headers=self._auth(request, lend)) as resp:
                status, data = resp.status, await resp.read()
                ctype = resp.content_type
        except aiohttp.ClientError as exc:
            raise web.HTTPBadGateway(text=f"upstream unavailable: {exc}") from exc
        if status == 200 and valid_call_id(call_id) and self.store.recorded(call_id):
            try:
                call = json.loads(data)
            except ValueError:
                call = None
            if isinstance(call, dict) and call.get("end_timestamp") is not None:
                for _ in range(200):  # the upstream hung up: the recording ends in a moment
                    if call_id not in self.calls:
                        break
                    await asyncio.sleep(0.05)
                origin = str(request.url.origin())
                token = f"?token={self.tokens.issue(call_id)}"  # the recordings need it
                call["recording_url"] = f"{origin}/calls/{call_id}/recording.wav{token}"
                call["public_log_url"] = f"{origin}/calls/{call_id}{token}"
                data = json.dumps(call).encode()
        return web.Response(status=status, body=data, content_type=ctype)

    async def _call_object(self, call_id: str) -> dict[str, Any] | None:
        call = self.call_objects.get(call_id)
        if call is not None:
            return call
        try:
            async with self.session.get(f"{self.base_url}/get-call/{call_id}",
                                        headers={"Authorization": f"Bearer {self.api_key}"}) as r:
                if r.status != 200:
                    return None
                call = await r.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            log.warning("get-call failed", extra=fields(call_id=call_id, error=repr(exc)))
            return None
        if isinstance(call, dict):
            self._remember(call)
            return call
        return None

    # --- the audio websocket -----------------------------------------------------------------------
    async def audio_websocket(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        # every line about the call, its tasks' too, names it
        with call_scope(call_id if valid_call_id(call_id) else None):
            return await self._audio_websocket(request, call_id)

    async def _audio_websocket(self, request: web.Request, call_id: str) -> web.StreamResponse:
        started = time.monotonic()
        limits = self.config.limits
        # aiohttp's own cap is a memory bound; the proxy closes politely (1009) above the limit.
        down = web.WebSocketResponse(max_msg_size=4 * limits.max_frame_bytes, heartbeat=None,
                                     autoping=True, compress=False)
        if self.stopping:
            raise web.HTTPServiceUnavailable(text="service shutting down")
        await down.prepare(request)
        call = await self._call_object(call_id) if valid_call_id(call_id) else None
        if call is None:
            await UNKNOWN_CALL.close(down)
            return down
        if call_id in self.calls or call.get("call_status", "registered") != "registered":
            await CALL_ALREADY_USED.close(down)
            return down
        self._remember({**call, "call_status": "ongoing"})
        options = CallOptions.from_query(request.query)
        protocol = call.get("audio_websocket_protocol", "web")
        # Twilio Media Streams have no query options: audio only, as from the server
        query = "" if protocol == "twilio" else "?enable_update=true&enable_audio_alignment=true"
        url = f"{self.base_url.replace('http', 'ws', 1)}/audio-websocket/{call_id}{query}"
        # the recording opens (it fsyncs) in a thread; the call never waits for it
        recorder = CallRecorder(asyncio.get_running_loop().run_in_executor(
            self.store.io, self._open_recording, call_id, call, options, url),
            self.store.io, call_id=call_id)
        proxy = ProxyCall(call_id, call, options, url, self.session, limits, self.stats,
                          self.hub, recorder, self._lipsync_factory(call))
        proxy.timings["frontend_accept_ms"] = round(1000 * (proxy.t0 - started), 1)
        self.calls[call_id] = proxy
        self.stats.calls_active += 1
        self.stats.calls_total += 1
        if self.cluster is not None:  # who holds it, and whether other instances watch it
            await self.cluster.call_started(call_id)
        log.info("call started", extra=fields(instance=self.instance,
                                              options=_options_dict(options)))
        try:
            await proxy.run(down)
        finally:
            self.stats.calls_active -= 1
            self._remember({**call, "call_status": "ended"})
            try:
                if await recorder.close() is not None:
                    await self.store.finish(call_id, {"close_code": proxy.close_code,
                                                      "close_reason": proxy.close_reason,
                                                      "closed_by": proxy.closed_by,
                                                      "counts": proxy.counts,
                                                      "timings": proxy.timings})
            finally:
                del self.calls[call_id]  # its recording is complete
            if self.cluster is not None:
                self.cluster.call_ended(call_id)
            log.info("call ended", extra=fields(
                instance=self.instance, code=proxy.close_code, reason=proxy.close_reason,
                by=proxy.closed_by, counts=proxy.counts))
        return down

    def _open_recording(self, call_id: str, call: dict[str, Any], options: CallOptions,
                        url: str) -> CaptureWriter | None:
        """The call's folder and capture writer (runs in a thread: it fsyncs)."""
        try:
            folder = self.store.begin(call_id, {"options": _options_dict(options),
                                                "audio_encoding": call.get("audio_encoding"),
                                                "sample_rate": call.get("sample_rate")})
            # frames are written in batches by the CallRecorder; fsync when the call ends
            return CaptureWriter(folder / "capture", {
                "call_id": call_id, "protocol": call.get("audio_websocket_protocol", "web"),
                "audio_encoding": call.get("audio_encoding", "s16le"),
                "sample_rate": call.get("sample_rate"), "url": url, "recorder": "aligner serve",
                "agent_id": call.get("agent_id")},
                fsync_interval=float("inf"))
        except (AlignerError, OSError) as exc:  # e.g. a second call with a recorded id
            log.error("recording unavailable", extra=fields(call_id=call_id, error=str(exc)))
            return None

    def _lipsync_factory(self, call: dict[str, Any]):
        rate = int(call.get("sample_rate") or 24000)
        encoding = call.get("audio_encoding", "s16le")

        def make(outputs: tuple[str, ...] = ()) -> LipSync:
            profiles = self.config.voice_profiles
            return LipSync(call["call_id"], rate, encoding, self.align_workers.pick(),
                           viseme_set=self.config.viseme_set, outputs=outputs,
                           profiles=str(profiles) if profiles else None,
                           voice=call.get("agent_id"))

        return make

    # --- observers -----------------------------------------------------------------------------------
    async def live(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        token = request.query.get("token") or _bearer(request)
        if not valid_call_id(call_id) or not self.tokens.check(call_id, token):
            raise web.HTTPForbidden(text="a valid observer token for this call is required")
        # a call held here is watched here; any other through Redis (held elsewhere, or later)
        source = self.hub if self.cluster is None or call_id in self.calls else self.cluster
        sub = source.subscribe(call_id)
        if source is self.cluster:
            sub = await sub
        try:
            if request.headers.get("Accept", "").startswith("text/event-stream"):
                return await self._live_sse(request, sub)
            return await self._live_ws(request, sub)
        finally:
            source.unsubscribe(sub)

    async def _live_ws(self, request: web.Request, sub) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
        await ws.prepare(request)

        async def drain_incoming() -> None:  # observers only watch; reading notices a close
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain_incoming())
        try:
            while not ws.closed:
                getter = asyncio.create_task(sub.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                event = getter.result()
                if event is None:
                    break
                await ws.send_str(json.dumps(event, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            pass
        finally:
            reader.cancel()
            await ws.close(code=1000, message=b"call_ended")
        return ws

    async def _live_sse(self, request: web.Request, sub) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), 15.0)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if event is None:
                    break
                data = json.dumps(event, separators=(",", ":"))
                await resp.write(f"event: {event.get('event_type', 'message')}\n"
                                 f"data: {data}\n\n".encode())
        except (ConnectionError, RuntimeError):
            pass
        return resp

    # --- health --------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        status = "stopping" if self.stopping else "ok"
        return web.json_response({"status": status, "instance": self.instance,
                                  "calls_active": self.stats.calls_active,
                                  "aligner_ready": self.aligner_ready,
                                  "uptime": round(time.time() - self.started, 1)},
                                 status=503 if self.stopping else 200)

    async def watch_loop(self, period: float = 0.01) -> None:
        """Sample the event loop's lag: how late a ``period`` timer fires (``stats.loop_lag``)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            self.stats.loop_lag.append(max(0.0, loop.time() - due))

    async def stats_route(self, request: web.Request) -> web.Response:
        data = {"instance": self.instance, **self.stats.as_dict(),
                "observers_published": self.hub.published,
                "observers_dropped": self.hub.dropped,
                "recordings_rendered": self.store.rendered,
                "recordings_refused": self.store.refused}
        if self.cluster is not None:
            data.update(self.cluster.stats())
            data.update(self.store.stats())
            try:  # the queue is the cluster's: its depth says how far the workers are behind
                data.update(await asyncio.wait_for(self.queue.depth(), 1.0))
            except Exception as exc:
                data["queue_error"] = f"{type(exc).__name__}: {exc}"[:200]
        return web.json_response(data)

    async def stats_reset(self, request: web.Request) -> web.Response:
        if request.remote not in ("127.0.0.1", "::1"):
            raise web.HTTPForbidden(text="only from loopback")
        self.stats.reset()
        return web.json_response({"reset": True})

    async def sample(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        clips = {p.name for p in SAMPLES.glob("*.wav")} if SAMPLES.is_dir() else set()
        if name not in clips:  # only a listed clip: no path reaches outside samples/
            raise web.HTTPNotFound(text="no such sample")
        return web.FileResponse(SAMPLES / name, headers={"Content-Type": "audio/wav"})

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html",
                                headers={"Content-Type": "text/html; charset=utf-8"})

    async def blendshapes_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "blendshapes.html",
                                headers={"Content-Type": "text/html; charset=utf-8"})

    async def client_js(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "client.js",
                                headers={"Content-Type": "text/javascript; charset=utf-8"})

    # --- lifecycle -----------------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Close every live call (1001) and wait for their handlers to finish recording."""
        self.stopping = True
        calls = list(self.calls.values())
        if calls:
            log.info("shutting down: closing the live calls", extra=fields(calls=len(calls)))
        await asyncio.gather(*(c.shutdown() for c in calls), return_exceptions=True)
        for _ in range(600):  # handlers close captures and queue renders after run() returns
            if not self.calls:
                break
            await asyncio.sleep(0.05)


def _options_dict(options: CallOptions) -> dict[str, bool]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def _unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text="recordings need the service's key (Authorization: Bearer KEY) or the call's "
             "observer token (?token=)", headers={"WWW-Authenticate": "Bearer"})


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else None


def create_app(config: ServiceConfig) -> web.Application:
    """The service as an aiohttp application (run it with ``web.run_app`` or an AppRunner).

    Args:
        config: the service's options.

    Returns:
        The application; the upstream (or embedded emulator), the client session, the render
        pool and the alignment threads start when the app starts and stop when it stops.
    """
    app = web.Application(client_max_size=1024 * 1024)
    app[CONFIG] = config
    service = _Service(config)
    app[SERVICE] = service

    async def lifecycle(app: web.Application):
        emulator = None
        if config.upstream is None:
            from ..emulator import EmbeddedEmulator

            emulator = EmbeddedEmulator(**{"api_key": config.api_key, **config.emulator})
            emu = await emulator.__aenter__()
            service.base_url, service.api_key = emu.base_url.rstrip("/"), emu.api_key
            log.info("embedded emulator started", extra=fields(url=service.base_url))
        service.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=config.limits.upstream_timeout),
            connector=aiohttp.TCPConnector(limit=0))
        service.align_workers = AlignWorkers(config.align_workers)
        service.store.start()
        recovery = None
        if service.cluster is not None:
            await service.cluster.start()
            log.info("instance %s: Redis %s, recordings store %s", service.instance,
                     config.redis, service.store.store.url)
        else:  # one process: finish the calls a previous run left behind
            recovery = asyncio.create_task(recover_calls(service.store))
        warm = asyncio.ensure_future(service.align_workers.warm_up(config.viseme_set))
        warm.add_done_callback(lambda f: setattr(service, "aligner_ready",
                                                 not f.cancelled() and not f.exception()))
        lag = asyncio.create_task(service.watch_loop())
        try:
            yield
        finally:
            lag.cancel()
            if recovery is not None:
                recovery.cancel()
            with contextlib.suppress(Exception):
                await warm
            await service.store.close(config.shutdown_timeout)
            if service.cluster is not None:
                await service.cluster.close()
                await service.queue.close()
            await asyncio.to_thread(service.align_workers.shutdown)
            await service.session.close()
            if emulator is not None:
                await emulator.__aexit__(None, None, None)

    async def on_shutdown(app: web.Application) -> None:
        await service.shutdown()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_post("/register-call", service.register_call)
    r.add_post("/demo/register-call", service.demo_register_call)
    r.add_get("/get-call/{call_id}", service.get_call)
    r.add_get("/audio-websocket/{call_id}", service.audio_websocket)
    r.add_get("/live/{call_id}", service.live)
    r.add_get("/healthz", service.healthz)
    r.add_get("/stats", service.stats_route)
    r.add_post("/stats/reset", service.stats_reset)
    r.add_get("/samples/{name}", service.sample)
    r.add_get("/", service.index)
    r.add_get("/client.js", service.client_js)
    r.add_get("/blendshapes", service.blendshapes_page)
    r.add_static("/static", STATIC, show_index=False, follow_symlinks=False)
    service.store.add_routes(app, service.authorized, _unauthorized)
    return app
