"""The Twilio Media Streams form of the audio websocket (protocol.md section 5), server side.

In: JSON text frames ``connected``, ``start``, ``media`` (base64 mulaw 8 kHz), ``mark``,
``dtmf``, ``stop``. Out: ``media`` with the agent's audio, a ``mark`` after each response, and
``clear`` on barge-in. Binary frames, invalid JSON and bad base64 are corrupt payloads. The
client echoes each ``mark`` once the audio before it has played: :meth:`TwilioTransport.played`
waits for that (after a ``clear`` it waits for no mark sent before).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from .. import audio
from ..logs import fields
from ..wire.answers import CORRUPTED_PAYLOAD
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
    """Read Twilio messages until ``stop``, close, or a corrupt frame.

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
        try:
            data = json.loads(msg.data)
            event = data["event"]
        except (ValueError, KeyError, TypeError):
            return _corrupt(conversation, "invalid JSON")
        if event == "start":
            transport.stream_sid = str(data.get("streamSid")
                                       or (data.get("start") or {}).get("streamSid", ""))
            started(data)
        elif event == "media":
            try:
                payload = base64.b64decode(data["media"]["payload"], validate=True)
            except (KeyError, TypeError, ValueError, binascii.Error):
                return _corrupt(conversation, "bad media payload")
            conversation.receive_audio(audio.decode(payload, "mulaw"))
        elif event == "mark":
            mark = data.get("mark")
            transport.receive_mark(str(mark.get("name")) if isinstance(mark, dict) else "")
        elif event == "stop":
            conversation.stop("user_hangup")
            return
        elif event not in ("connected", "dtmf"):
            call.ignored_frames += 1
