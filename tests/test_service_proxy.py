"""The service's drop-in audio websocket over real loopback sockets against the real emulator."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

from service_helpers import GREETING, SAMPLES, collect, dialogue_with_metadata, running_service

from aligner import audio
from aligner.service.proxy import Limits
from aligner.wire import capture
from aligner.wire.answers import INACTIVITY
from aligner.wire.client import audio_websocket_url, stream
from aligner.wire.events import AlignedAudio, Metadata, Unknown
from aligner.wire.source import SilenceSource


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", text)


async def test_unmodified_plain_client_works_through_the_proxy(tmp_path):
    """aligner.wire.client (written for the plain protocol) gets alignment chunks, updates and
    metadata as from the upstream, nothing it does not know, and the call is recorded."""
    emulator = {"send_speed": 4.0, "dialogue": dialogue_with_metadata(tmp_path)}
    async with running_service(tmp_path, emulator=emulator) as svc:
        call = await svc.register()
        url = audio_websocket_url(svc.base, call["call_id"])  # update + alignment on
        events = []
        async for ev in stream(url, SilenceSource(None), sample_rate=24000, max_duration=3.0):
            if ev.direction == "in":
                events.append(ev.event)
        chunks = [e for e in events if isinstance(e, AlignedAudio)]
        assert _words("".join(c.text for c in chunks))[:13] == GREETING.split()
        assert any(isinstance(e, Metadata) for e in events)
        assert not [e for e in events if isinstance(e, Unknown)]  # no word/viseme unasked
        info = await svc.call_info(call["call_id"])
        assert info["closed_by"] == "frontend" and info["state"] == "done"
        cap = capture.read(svc.config.recordings / call["call_id"] / "capture")
        recorded = [s.event for s in cap.events() if isinstance(s.event, AlignedAudio)]
        assert [c.audio for c in recorded[:len(chunks)]] == [c.audio for c in chunks]


async def test_binary_front_end_gets_the_upstream_audio_bytes_and_pong(tmp_path):
    async with running_service(tmp_path) as svc:
        call = await svc.register()
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{call['call_id']}") as ws:
            await ws.send_str("ping")
            frames = await collect(ws, 2.5)
        got = b"".join(data for kind, data in frames if kind == "bin")
        assert ("text", "pong") in frames
        assert not [d for k, d in frames if k == "json" and d.get("event_type") == "update"]
        await svc.call_info(call["call_id"])
        cap = capture.read(svc.config.recordings / call["call_id"] / "capture")
        upstream = b"".join(s.event.audio for s in cap.events() if isinstance(s.event, AlignedAudio))
        assert len(got) > 24000 and upstream.startswith(got)


async def test_word_and_viseme_events_come_before_their_audio(tmp_path):
    # a generous budget: the audio always waits for its alignment (the strict guarantee)
    async with running_service(tmp_path, lipsync=True, limits=Limits(align_budget=30.0)) as svc:
        call = await svc.register()
        url = (f"{svc.ws_base}/audio-websocket/{call['call_id']}"
               "?enable_words=true&enable_visemes=true")
        async with svc.http.ws_connect(url) as ws:
            frames = await collect(ws, 8.0, until=lambda k, d: k == "json" and d.get("index") == 12
                                   and d.get("final"))
            frames += await collect(ws, 1.0)
    received = 0  # agent samples received so far: the stream clock
    words: dict[int, dict] = {}
    cues = []
    for kind, data in frames:
        if kind == "bin":
            received += len(data) // 2
        elif kind == "json" and data["event_type"] == "word":
            if data["index"] not in words:  # a word is announced before its first sample arrives
                assert data["start_sample"] >= received, (data, received)
            words[data["index"]] = data
            assert data["sample_rate"] == 24000
        elif kind == "json" and data["event_type"] == "viseme":
            # held-back cues (coarticulation) may reach 0.1 s into audio already sent
            assert data["end_sample"] >= received - 0.15 * 24000, (data, received)
            cues.append(data)
    assert [words[i]["word"] for i in sorted(words)] == GREETING.split()
    spans = [(w["start_sample"], w["end_sample"]) for _, w in sorted(words.items())]
    assert all(s < e for s, e in spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert spans[-1][1] <= received
    gaps = [(a, b) for a, b in zip(cues, cues[1:], strict=False) if a["end_sample"] != b["start_sample"]]
    assert not gaps, gaps
    shapes = {c["viseme"] for c in cues}
    assert {"PP", "aa"} <= shapes or len(shapes) >= 6  # "Bistro", "calling": a moving mouth


async def test_clear_overtakes_queued_audio_and_offsets_continue(tmp_path):
    """A real barge-in: the user talks over the greeting, the emulator sends clear."""
    async with running_service(tmp_path, lipsync=True, emulator={"send_speed": 1.5},
                               limits=Limits(align_budget=30.0)) as svc:
        call = await svc.register()
        url = (f"{svc.ws_base}/audio-websocket/{call['call_id']}"
               "?enable_words=true&enable_visemes=true")
        clip = audio.load(SAMPLES / "user2_bargein.wav", 24000)
        async with svc.http.ws_connect(url) as ws:
            async def talk() -> None:
                await asyncio.sleep(1.2)
                for i in range(0, len(clip), 960):
                    await ws.send_bytes(audio.encode(clip[i:i + 960], "s16le"))
                    await asyncio.sleep(0.04)

            talker = asyncio.create_task(talk())
            frames = await collect(ws, 8.0, until=lambda k, d: d == "clear")
            after = await collect(ws, 1.5)
            talker.cancel()
        info = await svc.call_info(call["call_id"])
    assert ("text", "clear") in frames
    received = sum(len(d) // 2 for k, d in frames if k == "bin")
    assert received < 4.3 * 24000  # the greeting (4.4 s) was cut
    for kind, data in after:  # what follows the clear lives on the continued clock
        if kind == "json" and data["event_type"] in ("word", "viseme"):
            assert data["end_sample"] >= received
    assert info["counts"]["agent_samples"] >= received


async def test_oversize_frame_closes_1009_and_keeps_the_recording(tmp_path):
    async with running_service(tmp_path, limits=Limits(max_frame_bytes=4096)) as svc:
        call = await svc.register()
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{call['call_id']}") as ws:
            await ws.send_bytes(b"\x00" * 2000)  # fine
            await collect(ws, 0.5)
            await ws.send_bytes(b"\x00" * 10_000)
            await collect(ws, 3.0)
            assert ws.close_code == 1009
        info = await svc.call_info(call["call_id"])
        assert info["close_code"] == 1009 and "frame_too_big" in info["close_reason"]
        cap = capture.read(svc.config.recordings / call["call_id"] / "capture")
        assert len(cap) > 0 and cap.close is not None and cap.close.code == 1009
        stats = await (await svc.http.get(f"{svc.base}/stats")).json()
        assert stats["frames_too_big"] == 1


async def test_rate_limit_drops_excess_mic_audio_but_keeps_the_call(tmp_path):
    limits = Limits(mic_realtime_factor=1.0, mic_burst_seconds=0.5)
    async with running_service(tmp_path, limits=limits) as svc:
        call = await svc.register()
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{call['call_id']}") as ws:
            for _ in range(50):  # 5 s of audio at once: 10x the burst
                await ws.send_bytes(b"\x00\x00" * 2400)
            await ws.send_str("ping")
            frames = await collect(ws, 2.0, until=lambda k, d: d == "pong")
            assert ("text", "pong") in frames and not ws.closed
        info = await svc.call_info(call["call_id"])
        assert 35 <= info["counts"]["rate_limited"] < 50
        assert info["counts"]["mic_frames"] >= 6  # the burst went through (and the ping)


async def test_idle_call_is_closed_with_inactivity(tmp_path):
    """An idle timeout set below the call's silence limit: the service ends the call itself,
    with the server's inactivity answer."""
    async with running_service(tmp_path, limits=Limits(idle_timeout=1.0),
                               emulator={"send_speed": 20.0}) as svc:
        call = await svc.register()
        t0 = time.monotonic()
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{call['call_id']}") as ws:
            await collect(ws, 10.0)
            assert ws.close_code == INACTIVITY.code
        assert time.monotonic() - t0 < 9.0
        info = await svc.call_info(call["call_id"])
        assert info["close_reason"] == "inactivity"


