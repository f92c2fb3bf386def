"""Calls of the emulator: register-call validation, the call object and its transcript.

A :class:`Call` is the server's record of one call (protocol.md section 4); :class:`CallRegistry`
holds them. Validation raises :class:`RegistrationError` naming the offending field, which the
HTTP layer turns into a 400 JSON error. An ended call's object carries what Retell's server SDKs
name: ``recording_url`` and ``public_log_url`` (served by the emulator itself),
``e2e_latency`` (user stops talking -> agent audio starts, in ms) and
``transcript_with_tool_calls`` (the emulator's agent calls no tools: the utterances).
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .recording import CallRecording

__all__ = ["Call", "CallRegistry", "RegistrationError", "Turn", "validate_registration"]

_PROTOCOLS = ("web", "twilio")
_ENCODINGS = ("s16le", "mulaw")


class RegistrationError(ValueError):
    """A register-call body that is not valid. ``field`` names the bad field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self):
        return (type(self), (self.field, self.message))


def validate_registration(body: Any) -> dict:
    """Check a register-call JSON body and return it with defaults filled in.

    Raises:
        RegistrationError: the first invalid field.

    >>> validate_registration({"agent_id": "a", "sample_rate": 24000})["audio_encoding"]
    's16le'
    >>> validate_registration({"agent_id": "a", "audio_websocket_protocol": "twilio",
    ...     "audio_encoding": "s16le", "sample_rate": 8000})
    Traceback (most recent call last):
    aligner.emulator.calls.RegistrationError: audio_encoding: twilio needs mulaw at 8000 Hz
    """
    if not isinstance(body, dict):
        raise RegistrationError("body", "expected a JSON object")
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise RegistrationError("agent_id", "required, a non-empty string")
    protocol = body.get("audio_websocket_protocol", "web")
    if protocol not in _PROTOCOLS:
        raise RegistrationError("audio_websocket_protocol", f"must be one of {_PROTOCOLS}")
    twilio = protocol == "twilio"
    encoding = body.get("audio_encoding", "mulaw" if twilio else "s16le")
    if encoding not in _ENCODINGS:
        raise RegistrationError("audio_encoding", f"must be one of {_ENCODINGS}")
    rate = body.get("sample_rate", 8000 if twilio else 24000)
    if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 48000:
        raise RegistrationError("sample_rate", "must be an integer in 8000-48000")
    if twilio and encoding != "mulaw":
        raise RegistrationError("audio_encoding", "twilio needs mulaw at 8000 Hz")
    if twilio and rate != 8000:
        raise RegistrationError("sample_rate", "twilio needs mulaw at 8000 Hz")
    silence = body.get("end_call_after_silence_ms", 600000)
    if isinstance(silence, bool) or not isinstance(silence, int) or silence < 10000:
        raise RegistrationError("end_call_after_silence_ms", "must be an integer >= 10000")
    for name in ("from_number", "to_number"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise RegistrationError(name, "must be a string")
    return {**body, "agent_id": agent_id, "audio_websocket_protocol": protocol,
            "audio_encoding": encoding, "sample_rate": rate, "end_call_after_silence_ms": silence}


@dataclass(slots=True)
class Turn:
    """One turn of the transcript: ``words`` are ``(word, start, end)`` in call seconds."""

    role: str
    content: str = ""
    words: list[tuple[str, float, float]] = field(default_factory=list)

    def to_json(self, with_words: bool = True) -> dict:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if with_words:
            out["words"] = [{"word": w, "start": round(s, 3), "end": round(e, 3)}
                            for w, s, e in self.words]
        return out


@dataclass(slots=True, eq=False)
class Call:
    """The server's record of one call (mutable: its status changes as the call goes)."""

    fields: dict
    call_id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex)
    call_status: str = "registered"
    start_timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    end_timestamp: int | None = None
    disconnection_reason: str | None = None
    transcript: list[Turn] = field(default_factory=list)
    frames_in: int = 0
    ignored_frames: int = 0
    turn_delays: list[float] = field(default_factory=list)  # end of user turn -> agent speaks
    turn_ends: list[str] = field(default_factory=list)  # per user turn: "quick" or "long" path
    hypothesis_waits: list[float] = field(default_factory=list)  # per pause: s to get the words
    e2e_latencies: list[float] = field(default_factory=list)  # ms: user stops -> agent audio
    notes: list[tuple[float, str]] = field(default_factory=list)  # the public log: (call s, what)
    recording: CallRecording | None = None

    @property
    def encoding(self) -> str:
        return self.fields["audio_encoding"]

    @property
    def sample_rate(self) -> int:
        return self.fields["sample_rate"]

    @property
    def protocol(self) -> str:
        return self.fields["audio_websocket_protocol"]

    def transcript_text(self) -> str:
        """``"Agent: ...\\nUser: ...\\n"``, skipping empty turns."""
        return "".join(f"{t.role.capitalize()}: {t.content}\n" for t in self.transcript
                       if t.content)

    def note(self, t: float, what: str) -> None:
        """Add a line to the call's public log (``t`` in call seconds)."""
        self.notes.append((t, what))

    def log_text(self) -> str:
        """The public log: one line per event, call seconds first."""
        return "".join(f"{t:9.3f}  {what}\n" for t, what in self.notes)

    def end(self, reason: str, error: bool = False) -> None:
        """Mark the call over (first reason wins)."""
        if self.call_status in ("ended", "error"):
            return
        self.call_status = "error" if error else "ended"
        self.disconnection_reason = reason
        self.end_timestamp = int(time.time() * 1000)

    def to_json(self, base_url: str | None = None) -> dict:
        """The call object of register-call and get-call; ``base_url`` (the server's origin, as
        the client reached it) for the URLs of an ended call's recording and log."""
        out = {**self.fields, "call_id": self.call_id, "call_status": self.call_status,
               "start_timestamp": self.start_timestamp}
        if self.call_status in ("ongoing", "ended", "error"):
            out["transcript"] = self.transcript_text()
            out["transcript_object"] = [t.to_json() for t in self.transcript if t.content]
        if self.end_timestamp is not None:
            out["end_timestamp"] = self.end_timestamp
            out["disconnection_reason"] = self.disconnection_reason
            out["transcript_with_tool_calls"] = out["transcript_object"]
            out["e2e_latency"] = _latency(self.e2e_latencies)
            if base_url is not None:
                if self.recording is not None:
                    out["recording_url"] = f"{base_url}/calls/{self.call_id}/recording.wav"
                out["public_log_url"] = f"{base_url}/calls/{self.call_id}/log"
        return out


