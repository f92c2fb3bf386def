"""The aiohttp client of the audio websocket: connect, stamp, feed the codec, record.

Plumbing around the sans-I/O core: frames read from the socket are stamped with the session
clock (0 = websocket open), appended to a capture (:mod:`aligner.wire.capture`) and fed to
:class:`aligner.wire.protocol.WebClientProtocol`; user audio from a :mod:`aligner.wire.source` is paced in
real time; a ``ping`` goes out every ``heartbeat`` seconds. Three ways in:

- :func:`record` — run a call to the end and return a :class:`CallResult`;
- :func:`stream` — an async iterator of :class:`~aligner.wire.events.Stamped` events, live;
- :func:`record_embedded` — start the embedded emulator, register a call, record it.

A server close with an error code (anything but 1000/1001) raises :class:`ServerClosed` carrying
the code and reason, after the capture has been closed. Cancelling (Ctrl-C) closes the socket
and the capture cleanly.

Example::

    result = await record("ws://127.0.0.1:8080", FileSource("hello.wav"), "out/capture",
                          call_id="abc", sample_rate=16000)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import audio
from ..errors import AlignerError, CaptureError
from .capture import HEADER, CaptureWriter, update_info
from .events import (
    AgentAudio,
    AlignedAudio,
    Clear,
    Stamped,
    TwilioClear,
    TwilioMedia,
)
from .protocol import WebClientProtocol, decode_client_binary, decode_client_text, decode_twilio
from .source import CallState, SilenceSource, Source, check_chunk_ms

__all__ = [
    "NORMAL_CLOSE_CODES",
    "CallResult",
    "ServerClosed",
    "audio_websocket_url",
    "get_call",
    "record",
    "record_embedded",
    "register_call",
    "stream",
]

logger = logging.getLogger(__name__)

NORMAL_CLOSE_CODES = (1000, 1001, 1005)  # 1005: closed without a status code


class ServerClosed(AlignerError):
    """The server closed the websocket with an error code (or the connection dropped).

    Attributes:
        code: the close code (None if the connection dropped without one).
        reason: the server's reason, e.g. ``"error_frontend_corrupted_payload"``.
    """

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"server closed the connection: code {code}"
                         + (f", reason {reason!r}" if reason else ""))

    def __reduce__(self):
        return (type(self), (self.code, self.reason))


@dataclass
class CallResult:
    """What a finished call left behind."""

    url: str
    capture: Path | None
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str = ""
    frames_in: int = 0
    frames_out: int = 0
    malformed: int = 0
    duration: float = 0.0
    call: dict[str, Any] = field(default_factory=dict)


def audio_websocket_url(base: str, call_id: str | None = None, *, enable_update: bool = True,
                        enable_audio_alignment: bool = True) -> str:
    """The websocket URL of a call, from a full URL or a base URL plus ``call_id``.

    ``http``/``https`` become ``ws``/``wss``; query flags already in the URL are kept.

    Raises:
        AlignerError: a base URL without a call id.

    >>> audio_websocket_url("http://127.0.0.1:8080", "c1")
    'ws://127.0.0.1:8080/audio-websocket/c1?enable_update=true&enable_audio_alignment=true'
    >>> audio_websocket_url("wss://h/audio-websocket/c2?x=1", enable_update=False)
    'wss://h/audio-websocket/c2?x=1&enable_update=false&enable_audio_alignment=true'
    """
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path
    if "/audio-websocket/" not in path:
        if not call_id:
            raise AlignerError(f"{base} is not an /audio-websocket/ URL; give a call id too")
        path = path.rstrip("/") + f"/audio-websocket/{call_id}"
    query = dict(parse_qsl(parts.query))
    query.setdefault("enable_update", str(enable_update).lower())
    query.setdefault("enable_audio_alignment", str(enable_audio_alignment).lower())
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


async def register_call(base_url: str, api_key: str, **body: Any) -> dict[str, Any]:
    """``POST {base_url}/register-call``; returns the call object.

    Raises:
        AlignerError: the server refused (status and its message in the text).
    """
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(
            f"{base_url.rstrip('/')}/register-call", json=body,
            headers={"Authorization": f"Bearer {api_key}"}) as resp:
        if resp.status >= 400:
            raise AlignerError(f"register-call failed: HTTP {resp.status}: {await resp.text()}")
        return await resp.json()


async def get_call(base_url: str, api_key: str, call_id: str) -> dict[str, Any]:
    """``GET {base_url}/get-call/{call_id}``; returns the call object (with its transcript)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(
            f"{base_url.rstrip('/')}/get-call/{call_id}",
            headers={"Authorization": f"Bearer {api_key}"}) as resp:
        if resp.status >= 400:
            raise AlignerError(f"get-call failed: HTTP {resp.status}: {await resp.text()}")
        return await resp.json()


_END = object()


async def stream(url: str, source: Source | None = None, *, capture_dir: str | Path | None = None,
                 encoding: str = "s16le", sample_rate: int = 16000, protocol: str = "web",
                 chunk_ms: int = 20, heartbeat: float = 5.0, linger: float = 1.0,
                 max_linger: float = 30.0, max_duration: float | None = None,
                 info: dict[str, Any] | None = None,
                 result: CallResult | None = None) -> AsyncIterator[Stamped]:
    """Connect to ``url`` and yield every event of the call, both directions, as it happens.

    Args:
        url: the full websocket URL (see :func:`audio_websocket_url`).
        source: the user's audio; None sends silence until the server ends the call.
        capture_dir: record every frame into this capture directory (None: don't record).
        encoding: the call's ``audio_encoding`` (``s16le`` or ``mulaw``).
        sample_rate: the call's sample rate (8000–48000).
        protocol: ``"web"`` or ``"twilio"``.
        chunk_ms: user audio per frame, 20–250 ms.
        heartbeat: seconds between client pings (0 turns them off).
        linger: when the source ends, close once the agent has been quiet this long since
            then (silence before the source ended does not count: the agent is still to answer).
        max_linger: seconds to wait at most after the source ends.
        max_duration: close the call after this many seconds (None: no limit).
        info: extra fields for the capture header.
        result: filled in as the call goes (frames, close code...), for the caller to read.

    Yields:
        :class:`~aligner.wire.events.Stamped` events: ``"in"`` from the server, ``"out"`` sent.

    Raises:
        ServerClosed: the server closed with an error code, or the connection dropped.
        AudioError: bad ``encoding``, ``sample_rate`` or ``chunk_ms``.
    """
    import aiohttp

    call = CallState(encoding, sample_rate)
    chunk_ms = check_chunk_ms(chunk_ms)
    if protocol not in ("web", "twilio"):
        raise AlignerError(f"unknown protocol {protocol!r}; expected 'web' or 'twilio'")
    result = result if result is not None else CallResult(url, None)
    result.url = url
    source = source if source is not None else SilenceSource(None)
    twilio = protocol == "twilio"
    proto = WebClientProtocol(twilio=twilio, stream_sid="MZ" + format(time.time_ns(), "x"))
    if capture_dir is not None and (Path(capture_dir) / HEADER).exists():
        raise CaptureError(f"{capture_dir} already holds a capture; choose another folder")
    writer: CaptureWriter | None = None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    closing = {"by": ""}
    t0 = loop.time()

    def now() -> float:  # microseconds, as the capture stores them: replay == live
        return round(loop.time() - t0, 6)

    async def flush(ws) -> None:
        for payload in proto.data_to_send():
            t = now()
            if writer is not None:
                writer.write(t, "out", payload)
            result.frames_out += 1
            if isinstance(payload, bytes):
                await ws.send_bytes(payload)
                queue.put_nowait(Stamped(t, "out", decode_client_binary(payload)))
            else:
                await ws.send_str(payload)
                queue.put_nowait(Stamped(t, "out", decode_twilio(payload) if twilio
                                         else decode_client_text(payload)))

    async def reader(ws) -> None:
        code, reason = None, ""
        while True:
            msg = await ws.receive()
            t = now()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                result.frames_in += 1
                if writer is not None:
                    writer.write(t, "in", msg.data)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    proto.receive_text(msg.data)
                else:
                    proto.receive_binary(msg.data)
                for ev in proto.events_received():
                    if isinstance(ev, AgentAudio | AlignedAudio):
                        call.agent_audio(t, len(ev.audio))
                    elif isinstance(ev, TwilioMedia):
                        call.agent_audio(t, len(ev.payload))
                    elif isinstance(ev, Clear | TwilioClear):
                        call.clear(t)
                    queue.put_nowait(Stamped(t, "in", ev))
                result.malformed = proto.malformed
                await flush(ws)  # pongs
                continue
            if closing["by"] == "client":  # our own close: the sender records it
                return
            if msg.type == aiohttp.WSMsgType.CLOSE:
                code, reason = msg.data, msg.extra or ""
            elif msg.type == aiohttp.WSMsgType.ERROR:
                logger.warning("websocket error: %s", msg.data)
                code, reason = ws.close_code or 1006, str(msg.data)
            else:
                code = ws.close_code
            closed(t, code, reason, "server")
            return

    def closed(t: float, code: int | None, reason: str, by: str) -> None:
        if result.closed_by:
            return
        proto.receive_close(code, reason)
        result.close_code, result.close_reason, result.closed_by = code, reason, by
        if writer is not None:
            writer.write_close(t, code, reason, by)

    async def sender(ws) -> None:
        step = chunk_ms / 1000
        silence = SilenceSource(None)
        source.open(call)
        silence.open(call)
        try:
            if twilio:
                proto.send_start(encoding="audio/x-mulaw" if encoding == "mulaw"
                                 else "audio/l16", sample_rate=sample_rate)
                await flush(ws)
            start, k, ended_at = loop.time(), 0, None
            last_ping = -heartbeat  # the first ping goes out at once
            while not ws.closed:
                call.now = now()
                if max_duration is not None and call.now >= max_duration:
                    break
                # frame k holds the samples of [k, k + 1) x step exactly: a whole number of
                # samples per frame, rounded once, would send slower than real time (11025 Hz:
                # 220 samples for 20 ms, 23 ms behind after 10 s)
                nsamples = int(audio.frame_start(k + 1, sample_rate, step)
                               - audio.frame_start(k, sample_rate, step))
                if ended_at is None:
                    data = source.read(call, nsamples)
                    if data is None:
                        ended_at = call.now
                        logger.info("source ended at %.2f s", ended_at)
                        continue
                else:  # quiet for ``linger`` since the input ended (or the agent last spoke)
                    since = max(call.agent_until, ended_at)
                    quiet = (not call.agent_audible()) and call.now - since >= linger
                    if quiet or call.now - ended_at >= max_linger:
                        break
                    data = None if source.realtime else silence.read(call, nsamples)
                if data:
                    proto.send_audio(data)
                if heartbeat and call.now - last_ping >= heartbeat:
                    proto.send_ping()
                    last_ping = call.now
                await flush(ws)
                k += 1
                await asyncio.sleep(max(0.0, start + k * step - loop.time()))
            if twilio and not ws.closed:
                proto.send_stop()
                await flush(ws)
        finally:
            source.close()
        if not ws.closed:
            closing["by"] = "client"
            await ws.close(code=1000, message=b"call finished")
            closed(now(), ws.close_code, "call finished", "client")

    async def run_call(ws) -> None:
        send_task = asyncio.create_task(sender(ws), name="aligner-sender")
        read_task = asyncio.create_task(reader(ws), name="aligner-reader")
        try:
            await asyncio.wait({send_task, read_task}, return_when=asyncio.FIRST_COMPLETED)
            if send_task.done() and not send_task.cancelled():
                exc = send_task.exception()
                if exc is not None and not isinstance(exc, ConnectionError
                                                      | aiohttp.ClientConnectionError):
                    raise exc  # e.g. a broken source: end the call (the caller closes)
                if exc is not None:  # the socket went away under a send: the reader says how
                    logger.info("send failed (%s); waiting for the close", exc)
            await read_task
            if closing["by"] == "client":
                await send_task  # completes the close handshake and records it
        finally:
            for task in (send_task, read_task):
                task.cancel()
            for task in (send_task, read_task):
                with contextlib.suppress(asyncio.CancelledError, ConnectionError,
                                         aiohttp.ClientConnectionError):
                    await task

    timeout = aiohttp.ClientWSTimeout(ws_close=5.0)
    try:
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(url, autoping=True, heartbeat=None, timeout=timeout,
                                           max_msg_size=0)
            except (aiohttp.ClientError, OSError) as exc:
                raise AlignerError(f"cannot connect to {url}: {exc}") from exc
            t0 = loop.time()
            logger.info("connected to %s", url)
            if capture_dir is not None:  # created once connected: a failed dial leaves nothing
                writer = CaptureWriter(capture_dir, {
                    "protocol": protocol, "audio_encoding": encoding, "sample_rate": sample_rate,
                    "url": url, "chunk_ms": chunk_ms, **(info or {})})
                result.capture = writer.path
            task = asyncio.create_task(run_call(ws), name="aligner-call")
            task.add_done_callback(lambda _: queue.put_nowait(_END))
            try:
                while True:
                    item = await queue.get()
                    if item is _END:
                        break
                    yield item
                while not queue.empty():  # events queued after the reader ended
                    item = queue.get_nowait()
                    if item is not _END:
                        yield item
                await task  # re-raise a failure
            finally:
                closing["by"] = closing["by"] or "client"
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                if not ws.closed:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(ws.close(code=1000, message=b"client stopped"))
                closed(now(), ws.close_code, "client stopped", "client")
    finally:
        result.duration = loop.time() - t0
        if writer is not None:
            writer.close()
    if result.closed_by == "server" and result.close_code not in NORMAL_CLOSE_CODES:
        raise ServerClosed(result.close_code, result.close_reason)


