"""The drop-in audio websocket: ``/audio-websocket/{call_id}`` relayed to the upstream service.

One :class:`ProxyCall` per front-end connection. It opens the upstream socket with alignment and
updates enabled, relays mic audio up, and sends the front end what it asked for:

- agent audio as binary frames, or as the upstream's alignment JSON when the front end asked for
  ``enable_audio_alignment=true`` (the upstream frame is passed on unchanged);
- ``clear``, ``ping``/``pong``, metadata and unknown frames unchanged; updates only with
  ``enable_update=true``;
- with ``enable_words=true`` / ``enable_visemes=true`` (the service's own query options), word and
  viseme events **before** the audio they belong to (see :mod:`aligner.service.lipsync`), and
  the same timings in front-end formats (``enable_talkinghead``, ``enable_characters``,
  ``enable_azure_visemes``, ``enable_blendshapes``: :mod:`aligner.service.formats`).

A Twilio call (``audio_websocket_protocol: "twilio"``: the front end is a Twilio Media Stream)
is relayed as Twilio Media Streams JSON both ways, unchanged; its agent audio carries no text,
so observers get each agent utterance's words recognised from its audio and its visemes from the
audio-only path once the utterance is over (a ``mark``, a ``clear``, a pause in the audio, the
call's end); the Twilio front end itself gets nothing it would not get from the server.

Every frame between the proxy and the upstream is captured (:mod:`aligner.wire.capture`) on the
session clock (0 = the front end's socket opened) through a :class:`CallRecorder`, which writes
in batches off the event loop; observers of the call get a JSON stream
(:mod:`aligner.service.observers`), and when the call ends its recording is handed to the
:class:`~aligner.service.recordings.RecordingStore`.

Hot path: a plain call (no word/viseme events) sends every upstream frame straight on; decoding
is one ``json.loads`` and one base64 decode per chunk, and an alignment frame goes on verbatim
to a front end that asked for alignment JSON. The added latency (``ProxyStats.latency``) runs
from the moment a frame's bytes were read from the upstream socket to the moment the front-end
frame was handed to its socket. A lip-sync call keeps its outgoing frames
in order in a small queue, because a chunk's audio waits for the chunk's alignment, which runs in
a thread pool, never on the event loop. ``clear`` overtakes that queue: it drops queued agent
audio and is sent at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from ..audio import bytes_per_sample
from ..logs import fields
from ..wire.answers import INACTIVITY
from ..wire.events import (
    AgentAudio,
    AlignedAudio,
    Clear,
    Metadata,
    TwilioClear,
    TwilioMark,
    TwilioMedia,
    Unknown,
    Update,
)
from ..wire.protocol import decode_client_text, decode_server_text, decode_twilio
from .formats import FrontEndFrames, outputs
from .lipsync import LipSync
from .observers import ObserverHub
from .options import CallOptions, Limits, ProxyStats, TokenBucket
from .recorder import CallRecorder

__all__ = ["CallOptions", "Limits", "ProxyCall", "ProxyStats"]

log = logging.getLogger(__name__)

# Close codes and reasons the proxy uses (reasons in the protocol's snake_case style).
CLOSE_UPSTREAM_LOST = (1011, "error_upstream_connection_lost")
CLOSE_UPSTREAM_UNAVAILABLE = (1011, "error_upstream_unavailable")
CLOSE_SHUTDOWN = (1001, "service_shutting_down")
CLOSE_TOO_BIG = 1009
_SILENCE_GRACE = 30.0  # s past a call's end_call_after_silence_ms before the proxy ends it
_TAIL_WAIT = 0.05  # s a lip-sync call waits for a next chunk before flushing held-back cues
_PLAYBACK_MARGIN = 0.1  # s of queued audio a held lip-sync chunk leaves the page (network, jitter)
_UTTERANCE_GAP = 0.5  # s of silence on the front end's playback that separate two utterances
_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


def _stamp_arrivals(ws: aiohttp.ClientWebSocketResponse) -> deque[float] | None:
    """Stamp each text/binary frame of ``ws`` when its bytes are read from the socket.

    ``receive()`` returns a frame only when the event loop gets round to the reading task, so
    a time taken there would leave out the frame's wait in a busy loop. aiohttp parses frames
    in the connection protocol's ``data_received``; wrapping that for this connection shows
    which frames each read produced (the frame queue's ``_buffer``). Returns the stamps, one
    per frame in order (``perf_counter``), or None if aiohttp's internals are not as expected
    (then frames are stamped when received).
    """
    protocol = getattr(getattr(ws, "_conn", None), "protocol", None)
    buffer = getattr(getattr(ws, "_reader", None), "_buffer", None)
    if not isinstance(buffer, deque) or not callable(getattr(protocol, "data_received", None)):
        return None
    # frames that came with the handshake's last read are already queued: stamp them now
    stamps = deque(time.perf_counter() for m, _ in buffer if m.type in _DATA)
    received = protocol.data_received

    def data_received(data: bytes) -> None:
        t = time.perf_counter()
        before = len(buffer)
        received(data)
        for i in range(before, len(buffer)):
            if buffer[i][0].type in _DATA:
                stamps.append(t)

    protocol.data_received = data_received
    return stamps


class ProxyCall:
    """One proxied call: the front end's socket, the upstream socket and what sits between.

    Args:
        call_id: the call (already validated).
        call: the call object (``audio_encoding``, ``sample_rate``...).
        options: what the front end asked for.
        upstream_url: the upstream websocket URL (with its query).
        session: the aiohttp client session for the upstream.
        limits: per-call limits.
        stats: service-wide counters to update.
        hub: observer fan-out.
        recorder: where frames are recorded (written off the event loop, in batches).
        lipsync_factory: builds a :class:`LipSync` computing the given outputs
            (:data:`aligner.service.lipsync.OUTPUTS`; None: no word/viseme events).
    """

    def __init__(self, call_id: str, call: dict[str, Any], options: CallOptions,
                 upstream_url: str, session: aiohttp.ClientSession, limits: Limits,
                 stats: ProxyStats, hub: ObserverHub, recorder: CallRecorder,
                 lipsync_factory: Callable[[tuple[str, ...]], LipSync] | None) -> None:
        self.call_id = call_id
        self.call = call
        self.options = options
        self.upstream_url = upstream_url
        self.session = session
        self.limits = limits
        self.stats = stats
        self.hub = hub
        self.recorder = recorder
        self.twilio = call.get("audio_websocket_protocol") == "twilio"
        self.encoding = call.get("audio_encoding", "mulaw" if self.twilio else "s16le")
        self.sample_rate = int(call.get("sample_rate", 8000 if self.twilio else 24000))
        self.bytes_per_sample = bytes_per_sample(self.encoding)
        realtime = self.sample_rate * self.bytes_per_sample
        self._mic_bucket = TokenBucket(realtime * limits.mic_realtime_factor,
                                   realtime * limits.mic_burst_seconds)
        self._frame_bucket = TokenBucket(limits.max_frames_per_second, limits.max_frames_per_second)
        self._lipsync_factory = lipsync_factory
        self.lipsync: LipSync | None = None
        self._frames = FrontEndFrames(options)
        self.down: web.WebSocketResponse | None = None
        self.up: aiohttp.ClientWebSocketResponse | None = None
        self.t0 = time.monotonic()
        self.last_activity = self.t0
        self.delivered_samples = 0  # agent samples sent to the front end: the event clock
        self.generation = 0  # bumped by every clear; stale queued audio is dropped
        self.utterance = -1  # the agent utterance of the last chunk (word events carry it)
        self._new_utterance = False  # a clear or the user's turn: the next chunk starts one
        self._play_end = 0.0  # session time the front end's audio queue would run dry
        self._page_dry_at = 0.0  # the same for the lip-sync audio actually sent to it
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by = ""
        self.timings: dict[str, float] = {}  # call setup: upstream connected, first audio sent
        self._arrivals: deque[float] | None = None
        self.counts = {"mic_frames": 0, "agent_frames": 0, "agent_samples": 0, "cleared": 0,
                       "rate_limited": 0, "malformed": 0, "events": 0,
                       "late_chunks": 0}
        self._outq: asyncio.Queue | None = None
        self._obs: tuple[LipSync, asyncio.Queue, asyncio.Task] | None = None  # observers only
        self._closing = False

    # --- time ------------------------------------------------------------------------------------
    def now(self) -> float:
        """Session clock: seconds since the front end's socket opened."""
        return time.monotonic() - self.t0

    def _record(self, direction: str, payload: str | bytes) -> None:
        self.recorder.write(self.now(), direction, payload)

    def _publish(self, event: dict[str, Any]) -> None:
        self.hub.publish(self.call_id, event)

    # --- running ---------------------------------------------------------------------------------
    async def run(self, down: web.WebSocketResponse) -> None:
        """Relay until either side closes; afterwards ``close_code``/``close_reason`` say why."""
        self.down = down
        try:
            self.up = await self.session.ws_connect(
                self.upstream_url, autoping=True, heartbeat=None, max_msg_size=64 * 1024 * 1024,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                compress=0)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("upstream unavailable", extra=fields(error=repr(exc)))
            code, reason = CLOSE_UPSTREAM_UNAVAILABLE
            await self._close_down(code, reason, by="proxy")
            return
        self.timings["upstream_connect_ms"] = round(1000 * self.now(), 1)
        self._arrivals = _stamp_arrivals(self.up)
        self._publish({"event_type": "call_started", "call_id": self.call_id,
                       "sample_rate": self.sample_rate, "audio_encoding": self.encoding})
        if self._lipsync_factory is not None and self.options.lipsync and not self.twilio:
            self.lipsync = self._lipsync_factory(outputs(self.options))
            self._outq = asyncio.Queue()
        tasks = [asyncio.create_task(self._pump_down(), name=f"down-{self.call_id}"),
                 asyncio.create_task(self._pump_up(), name=f"up-{self.call_id}"),
                 asyncio.create_task(self._watch_idle(), name=f"idle-{self.call_id}")]
        if self._outq is not None:
            tasks.append(asyncio.create_task(self._send_ordered(), name=f"out-{self.call_id}"))
        try:
            await asyncio.wait(tasks[:3], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._finish(tasks)

    async def shutdown(self) -> None:
        """Close both sides because the service is stopping."""
        code, reason = CLOSE_SHUTDOWN
        await self._close_down(code, reason, by="proxy")

    async def _finish(self, tasks: list[asyncio.Task]) -> None:
        # Let the ordered sender deliver what it already has (it stops when the socket is gone).
        if self._outq is not None and not self.down.closed and self.closed_by in ("", "upstream"):
            self._outq.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tasks[3], 10.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._obs is not None:
            if self.twilio:  # the last utterance is over: its events still go out
                self._obs[1].put_nowait(("end",))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._obs[2]), 30.0)
            self._obs[2].cancel()
            await asyncio.gather(self._obs[2], return_exceptions=True)
        for lipsync in (self.lipsync, self._obs[0] if self._obs else None):
            if lipsync is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lipsync.close(), 5.0)
        if self.up is not None and not self.up.closed:
            await self.up.close(code=1000, message=b"frontend_closed")
        if not self.down.closed:
            await self.down.close(code=self.close_code or 1000,
                                  message=self.close_reason.encode("utf-8")[:120])
        self.recorder.write_close(self.now(), self.close_code, self.close_reason,
                                  by="client" if self.closed_by == "frontend" else "server")
        self._publish({"event_type": "call_ended", "call_id": self.call_id,
                       "close_code": self.close_code, "close_reason": self.close_reason})
        self.hub.end(self.call_id)

    async def _close_down(self, code: int, reason: str, by: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason, self.closed_by = code, reason, by
        if self.down is not None and not self.down.closed:
            await self.down.close(code=code, message=reason.encode("utf-8")[:120])
        if self.up is not None and not self.up.closed:
            await self.up.close(code=1000, message=b"frontend_closed")

    def idle_timeout(self) -> float:
        """Seconds without frames before the proxy ends the call: ``limits.idle_timeout``, or
        by default past the call's ``end_call_after_silence_ms`` (the upstream ends a silent
        call first, with its own answer, and records why)."""
        if self.limits.idle_timeout is not None:
            return self.limits.idle_timeout
        silence = self.call.get("end_call_after_silence_ms")
        if isinstance(silence, int | float) and not isinstance(silence, bool):
            return silence / 1000 + _SILENCE_GRACE
        return 120.0

    async def _watch_idle(self) -> None:
        timeout = self.idle_timeout()
        while True:
            await asyncio.sleep(min(timeout, 1.0))
            if time.monotonic() - self.last_activity > timeout:
                log.info("idle timeout", extra=fields(after_seconds=timeout))
                await self._close_down(INACTIVITY.code, INACTIVITY.reason, by="proxy")
                return

    # --- front end -> upstream -----------------------------------------------------------------
    async def _pump_down(self) -> None:
        down, up, stats, limit = self.down, self.up, self.stats, self.limits.max_frame_bytes
        async for msg in down:
            now = time.monotonic()
            self.last_activity = now
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                size = len(msg.data)
                if size > limit:
                    stats.frames_too_big += 1
                    log.warning("frame too big", extra=fields(bytes=size, limit=limit))
                    await self._close_down(CLOSE_TOO_BIG, f"frame_too_big: {size} > {limit} bytes",
                                           by="proxy")
                    return
                event = None
                if msg.type is aiohttp.WSMsgType.TEXT:
                    event = decode_twilio(msg.data) if self.twilio else decode_client_text(
                        msg.data)
                mic = len(event.payload) if isinstance(event, TwilioMedia) else (
                    size if msg.type is aiohttp.WSMsgType.BINARY else 0)
                if not self._frame_bucket.take(1, now) or (
                        mic and not self._mic_bucket.take(mic, now)):
                    self.counts["rate_limited"] += 1
                    stats.frames_rate_limited += 1
                    if self.counts["rate_limited"] % 100 == 1:
                        log.warning("rate limited", extra=fields(
                            dropped=self.counts["rate_limited"]))
                    continue
                if isinstance(event, Unknown):
                    self.counts["malformed"] += 1
                    stats.frames_malformed += 1
                    log.warning("unexpected text frame from the front end",
                                extra=fields(frame=msg.data[:80]))
                self._record("out", msg.data)
                self.counts["mic_frames"] += 1
                stats.frames_up += 1
                try:
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        await up.send_bytes(msg.data)
                    else:
                        await up.send_str(msg.data)
                except (ConnectionError, RuntimeError) as exc:
                    log.info("upstream gone while sending", extra=fields(error=repr(exc)))
                    return
            elif msg.type is aiohttp.WSMsgType.ERROR:
                exc = down.exception()
                if isinstance(exc, aiohttp.WebSocketError) and exc.code == CLOSE_TOO_BIG:
                    stats.frames_too_big += 1
                    await self._close_down(CLOSE_TOO_BIG, "frame_too_big", by="proxy")
                else:
                    log.info("front end error", extra=fields(error=repr(exc)))
                return
        if self.close_code is None:
            self.close_code = down.close_code or 1000
            self.close_reason = "frontend_closed"
            self.closed_by = "frontend"

    # --- upstream -> front end -----------------------------------------------------------------
    async def _pump_up(self) -> None:
        up = self.up
        code: int | None = None
        reason = ""
        arrivals = self._arrivals
        while True:
            msg = await up.receive()
            t_in = time.perf_counter()
            if arrivals and msg.type in _DATA:  # when its bytes were read from the socket
                t_in = min(t_in, arrivals.popleft())
            self.last_activity = time.monotonic()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._record("in", msg.data)
                event = decode_twilio(msg.data) if self.twilio else decode_server_text(msg.data)
                await self._from_upstream(event, msg.data, t_in)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self._record("in", msg.data)
                await self._from_upstream(AgentAudio(msg.data), msg.data, t_in)
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                code, reason = msg.data, msg.extra or ""
                break
            else:  # CLOSING, CLOSED, ERROR: the connection is gone without a close frame
                if msg.type is aiohttp.WSMsgType.ERROR:
                    log.warning("upstream error", extra=fields(error=repr(up.exception())))
                break
        if self.close_code is not None:  # we closed it ourselves
            return
        if code is None or code == 1006:
            code, reason = CLOSE_UPSTREAM_LOST
        self.close_code, self.close_reason, self.closed_by = code, reason, "upstream"
        log.info("upstream closed", extra=fields(code=code, reason=reason))

    async def _from_upstream(self, event: Any, payload: str | bytes, t_in: float) -> None:
        opts = self.options
        if isinstance(event, TwilioMedia | TwilioClear | TwilioMark):
            await self._from_twilio_upstream(event, payload, t_in)
            return
        if isinstance(event, AlignedAudio | AgentAudio):
            text = event.text if isinstance(event, AlignedAudio) else ""
            if opts.enable_audio_alignment and isinstance(payload, str):
                out: str | bytes = payload
            else:
                out = event.audio
            if text:
                self._publish({"event_type": "agent_text", "text": text})
            utterance = self._utterance_of(len(event.audio))
            if self._outq is not None:
                self._outq.put_nowait(("audio", event.audio, text, out, t_in, self.generation,
                                       utterance))
                return
            offset = self.delivered_samples
            await self._send(out, t_in)
            self._delivered(len(event.audio))
            if self._lipsync_factory is not None and self.hub.has_observers(self.call_id):
                self._observe(event.audio, text, offset, utterance)
            return
        if isinstance(event, Clear):
            self._new_utterance = True
            await self._clear(payload, t_in)
            return
        if isinstance(event, Update):
            if event.turntaking == "user_turn":
                self._new_utterance = True
            self._publish({"event_type": "update", "transcript": [
                {"role": t.role, "content": t.content} for t in event.transcript],
                "turntaking": event.turntaking})
            if not opts.enable_update:
                return
        elif isinstance(event, Metadata):
            self._publish({"event_type": "metadata", "metadata": event.metadata})
        elif isinstance(event, Unknown):
            self.counts["malformed"] += 1
        if self._outq is not None:
            self._outq.put_nowait(("frame", payload, t_in))
        else:
            await self._send(payload, t_in)

    async def _from_twilio_upstream(self, event: Any, payload: str | bytes, t_in: float) -> None:
        """A Twilio message of the server: passed on unchanged; its audio (no text) goes to
        the observers' utterance estimates."""
        if isinstance(event, TwilioClear):
            self._new_utterance = True
            unplayed = max(0.0, self._play_end - self.now()) * self.sample_rate
            heard = self.delivered_samples - round(unplayed)  # the front end drops the rest
            if self._obs is not None:
                self._obs[1].put_nowait(("heard", heard))
            self._play_end = self.now()
            await self._clear(payload, t_in)
            return
        if isinstance(event, TwilioMark):
            if self._obs is not None:
                self._obs[1].put_nowait(("over",))  # the response has been sent
            await self._send(payload, t_in)
            return
        utterance = self._utterance_of(len(event.payload))
        offset = self.delivered_samples
        await self._send(payload, t_in)
        self._delivered(len(event.payload))
        if self._lipsync_factory is not None and self.hub.has_observers(self.call_id):
            if self._obs is None:
                queue: asyncio.Queue = asyncio.Queue()
                lipsync = self._lipsync_factory(())
                self._obs = (lipsync, queue, asyncio.create_task(
                    self._estimate_loop(lipsync, queue)))
            self._obs[1].put_nowait(("audio", event.payload, offset, utterance))

    async def _estimate_loop(self, lipsync: LipSync, queue: asyncio.Queue) -> None:
        """Observers' events of text-less agent audio, one estimate per utterance, made when it
        is over. Items: ``("audio", bytes, offset, utterance)``; ``("over",)`` a mark (the
        response has been sent); ``("heard", sample)`` a clear (heard up to ``sample``);
        ``("end",)`` the call's end. No audio for ``_UTTERANCE_GAP`` s also ends one."""
        audio: list[bytes] = []
        start = utterance = index = 0
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), _UTTERANCE_GAP if audio else None)
            except TimeoutError:
                item = ("over",)
            kind = item[0]
            if kind == "audio" and audio and item[3] == utterance:
                audio.append(item[1])
                continue
            if audio:
                data = b"".join(audio)
                if kind == "heard":
                    data = data[:max(0, item[1] - start) * self.bytes_per_sample]
                audio = []
                index = await self._publish_estimate(lipsync, data, start, utterance, index)
            if kind == "audio":
                audio, start, utterance = [item[1]], item[2], item[3]
            elif kind == "end":
                return

    async def _publish_estimate(self, lipsync: LipSync, audio: bytes, start: int,
                                utterance: int, index: int) -> int:
        """Estimate an utterance (starting at delivered sample ``start``) and publish its
        events; returns the next word index."""
        try:
            events = await lipsync.estimate(audio, utterance, index)
        except Exception:
            log.exception("estimate for observers failed")
            return index
        for ev in events:
            self._publish({**ev, "start_sample": ev["start_sample"] + start,
                           "end_sample": ev["end_sample"] + start})
        return index + sum(1 for ev in events if ev["event_type"] == "word")

    def _utterance_of(self, nbytes: int) -> int:
        """The agent utterance of a chunk arriving now: a new one after a ``clear``, the user's
        turn, or a pause (the front end's queue ran dry ``_UTTERANCE_GAP`` s before)."""
        now = self.now()
        if self.utterance < 0 or self._new_utterance or now > self._play_end + _UTTERANCE_GAP:
            self.utterance += 1
            self._new_utterance = False
        self._play_end = max(self._play_end, now) + nbytes / self.bytes_per_sample / self.sample_rate
        return self.utterance

    def _page_played(self, nbytes: int, t_in: float) -> None:
        """Model the page's playback queue after a lip-sync chunk was sent, and count how long
        holding the chunk for its alignment delayed what the page plays: the part of the hold
        after the page's queue ran dry (0 while it still had audio to play)."""
        now = self.now()
        held = time.perf_counter() - t_in
        self.stats.playback_delay.append(max(0.0, min(held, now - self._page_dry_at)))
        self._page_dry_at = max(self._page_dry_at, now) + (
            nbytes / self.bytes_per_sample / self.sample_rate)

    def _delivered(self, nbytes: int) -> None:
        if not self.delivered_samples:
            self.timings["first_agent_audio_ms"] = round(1000 * self.now(), 1)
        samples = nbytes // self.bytes_per_sample
        self.delivered_samples += samples
        self.counts["agent_frames"] += 1
        self.counts["agent_samples"] += samples

    async def _send(self, payload: str | bytes, t_in: float | None) -> bool:
        down = self.down
        if down.closed:
            return False
        try:
            if isinstance(payload, bytes):
                await down.send_bytes(payload)
            else:
                await down.send_str(payload)
        except (ConnectionError, RuntimeError):
            self.stats.send_failures += 1
            return False
        if t_in is not None:
            latency = time.perf_counter() - t_in
            self.stats.latency.append(latency)
            if self.delivered_samples:  # past the call's start (its first agent audio)
                self.stats.latency_in_call.append(latency)
        self.stats.frames_down += 1
        return True

    async def _clear(self, payload: str | bytes, t_in: float) -> None:
        """``clear`` overtakes queued frames: queued agent audio is dropped, the rest goes first."""
        self.generation += 1
        self._page_dry_at = min(self._page_dry_at, self.now())  # the page's queue is emptied
        if self._outq is not None:
            keep = []
            while not self._outq.empty():
                item = self._outq.get_nowait()
                if item is None or item[0] != "audio":
                    keep.append(item)
                else:
                    self.counts["cleared"] += 1
                    self.stats.frames_cleared += 1
            for item in keep:
                if item is None:
                    self._outq.put_nowait(None)
                else:
                    await self._send(item[1], item[2])
            if self.lipsync is not None:
                self.lipsync.clear()
        if self._obs is not None:
            self._obs[0].clear()
        self._publish({"event_type": "clear", "sample": self.delivered_samples})
        await self._send(payload, t_in)

    async def _send_ordered(self) -> None:
        """The lip-sync sender: for each chunk, its word/viseme events, then its audio.

        A chunk's audio waits for its alignment as long as the page still has earlier audio to
        play (a model of its queue: audio plays back-to-back from when it was sent), so the wait
        costs nothing audible; when the page has nothing left (the first chunk of an utterance)
        at most ``limits.align_budget`` seconds after the chunk arrived. A slower alignment (a
        cold start, an overloaded machine) lets the audio go first and its events follow as
        soon as they are ready, marked ``"late": true``.
        """
        # [alignment task, sample offset, generation, audio sent], in chunk order
        pending: deque[list] = deque()
        try:
            await self._send_ordered_loop(pending)
        finally:
            for entry in pending:
                entry[0].cancel()

    async def _send_ordered_loop(self, pending: deque[list]) -> None:
        lipsync = self.lipsync
        while True:
            if not await self._send_aligned(pending):
                return
            if lipsync.pending_tail and not pending and not lipsync.busy and self._outq.empty():
                try:  # no chunk follows yet: the held-back cues go out after a short wait
                    item = await asyncio.wait_for(self._outq.get(), _TAIL_WAIT)
                except TimeoutError:
                    if not await self._send_events(await lipsync.flush(), self.delivered_samples):
                        return
                    continue
            elif pending:
                try:
                    item = await asyncio.wait_for(self._outq.get(), _TAIL_WAIT)
                except TimeoutError:
                    continue
            else:
                item = await self._outq.get()
            if item is None:
                for entry in pending:
                    with contextlib.suppress(Exception):
                        await entry[0]
                await self._send_aligned(pending)
                if lipsync.pending_tail and not lipsync.busy:
                    await self._send_events(await lipsync.flush(), self.delivered_samples)
                return
            if item[0] == "frame":
                await self._send(item[1], item[2])
                continue
            _, audio, text, out, t_in, generation, utterance = item
            offset = self.delivered_samples
            task = asyncio.ensure_future(lipsync.align(audio, text, utterance))
            # wait while the page still has audio to play (that costs nothing audible), or at
            # least align_budget
            slack = self._page_dry_at - self.now() - _PLAYBACK_MARGIN
            budget = max(self.limits.align_budget, slack) - (time.perf_counter() - t_in)
            entry = [task, offset, generation, False]
            pending.append(entry)
            try:  # alignments finish in chunk order: this one last
                if budget <= 0:  # no time left: the audio goes now, whatever the loop's load
                    raise TimeoutError
                await asyncio.wait_for(asyncio.shield(task), budget)
            except TimeoutError:
                self.counts["late_chunks"] += 1
                self.stats.late_chunks += 1
            except Exception:  # alignment must never cost the call its audio (logged below)
                pass
            if not await self._send_aligned(pending):
                return
            if generation != self.generation:  # cleared while aligning: never delivered
                self.counts["cleared"] += 1
                self.stats.frames_cleared += 1
                continue
            if not await self._send(out, t_in):
                return
            entry[3] = True  # its events, if still to come, are late
            self._delivered(len(audio))
            self._page_played(len(audio), t_in)

    def _observe(self, audio: bytes, text: str, offset: int, utterance: int) -> None:
        """Word/viseme events for observers of a call whose front end did not ask for them:
        aligned in the background, in order, never delaying the front end's audio."""
        if self._obs is None:
            queue: asyncio.Queue = asyncio.Queue()
            lipsync = self._lipsync_factory(())
            self._obs = (lipsync, queue, asyncio.create_task(self._observe_loop(lipsync, queue)))
        self._obs[1].put_nowait((audio, text, offset, self.generation, utterance))

    async def _observe_loop(self, lipsync: LipSync, queue: asyncio.Queue) -> None:
        end = 0
        while True:
            try:
                audio, text, offset, generation, utterance = await asyncio.wait_for(
                    queue.get(), _TAIL_WAIT if lipsync.pending_tail else None)
            except TimeoutError:
                events, offset, generation = await lipsync.flush(), end, self.generation
            else:
                try:
                    events = await lipsync.align(audio, text, utterance)
                except Exception:
                    log.exception("alignment for observers failed")
                    continue
                end = offset + len(audio) // self.bytes_per_sample
            if generation != self.generation:
                continue
            for ev in events:
                self._publish(_shifted(ev, offset))

    async def _send_aligned(self, pending: deque[list]) -> bool:
        """Send the events of the alignments that have finished, in chunk order; those of a
        chunk whose audio went first are marked ``"late": true``."""
        while pending and pending[0][0].done():
            task, offset, generation, audio_sent = pending.popleft()
            if task.cancelled() or task.exception() is not None:
                log.warning("alignment failed", extra=fields(
                    error=repr(None if task.cancelled() else task.exception())))
                continue
            if generation == self.generation:
                events = task.result()
                if audio_sent:
                    events = [{**ev, "late": True} for ev in events]
                if not await self._send_events(events, offset):
                    return False
        return True

    async def _send_events(self, events: list[dict[str, Any]], offset: int) -> bool:
        """Send a chunk's lip-sync events, their offsets relative to ``offset`` (delivered
        samples), as the frames the front end asked for (:mod:`aligner.service.formats`)."""
        for ev in self._frames.frames([_shifted(ev, offset) for ev in events]):
            self.counts["events"] += 1
            self._publish(ev)
            if not await self._send(json.dumps(ev, separators=(",", ":")), None):
                return False
        return True


def _shifted(ev: dict[str, Any], offset: int) -> dict[str, Any]:
    """A lip-sync event with its sample offsets moved by ``offset``."""
    ev = {**ev}
    for key in ("start_sample", "end_sample"):
        if key in ev:
            ev[key] += offset
    if "chars" in ev:
        ev["chars"] = [[c, a + offset, b + offset] for c, a, b in ev["chars"]]
    return ev