async def test_upstream_dies_mid_call_front_end_gets_reason_recording_kept(tmp_path):
    script = ("import asyncio, sys\n"
              "from aligner.emulator import EmbeddedEmulator\n"
              "async def main():\n"
              "    async with EmbeddedEmulator(send_speed=1.0) as emu:\n"
              "        print(emu.base_url, flush=True)\n"
              "        await asyncio.sleep(3600)\n"
              "asyncio.run(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        base = (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)).strip()
        async with running_service(tmp_path, upstream=base) as svc:
            call = await svc.register()
            url = f"{svc.ws_base}/audio-websocket/{call['call_id']}"
            async with svc.http.ws_connect(url) as ws:
                first = await collect(ws, 10.0, until=lambda k, d: k == "bin")
                assert first and first[-1][0] == "bin"
                os.kill(proc.pid, signal.SIGKILL)  # the upstream dies, no close frame
                await collect(ws, 5.0)
                assert ws.close_code == 1011
            info = await svc.call_info(call["call_id"])
            assert info["close_code"] == 1011
            assert info["close_reason"] == "error_upstream_connection_lost"
            cap = capture.read(svc.config.recordings / call["call_id"] / "capture")
            assert any(isinstance(s.event, AlignedAudio) for s in cap.events())
            assert cap.close.reason == "error_upstream_connection_lost"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


async def test_unknown_call_is_closed_with_a_reason(tmp_path):
    async with running_service(tmp_path) as svc:
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/call_nope") as ws:
            await collect(ws, 3.0)
            assert ws.close_code == 1008
        async with svc.http.get(f"{svc.base}/audio-websocket/..%2Fx") as resp:
            assert resp.status in (400, 404)


async def test_graceful_shutdown_closes_calls_and_finishes_recordings(tmp_path):
    async with running_service(tmp_path) as svc:
        call = await svc.register()
        health = await (await svc.http.get(f"{svc.base}/healthz")).json()
        assert health["status"] == "ok"
        ws = await svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{call['call_id']}")
        await collect(ws, 10.0, until=lambda k, d: k == "bin")
        reader = asyncio.create_task(collect(ws, 10.0))  # a front end keeps reading
        await svc.runner.cleanup()
        await reader
        assert ws.close_code == 1001
        data = json.loads((tmp_path / "recordings" / call["call_id"] / "call.json").read_text())
        assert data["state"] == "done" and data["close_reason"] == "service_shutting_down"
        cap = capture.read(tmp_path / "recordings" / call["call_id"] / "capture")
        assert cap.close is not None and len(cap) > 0



async def test_slow_alignment_never_holds_the_audio_back(tmp_path):
    """With no time budget for alignment, a chunk's audio waits only while the page still has
    audio to play: the first chunk goes at once and its events follow, late; later chunks'
    alignments have the time the page spends playing the chunks before them."""
    async with running_service(tmp_path, lipsync=True, limits=Limits(align_budget=0.0)) as svc:
        call = await svc.register()
        url = f"{svc.ws_base}/audio-websocket/{call['call_id']}?enable_words=true"
        async with svc.http.ws_connect(url) as ws:
            frames = await collect(ws, 20.0, until=lambda k, d: k == "json" and d.get("index") == 12
                                   and d.get("final"))
        stats = await (await svc.http.get(f"{svc.base}/stats")).json()
    words = {d["index"]: d for k, d in frames if k == "json" and d["event_type"] == "word"}
    assert [words[i]["word"] for i in sorted(words)] == GREETING.split()
    assert any(d.get("late") for d in words.values())
    assert not all(d.get("late") for d in words.values())  # later chunks used the page's queue
    chunks = sum(1 for k, _ in frames if k == "bin")
    assert 0 < stats["late_chunks"] < chunks
    assert not [d for k, d in frames if k == "json" and d["event_type"] == "viseme"]  # not asked
    # waiting never made the page's playback wait: the first chunk went at once
    assert stats["playback_delay_max_ms"] < 250
