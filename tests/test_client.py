"""The aiohttp client against small real aiohttp servers on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from aiohttp import WSMsgType, web
from loopback import serve, sink

from aligner import audio
from aligner.wire import capture
from aligner.wire.client import ServerClosed, audio_websocket_url, record, stream
from aligner.wire.events import AlignedAudio, Clear, MicAudio, Ping, Pong, Unknown, Update
from aligner.wire.source import SamplesSource, SilenceSource


def _chunk(text: str, ms: int = 100) -> str:
    pcm = (np.sin(np.arange(16 * ms) / 5) * 3000).astype(np.int16)
    return json.dumps({"event_type": "audio", "audio": base64.b64encode(audio.encode(pcm, "s16le"))
                       .decode(), "text": text})


async def test_hostile_server_malformed_frames_are_counted_and_session_goes_on(tmp_path, caplog):
    got: dict = {"mic": 0, "ping": 0}

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.query["enable_update"] == "true"
        for frame in ("{not json", _chunk("Hello "), '{"event_type": "audio", "audio": "!!"}',
                      "[1, 2]", '{"event_type": "nonsense", "x": 1}'):
            await ws.send_str(frame)
        await ws.send_bytes(b"\x00")  # odd-sized agent audio: passed on, not fatal
        await ws.send_str("clear")
        await ws.send_str(json.dumps({"event_type": "update",
                                      "transcript": [{"role": "agent", "content": "Hello"}]}))
        await ws.send_str("ping")
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                got["mic"] += len(msg.data)
            elif msg.data == "ping":
                got["ping"] += 1
                await ws.send_str("pong")
            elif msg.data == "pong":
                got["pong"] = True
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    try:
        src = SamplesSource(np.zeros(16000 // 2, np.int16), 16000)  # 0.5 s
        with caplog.at_level("WARNING", logger="aligner.wire.protocol"):
            result = await record(audio_websocket_url(base, "c1"), src, tmp_path / "cap",
                                  chunk_ms=50, linger=0.1)
    finally:
        await runner.cleanup()
    assert result.malformed == 4
    assert sum("unrecognised frame" in r.message for r in caplog.records) == 4
    assert result.closed_by == "client" and result.close_code == 1000
    assert got["mic"] >= 16000  # the whole 0.5 s (plus linger silence) arrived, 2 bytes/sample
    assert got["ping"] == 1 and got.get("pong")  # heartbeat out, server ping answered
    cap = capture.read(tmp_path / "cap")
    kinds = [type(s.event) for s in cap.events() if s.direction == "in"]
    assert kinds.count(Unknown) == 4 and Clear in kinds and Update in kinds and AlignedAudio in kinds
    assert cap.close is not None and cap.close.by == "client"


async def test_server_error_close_raises_with_code_and_reason_and_keeps_capture(tmp_path):
    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(_chunk("Hi there"))
        await ws.receive()  # first mic frame
        await ws.close(code=1011, message=b"error_frontend_corrupted_payload")
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    try:
        with pytest.raises(ServerClosed) as info:
            await record(audio_websocket_url(base, "c2"), SilenceSource(5), tmp_path / "cap")
    finally:
        await runner.cleanup()
    assert info.value.code == 1011
    assert info.value.reason == "error_frontend_corrupted_payload"
    cap = capture.read(tmp_path / "cap")
    assert cap.close.code == 1011 and cap.close.by == "server"
    assert any(isinstance(s.event, AlignedAudio) for s in cap.events())


async def test_stream_yields_live_events_in_both_directions_matching_the_capture(tmp_path):
    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for i in range(3):
            await ws.send_str(_chunk(f"w{i} "))
            await asyncio.sleep(0.02)
        await ws.receive()
        await ws.close()  # normal end of call from the server: no error
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    live = []
    try:
        async for ev in stream(audio_websocket_url(base, "c3"), SilenceSource(None),
                               capture_dir=tmp_path / "cap", chunk_ms=20):
            live.append(ev)
    finally:
        await runner.cleanup()
    assert [e.event.text for e in live if isinstance(e.event, AlignedAudio)] == ["w0 ", "w1 ", "w2 "]
    assert any(isinstance(e.event, MicAudio) for e in live)
    assert any(isinstance(e.event, Ping) for e in live)
    assert list(capture.read(tmp_path / "cap").events()) == live
    assert all(a.t <= b.t for a, b in zip(live, live[1:], strict=False))
    assert not any(isinstance(e.event, Pong) for e in live)


async def test_mic_frames_follow_the_clock_exactly_at_any_rate(tmp_path):
    runner, base = await serve("/audio-websocket/{call_id}", sink)
    try:  # 11025 Hz, 20 ms frames: 220.5 samples a frame
        await record(audio_websocket_url(base, "c4"), SilenceSource(None),
                     tmp_path / "cap", sample_rate=11025, chunk_ms=20, max_duration=1.0)
    finally:
        await runner.cleanup()
    sent = [len(f.payload) // 2 for f in capture.read(tmp_path / "cap").frames()
            if f.direction == "out" and isinstance(f.payload, bytes)]
    assert len(sent) >= 40
    # after k frames, k x 20 ms of audio to the sample (not 220 a frame: 0.2% slow)
    assert [sum(sent[:k]) for k in (10, 20, 40)] == [2205, 4410, 8820]
    assert set(sent) == {220, 221}


async def test_linger_counts_the_agents_silence_from_the_end_of_the_input(tmp_path):
    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(_chunk("Hello ", 100))  # the greeting, then quiet
        await asyncio.sleep(2.0)  # the user's 1 s is over; the answer takes a second
        await ws.send_str(_chunk("Sure ", 100))
        async for _ in ws:
            pass
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    try:
        result = await record(audio_websocket_url(base, "c5"),
                              SamplesSource(np.zeros(16000, np.int16), 16000), tmp_path / "cap",
                              linger=1.5)
    finally:
        await runner.cleanup()
    # the agent's quiet before the input ended counted: it hung up at 1.6 s, before "Sure"
    texts = [s.event.text for s in capture.read(tmp_path / "cap").events()
             if isinstance(s.event, AlignedAudio)]
    assert texts == ["Hello ", "Sure "] and result.closed_by == "client"


def test_url_building():
    assert audio_websocket_url("https://h/x", "id", enable_update=False).startswith(
        "wss://h/x/audio-websocket/id?enable_update=false")


async def test_cli_prints_the_servers_close_reason_and_exits_non_zero(tmp_path):
    import sys

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(_chunk("Hello"))
        await ws.receive()
        await ws.close(code=1008, message=b"error_no_audio_received")
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aligner", "record", "--url", base, "--call-id", "c9",
            "--input", "silence:5", "--out", str(tmp_path / "cap"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await runner.cleanup()
    assert proc.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert "1008" in last and "error_no_audio_received" in last and "Traceback" not in err.decode()
    assert capture.read(tmp_path / "cap").close.reason == "error_no_audio_received"


async def test_twilio_form_streams_media_and_records_the_servers_media_and_clear(tmp_path):
    from aligner.wire.events import TwilioClear, TwilioConnected, TwilioMedia, TwilioStart
    from aligner.wire.protocol import decode_twilio, encode_twilio

    seen = []

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            ev = decode_twilio(msg.data)
            seen.append(ev)
            if isinstance(ev, TwilioStart):
                sid = ev.stream_sid
                await ws.send_str(encode_twilio(TwilioMedia(b"\xff" * 160, sid, "outbound")))
                await ws.send_str(encode_twilio(TwilioClear(sid)))
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    try:
        result = await record(audio_websocket_url(base, "tw"), SilenceSource(0.2), tmp_path / "cap",
                              protocol="twilio", encoding="mulaw", sample_rate=8000, linger=0.1)
    finally:
        await runner.cleanup()
    assert isinstance(seen[0], TwilioConnected) and isinstance(seen[1], TwilioStart)
    media = [e for e in seen if isinstance(e, TwilioMedia)]
    # 0.2 s of input, then about 0.1 s of silence lingering after it, in 20 ms frames
    assert 10 < len(media) < 20 and all(len(m.payload) == 160 for m in media)
    assert {m.stream_sid for m in media} == {seen[1].stream_sid}
    assert result.malformed == 0
    cap = capture.read(tmp_path / "cap")
    assert cap.protocol == "twilio"
    got = [type(s.event) for s in cap.events() if s.direction == "in"]
    assert got == [TwilioMedia, TwilioClear]
