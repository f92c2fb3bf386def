"""Retell's own browser SDK, unmodified from npm, against the emulator and against
``aligner serve``: whole calls, what the SDK emits, and the same events from both servers.

``retell-client-js-sdk`` 1.3.3 (custom endpoint) and 1.2.1 (no custom endpoint: pointed at the
servers by docs/service.md's host override, run as the page's code) run under Node with only
the browser APIs shimmed (tests/node/sdk_call.mjs): ``ws`` as the page's WebSocket, a fake
AudioContext running the SDK's own worklet code, a microphone playing samples/ clips. The call:
the greeting, the user's request, a barge-in into the long offer, the user's answer, the
agent's goodbye and hang-up. The audio clock runs at ``SPEED`` x real time and the emulator's
clocks at the same ``time_scale`` (turn-taking keeps its real-time semantics); the service's
limit on mic audio per call is raised by the same factor.
"""

from __future__ import annotations

import aiohttp
import pytest
from sdk_helpers import (
    FULL_CALL,
    LINES,
    SDK_121,
    SDK_133,
    SdkRun,
    ended_call,
    register_call,
    run_sdk,
)
from service_helpers import running_service

from aligner.emulator import EmbeddedEmulator
from aligner.service.proxy import Limits

SPEED = 2.0
RATE = 24000


async def _on_emulator(sdk: str) -> tuple[SdkRun, dict]:
    async with EmbeddedEmulator(time_scale=SPEED, send_speed=2.0) as emu, \
            aiohttp.ClientSession() as http:
        call_id = (await register_call(http, emu.base_url, emu.api_key, sample_rate=RATE)
                   )["call_id"]
        run = await run_sdk(sdk, call_id, RATE, f"{emu.ws_url}/audio-websocket/",
                            script=FULL_CALL, speed=SPEED)
        return run, await ended_call(http, emu.base_url, emu.api_key, call_id, turns=7)


async def _on_service(sdk: str, tmp_path) -> tuple[SdkRun, dict, dict]:
    async with running_service(tmp_path, emulator={"time_scale": SPEED, "send_speed": 2.0},
                               limits=Limits(mic_realtime_factor=2 * SPEED)) as svc:
        key = svc.config.api_key
        call_id = (await register_call(svc.http, svc.base, key, sample_rate=RATE))["call_id"]
        run = await run_sdk(sdk, call_id, RATE, f"{svc.ws_base}/audio-websocket/",
                            script=FULL_CALL, speed=SPEED)
        ended = await ended_call(svc.http, svc.base, key, call_id, turns=7)
        return run, ended, await svc.call_info(call_id)


def _check_growing(updates: list[dict]) -> None:
    """Every update holds the whole conversation so far, append-only and in the order said:
    entries are never removed, inserted or re-ordered, and an agent's entry only grows."""
    before: list[dict] = []
    for update in updates:
        now = update["transcript"]
        assert len(now) >= len(before), (before, now)
        for old, new in zip(before, now, strict=False):
            assert new["role"] == old["role"], (before, now)
            if old["role"] == "agent":
                assert new["content"].startswith(old["content"]), (old, new)
        before = now


def _check_call(run: SdkRun, ended: dict, sdk: str) -> None:
    """What the SDK emitted through one whole call."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.sdk_events("conversationStarted") == [None]
    assert run.ended == {"code": 1000, "reason": "agent_hangup"}
    assert not run.sdk_events("error")
    update_lines = run.of("sdk", "update")
    updates = [x["data"] for x in update_lines]
    # only transcripts: nothing the agent did not send reaches the app as a transcript-less
    # update (1.2.x) or a metadata event (1.3.3)
    assert updates and all(u["event_type"] == "update" and isinstance(u.get("transcript"), list)
                           for u in updates)
    assert not run.sdk_events("metadata")
    _check_growing(updates)

    said, done = run.of("mic", "say"), run.of("mic", "said")
    assert len(said) == len(done) == 3
    # the greeting grows word by word as it plays, and ends whole
    greeting = [u["data"]["transcript"][0]["content"] for u in update_lines
                if u["at"] < said[0]["at"] and u["data"]["transcript"]]
    assert len(set(greeting)) >= 5, greeting
    assert greeting[-1] == LINES[0]["text"]
    # the user's words show while they speak
    for start, end in zip(said, done, strict=True):
        speaking = [u["data"]["transcript"] for u in update_lines
                    if start["at"] <= u["at"] <= end["at"] + 0.3]
        assert any(t and t[-1]["role"] == "user" and t[-1]["content"] for t in speaking), \
            speaking
    # the call's last update is the whole call, as get-call has it
    assert updates[-1]["transcript"] == [{"role": t["role"], "content": t["content"]}
                                         for t in ended["transcript_object"]]
    assert [u["turntaking"] for u in updates if u.get("turntaking")] == \
        ["agent_turn", "agent_turn", "user_turn", "agent_turn", "agent_turn"]

    # the barge-in: one clear, with agent audio still queued, silences playback at once and
    # nothing plays until the next agent audio arrives
    (clear,) = [t for t in run.texts() if t["text"] == "clear"]
    assert said[1]["at"] < clear["at"] < done[1]["at"]
    queued = clear["queued_samples"] / RATE
    assert queued > 0.5, clear
    silent = next(x["at"] for x in run.of("playback", "silent") if x["at"] >= clear["at"])
    assert silent - clear["at"] < min(0.5, queued / 2), (clear, silent)  # not what was queued
    next_audio = next(x["at"] for x in run.of("ws", "binary") if x["at"] > clear["at"])
    assert not [x for x in run.of("playback", "audible") if silent <= x["at"] < next_audio]
    if sdk == SDK_133:  # its playback events say so too
        stops = [x["at"] for x in run.of("sdk", "agentStopTalking")]
        assert any(0 <= t - clear["at"] < 0.25 for t in stops), (clear, stops)


def _shape(run: SdkRun, ended: dict) -> dict:
    """What must be the same from both servers for the same script."""
    turns = ended["transcript_object"]
    agent = [t["content"] for t in turns if t["role"] == "agent"]
    return {"events": sorted({x["name"] for x in run.of("sdk")}),
            "turntaking": [u["turntaking"] for u in run.updates if u.get("turntaking")],
            "roles": [t["role"] for t in turns],
            "agent": agent[:1] + agent[2:],  # agent[1] was cut where the user barged in
            "clears": sum(t["text"] == "clear" for t in run.texts()),
            "ended": run.ended, "metadata": len(run.sdk_events("metadata"))}


@pytest.mark.parametrize("sdk", [SDK_133, SDK_121])
async def test_browser_sdk_full_call_on_the_emulator_and_the_service(sdk, tmp_path):
    emulated, emulated_call = await _on_emulator(sdk)
    proxied, proxied_call, recording = await _on_service(sdk, tmp_path)
    for run, ended in ((emulated, emulated_call), (proxied, proxied_call)):
        _check_call(run, ended, sdk)
        assert ended["disconnection_reason"] == "agent_hangup"
        cut = [t["content"] for t in ended["transcript_object"] if t["role"] == "agent"][1]
        assert cut and LINES[1]["text"].startswith(cut) and cut != LINES[1]["text"]
    assert _shape(emulated, emulated_call) == _shape(proxied, proxied_call)
    # through the service: the SDK's tiny frames all went up, nothing was malformed
    assert recording["closed_by"] == "upstream" and recording["close_reason"] == "agent_hangup"
    assert recording["counts"]["malformed"] == recording["counts"]["rate_limited"] == 0
    if sdk == SDK_121:  # docs/service.md's host override pointed the SDK at each server
        urls = [x["data"]["url"] for x in emulated.of("ws", "open_requested")
                + proxied.of("ws", "open_requested")]
        assert [u.split("/audio-websocket/")[0].startswith("ws://127.0.0.1:") for u in urls] \
            == [True, True]
