"""The web form of the audio websocket (protocol.md sections 2-3), server side.

Binary frames in are mic audio in the call's encoding; ``ping`` text frames get ``pong``; other
text frames are harmless and are ignored and counted. Out: agent audio as binary frames, or as
alignment JSON (``enable_audio_alignment``), ``clear``, ``update`` events (``enable_update``) and
``metadata`` events.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from .. import audio
from ..errors import AudioError
from ..logs import fields
from ..wire.answers import CORRUPTED_PAYLOAD
from .agent import Conversation
from .calls import Call
from .config import EmulatorConfig
from .speaker import Chunk

__all__ = ["WebTransport", "serve_web"]

log = logging.getLogger(__name__)


class WebTransport:
    """Sends a conversation's output on a web-protocol websocket."""

    def __init__(self, ws: web.WebSocketResponse, config: EmulatorConfig, enable_update: bool,
                 enable_alignment: bool) -> None:
        self.ws = ws
        self.config = config
        self.enable_update = enable_update
        self.enable_alignment = enable_alignment

    async def _send_str(self, text: str) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):  # the reader sees the close
                await self.ws.send_str(text)

    async def send_chunk(self, chunk: Chunk, response_id: int, last: bool) -> None:
        if self.ws.closed:
            return
        if self.enable_alignment:
            await self._send_str(json.dumps({
                "event_type": self.config.alignment_event_type,
                "audio": base64.b64encode(chunk.audio).decode("ascii"),
                self.config.alignment_text_key: chunk.text}))
        else:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_bytes(chunk.audio)

    async def send_clear(self) -> None:
        await self._send_str("clear")

    async def send_update(self, transcript: list[dict], turntaking: str | None) -> None:
        if not self.enable_update:
            return
        message: dict[str, Any] = {"event_type": "update", "transcript": transcript}
        if turntaking:
            message["turntaking"] = turntaking
        await self._send_str(json.dumps(message))

    async def send_metadata(self, metadata: Any) -> None:
        await self._send_str(json.dumps({"event_type": "metadata", "metadata": metadata}))

    async def played(self, timeout: float) -> None:
        """The web protocol has no playback receipts: the playback clock is all there is."""

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())


async def serve_web(ws: web.WebSocketResponse, call: Call, conversation: Conversation) -> None:
    """Read the client's frames until the socket closes or the conversation ends it."""
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            call.frames_in += 1
            try:
                samples = audio.decode(msg.data, call.encoding)
            except AudioError as exc:
                log.warning("corrupt audio frame", extra=fields(call_id=call.call_id,
                                                               error=str(exc)))
                conversation.hangup(CORRUPTED_PAYLOAD.reason, CORRUPTED_PAYLOAD.code, error=True)
                return
            conversation.receive_audio(samples)
        elif msg.type == WSMsgType.TEXT:
            if msg.data == "ping":
                await ws.send_str("pong")
            elif msg.data != "pong":
                call.ignored_frames += 1
                log.info("ignoring a text frame", extra=fields(call_id=call.call_id, frame=msg.data[:80]))
        elif msg.type == WSMsgType.ERROR:
            log.warning("websocket error", extra=fields(call_id=call.call_id,
                                                        error=repr(ws.exception())))
            break
