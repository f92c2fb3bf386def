"""Helpers of the service tests: run ``aligner serve``'s app on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from loopback import serve_app

from aligner.emulator.config import DEFAULT_DIALOGUE
from aligner.service.app import ServiceConfig, create_app

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
GREETING = "Hello thanks for calling the Riverside Bistro How can I help you today"


def dialogue_with_metadata(folder: Path) -> Path:
    """The sample dialogue whose greeting sends a metadata event (as a custom LLM may)."""
    data = json.loads(DEFAULT_DIALOGUE.read_text("utf-8"))
    data["lines"][0]["metadata"] = {"scene": "greeting"}
    path = folder / "dialogue.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


class Service:
    """A running service: ``base`` URL, its ``config`` and an aiohttp ``http`` session."""

    def __init__(self, runner: web.AppRunner, base: str, config: ServiceConfig,
                 http: aiohttp.ClientSession) -> None:
        self.runner, self.base, self.config, self.http = runner, base, config, http

    @property
    def auth(self) -> dict[str, str]:
        """The header that opens the recordings API (the service's access key: the
        embedded emulator's API key unless ``access_key`` is set)."""
        return {"Authorization": f"Bearer {self.config.access_key or self.config.api_key}"}

    @property
    def ws_base(self) -> str:
        return self.base.replace("http", "ws", 1)

    async def register(self, **body: Any) -> dict[str, Any]:
        body = {"agent_id": "test", "audio_encoding": "s16le", "sample_rate": 24000, **body}
        async with self.http.post(f"{self.base}/register-call", json=body,
                                  headers=self.auth) as resp:
            assert resp.status in (200, 201), await resp.text()
            return await resp.json()

    async def call_info(self, call_id: str, state_not: tuple[str, ...] = ("recording",),
                        timeout: float = 30.0) -> dict[str, Any]:
        """``GET /calls/{id}`` once its state is no longer one of ``state_not``."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.http.get(f"{self.base}/calls/{call_id}", headers=self.auth) as resp:
                if resp.status == 200:
                    data = await resp.json()
                    if data["state"] not in state_not or time.monotonic() > deadline:
                        return data
            if time.monotonic() > deadline:
                raise AssertionError(f"no recording of {call_id}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_service(tmp_path: Path, *, lipsync: bool = False, **options: Any):
    """Start the service (embedded emulator unless ``upstream=``) and yield a :class:`Service`;
    with ``lipsync=True`` once its aligner worker is loaded (so no test times a cold start)."""
    options.setdefault("emulator", {"send_speed": 4.0})
    options.setdefault("align_workers", 1)
    config = ServiceConfig(recordings=tmp_path / "recordings", **options)
    runner, base = await serve_app(create_app(config), shutdown_timeout=15.0)
    async with aiohttp.ClientSession() as http:
        for _ in range(600 if lipsync else 0):  # loading the aligner is not part of a test
            async with http.get(f"{base}/healthz") as resp:
                if (await resp.json())["aligner_ready"]:
                    break
            await asyncio.sleep(0.1)
        try:
            yield Service(runner, base, config, http)
        finally:
            await runner.cleanup()


async def collect(ws: aiohttp.ClientWebSocketResponse, seconds: float,
                  until: Any = None) -> list[tuple[str, Any]]:
    """Frames for ``seconds`` (or until ``until(kind, data)`` is true, or the socket closes):
    ``("bin", bytes)``, ``("text", str)``, ``("json", dict)``."""
    out: list[tuple[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            break
        if msg.type is aiohttp.WSMsgType.BINARY:
            item = ("bin", msg.data)
        elif msg.type is aiohttp.WSMsgType.TEXT:
            try:
                data = json.loads(msg.data)
                item = ("json", data) if isinstance(data, dict) else ("text", msg.data)
            except ValueError:
                item = ("text", msg.data)
        else:
            break
        out.append(item)
        if until is not None and until(*item):
            break
    return out


class LoopThread:
    """An async context manager (a server) entered on an event loop in a thread of its own, for
    synchronous tests (Hypothesis) to drive: ``value`` is what it yielded, ``run(coro)`` runs a
    coroutine on that loop and returns its result, ``close()`` exits it."""

    def __init__(self, context: Any) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._context = context
        self.value = self.run(context.__aenter__())

    def run(self, coro: Any, timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.run(self._context.__aexit__(None, None, None))
            self.run(_cancel_the_rest())  # as asyncio.run ends: no task left pending
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self.loop.close()


async def _cancel_the_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
