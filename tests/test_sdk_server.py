"""Retell's server SDKs for Python, unmodified from PyPI, against the emulator and against
``aligner serve``: ``retell-sdk`` 3.18.0 (the test extra; pydantic types) and 2.0.8
(``retellclient``, with ``register_call``; installed by scripts/test.sh next to it).

Each registers a call and reads it back; a short real call runs in between (the client streams
real speech, the agent answers and hangs up), and the ended call's object validates against
the SDK's own types with every field they name. Mistakes raise the SDK's error classes, with
their messages."""

from __future__ import annotations

import asyncio
import contextlib
import io
import wave

import aiohttp
import httpx
import pytest
import retell
from emulator_helpers import Received, read_web, silence, stream_web, user_speech
from retell.types import CallResponse, RegisterCallResponse
from sdk_helpers import import_retell_sdk_2, short_dialogue
from service_helpers import running_service

from aligner.emulator import EmbeddedEmulator

SPEED = 3.0
RATE = 16000
USER_LINE = "Hi, I would like to book a table for two people tonight."


@contextlib.asynccontextmanager
async def both(tmp_path):
    """``[(name, base URL, API key)]`` of the emulator and of the service (in front of its own
    embedded emulator), both speaking the short dialogue ``SPEED`` x faster."""
    options = {"time_scale": SPEED, "send_speed": 2.0, "dialogue": short_dialogue(tmp_path)}
    async with EmbeddedEmulator(**options) as emu, \
            running_service(tmp_path, emulator=options) as svc:
        yield [("emulator", emu.base_url, emu.api_key),
               ("service", svc.base, svc.config.api_key)]


async def _talk(base: str, call_id: str) -> Received:
    """A web call: the greeting, the user's line, the agent's goodbye and hang-up."""
    url = f"{base.replace('http', 'ws', 1)}/audio-websocket/{call_id}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        got = Received()
        reader = asyncio.create_task(read_web(ws, got))
        await stream_web(ws, silence(2.5, RATE), "s16le", RATE, SPEED)
        await stream_web(ws, user_speech(USER_LINE, RATE), "s16le", RATE, SPEED)
        while not reader.done():
            await stream_web(ws, silence(0.5, RATE), "s16le", RATE, SPEED)
    return got


async def _ended(client: retell.AsyncRetell, call_id: str) -> CallResponse:
    for _ in range(100):
        call = await client.call.retrieve(call_id)
        if call.call_status == "ended" and call.transcript_object and \
                len(call.transcript_object) >= 3:
            return call
        await asyncio.sleep(0.1)
    return call


def _client(key: str, base: str) -> retell.AsyncRetell:
    """The SDK's client for ``base`` (given its HTTP client: 3.18.0's own passes httpx an
    option httpx 0.28 removed)."""
    return retell.AsyncRetell(api_key=key, base_url=base, max_retries=0,
                              http_client=httpx.AsyncClient())


async def _error(request) -> tuple[str, object]:
    """The SDK error class ``request`` raised, and the body it read."""
    with pytest.raises(retell.APIStatusError) as caught:
        await request
    return type(caught.value).__name__, caught.value.body


def _validated(model, cls):
    """``model`` (as the SDK built it, unchecked) checked against its pydantic type."""
    return cls.model_validate(model.model_dump())


