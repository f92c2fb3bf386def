"""Helpers of the emulator tests: a minimal real client for the web and Twilio sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from functools import cache

import aiohttp
import numpy as np

from aligner import audio
from aligner.emulator.brain import load_dialogue
from aligner.emulator.config import DEFAULT_DIALOGUE
from aligner.speech.synthesis import synthesize

DIALOGUE = load_dialogue(DEFAULT_DIALOGUE)
AGENT_LINES = [line["text"] for line in DIALOGUE["lines"]]
USER_LINES = DIALOGUE["user_hints"]


@cache
def _speech(text: str, rate: int) -> bytes:
    return audio.resample(synthesize(text).samples, 22050, rate).tobytes()


def user_speech(text: str, rate: int) -> np.ndarray:
    """Real espeak speech of ``text`` at ``rate`` (a different voice speed from the agent's)."""
    return np.frombuffer(_speech(text, rate), np.int16)


async def register(session: aiohttp.ClientSession, emu, **body) -> dict:
    body = {"agent_id": "test-agent", **body}
    async with session.post(f"{emu.base_url}/register-call", json=body,
                            headers={"Authorization": f"Bearer {emu.api_key}"}) as r:
        assert r.status == 201, await r.text()
        return await r.json()


async def get_call(session: aiohttp.ClientSession, emu, call_id: str) -> dict:
    async with session.get(f"{emu.base_url}/get-call/{call_id}",
                           headers={"Authorization": f"Bearer {emu.api_key}"}) as r:
        assert r.status == 200
        return await r.json()


async def wait_ended(session, emu, call_id: str, timeout: float = 10.0, turns: int = 0) -> dict:
    """get-call once the call is over (and its transcript has ``turns`` turns: recognition of
    the last user turn may finish after the hang-up)."""
    deadline = time.monotonic() + timeout
    while True:
        call = await get_call(session, emu, call_id)
        done = call["call_status"] in ("ended", "error")
        if (done and len(call.get("transcript_object", ())) >= turns) \
                or time.monotonic() > deadline:
            return call
        await asyncio.sleep(0.05)


@dataclass
class Received:
    """Everything a client got, in order: ``(kind, wall time, payload)``."""

    items: list = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def of(self, kind: str) -> list:
        return [p for k, _, p in self.items if k == kind]

    def time_of_first(self, kind: str) -> float | None:
        return next((t for k, t, _ in self.items if k == kind), None)


async def _frames(ws: aiohttp.ClientWebSocketResponse, got: Received):
    """Frames until the socket closes; the close code and reason go into ``got``."""
    while True:
        msg = await ws.receive()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            if msg.type == aiohttp.WSMsgType.CLOSE:
                got.close_reason = msg.extra or ""
            got.close_code = ws.close_code if ws.close_code is not None else msg.data
            return
        yield msg


async def read_web(ws: aiohttp.ClientWebSocketResponse, got: Received) -> None:
    """Collect frames of a web-protocol socket: ``chunk`` (text, bytes), ``binary``, ``clear``,
    ``update``, ``metadata``, ``pong``, ``other``."""
    async for msg in _frames(ws, got):
        now = time.monotonic()
        if msg.type == aiohttp.WSMsgType.BINARY:
            got.items.append(("binary", now, msg.data))
        elif msg.data in ("clear", "pong"):
            got.items.append((msg.data, now, None))
        else:
            data = json.loads(msg.data)
            if isinstance(data.get("audio"), str):
                text = data.get("text", data.get("content"))
                got.items.append(("chunk", now, (text, base64.b64decode(data["audio"]), data)))
            else:
                got.items.append((data.get("event_type", "other"), now, data))


async def read_twilio(ws: aiohttp.ClientWebSocketResponse, got: Received) -> None:
    """Collect Twilio messages by ``event`` (media payloads base64-decoded)."""
    async for msg in _frames(ws, got):
        data = json.loads(msg.data)
        if data["event"] == "media":
            data = base64.b64decode(data["media"]["payload"])
            got.items.append(("media", time.monotonic(), data))
        else:
            got.items.append((data["event"], time.monotonic(), data))


async def stream_web(ws, pcm: np.ndarray, encoding: str, rate: int, speed: float = 1.0,
                     frame_ms: int = 20) -> None:
    """Send ``pcm`` as mic audio in ``frame_ms`` frames, paced at ``speed`` x real time."""
    step = rate * frame_ms // 1000
    start = time.monotonic()
    for k, i in enumerate(range(0, len(pcm), step)):
        if ws.closed:
            return
        await ws.send_bytes(audio.encode(pcm[i:i + step], encoding))
        await asyncio.sleep(max(0.0, start + (k + 1) * frame_ms / 1000 / speed - time.monotonic()))


async def stream_twilio(ws, pcm: np.ndarray, stream_sid: str, speed: float = 1.0,
                        first_chunk: int = 1) -> int:
    """Send 8 kHz ``pcm`` as Twilio ``media`` messages of 20 ms; returns the next chunk number."""
    start = time.monotonic()
    k = 0
    for k, i in enumerate(range(0, len(pcm), 160)):
        if ws.closed:
            break
        payload = base64.b64encode(audio.encode(pcm[i:i + 160], "mulaw")).decode()
        n = first_chunk + k
        await ws.send_str(json.dumps({
            "event": "media", "sequenceNumber": str(n + 1), "streamSid": stream_sid,
            "media": {"track": "inbound", "chunk": str(n), "timestamp": str(n * 20),
                      "payload": payload}}))
        await asyncio.sleep(max(0.0, start + (k + 1) * 0.02 / speed - time.monotonic()))
    return first_chunk + k + 1


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)
