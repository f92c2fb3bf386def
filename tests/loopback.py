"""aiohttp apps served on a free loopback port, for the tests that need a real peer server."""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["serve", "serve_app", "sink"]


async def serve_app(app: web.Application, **runner_options: Any) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 at a free port.

    Returns:
        The runner (``await runner.cleanup()`` when done) and the base URL
        ``http://127.0.0.1:PORT``.
    """
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def serve(path: str, handler: Any) -> tuple[web.AppRunner, str]:
    """Serve one GET ``handler`` (a websocket peer) at ``path``; as :func:`serve_app`."""
    app = web.Application()
    app.router.add_get(path, handler)
    return await serve_app(app)


async def sink(request: web.Request) -> web.WebSocketResponse:
    """A websocket peer that sends nothing and reads every message until the client closes."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws
