"""The emulator's aiohttp application: HTTP API, audio websocket, and an embedded runner.

Routes: ``POST /register-call``, ``GET /get-call/{call_id}`` (both need
``Authorization: Bearer <api_key>``), ``GET /audio-websocket/{call_id}`` (the call id is the
credential), and an ended call's ``recording_url`` (``GET /calls/{call_id}/recording.wav``) and
``public_log_url`` (``GET /calls/{call_id}/log``), whose unguessable call id is their key as on
the real service. Mistakes get the answers of :mod:`aligner.wire.answers`.
:class:`EmbeddedEmulator` runs the app on a free loopback port inside the current event loop::

    async with EmbeddedEmulator(api_key="k") as emu:
        emu.base_url  # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from aiohttp import web

from ..logs import fields
from ..speech import voices
from ..wire.answers import (
    BAD_JSON,
    CALL_ALREADY_USED,
    NO_SUCH_CALL,
    UNAUTHORIZED,
    UNKNOWN_CALL,
    invalid_field,
)
from .agent import Conversation
from .brain import LlmBrain, ScriptedBrain, load_dialogue
from .calls import CallRegistry, RegistrationError
from .config import EmulatorConfig
from .listener import Listener
from .speaker import SpeechCache
from .twilio import TwilioTransport, serve_twilio
from .web import WebTransport, serve_web

__all__ = ["CALLS", "CONVERSATIONS", "EmbeddedEmulator", "create_app"]

log = logging.getLogger(__name__)

CALLS = web.AppKey("calls", CallRegistry)
CONVERSATIONS = web.AppKey("conversations", dict)
_CONFIG = web.AppKey("config", EmulatorConfig)
_SPEECH = web.AppKey("speech", SpeechCache)
_LISTENER = web.AppKey("listener", object)
_DIALOGUE = web.AppKey("dialogue", dict)


def _authorized(request: web.Request) -> bool:
    return request.headers.get("Authorization", "") == f"Bearer {request.app[_CONFIG].api_key}"


async def _register_call(request: web.Request) -> web.Response:
    if not _authorized(request):
        return UNAUTHORIZED.response()
    try:
        body = await request.json()
    except ValueError:
        return BAD_JSON.response()
    try:
        call = request.app[CALLS].register(body)
    except RegistrationError as exc:
        return invalid_field(exc.field, exc.message).response()
    log.info("call registered", extra=fields(call_id=call.call_id, protocol=call.protocol,
                                             encoding=call.encoding, rate=call.sample_rate))
    config, speech = request.app[_CONFIG], request.app[_SPEECH]
    for line in request.app[_DIALOGUE].get("lines", ()):  # synthesise the script ahead
        speech.prefetch(line["text"], call.encoding, call.sample_rate, **config.speech_options())
    return web.json_response(call.to_json(), status=201)


async def _get_call(request: web.Request) -> web.Response:
    if not _authorized(request):
        return UNAUTHORIZED.response()
    call = request.app[CALLS].get(request.match_info["call_id"])
    if call is None:
        return NO_SUCH_CALL.response()
    return web.json_response(call.to_json(str(request.url.origin())))


async def _recording(request: web.Request) -> web.Response:
    call = request.app[CALLS].get(request.match_info["call_id"])
    if call is None or call.end_timestamp is None or call.recording is None:
        return NO_SUCH_CALL.response()
    return web.Response(body=call.recording.wav(), content_type="audio/wav")


async def _public_log(request: web.Request) -> web.Response:
    call = request.app[CALLS].get(request.match_info["call_id"])
    if call is None or call.end_timestamp is None:
        return NO_SUCH_CALL.response()
    return web.Response(text=call.log_text(), content_type="text/plain")


async def _stats(request: web.Request) -> web.Response:
    """Emulator-only counters of a call (not part of the real API): frames received, frames
    ignored, and per user turn the delay from the end-of-turn decision to the first chunk and
    how the turn ended (``quick``: at a short pause, ``long``: after the whole hangover), and
    per pause how long the words heard so far took to come from the recogniser."""
    if not _authorized(request):
        return UNAUTHORIZED.response()
    call = request.app[CALLS].get(request.match_info["call_id"])
    if call is None:
        return NO_SUCH_CALL.response()
    return web.json_response({
        "call_id": call.call_id, "frames_received": call.frames_in,
        "ignored_frames": call.ignored_frames, "turn_delays": call.turn_delays,
        "turn_ends": call.turn_ends, "hypothesis_waits": call.hypothesis_waits})


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1", "yes")


async def _audio_websocket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    config = app[_CONFIG]
    ws = web.WebSocketResponse(max_msg_size=8 * 1024 * 1024)
    await ws.prepare(request)
    call = app[CALLS].get(request.match_info["call_id"])
    if call is None:
        await UNKNOWN_CALL.close(ws)
        return ws
    if call.call_status != "registered":
        await CALL_ALREADY_USED.close(ws)
        return ws
    call.call_status = "ongoing"
    if config.llm_url:
        brain = LlmBrain(config.llm_url, call.call_id)
    else:
        brain = ScriptedBrain(app[_DIALOGUE])
    twilio = call.protocol == "twilio"
    transport = TwilioTransport(ws) if twilio else WebTransport(
        ws, config, _flag(request, "enable_update"), _flag(request, "enable_audio_alignment"))
    conversation = Conversation(call, config, transport, brain, app[_SPEECH], app[_LISTENER])
    app[CONVERSATIONS][call.call_id] = conversation
    runner: list[asyncio.Task] = []

    def start(_message=None) -> None:
        if not runner:
            runner.append(asyncio.create_task(conversation.run()))

    try:
        if twilio:
            reader = asyncio.ensure_future(serve_twilio(ws, call, conversation, transport, start))
        else:
            start()
            reader = asyncio.ensure_future(serve_web(ws, call, conversation))
        waits = {reader, *runner}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not reader.done():  # the conversation ended the call: stop reading
            await ws.close()
            reader.cancel()
        conversation.stop("user_hangup")  # no-op when the server hung up
    finally:
        for task in runner:
            task.cancel()
        conversation.stop("user_hangup")
        app[CONVERSATIONS].pop(call.call_id, None)
        app[CALLS].retire(call)
    return ws


async def _on_startup(app: web.Application) -> None:
    await asyncio.to_thread(voices.load, app[_CONFIG].voice)  # fails now if it is missing
    if app[_LISTENER] is not None:
        await app[_LISTENER].start()


async def _on_cleanup(app: web.Application) -> None:
    for conversation in list(app[CONVERSATIONS].values()):
        conversation.stop("user_hangup")
    listener = app[_LISTENER]
    if listener is not None:
        listener.close()


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator application.

    Args:
        config: options (defaults: key ``dev-key``, the sample dialogue).

    Returns:
        An :class:`aiohttp.web.Application`; ``app[CALLS]`` is its call registry.

    Raises:
        AlignerError: the dialogue file cannot be read.
    """
    config = config or EmulatorConfig()
    app = web.Application()
    app[_CONFIG] = config
    app[CALLS] = CallRegistry()
    app[CONVERSATIONS] = {}
    app[_SPEECH] = SpeechCache()
    dialogue = {} if config.llm_url else load_dialogue(config.dialogue)
    app[_DIALOGUE] = dialogue
    hints = dialogue.get("user_hints") if config.use_hints else None
    app[_LISTENER] = Listener(hints or None) if config.recognition else None
    app.router.add_post("/register-call", _register_call)
    app.router.add_get("/get-call/{call_id}", _get_call)
    app.router.add_get("/audio-websocket/{call_id}", _audio_websocket)
    app.router.add_get("/calls/{call_id}/recording.wav", _recording)
    app.router.add_get("/calls/{call_id}/log", _public_log)
    app.router.add_get("/emulator/stats/{call_id}", _stats)
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app


class EmbeddedEmulator:
    """Run the emulator on a free loopback port inside the running event loop.

    Keyword arguments are :class:`EmulatorConfig` fields (or pass ``config=``).

    >>> async def demo():                                          # doctest: +SKIP
    ...     async with EmbeddedEmulator(api_key="secret") as emu:
    ...         print(emu.base_url, emu.ws_url, emu.api_key)
    """

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, **options) -> None:
        self.config = dataclasses.replace(config or EmulatorConfig(), **options)
        self.host = host
        self.port = port
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` for register-call and get-call."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT``; the audio websocket is ``{ws_url}/audio-websocket/{call_id}``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def agent_id(self) -> str:
        """The scripted agent's ``agent_id`` (from the dialogue file), for register-call."""
        assert self.app is not None
        return self.app[_DIALOGUE].get("agent_id") or "llm-agent"

    @property
    def calls(self) -> CallRegistry:
        assert self.app is not None
        return self.app[CALLS]

    async def start(self) -> EmbeddedEmulator:
        self.app = create_app(self.config)
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port the OS chose
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmbeddedEmulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
