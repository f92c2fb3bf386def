"""The voice-agent server's answers to a client's mistakes: one table for every server here.

The emulator answers from this table, and so does ``aligner serve`` wherever it stands in for
the server (the audio websocket before the upstream is reached, idle calls), so a client sees
the same close code and reason, the same HTTP status and the same JSON body from either.

Close answers end the audio websocket (the socket is accepted first, then closed: a client
learns why, where an HTTP refusal of the upgrade would leave it with a bare 1006). HTTP answers
are JSON bodies holding the message under ``error_message`` (the key Retell's server SDKs read
into their error classes), ``error`` and the offending ``field``.

>>> UNKNOWN_CALL.code, UNKNOWN_CALL.reason
(1008, 'error_unknown_call_id')
>>> NO_SUCH_CALL.body()["error_message"]
'no such call'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "BAD_JSON",
    "CALL_ALREADY_USED",
    "CORRUPTED_PAYLOAD",
    "INACTIVITY",
    "NO_SUCH_CALL",
    "UNAUTHORIZED",
    "UNKNOWN_CALL",
    "CloseAnswer",
    "HttpAnswer",
    "invalid_field",
]


@dataclass(frozen=True, slots=True)
class CloseAnswer:
    """How the audio websocket is closed: ``code`` and the snake_case ``reason``."""

    code: int
    reason: str

    async def close(self, ws: web.WebSocketResponse) -> None:
        """Close ``ws`` (prepared) with this answer."""
        await ws.close(code=self.code, message=self.reason.encode())


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP error of the API: ``status``, the offending ``field`` and a ``message``."""

    status: int
    field: str
    message: str

    def body(self) -> dict[str, Any]:
        return {"error_message": self.message, "error": self.message, "field": self.field}

    def response(self) -> web.Response:
        """The aiohttp response carrying this answer."""
        return web.json_response(self.body(), status=self.status)


#: A call id no call has (or not a call id at all).
UNKNOWN_CALL = CloseAnswer(1008, "error_unknown_call_id")
#: A second socket for a call that is connected or over: a call id is good for one socket.
CALL_ALREADY_USED = CloseAnswer(1008, "error_call_already_used")
#: Audio that cannot be decoded in the call's encoding, or a frame of the wrong protocol.
CORRUPTED_PAYLOAD = CloseAnswer(1008, "error_frontend_corrupted_payload")
#: The user said nothing for ``end_call_after_silence_ms``: the call ends normally.
INACTIVITY = CloseAnswer(1000, "inactivity")

UNAUTHORIZED = HttpAnswer(401, "authorization", "missing or wrong Bearer API key")
NO_SUCH_CALL = HttpAnswer(404, "call_id", "no such call")
BAD_JSON = HttpAnswer(400, "body", "request body is not valid JSON")


def invalid_field(field: str, message: str) -> HttpAnswer:
    """A register-call body with a bad ``field`` (400).

    >>> invalid_field("sample_rate", "must be an integer in 8000-48000").status
    400
    """
    return HttpAnswer(400, field, message)