async def record(url: str, source: Source | None, capture_dir: str | Path | None, *,
                 on_event: Callable[[Stamped], Any] | None = None, **options: Any) -> CallResult:
    """Run one call to the end, recording it into ``capture_dir``; see :func:`stream` for options.

    Args:
        url: the websocket URL (see :func:`audio_websocket_url`).
        source: the user's audio (None: silence).
        capture_dir: the capture directory to create (None: don't record).
        on_event: called with every :class:`Stamped` event as it happens.

    Returns:
        The :class:`CallResult`.

    Raises:
        ServerClosed: the server closed with an error code; the capture is complete on disk.
    """
    result = CallResult(url, None)
    async for ev in stream(url, source, capture_dir=capture_dir, result=result, **options):
        if on_event is not None:
            on_event(ev)
    return result


async def record_embedded(source: Source | None, capture_dir: str | Path | None, *,
                          emulator_options: dict[str, Any] | None = None,
                          agent_id: str | None = None, encoding: str = "s16le",
                          sample_rate: int = 16000, protocol: str = "web",
                          enable_update: bool = True, enable_audio_alignment: bool = True,
                          on_event: Callable[[Stamped], Any] | None = None,
                          **options: Any) -> CallResult:
    """Start the embedded emulator on a free loopback port, register a call, record it.

    The call object (``GET /get-call`` after the call, with the emulator's transcript) is stored
    in the capture header as ``call`` and in :attr:`CallResult.call`.

    Raises:
        MissingBackendError: the emulator needs the ``speech`` extra.
        ServerClosed: the emulator closed with an error code.
    """
    from ..emulator import EmbeddedEmulator

    audio.check_encoding(encoding)
    audio.check_rate(sample_rate)
    async with EmbeddedEmulator(**(emulator_options or {})) as emu:
        body: dict[str, Any] = {"audio_websocket_protocol": protocol, "audio_encoding": encoding,
                                "sample_rate": sample_rate}
        if agent_id:
            body["agent_id"] = agent_id
        else:
            body["agent_id"] = getattr(emu, "agent_id", None) or "riverside-bistro"
        registered = await register_call(emu.base_url, emu.api_key, **body)
        call_id = registered["call_id"]
        url = audio_websocket_url(emu.base_url, call_id, enable_update=enable_update,
                                  enable_audio_alignment=enable_audio_alignment)
        result = CallResult(url, None)
        info = {"call_id": call_id, "server": "embedded emulator", "registered": registered}
        try:
            async for ev in stream(url, source, capture_dir=capture_dir, encoding=encoding,
                                   sample_rate=sample_rate, protocol=protocol, info=info,
                                   result=result, **options):
                if on_event is not None:
                    on_event(ev)
        finally:
            with contextlib.suppress(Exception):
                result.call = await get_call(emu.base_url, emu.api_key, call_id)
                if result.capture is not None:
                    update_info(result.capture, call=result.call)
    return result