def _latency(values_ms: list[float]) -> dict[str, float]:
    """Retell's latency object: ``p50``... ``p99``, ``min``, ``max`` (ms) and ``num``."""
    if not values_ms:
        return {"num": 0}
    data = np.asarray(values_ms, float)
    out = {f"p{q}": round(float(np.percentile(data, q)), 1) for q in (50, 90, 95, 99)}
    return {**out, "min": round(float(data.min()), 1), "max": round(float(data.max()), 1),
            "num": len(data)}


class CallRegistry:
    """Every call this server registered, by id; the recordings of the last ``keep_recordings``
    ended calls (older ones are dropped: their ``recording_url`` answers 404)."""

    def __init__(self, keep_recordings: int = 32) -> None:
        self._calls: dict[str, Call] = {}
        self._recorded: collections.deque[Call] = collections.deque()
        self.keep_recordings = keep_recordings

    def register(self, body: Any) -> Call:
        """Validate ``body`` and create a call. Raises :class:`RegistrationError`."""
        call = Call(validate_registration(body))
        self._calls[call.call_id] = call
        return call

    def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def retire(self, call: Call) -> None:
        """The call is over: keep its recording among the last ``keep_recordings``."""
        if call.recording is None or call in self._recorded:
            return
        self._recorded.append(call)
        while len(self._recorded) > self.keep_recordings:
            self._recorded.popleft().recording = None

    def __len__(self) -> int:
        return len(self._calls)
