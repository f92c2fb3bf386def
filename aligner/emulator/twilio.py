"""The Twilio Media Streams form of the audio websocket (protocol.md section 5), server side.

In: JSON text frames ``connected``, ``start``, ``media`` (base64 mulaw 8 kHz), ``mark``,
``dtmf``, ``stop``. Out: ``media`` with the agent's audio, a ``mark`` after each response, and
``clear`` on barge-in. Binary frames, invalid JSON and any message of a known kind that the
project's Twilio codec cannot read (bad base64, a field of the wrong type...) are corrupt
payloads; messages of other kinds are ignored (counted). The client echoes each ``mark`` once
the audio before it has played: :meth:`TwilioTransport.played` waits for that (after a
``clear`` it waits for no mark sent before).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from .. import audio
from ..logs import fields
from ..wire.answers import CORRUPTED_PAYLOAD
from ..wire.events import (
    TwilioConnected,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioStart,
    TwilioStop,
    Unknown,
)
from ..wire.protocol import decode_twilio
from .agent import Conversation
from .calls import Call
from .speaker import Chunk

__all__ = ["TwilioTransport", "serve_twilio"]

log = logging.getLogger(__name__)


class TwilioTransport:
    """Sends a conversation's output as Twilio ``media`` / ``mark`` / ``clear`` messages."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.stream_sid = ""
        self._unechoed: set[str] = set()  # marks sent whose audio has not played yet
        self._echoed = asyncio.Event()

    async def _send(self, message: dict) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):  # the reader sees the close
                await self.ws.send_str(json.dumps(message))

    async def send_chunk(self, chunk: Chunk, response_id: int, last: bool) -> None:
        await self._send({"event": "media", "streamSid": self.stream_sid,
                          "media": {"payload": base64.b64encode(chunk.audio).decode("ascii")}})
        if last:
            name = f"response-{response_id}"
            self._unechoed.add(name)
            await self._send({"event": "mark", "streamSid": self.stream_sid,
                              "mark": {"name": name}})

    async def send_clear(self) -> None:
        self._unechoed.clear()  # their audio will never play
        self._echoed.set()
        await self._send({"event": "clear", "streamSid": self.stream_sid})

    def receive_mark(self, name: str) -> None:
        """The client echoed mark ``name``: the audio before it has played."""
        self._unechoed.discard(name)
        self._echoed.set()

    async def played(self, timeout: float) -> None:
        """Wait until every mark sent is echoed (at most ``timeout`` s)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._unechoed and not self.ws.closed:
            self._echoed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.info("marks %s not echoed after %.1f s", sorted(self._unechoed), timeout)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._echoed.wait(), left)

    async def send_update(self, transcript: list[dict], turntaking: str | None) -> None:
        """No transcript updates on Twilio."""

    async def send_metadata(self, metadata: Any) -> None:
        """No metadata events on Twilio."""

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())


def _corrupt(conversation: Conversation, why: str) -> None:
    log.warning("corrupt Twilio frame", extra=fields(call_id=conversation.call.call_id,
                                                      error=why))
    conversation.hangup(CORRUPTED_PAYLOAD.reason, CORRUPTED_PAYLOAD.code, error=True)


async def serve_twilio(ws: web.WebSocketResponse, call: Call, conversation: Conversation,
                       transport: TwilioTransport, started) -> None:
    """Read Twilio messages (through the project's codec,
    :func:`aligner.wire.protocol.decode_twilio`) until ``stop``, close, or a corrupt frame.

    ``started`` is called once with the ``start`` message (the conversation begins then).
    """
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            return _corrupt(conversation, "binary frame")
        if msg.type == WSMsgType.ERROR:
            break
        if msg.type != WSMsgType.TEXT:
            continue
        call.frames_in += 1
        event = decode_twilio(msg.data)
        if isinstance(event, Unknown):
            kind = _kind(msg.data)
            if kind is None or kind in _KNOWN:  # not a JSON message, or a damaged one
                return _corrupt(conversation, event.reason)
            call.ignored_frames += 1  # a message of a kind this server does not know
        elif isinstance(event, TwilioStart):
            transport.stream_sid = event.stream_sid
            started(event)
        elif isinstance(event, TwilioMedia):
            conversation.receive_audio(audio.decode(event.payload, "mulaw"))
        elif isinstance(event, TwilioMark):
            transport.receive_mark(event.name)
        elif isinstance(event, TwilioStop):
            conversation.stop("user_hangup")
            return
        elif not isinstance(event, TwilioConnected | TwilioDtmf):
            call.ignored_frames += 1  # e.g. clear, which only the server sends


_KNOWN = frozenset({"connected", "start", "media", "mark", "dtmf", "stop", "clear"})


def _kind(text: str) -> str | None:
    """The ``event`` of a JSON message, None when there is no such string."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    kind = data.get("event") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None
