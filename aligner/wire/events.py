"""Typed events of the audio websocket (web and Twilio forms), as the protocol codec returns them.

Events are small frozen dataclasses; payloads that are arbitrary JSON (metadata, unknown frames)
are kept as they came. The codec in :mod:`aligner.wire.protocol` turns frames into these events and
back; the session model in :mod:`aligner.session` consumes them stamped with a time.

>>> AlignedAudio(audio=b"\\x00\\x00", text="Hel").text
'Hel'
>>> Stamped(0.25, "in", Clear()).event
Clear()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AgentAudio",
    "AlignedAudio",
    "Clear",
    "Event",
    "Metadata",
    "MicAudio",
    "Ping",
    "Pong",
    "Stamped",
    "TranscriptTurn",
    "TranscriptWord",
    "TwilioConnected",
    "TwilioDtmf",
    "TwilioMark",
    "TwilioMedia",
    "TwilioStart",
    "TwilioStop",
    "TwilioClear",
    "Unknown",
    "Update",
]

Direction = Literal["in", "out"]  # in: server -> client; out: client -> server


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every protocol event."""


# --- web protocol ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AgentAudio(Event):
    """A binary frame of agent audio (alignment off), in the call's encoding."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class AlignedAudio(Event):
    """An alignment chunk: agent audio plus exactly the text it speaks (may be empty).

    ``event_type`` is the discriminator the server used (``"audio"`` by default); ``extra`` keeps
    unknown fields as sorted ``(key, value)`` pairs so they are passed on, never lost.
    """

    audio: bytes
    text: str
    event_type: str = "audio"
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class MicAudio(Event):
    """A binary frame of user (microphone) audio, client to server."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class Clear(Event):
    """The literal text frame ``clear``: drop every unplayed agent chunk now (barge-in)."""


@dataclass(frozen=True, slots=True)
class Ping(Event):
    """Heartbeat text frame ``ping``."""


@dataclass(frozen=True, slots=True)
class Pong(Event):
    """Heartbeat answer ``pong``."""


@dataclass(frozen=True, slots=True)
class TranscriptWord:
    word: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class TranscriptTurn:
    role: str  # "agent" | "user"
    content: str
    words: tuple[TranscriptWord, ...] = ()


@dataclass(frozen=True, slots=True)
class Update(Event):
    """``event_type: "update"``: the whole transcript so far, and maybe a turn-taking change."""

    transcript: tuple[TranscriptTurn, ...]
    turntaking: str | None = None  # "agent_turn" | "user_turn" | None
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Metadata(Event):
    """``event_type: "metadata"``: any JSON value the agent's LLM server sent."""

    metadata: Any = None


@dataclass(frozen=True, slots=True)
class Unknown(Event):
    """A frame the codec did not recognise, kept whole (tolerant reader: never fatal).

    ``reason`` says why it is unknown, e.g. ``"unknown event_type 'foo'"`` or ``"invalid JSON"``.
    """

    raw: str | bytes
    reason: str = ""


# --- Twilio Media Streams ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TwilioConnected(Event):
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True, slots=True)
class TwilioStart(Event):
    stream_sid: str
    account_sid: str = ""
    call_sid: str = ""
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: tuple[tuple[str, str], ...] = ()
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1
    sequence_number: int = 0


@dataclass(frozen=True, slots=True)
class TwilioMedia(Event):
    """Audio (mulaw bytes, already base64-decoded). ``track`` is ``inbound`` from Twilio;
    ``outbound`` media is what the agent side sends to Twilio."""

    payload: bytes
    stream_sid: str = ""
    track: str = "inbound"
    chunk: int = 0
    timestamp_ms: int = 0
    sequence_number: int = 0


@dataclass(frozen=True, slots=True)
class TwilioMark(Event):
    name: str
    stream_sid: str = ""
    sequence_number: int = 0


@dataclass(frozen=True, slots=True)
class TwilioClear(Event):
    stream_sid: str = ""


@dataclass(frozen=True, slots=True)
class TwilioDtmf(Event):
    digit: str
    stream_sid: str = ""
    track: str = "inbound_track"
    sequence_number: int = 0


@dataclass(frozen=True, slots=True)
class TwilioStop(Event):
    stream_sid: str = ""
    account_sid: str = ""
    call_sid: str = ""
    sequence_number: int = 0


# --- time stamping -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stamped:
    """An event with the time (seconds on the session clock, 0 = websocket open) the edge saw it,
    and its direction: ``"in"`` server → client, ``"out"`` client → server."""

    t: float
    direction: Direction
    event: Event = field(default_factory=Event)
