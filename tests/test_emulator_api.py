"""Emulator HTTP API and every close path of the audio websocket, over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import aiohttp
import numpy as np
import pytest
from emulator_helpers import Received, get_call, read_twilio, read_web, register, wait_ended
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twilio_helpers import TWILIO, twilio_messages

from aligner.emulator import EmbeddedEmulator
from aligner.emulator.calls import RegistrationError, validate_registration
from aligner.wire.events import TwilioStop, Unknown
from aligner.wire.protocol import decode_twilio

FAST = {"recognition": False}  # these tests do not need pocketsphinx


@pytest.fixture
async def emu():
    async with EmbeddedEmulator(api_key="test-key", **FAST) as emulator:
        yield emulator


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def test_register_returns_call_object_and_get_call(emu, session):
    call = await register(session, emu, sample_rate=24000, metadata={"k": 1},
                          from_number="+100", to_number="+200")
    assert call["call_id"].startswith("call_")
    assert call["call_status"] == "registered"
    assert call["audio_websocket_protocol"] == "web" and call["audio_encoding"] == "s16le"
    assert call["sample_rate"] == 24000 and call["metadata"] == {"k": 1}
    assert call["end_call_after_silence_ms"] == 600000
    assert isinstance(call["start_timestamp"], int)
    again = await get_call(session, emu, call["call_id"])
    assert again["call_id"] == call["call_id"] and again["call_status"] == "registered"
    assert "disconnection_reason" not in again


async def test_twilio_defaults_to_mulaw_8000(emu, session):
    call = await register(session, emu, audio_websocket_protocol="twilio")
    assert (call["audio_encoding"], call["sample_rate"]) == ("mulaw", 8000)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "test-key"}])
async def test_api_key_required(emu, session, headers):
    async with session.post(f"{emu.base_url}/register-call", json={"agent_id": "a"},
                            headers=headers) as r:
        assert r.status == 401
        assert (await r.json())["field"] == "authorization"
    async with session.get(f"{emu.base_url}/get-call/x", headers=headers) as r:
        assert r.status == 401


BAD_BODIES = [
    ({}, "agent_id"),
    ({"agent_id": ""}, "agent_id"),
    ({"agent_id": 5}, "agent_id"),
    ({"agent_id": "a", "audio_websocket_protocol": "sip"}, "audio_websocket_protocol"),
    ({"agent_id": "a", "audio_encoding": "opus"}, "audio_encoding"),
    ({"agent_id": "a", "sample_rate": 7999}, "sample_rate"),
    ({"agent_id": "a", "sample_rate": 48001}, "sample_rate"),
    ({"agent_id": "a", "sample_rate": "16000"}, "sample_rate"),
    ({"agent_id": "a", "sample_rate": 16000.0}, "sample_rate"),
    ({"agent_id": "a", "sample_rate": True}, "sample_rate"),
    ({"agent_id": "a", "audio_websocket_protocol": "twilio", "audio_encoding": "s16le",
      "sample_rate": 8000}, "audio_encoding"),
    ({"agent_id": "a", "audio_websocket_protocol": "twilio", "sample_rate": 16000},
     "sample_rate"),
    ({"agent_id": "a", "end_call_after_silence_ms": 9999}, "end_call_after_silence_ms"),
    ({"agent_id": "a", "end_call_after_silence_ms": "600000"}, "end_call_after_silence_ms"),
    ({"agent_id": "a", "from_number": 123}, "from_number"),
    ({"agent_id": "a", "to_number": ["x"]}, "to_number"),
    ([1, 2], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_register_rejects_each_bad_field(emu, session, body, field):
    async with session.post(f"{emu.base_url}/register-call", json=body,
                            headers={"Authorization": "Bearer test-key"}) as r:
        assert r.status == 400
        error = await r.json()
    assert error["field"] == field and error["error"]
    with pytest.raises(RegistrationError) as info:
        validate_registration(body)
    assert info.value.field == field


async def test_register_rejects_invalid_json_and_unknown_get(emu, session):
    async with session.post(f"{emu.base_url}/register-call", data=b"{not json",
                            headers={"Authorization": "Bearer test-key"}) as r:
        assert r.status == 400 and (await r.json())["field"] == "body"
    async with session.get(f"{emu.base_url}/get-call/call_nope",
                           headers={"Authorization": "Bearer test-key"}) as r:
        assert r.status == 404 and (await r.json())["field"] == "call_id"
    assert len(emu.calls) == 0


async def _closed_with(ws) -> tuple[int, str]:
    got = Received()
    await asyncio.wait_for(read_web(ws, got), 10)
    return got.close_code, got.close_reason


async def test_unknown_call_id_is_closed_1008(emu, session):
    async with session.ws_connect(f"{emu.ws_url}/audio-websocket/call_nope") as ws:
        assert await _closed_with(ws) == (1008, "error_unknown_call_id")


async def test_used_call_id_is_closed_1008(emu, session):
    call = await register(session, emu)
    url = f"{emu.ws_url}/audio-websocket/{call['call_id']}"
    async with session.ws_connect(url) as first:
        async with session.ws_connect(url) as second:
            assert await _closed_with(second) == (1008, "error_call_already_used")
        assert not first.closed
    ended = await wait_ended(session, emu, call["call_id"])
    assert ended["call_status"] == "ended" and ended["disconnection_reason"] == "user_hangup"
    # and once ended, it stays used
    async with session.ws_connect(url) as third:
        assert await _closed_with(third) == (1008, "error_call_already_used")


async def test_odd_byte_count_s16le_is_corrupted_payload(emu, session):
    call = await register(session, emu, sample_rate=16000)
    async with session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
        await ws.send_bytes(b"\x00" * 640)  # fine
        await ws.send_bytes(b"\x00" * 641)  # half a sample
        assert await _closed_with(ws) == (1008, "error_frontend_corrupted_payload")
    ended = await wait_ended(session, emu, call["call_id"])
    assert ended["call_status"] == "error"
    assert ended["disconnection_reason"] == "error_frontend_corrupted_payload"
    assert ended["end_timestamp"] >= ended["start_timestamp"]


async def test_ping_pong_and_harmless_text_frames_are_ignored_and_counted(emu, session):
    call = await register(session, emu, sample_rate=16000)
    async with session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
        await ws.send_str('{"hello": "server"}')
        await ws.send_str("something else")
        await ws.send_str("ping")
        for _ in range(200):
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "pong":
                break
        else:
            pytest.fail("no pong")
        assert not ws.closed
        assert emu.calls.get(call["call_id"]).ignored_frames == 2
        assert (await get_call(session, emu, call["call_id"]))["call_status"] == "ongoing"


async def _twilio_socket(emu, session):
    call = await register(session, emu, audio_websocket_protocol="twilio")
    ws = await session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}")
    await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await ws.send_str(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
                                  "start": {"streamSid": "MZ1", "mediaFormat": {
                                      "encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}))
    return call, ws


@pytest.mark.parametrize("frame", [
    b"\x00\x01",  # binary frame: wrong frame type on Twilio
    "{not json",
    json.dumps({"no_event": 1}),
    json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "!!notbase64!!"}}),
    json.dumps({"event": "media", "streamSid": "MZ1", "media": {}}),
])
async def test_twilio_corrupt_frames_close_1008(emu, session, frame):
    call, ws = await _twilio_socket(emu, session)
    async with ws:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        got = Received()
        await asyncio.wait_for(read_twilio(ws, got), 10)
        assert (got.close_code, got.close_reason) == (1008, "error_frontend_corrupted_payload")
    ended = await wait_ended(session, emu, call["call_id"])
    assert ended["disconnection_reason"] == "error_frontend_corrupted_payload"


async def test_twilio_stop_ends_call_as_user_hangup(emu, session):
    call, ws = await _twilio_socket(emu, session)
    async with ws:
        payload = base64.b64encode(b"\xff" * 160).decode()
        await ws.send_str(json.dumps({"event": "media", "streamSid": "MZ1",
                                      "media": {"payload": payload}}))
        await ws.send_str(json.dumps({"event": "stop", "streamSid": "MZ1"}))
        got = Received()
        await asyncio.wait_for(read_twilio(ws, got), 10)
    ended = await wait_ended(session, emu, call["call_id"])
    assert ended["call_status"] == "ended" and ended["disconnection_reason"] == "user_hangup"


async def test_silence_timeout_ends_call_with_inactivity(session):
    # time_scale 100: the 10 s minimum silence timeout passes in about 0.1 s of wall time
    async with EmbeddedEmulator(time_scale=100.0, **FAST) as emu:
        call = await register(session, emu, sample_rate=8000, end_call_after_silence_ms=10000)
        t0 = time.monotonic()
        async with session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
            got = Received()
            await asyncio.wait_for(read_web(ws, got), 20)
        assert (got.close_code, got.close_reason) == (1000, "inactivity")
        assert time.monotonic() - t0 < 5.0  # 10 s of call time, scaled
        ended = await get_call(session, emu, call["call_id"])
        assert ended["disconnection_reason"] == "inactivity"


async def test_unreachable_llm_closes_1011(session):
    async with EmbeddedEmulator(llm_url="ws://127.0.0.1:9/llm", **FAST) as emu:
        call = await register(session, emu)
        async with session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
            assert await _closed_with(ws) == (1011, "error_llm_websocket_open")
        ended = await wait_ended(session, emu, call["call_id"])
        assert ended["call_status"] == "error"


async def test_slow_client_does_not_block_others(emu, session):
    """A client that never reads nor sends does not delay another call's greeting."""
    stalled = await register(session, emu)
    idle = await session.ws_connect(f"{emu.ws_url}/audio-websocket/{stalled['call_id']}")
    call = await register(session, emu, sample_rate=8000)
    async with session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 0
    await idle.close()
    assert np.frombuffer(msg.data, "<i2").any()


