"""The agent's brain: what to say and when. A scripted dialogue, or an external LLM websocket.

A brain turns conversation moments into :class:`Say` / :class:`SendMetadata` / :class:`Hangup`
actions on its ``actions`` queue, which the conversation (:mod:`.agent`) consumes:

- :class:`ScriptedBrain` reads a JSON dialogue (``samples/dialogue.json``): line 0 is the opening
  greeting, then one line per user turn; a line may carry ``metadata`` (sent as a metadata event
  when the line starts) and ``end_call``.
- :class:`LlmBrain` is the server side of protocol.md section 6: it connects to
  ``{llm_url}/{call_id}``, sends ``call_details``, ``update_only``, ``response_required`` and
  answers ``ping_pong``; LLM ``response`` deltas become :class:`Say` actions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AlignerError

__all__ = ["Brain", "BrainError", "Hangup", "LlmBrain", "Say", "ScriptedBrain", "SendMetadata",
           "load_dialogue"]

log = logging.getLogger(__name__)


class BrainError(AlignerError):
    """The brain failed: ``reason`` is a disconnection reason (e.g. ``error_llm_websocket_open``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self):
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True, slots=True)
class Say:
    """Text to speak for ``response_id`` (a delta; ``complete`` ends the response)."""

    response_id: int
    text: str
    complete: bool = True
    end_call: bool = False


@dataclass(frozen=True, slots=True)
class SendMetadata:
    """A metadata event to forward to the audio websocket."""

    metadata: Any


@dataclass(frozen=True, slots=True)
class Hangup:
    """The agent ends the call (after what it has queued has played)."""


def load_dialogue(path: str | Path) -> dict:
    """Read and check a dialogue file: ``{"lines": [{"text", "metadata"?, "end_call"?}, ...],
    "user_hints"?: [...]}``.

    Raises:
        AlignerError: missing file, invalid JSON, or a line without text.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AlignerError(f"cannot read dialogue {path}: {exc}") from exc
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(lines, list) or not lines:
        raise AlignerError(f"dialogue {path} needs a non-empty 'lines' list")
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or not isinstance(line.get("text"), str):
            raise AlignerError(f"dialogue {path}: line {i} needs a 'text' string")
    return data


class Brain:
    """Base of brains: fills ``actions``; told about the conversation through the methods."""

    def __init__(self) -> None:
        self.actions: asyncio.Queue = asyncio.Queue()

    async def start(self, call: dict) -> None:
        """The socket is open: say the opening line (response 0) if any."""

    async def transcript_changed(self, transcript: list[dict], turntaking: str | None) -> None:
        """The transcript changed (user recognised, agent cut off...)."""

    async def respond(self, response_id: int, transcript: list[dict]) -> None:
        """The user's turn ended: produce response ``response_id``."""

    async def close(self) -> None:
        """The call is over."""


class ScriptedBrain(Brain):
    """One scripted line per turn (see :func:`load_dialogue`)."""

    def __init__(self, dialogue: dict) -> None:
        super().__init__()
        self.lines = dialogue["lines"]
        self._next = 0

    def _say_next(self, response_id: int) -> None:
        if self._next >= len(self.lines):
            self.actions.put_nowait(Hangup())
            return
        line = self.lines[self._next]
        self._next += 1
        if "metadata" in line:
            self.actions.put_nowait(SendMetadata(line["metadata"]))
        self.actions.put_nowait(Say(response_id, line["text"], True, bool(line.get("end_call"))))

    async def start(self, call: dict) -> None:
        self._say_next(0)

    async def respond(self, response_id: int, transcript: list[dict]) -> None:
        self._say_next(response_id)


class LlmBrain(Brain):
    """Client of an agent LLM websocket server (protocol.md section 6)."""

    def __init__(self, url: str, call_id: str) -> None:
        super().__init__()
        self.url = url.rstrip("/") + "/" + call_id
        self._session = None
        self._ws = None
        self._reader: asyncio.Task | None = None

    async def start(self, call: dict) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(self.url, heartbeat=None)
        except (aiohttp.ClientError, OSError) as exc:
            await self._session.close()
            raise BrainError("error_llm_websocket_open", str(exc)) from exc
        self._call = call
        self._reader = asyncio.create_task(self._read())

    async def _send(self, message: dict) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(json.dumps(message))

    async def _read(self) -> None:
        import aiohttp

        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
                kind = data.get("response_type")
            except (ValueError, AttributeError):
                self.actions.put_nowait(BrainError("error_llm_websocket_corrupt_payload",
                                                   str(msg.data)[:100]))
                return
            if kind == "config":
                if (data.get("config") or {}).get("call_details"):
                    await self._send({"interaction_type": "call_details", "call": self._call})
            elif kind in ("response", "agent_interrupt"):
                rid = data.get("response_id", data.get("interrupt_id", 0))
                self.actions.put_nowait(Say(int(rid), str(data.get("content", "")),
                                            bool(data.get("content_complete")),
                                            bool(data.get("end_call"))))
            elif kind == "metadata":
                self.actions.put_nowait(SendMetadata(data.get("metadata")))
            elif kind == "ping_pong":
                await self._send({"interaction_type": "ping_pong",
                                  "timestamp": data.get("timestamp")})
            else:
                log.info("ignoring LLM message %r", kind)
        self.actions.put_nowait(BrainError("error_llm_websocket_lost_connection"))

    async def transcript_changed(self, transcript: list[dict], turntaking: str | None) -> None:
        message: dict[str, Any] = {"interaction_type": "update_only", "transcript": transcript}
        if turntaking:
            message["turntaking"] = turntaking
        await self._send(message)

    async def respond(self, response_id: int, transcript: list[dict]) -> None:
        await self._send({"interaction_type": "response_required", "response_id": response_id,
                          "transcript": transcript})

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
