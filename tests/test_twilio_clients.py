"""A Twilio Media Streams client, streamdouble (unmodified from PyPI: a Twilio simulator that
plays the caller's clips in real time, plays the agent's audio on its own clock and echoes each
``mark`` when the audio before it has played), against the emulator and through
``aligner serve``.

The call: the greeting, the caller's request once its mark came back, the agent's goodbye and
hang-up. After its script streamdouble waits until no mark is pending and no agent audio came
for ``quiet_period_s`` before it would stop the call itself, so the agent hangs up first.
"""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
from sdk_helpers import ended_call, register_call, short_dialogue, wav_at
from service_helpers import running_service
from streamdouble.api import run_scenario
from streamdouble.scenario import parse
from streamdouble.session import SessionConfig

from aligner.emulator import EmbeddedEmulator
from aligner.wire import capture

CONFIG = SessionConfig(response_timeout_s=20.0, quiet_period_s=4.0, max_drain_s=30.0)
LINES = ["Hello, how can I help you today?", "Of course, a table for two at seven. Goodbye!"]


def _scenario(tmp_path):
    return parse({"name": "book a table", "steps": [
        {"wait_for": {"event": "mark", "timeout": 20}},  # the greeting has played
        {"wait": 0.3},
        {"say": str(wav_at("user1.wav", 8000, tmp_path))},
        {"wait": 1.5}]})  # the caller listens: the answer starts


async def test_twilio_hang_up_waits_for_the_goodbyes_mark(tmp_path):
    """The emulator hangs up once the client echoed the mark after its goodbye: the caller
    heard all of it."""
    async with EmbeddedEmulator(dialogue=short_dialogue(tmp_path), send_speed=2.0) as emu, \
            aiohttp.ClientSession() as http:
        call = await register_call(http, emu.base_url, emu.api_key,
                                   audio_websocket_protocol="twilio")
        report = await run_scenario(f"{emu.ws_url}/audio-websocket/{call['call_id']}",
                                    _scenario(tmp_path), config=CONFIG)
        ended = await ended_call(http, emu.base_url, emu.api_key, call["call_id"], turns=3)
    result = report.result
    assert not report.violations, report.violations
    assert result.closed_by == "agent" and ended["disconnection_reason"] == "agent_hangup"
    assert len(result.marks_received) == 2
    assert result.marks_echoed == result.marks_received  # the goodbye's too: it all played


async def test_twilio_call_through_the_service_is_understood(tmp_path):
    """Relayed as Twilio both ways (no malformed frames, nothing Twilio would not know),
    recorded as a Twilio call, and observers get the agent's words, recognised from its
    audio, and visemes."""
    emulator = {"dialogue": short_dialogue(tmp_path), "send_speed": 2.0}
    async with running_service(tmp_path, lipsync=True, emulator=emulator) as svc:
        call = await register_call(svc.http, svc.base, svc.config.api_key,
                                   audio_websocket_protocol="twilio")
        call_id = call["call_id"]
        observed: list[dict] = []

        async def observe() -> None:
            url = f"{svc.ws_base}/live/{call_id}?token={call['observer_token']}"
            async with svc.http.ws_connect(url) as ws:
                async for msg in ws:
                    observed.append(json.loads(msg.data))

        observer = asyncio.create_task(observe())
        await asyncio.sleep(0.2)  # subscribed before the call starts
        report = await run_scenario(f"{svc.ws_base}/audio-websocket/{call_id}",
                                    _scenario(tmp_path), config=CONFIG)
        info = await svc.call_info(call_id)
        await asyncio.wait_for(observer, 30)
        async with svc.http.get(f"{svc.base}/stats") as resp:
            stats = await resp.json()
        ended = await ended_call(svc.http, svc.base, svc.config.api_key, call_id, turns=3)
    result = report.result
    assert not report.violations, report.violations
    assert result.closed_by == "agent" and ended["disconnection_reason"] == "agent_hangup"
    assert result.marks_echoed == result.marks_received and len(result.marks_received) == 2
    assert info["counts"]["malformed"] == 0 and stats["frames_malformed"] == 0
    assert info["counts"]["mic_frames"] > 200  # 20 ms media frames, all relayed
    cap = capture.read(svc.config.recordings / call_id / "capture")
    assert cap.info["protocol"] == "twilio"

    assert observed[-1]["event_type"] == "call_ended"
    words = [e for e in observed if e["event_type"] == "word"]
    visemes = [e for e in observed if e["event_type"] == "viseme"]
    assert words and visemes
    assert all(e["source"] == "recognized" and e["final"] for e in words)
    assert [e["index"] for e in words] == list(range(len(words)))
    delivered = len(result.audio_received)  # 8 kHz mulaw: one byte per sample
    bad = [e for e in words + visemes if not 0 <= e["start_sample"] < e["end_sample"] <= delivered]
    assert not bad, (bad, delivered)
    # both answers were heard (a busy machine may split one where its audio paused)
    first = [e["utterance"] for e in words]
    assert first == sorted(first) and len(set(first)) >= 2, words
    # recognised with no idea of the text (espeak at 8 kHz, a general model): some words right
    heard = {e["word"].lower() for e in words}
    assert len(heard & set(re.findall(r"[a-z]+", " ".join(LINES).lower()))) >= 3, heard