async def test_retell_sdk_3_registers_reads_and_fails_alike_on_both(tmp_path):
    errors = {}
    async with both(tmp_path) as servers, aiohttp.ClientSession() as http:
        for name, base, key in servers:
            client = _client(key, base)
            registered = _validated(await client.call.register(
                agent_id="riverside-bistro", audio_encoding="s16le",
                audio_websocket_protocol="web", sample_rate=RATE,
                metadata={"customer": "c-1"}), RegisterCallResponse)
            assert registered.call_status == "registered" and registered.sample_rate == RATE
            assert registered.metadata == {"customer": "c-1"}
            read = _validated(await client.call.retrieve(registered.call_id), CallResponse)
            assert read.call_id == registered.call_id and read.call_status == "registered"

            got = await _talk(base, registered.call_id)
            assert (got.close_code, got.close_reason) == (1000, "agent_hangup")
            ended = _validated(await _ended(client, registered.call_id), CallResponse)
            assert ended.call_status == "ended" and ended.disconnection_reason == "agent_hangup"
            assert [t.role for t in ended.transcript_object] == ["agent", "user", "agent"]
            assert ended.transcript_object[1].content  # the user was heard
            # every field the SDK's type names for an ended call
            assert [(t.role, t.content) for t in ended.transcript_with_tool_calls] == \
                [(t.role, t.content) for t in ended.transcript_object]
            assert ended.e2e_latency.num == 1 and 0 < ended.e2e_latency.p50 < 3000
            async with http.get(ended.public_log_url) as resp:
                assert resp.status == 200 and "agent_hangup" in await resp.text()
            async with http.get(ended.recording_url) as resp:
                assert resp.status == 200 and resp.content_type == "audio/wav"
                with wave.open(io.BytesIO(await resp.read())) as w:
                    seconds = w.getnframes() / w.getframerate()
            agent_end = ended.transcript_object[-1].words[-1].end
            assert agent_end * 0.9 < seconds  # the whole call, up to the goodbye

            wrong = _client("wrong", base)
            got_errors = [
                await _error(wrong.call.retrieve(registered.call_id)),
                await _error(client.call.register(agent_id="a", audio_encoding="s16le",
                                                  audio_websocket_protocol="web", sample_rate=5)),
                await _error(client.call.retrieve("call_0123")),
                await _error(client.call.retrieve("bad!id"))]
            errors[name] = got_errors
    assert errors["service"] == errors["emulator"]
    assert [kind for kind, _ in errors["emulator"]] == \
        ["AuthenticationError", "BadRequestError", "NotFoundError", "NotFoundError"]
    assert errors["emulator"][1][1]["field"] == "sample_rate"


async def test_retell_sdk_2_register_call_and_its_errors_on_both(tmp_path):
    retellclient = import_retell_sdk_2()
    from retellclient.models import components, errors, operations

    def register(base: str, key: str, rate: int):
        sdk = retellclient.RetellClient(api_key=key, server_url=base)
        return sdk.register_call(operations.RegisterCallRequestBody(
            agent_id="riverside-bistro", audio_encoding=components.AudioEncoding.S16LE,
            audio_websocket_protocol=components.AudioWebsocketProtocol.WEB, sample_rate=rate))

    def get_call(base: str, key: str, call_id: str):
        return retellclient.RetellClient(api_key=key, server_url=base).get_call(call_id)

    async with both(tmp_path) as servers:
        for _, base, key in servers:
            res = await asyncio.to_thread(register, base, key, RATE)
            assert res.status_code == 201
            detail = res.call_detail
            assert detail.call_status == components.CallStatus.REGISTERED
            assert detail.audio_encoding == components.AudioEncoding.S16LE
            read = await asyncio.to_thread(get_call, base, key, detail.call_id)
            assert read.call_detail.call_id == detail.call_id
            # the error classes read error_message
            with pytest.raises(errors.RegisterCallResponseResponseBody) as unauthorized:
                await asyncio.to_thread(register, base, "wrong", RATE)
            assert unauthorized.value.error_message == "missing or wrong Bearer API key"
            with pytest.raises(errors.RegisterCallResponseBody) as bad:
                await asyncio.to_thread(register, base, key, 5)
            assert "8000-48000" in bad.value.error_message
            with pytest.raises(errors.GetCallResponseResponseBody) as unauthorized:
                await asyncio.to_thread(get_call, base, "wrong", detail.call_id)
            assert unauthorized.value.error_message == "missing or wrong Bearer API key"
            with pytest.raises(errors.SDKError) as missing:
                await asyncio.to_thread(get_call, base, key, "call_0123")
            assert missing.value.status_code == 404 and "no such call" in missing.value.body
