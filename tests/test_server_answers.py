"""The emulator and ``aligner serve`` answer a client's mistakes alike (aligner.wire.answers): the
same HTTP status and JSON body, the same close code and reason, the same call record."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
from sdk_helpers import register_call
from service_helpers import running_service

from aligner.emulator import EmbeddedEmulator
from aligner.service.options import CallOptions, Limits, ProxyStats
from aligner.service.proxy import ProxyCall


@dataclass
class Server:
    name: str
    base: str
    key: str

    @property
    def ws(self) -> str:
        return self.base.replace("http", "ws", 1)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@contextlib.asynccontextmanager
async def both(tmp_path, **emulator):
    """The emulator, and the service in front of its own embedded emulator (default options:
    no fallback key, default limits), each with ``emulator`` options."""
    async with EmbeddedEmulator(**emulator) as emu, \
            running_service(tmp_path, emulator=emulator) as svc:
        yield [Server("emulator", emu.base_url, emu.api_key),
               Server("service", svc.base, svc.config.api_key)], svc.http


async def _answer(resp: aiohttp.ClientResponse) -> tuple[int, str, object]:
    return resp.status, resp.content_type, await resp.json(content_type=None)


async def _closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20.0) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return msg.data, msg.extra
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return ws.close_code, ""


async def test_http_mistakes_get_the_same_status_and_body(tmp_path):
    async with both(tmp_path, recognition=False) as (servers, http):
        answers = {}
        for s in servers:
            got = []
            async with http.post(f"{s.base}/register-call", json={"agent_id": "a"}) as r:
                got.append(await _answer(r))  # no Authorization
            async with http.post(f"{s.base}/register-call", data=b"{", headers=s.auth) as r:
                got.append(await _answer(r))
            async with http.post(f"{s.base}/register-call", headers=s.auth,
                                 json={"agent_id": "a", "sample_rate": 5}) as r:
                got.append(await _answer(r))
            for call_id in ("call_0123", "bad!id", "x.y"):  # unknown, malformed
                async with http.get(f"{s.base}/get-call/{call_id}", headers=s.auth) as r:
                    got.append(await _answer(r))
            async with http.get(f"{s.base}/get-call/call_0123") as r:
                got.append(await _answer(r))
            answers[s.name] = got
    assert answers["service"] == answers["emulator"]
    statuses = [(status, ctype) for status, ctype, _ in answers["emulator"]]
    assert statuses == [(401, "application/json"), (400, "application/json"),
                        (400, "application/json")] + [(404, "application/json")] * 3 \
        + [(401, "application/json")]
    bodies = [body for _, _, body in answers["emulator"]]
    assert bodies[0]["error_message"] == "missing or wrong Bearer API key"
    assert bodies[2]["field"] == "sample_rate" and "8000" in bodies[2]["error_message"]


async def test_audio_websocket_mistakes_are_closed_alike(tmp_path):
    async with both(tmp_path, recognition=False) as (servers, http):
        closes = {}
        for s in servers:
            got = []
            for call_id in ("call_0123", "bad!id"):  # unknown, malformed
                async with http.ws_connect(f"{s.ws}/audio-websocket/{call_id}") as ws:
                    got.append(await _closed(ws))
            call = await register_call(http, s.base, s.key, sample_rate=16000)
            url = f"{s.ws}/audio-websocket/{call['call_id']}"
            async with http.ws_connect(url) as first:
                await first.receive()  # the call is on
                async with http.ws_connect(url) as second:  # while the first is open
                    got.append(await _closed(second))
            async with http.ws_connect(url) as third:  # after it ended
                got.append(await _closed(third))
            closes[s.name] = got
    expected = [(1008, "error_unknown_call_id")] * 2 + [(1008, "error_call_already_used")] * 2
    assert closes["emulator"] == closes["service"] == expected


async def test_a_client_that_sends_nothing_ends_alike(tmp_path):
    """No frames at all: each server ends the call after the call's silence limit with the
    same close and records the same reason (the service leaves it to its upstream)."""
    async with both(tmp_path, recognition=False, time_scale=10.0, send_speed=20.0) as \
            (servers, http):
        seen = {}
        for s in servers:
            call = await register_call(http, s.base, s.key, sample_rate=16000,
                                       end_call_after_silence_ms=10000)
            async with http.ws_connect(f"{s.ws}/audio-websocket/{call['call_id']}") as ws:
                closed = await _closed(ws, timeout=30)
            for _ in range(50):
                async with http.get(f"{s.base}/get-call/{call['call_id']}", headers=s.auth) as r:
                    ended = await r.json()
                if ended["call_status"] != "ongoing":
                    break
                await asyncio.sleep(0.1)
            seen[s.name] = (closed, ended["call_status"], ended["disconnection_reason"])
    assert seen["emulator"] == seen["service"] == ((1000, "inactivity"), "ended", "inactivity")


def test_the_service_waits_past_the_calls_silence_limit_by_default():
    """With default limits the service's own idle timer never ends a call before the upstream
    would (600 s of silence by default); an explicit idle timeout is honoured."""
    def proxy(limits: Limits, call: dict) -> ProxyCall:
        return ProxyCall("call_1", call, CallOptions(), "ws://127.0.0.1:9/", None, limits,
                         ProxyStats(), None, None, None)

    assert proxy(Limits(), {"end_call_after_silence_ms": 600000}).idle_timeout() > 600
    assert proxy(Limits(), {"end_call_after_silence_ms": 10000}).idle_timeout() > 10
    assert proxy(Limits(idle_timeout=5.0), {"end_call_after_silence_ms": 600000}
                 ).idle_timeout() == 5.0
