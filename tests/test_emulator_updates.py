"""The emulator's ``update`` events follow what the user hears, over a real socket: agent words
as they play, user words as they are recognised, append-only in the order said, the call's
last update the whole call; metadata only when the agent's script (or LLM) sends it."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from emulator_helpers import (
    Received,
    read_web,
    register,
    silence,
    stream_web,
    user_speech,
    wait_ended,
)
from sdk_helpers import short_dialogue

from aligner.emulator import EmbeddedEmulator
from aligner.emulator.config import DEFAULT_DIALOGUE

SPEED = 3.0
RATE = 16000
GREETING = "Hello, how can I help you today?"
USER_LINE = "Hi, I would like to book a table for two people tonight."


async def _call(tmp_path, dialogue=None, *,
                listen: float = 0.0) -> tuple[Received, dict | None, float, float]:
    """A call of the short dialogue: the greeting, the user's line, the goodbye and hang-up.
    Returns what the client got, the ended call, and when the user started and stopped.
    ``listen``: instead, hang up after that many seconds of the greeting (no ended call)."""
    async with EmbeddedEmulator(time_scale=SPEED, send_speed=2.0,
                                dialogue=dialogue or short_dialogue(tmp_path)) as emu, \
            aiohttp.ClientSession() as session:
        call = await register(session, emu, sample_rate=RATE)
        url = f"{emu.ws_url}/audio-websocket/{call['call_id']}?enable_update=true"
        async with session.ws_connect(url) as ws:
            got = Received()
            reader = asyncio.create_task(read_web(ws, got))
            await stream_web(ws, silence(listen or 3.0, RATE), "s16le", RATE, SPEED)
            if listen:
                await ws.close()
                await reader
                return got, None, 0.0, 0.0
            spoke = time.monotonic()
            await stream_web(ws, user_speech(USER_LINE, RATE), "s16le", RATE, SPEED)
            done = time.monotonic()
            while not reader.done():
                await stream_web(ws, silence(0.5, RATE), "s16le", RATE, SPEED)
        return got, await wait_ended(session, emu, call["call_id"], turns=3), spoke, done


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    """One call of the short dialogue, shared by the tests that only read it."""
    return asyncio.run(_call(tmp_path_factory.mktemp("call")))


def test_updates_follow_the_agent_words_as_they_play(call):
    got, ended, spoke, _ = call
    greeting = [u["transcript"][0]["content"] for t, u in _updates(got) if t < spoke]
    # one update per word as it starts playing, then the whole line once it has played
    assert len(set(greeting)) >= 6, greeting
    assert greeting[-1] == GREETING and all(GREETING.startswith(g) for g in greeting)
    assert (got.close_code, got.close_reason) == (1000, "agent_hangup")
    # the call's last update holds the whole call, as get-call has it
    assert got.of("update")[-1]["transcript"] == [
        {"role": t["role"], "content": t["content"]} for t in ended["transcript_object"]]


def test_user_words_show_while_the_user_speaks(call):
    got, _, spoke, done = call
    speaking = [u["transcript"] for t, u in _updates(got) if spoke <= t <= done]
    users = [t[-1]["content"] for t in speaking if t and t[-1]["role"] == "user"]
    assert len(users) >= 2 and users[-1], speaking  # every half second of speech or so


def test_updates_are_append_only_in_the_order_said(call):
    """The answer never shows before the utterance it answers: no entry is ever inserted
    in front of entries a client already has."""
    got, ended, _, _ = call
    before: list[dict] = []
    for update in got.of("update"):
        now = update["transcript"]
        assert [t["role"] for t in now[:len(before)]] == [t["role"] for t in before], \
            (before, now)
        for old, new in zip(before, now, strict=False):
            if old["role"] == "agent":
                assert new["content"].startswith(old["content"])
        before = now
    answer = next(u for u in got.of("update") if len(u["transcript"]) == 3)
    assert [t["role"] for t in answer["transcript"]] == ["agent", "user", "agent"]
    assert answer["turntaking"] == "agent_turn"
    assert [t["role"] for t in ended["transcript_object"]] == ["agent", "user", "agent"]


async def test_metadata_only_when_the_script_sends_it(call, tmp_path):
    assert not call[0].of("metadata") and not call[0].of("other")
    got, *_ = await _call(tmp_path, DEFAULT_DIALOGUE, listen=2.0)  # the sample script's greeting
    assert got.of("binary") and got.of("update") and not got.of("metadata")
    data = json.loads(short_dialogue(tmp_path).read_text())
    data["lines"][1]["metadata"] = {"scene": "goodbye"}
    scripted = tmp_path / "with_metadata.json"
    scripted.write_text(json.dumps(data))
    got, _, spoke, _ = await _call(tmp_path, scripted)
    (metadata,) = got.of("metadata")
    assert metadata == {"event_type": "metadata", "metadata": {"scene": "goodbye"}}
    assert got.time_of_first("metadata") > spoke  # when its line starts


def _updates(got: Received) -> list[tuple[float, dict]]:
    return [(t, p) for k, t, p in got.items if k == "update"]
