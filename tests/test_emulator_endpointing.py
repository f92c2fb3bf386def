"""Smart endpointing of the emulator over a real loopback socket, with real espeak user speech
recognised while it is spoken: a pause inside an unfinished sentence does not end the turn, and
a finished sentence is answered well before the long hangover."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
from emulator_helpers import USER_LINES, Received, read_web, register, silence, user_speech

from aligner import audio
from aligner.emulator import EmbeddedEmulator
from aligner.speech.recognize import word_overlap

RATE = 16000
FRAME = RATE // 50
END_OF_TURN_MS = 1000  # the long hangover; the quick one is the default 200 ms
AGENT = ["Hello.", "Sure.", "Fine.", "Goodbye."]


def _dialogue(tmp_path) -> str:
    path = tmp_path / "dialogue.json"
    path.write_text(json.dumps({
        "agent_id": "endpointing", "user_hints": USER_LINES,
        "lines": [{"text": t} for t in AGENT[:-1]] + [{"text": AGENT[-1], "end_call": True}]}))
    return path


async def _say(ws, pcm: np.ndarray) -> float:
    """Stream ``pcm`` in real time; return when its last voiced frame was sent."""
    voiced = np.flatnonzero([np.abs(pcm[i:i + FRAME]).max(initial=0) > 300
                             for i in range(0, len(pcm), FRAME)])
    last, start, ended = voiced[-1] if len(voiced) else -1, time.monotonic(), time.monotonic()
    for k, i in enumerate(range(0, len(pcm), FRAME)):
        await ws.send_bytes(audio.encode(pcm[i:i + FRAME], "s16le"))
        if k == last:
            ended = time.monotonic()
        await asyncio.sleep(max(0.0, start + (k + 1) * 0.02 - time.monotonic()))
    return ended


def _first_chunk(got: Received, text: str) -> float | None:
    return next((t for k, t, p in got.items if k == "chunk" and p[0] == text), None)


async def _call(emu, pieces: list[np.ndarray]):
    """One call: the greeting plays out, then ``pieces`` are said in turn (silence between
    them is up to the caller). Returns what arrived, the call record, and when each piece's
    speech ended."""
    async with aiohttp.ClientSession() as session:
        call = await register(session, emu, sample_rate=RATE)
        url = f"{emu.ws_url}/audio-websocket/{call['call_id']}?enable_audio_alignment=true"
        async with session.ws_connect(url) as ws:
            got = Received()
            reader = asyncio.create_task(read_web(ws, got))
            await _say(ws, silence(1.5, RATE))  # the greeting arrives and plays out
            ended = [await _say(ws, pcm) for pcm in pieces]
            await _say(ws, silence(1.5, RATE))
            await ws.close()
            await asyncio.wait_for(reader, 10)
    record = emu.calls.get(call["call_id"])
    # the recognition of the last turns may still run when the socket closes (it finishes after
    # the call, by design): on a loaded machine, wait for it before reading the transcript
    for _ in range(100):
        if all(t.content for t in record.transcript if t.role == "user"):
            break
        await asyncio.sleep(0.1)
    return got, record, ended


async def test_pause_inside_a_sentence_continues_the_turn_and_a_whole_one_ends_it_quickly(
        tmp_path):
    half, rest = "Hi, I would like to", "book a table for two people tonight."
    joined = np.concatenate([user_speech(half, RATE), silence(0.35, RATE),
                             user_speech(rest, RATE)])
    async with EmbeddedEmulator(dialogue=_dialogue(tmp_path),
                                end_of_turn_ms=END_OF_TURN_MS) as emu:
        got, record, (_, _, ended) = await _call(
            emu, [joined, silence(2.0, RATE), user_speech(USER_LINES[0], RATE)])

    texts = [p[0] for k, _, p in got.items if k == "chunk"]
    # one answer per user turn: the pause after "I would like to" did not end the turn
    assert texts == AGENT[:3], texts
    user = [t for t in record.transcript if t.role == "user"]
    assert len(user) == 2 and len(record.turn_ends) == 2, record.turn_ends
    assert word_overlap(half, user[0].content) >= 0.5, user[0].content
    assert word_overlap(rest, user[0].content) >= 0.5, user[0].content
    starts = [s for _, s, _ in user[0].words]
    assert starts == sorted(starts)
    # the whole hinted sentence ended its turn at the short pause, well before the hangover
    assert record.turn_ends[1] == "quick", (user[1].content, record.hypothesis_waits)
    delay_ms = (_first_chunk(got, AGENT[2]) - ended) * 1000
    assert 0 < delay_ms < 0.6 * END_OF_TURN_MS, delay_ms
    assert record.hypothesis_waits and all(w >= 0 for w in record.hypothesis_waits)


async def test_without_quick_endpointing_the_same_sentence_waits_for_the_hangover(tmp_path):
    async with EmbeddedEmulator(dialogue=_dialogue(tmp_path), end_of_turn_ms=END_OF_TURN_MS,
                                quick_end_of_turn_ms=0) as emu:
        got, record, (ended,) = await _call(emu, [user_speech(USER_LINES[0], RATE)])
    assert record.turn_ends == ["long"]
    delay_ms = (_first_chunk(got, AGENT[1]) - ended) * 1000
    assert delay_ms >= END_OF_TURN_MS * 0.9, delay_ms
    user = [t for t in record.transcript if t.role == "user"]
    assert word_overlap(USER_LINES[0], user[0].content) >= 0.5, user[0].content