@pytest.fixture(scope="module")
def emulator_thread():
    from service_helpers import LoopThread

    @contextlib.asynccontextmanager
    async def emulator_and_session():
        async with EmbeddedEmulator(api_key="test-key", **FAST) as emu, \
                aiohttp.ClientSession() as http:
            yield emu, http

    running = LoopThread(emulator_and_session())
    yield running
    running.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(messages=['{"event": "start", "start": 5}'])  # found: an AttributeError, "user_hangup"
@given(messages=st.lists(twilio_messages, max_size=6))
def test_any_twilio_messages_end_the_call_with_a_reason_or_leave_it_going(emulator_thread,
                                                                         messages):
    emu, http = emulator_thread.value

    async def call():
        call = await register(http, emu, audio_websocket_protocol="twilio")
        got = Received()
        async with http.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
            for text in [json.dumps(TWILIO[0]), json.dumps(TWILIO[1]), *messages]:
                if ws.closed:
                    break
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(text)
            with contextlib.suppress(ConnectionError):
                await ws.send_str(json.dumps(TWILIO[-2]))  # stop: the caller hangs up
            await asyncio.wait_for(read_twilio(ws, got), 10)
        return got, await wait_ended(http, emu, call["call_id"])

    got, ended = emulator_thread.run(call())
    # the first message the Twilio codec cannot read (of a kind it knows, or not JSON) ends the
    # call as a corrupted payload (1008, with the reason); else a stop ends it as a hang-up
    want = "user_hangup"
    for text in messages:
        event = decode_twilio(text)
        if isinstance(event, TwilioStop):
            break
        kind = json.loads(text).get("event")
        other_kind = isinstance(kind, str) and kind not in {m["event"] for m in TWILIO}
        if isinstance(event, Unknown) and not other_kind:  # a message of another kind: ignored
            want = "error_frontend_corrupted_payload"
            break
    assert ended["disconnection_reason"] == want, (ended, messages)
    if want != "user_hangup":
        assert (got.close_code, got.close_reason) == (1008, want)
