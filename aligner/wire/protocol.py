"""Sans-I/O codec of the audio websocket: frames in, typed events out, and the reverse.

aiohttp (or any websocket library) does the framing; this module only turns the *payload* of a
text or binary frame into an event of :mod:`aligner.wire.events`, and events back into payloads. It
owns no socket and reads no clock. Two layers:

- stateless functions for both directions and both forms: :func:`decode_server_text`,
  :func:`decode_server_binary`, :func:`decode_client_text`, :func:`decode_client_binary`,
  :func:`encode` (web form) and :func:`decode_twilio` / :func:`encode_twilio` (Twilio Media
  Streams). The emulator and the service reuse these.
- :class:`WebClientProtocol`, the client's side of one connection in the ``websockets`` style:
  feed it with :meth:`~WebClientProtocol.receive_text` / :meth:`~WebClientProtocol.receive_binary`,
  collect :meth:`~WebClientProtocol.events_received`; queue frames with ``send_*`` and collect
  them with :meth:`~WebClientProtocol.data_to_send`.

Tolerant reader (shared/protocol.md): decoding never raises. A JSON frame with a string ``audio``
field is an alignment chunk whatever its ``event_type``; its text may be under ``text`` or
``content``; unknown fields are kept in ``extra``; anything not understood becomes
:class:`~aligner.wire.events.Unknown` with the raw payload and a reason. Only *encoding* an event
that has no wire form raises :class:`~aligner.errors.ProtocolError`.

>>> decode_server_text("clear")
Clear()
>>> ev = decode_server_text('{"event_type": "audio", "audio": "AAA=", "text": "Hi"}')
>>> ev.audio, ev.text
(b'\\x00\\x00', 'Hi')
>>> decode_server_text(encode(ev)) == ev
True
>>> decode_server_text("{oops").reason
'invalid JSON'
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
from typing import Any

from ..errors import ProtocolError
from .events import (
    AgentAudio,
    AlignedAudio,
    Clear,
    Event,
    Metadata,
    MicAudio,
    Ping,
    Pong,
    TranscriptTurn,
    TranscriptWord,
    TwilioClear,
    TwilioConnected,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioStart,
    TwilioStop,
    Unknown,
    Update,
)

__all__ = [
    "State",
    "WebClientProtocol",
    "decode_client_binary",
    "decode_client_text",
    "decode_server_binary",
    "decode_server_text",
    "decode_twilio",
    "encode",
    "encode_twilio",
]

logger = logging.getLogger(__name__)

_LITERALS: dict[str, Event] = {"clear": Clear(), "ping": Ping(), "pong": Pong()}
_ALIGNED_KEYS = ("event_type", "audio", "text", "content")


# --- web form: decoding ------------------------------------------------------------------------

def decode_server_binary(data: bytes) -> Event:
    """A binary frame from the server: agent audio in the call's encoding.

    >>> decode_server_binary(b"\\x01\\x02")
    AgentAudio(audio=b'\\x01\\x02')
    """
    return AgentAudio(bytes(data))


def decode_client_binary(data: bytes) -> Event:
    """A binary frame from the client: microphone audio in the call's encoding."""
    return MicAudio(bytes(data))


def decode_client_text(text: str) -> Event:
    """A text frame from the client: ``ping`` (heartbeat) or ``pong``; anything else is Unknown.

    >>> decode_client_text("ping")
    Ping()
    """
    ev = _LITERALS.get(text.strip()) if isinstance(text, str) else None
    if isinstance(ev, Ping | Pong):
        return ev
    return Unknown(text, "unexpected text frame from client")


def decode_server_text(text: str) -> Event:
    """A text frame from the server: a literal (``clear``, ``ping``, ``pong``) or a JSON event.

    Never raises: what it cannot understand comes back as :class:`Unknown` with a reason.

    Args:
        text: the frame's payload.

    Returns:
        :class:`AlignedAudio`, :class:`Update`, :class:`Metadata`, :class:`Clear`,
        :class:`Ping`, :class:`Pong` or :class:`Unknown`.
    """
    if not isinstance(text, str):
        return Unknown(bytes(text) if isinstance(text, bytes | bytearray) else repr(text),
                       "not a text frame")
    literal = _LITERALS.get(text.strip())
    if literal is not None:
        return literal
    obj = _json_object(text)
    if isinstance(obj, Unknown):
        return obj
    try:
        return _decode_object(obj, text)
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError,
            RecursionError) as exc:
        return Unknown(text, f"malformed {obj.get('event_type', 'frame')!s:.40}: {exc}")


def _decode_object(obj: dict[str, Any], text: str) -> Event:
    event_type = obj.get("event_type")
    if isinstance(obj.get("audio"), str):  # an alignment chunk, whatever its event_type
        try:
            audio = _b64(obj["audio"])
        except (binascii.Error, ValueError):
            return Unknown(text, "alignment chunk with invalid base64 audio")
        if isinstance(obj.get("text"), str):
            spoken, skip = obj["text"], "text"
        elif isinstance(obj.get("content"), str):
            spoken, skip = obj["content"], "content"
        else:
            spoken, skip = "", ""
        extra = tuple(sorted((k, v) for k, v in obj.items()
                             if k not in ("event_type", "audio", skip)))
        return AlignedAudio(audio, spoken, event_type if isinstance(event_type, str) else "audio",
                            extra)
    if event_type == "update":
        return _decode_update(obj, text)
    if event_type == "metadata":
        return Metadata(obj.get("metadata"))
    if event_type in _LITERALS and len(obj) == 1:  # {"event_type": "clear"} from lenient servers
        return _LITERALS[event_type]
    return Unknown(text, f"unknown event_type {event_type!r:.60}")


def _b64(text: str) -> bytes:
    # Strict alphabet (garbage is a malformed frame, not silently dropped bytes); whitespace and
    # line breaks, which some encoders insert, are tolerated.
    return base64.b64decode("".join(text.split()), validate=True)


def _decode_update(obj: dict[str, Any], text: str) -> Event:
    turns = obj.get("transcript", [])
    if not isinstance(turns, list):
        return Unknown(text, "update whose transcript is not a list")
    transcript = []
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("content", ""), str):
            return Unknown(text, "update with a malformed transcript turn")
        words = tuple(TranscriptWord(str(w["word"]), float(w["start"]), float(w["end"]))
                      for w in turn.get("words") or ())
        transcript.append(TranscriptTurn(str(turn.get("role", "")), turn.get("content", ""), words))
    turntaking = obj.get("turntaking")
    if turntaking is not None and not isinstance(turntaking, str):
        return Unknown(text, "update whose turntaking is not a string")
    extra = tuple(sorted((k, v) for k, v in obj.items()
                         if k not in ("event_type", "transcript", "turntaking")))
    return Update(tuple(transcript), turntaking, extra)


# --- web form: encoding ------------------------------------------------------------------------

def encode(event: Event) -> str | bytes:
    """The web-form payload of ``event`` (either direction): ``bytes`` for a binary frame, ``str``
    for a text frame. ``decode_*(encode(e)) == e`` for every event of that direction.

    Raises:
        ProtocolError: the event has no web-form payload (e.g. a Twilio event).

    >>> encode(Clear()), encode(Ping()), encode(MicAudio(b"ab"))
    ('clear', 'ping', b'ab')
    >>> encode(Metadata({"a": 1}))
    '{"event_type": "metadata", "metadata": {"a": 1}}'
    """
    match event:
        case AgentAudio(audio) | MicAudio(audio):
            return bytes(audio)
        case Clear():
            return "clear"
        case Ping():
            return "ping"
        case Pong():
            return "pong"
        case AlignedAudio(audio, text, event_type, extra):
            obj = dict(extra)
            obj.update(event_type=event_type, audio=base64.b64encode(audio).decode("ascii"),
                       text=text)
            return _dumps(obj)
        case Update(transcript, turntaking, extra):
            obj = dict(extra)
            obj["event_type"] = "update"
            obj["transcript"] = [_turn_dict(turn) for turn in transcript]
            if turntaking is not None:
                obj["turntaking"] = turntaking
            return _dumps(obj)
        case Metadata(metadata):
            return _dumps({"event_type": "metadata", "metadata": metadata})
        case Unknown(raw, _):
            return raw
    raise ProtocolError(f"{type(event).__name__} has no web-protocol form")


def _turn_dict(turn: TranscriptTurn) -> dict[str, Any]:
    d: dict[str, Any] = {"role": turn.role, "content": turn.content}
    if turn.words:
        d["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in turn.words]
    return d


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"event is not JSON-serialisable: {exc}") from exc


# --- Twilio Media Streams ----------------------------------------------------------------------

def decode_twilio(text: str) -> Event:
    """A Twilio Media Streams text frame (either direction) as an event; never raises.

    >>> decode_twilio('{"event": "clear", "streamSid": "MZ1"}')
    TwilioClear(stream_sid='MZ1')
    >>> decode_twilio('{"event": "media"}').reason
    "malformed 'media': 'media'"
    """
    if not isinstance(text, str):
        return Unknown(bytes(text) if isinstance(text, bytes | bytearray) else repr(text),
                       "Twilio frames are text")
    obj = _json_object(text)
    if isinstance(obj, Unknown):
        return obj
    kind = obj.get("event")
    try:
        return _decode_twilio_object(obj, kind, text)
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError,
            binascii.Error, RecursionError) as exc:
        return Unknown(text, f"malformed {kind!r:.40}: {exc}")


def _seq(obj: dict[str, Any]) -> int:
    return int(obj.get("sequenceNumber", 0) or 0)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _decode_twilio_object(obj: dict[str, Any], kind: Any, text: str) -> Event:
    sid = _str(obj.get("streamSid", ""))
    if kind == "connected":
        return TwilioConnected(_str(obj.get("protocol", "Call")), _str(obj.get("version", "1.0.0")))
    if kind == "start":
        start = obj["start"]
        fmt = start.get("mediaFormat") or {}
        params = start.get("customParameters") or {}
        return TwilioStart(
            stream_sid=_str(start.get("streamSid", sid)),
            account_sid=_str(start.get("accountSid", "")),
            call_sid=_str(start.get("callSid", "")),
            tracks=tuple(_str(t) for t in start.get("tracks", ("inbound",))),
            custom_parameters=tuple(sorted((_str(k), _str(v)) for k, v in params.items())),
            encoding=_str(fmt.get("encoding", "audio/x-mulaw")),
            sample_rate=int(fmt.get("sampleRate", 8000)),
            channels=int(fmt.get("channels", 1)),
            sequence_number=_seq(obj),
        )
    if kind == "media":
        media = obj["media"]
        return TwilioMedia(
            payload=_b64(_str(media["payload"])),
            stream_sid=sid,
            track=_str(media.get("track", "inbound")),
            chunk=int(media.get("chunk", 0) or 0),
            timestamp_ms=int(media.get("timestamp", 0) or 0),
            sequence_number=_seq(obj),
        )
    if kind == "mark":
        return TwilioMark(_str(obj["mark"]["name"]), sid, _seq(obj))
    if kind == "clear":
        return TwilioClear(sid)
    if kind == "dtmf":
        dtmf = obj["dtmf"]
        return TwilioDtmf(_str(dtmf["digit"]), sid, _str(dtmf.get("track", "inbound_track")),
                          _seq(obj))
    if kind == "stop":
        stop = obj.get("stop") or {}
        return TwilioStop(sid, _str(stop.get("accountSid", "")), _str(stop.get("callSid", "")),
                          _seq(obj))
    return Unknown(text, f"unknown Twilio event {kind!r:.60}")


def encode_twilio(event: Event) -> str:
    """The Twilio Media Streams text frame of ``event``; ``decode_twilio(encode_twilio(e)) == e``.

    Raises:
        ProtocolError: the event has no Twilio form (e.g. a web-protocol event).

    >>> encode_twilio(TwilioMark("end", "MZ1"))
    '{"event": "mark", "streamSid": "MZ1", "mark": {"name": "end"}}'
    """
    match event:
        case TwilioConnected(protocol, version):
            return _dumps({"event": "connected", "protocol": protocol, "version": version})
        case TwilioStart():
            obj = _twilio_head("start", event.stream_sid, event.sequence_number)
            obj["start"] = {
                "streamSid": event.stream_sid, "accountSid": event.account_sid,
                "callSid": event.call_sid, "tracks": list(event.tracks),
                "customParameters": dict(event.custom_parameters),
                "mediaFormat": {"encoding": event.encoding, "sampleRate": event.sample_rate,
                                "channels": event.channels},
            }
            return _dumps(obj)
        case TwilioMedia():
            obj = _twilio_head("media", event.stream_sid, event.sequence_number)
            obj["media"] = {"track": event.track, "chunk": str(event.chunk),
                            "timestamp": str(event.timestamp_ms),
                            "payload": base64.b64encode(event.payload).decode("ascii")}
            return _dumps(obj)
        case TwilioMark(name, sid, seq):
            obj = _twilio_head("mark", sid, seq)
            obj["mark"] = {"name": name}
            return _dumps(obj)
        case TwilioClear(sid):
            return _dumps({"event": "clear", "streamSid": sid})
        case TwilioDtmf(digit, sid, track, seq):
            obj = _twilio_head("dtmf", sid, seq)
            obj["dtmf"] = {"track": track, "digit": digit}
            return _dumps(obj)
        case TwilioStop(sid, account_sid, call_sid, seq):
            obj = _twilio_head("stop", sid, seq)
            obj["stop"] = {"accountSid": account_sid, "callSid": call_sid}
            return _dumps(obj)
        case Unknown(raw, _) if isinstance(raw, str):
            return raw
    raise ProtocolError(f"{type(event).__name__} has no Twilio form")


def _twilio_head(kind: str, sid: str, seq: int) -> dict[str, Any]:
    obj: dict[str, Any] = {"event": kind}
    if seq:
        obj["sequenceNumber"] = str(seq)
    obj["streamSid"] = sid
    return obj


# --- the client's side of one connection -------------------------------------------------------

class State(enum.Enum):
    """Connection state of :class:`WebClientProtocol`."""

    OPEN = 1
    CLOSED = 2


class WebClientProtocol:
    """The client side of one audio-websocket connection, without I/O.

    Feed received frame payloads to :meth:`receive_text` / :meth:`receive_binary`, then call
    :meth:`events_received` for the events they produced. Queue outgoing frames with
    :meth:`send_audio`, :meth:`send_ping`, :meth:`send_pong`, then hand :meth:`data_to_send`'s
    payloads (``bytes`` → binary frame, ``str`` → text frame) to the websocket. When the peer
    closes, call :meth:`receive_close`; ``send_*`` then raise :class:`ProtocolError`.

    ``twilio=True`` speaks the Twilio form instead (every frame a JSON text frame; mic audio goes
    out as ``media`` events on ``stream_sid``). Malformed frames never raise: they become
    :class:`Unknown` events and are counted in :attr:`malformed`.

    Args:
        twilio: speak Twilio Media Streams instead of the web protocol.
        stream_sid: the Twilio stream id used for outgoing media.
        answer_pings: queue a ``pong`` for every server ``ping`` (older servers send them).

    >>> p = WebClientProtocol()
    >>> p.receive_text("clear"); p.receive_binary(b"\\x00\\x00"); p.receive_text("{bad")
    >>> [type(e).__name__ for e in p.events_received()], p.malformed
    (['Clear', 'AgentAudio', 'Unknown'], 1)
    >>> p.send_audio(b"\\x01\\x00"); p.send_ping(); p.data_to_send()
    [b'\\x01\\x00', 'ping']
    """

    def __init__(self, *, twilio: bool = False, stream_sid: str = "",
                 answer_pings: bool = True) -> None:
        self.twilio = twilio
        self.stream_sid = stream_sid
        self.answer_pings = answer_pings
        self.state = State.OPEN
        self.malformed = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._events: list[Event] = []
        self._out: list[str | bytes] = []
        self._chunk = 0

    # --- receiving -----------------------------------------------------------------------------
    def receive_text(self, text: str) -> None:
        """Feed the payload of one text frame from the server."""
        self._add(decode_twilio(text) if self.twilio else decode_server_text(text))

    def receive_binary(self, data: bytes) -> None:
        """Feed the payload of one binary frame from the server."""
        if self.twilio:
            self._add(Unknown(bytes(data), "binary frame on a Twilio stream"))
        else:
            self._add(decode_server_binary(data))

    def receive_close(self, code: int | None, reason: str = "") -> None:
        """The server closed the connection with ``code`` and ``reason``."""
        self.close_code, self.close_reason = code, reason
        self._set_state(State.CLOSED)

    def _add(self, event: Event) -> None:
        if isinstance(event, Unknown):
            self.malformed += 1
            logger.warning("unrecognised frame (%s): %.120r", event.reason, event.raw)
        elif isinstance(event, TwilioStart) and not self.stream_sid:
            self.stream_sid = event.stream_sid
        elif isinstance(event, Ping) and self.answer_pings and self.state is State.OPEN:
            self._out.append("pong")
        self._events.append(event)

    def events_received(self) -> list[Event]:
        """The events decoded since the last call, in frame order (hands the list over)."""
        events, self._events = self._events, []
        return events

    # --- sending -------------------------------------------------------------------------------
    def send_audio(self, audio: bytes) -> None:
        """Queue one frame of microphone audio (already in the call's encoding).

        Raises:
            ProtocolError: the connection is closed.
        """
        self._check_open()
        if self.twilio:
            self._chunk += 1
            self._out.append(encode_twilio(TwilioMedia(bytes(audio), self.stream_sid, "inbound",
                                                       self._chunk)))
        else:
            self._out.append(bytes(audio))

    def send_start(self, call_sid: str = "", encoding: str = "audio/x-mulaw",
                   sample_rate: int = 8000) -> None:
        """Queue Twilio's opening ``connected`` and ``start`` frames (Twilio form only)."""
        self._check_open()
        if self.twilio:
            self._out.append(encode_twilio(TwilioConnected()))
            self._out.append(encode_twilio(TwilioStart(
                self.stream_sid, call_sid=call_sid, encoding=encoding, sample_rate=sample_rate,
                sequence_number=1)))

    def send_stop(self) -> None:
        """Queue Twilio's closing ``stop`` frame (Twilio form only)."""
        self._check_open()
        if self.twilio:
            self._out.append(encode_twilio(TwilioStop(self.stream_sid)))

    def send_ping(self) -> None:
        """Queue a heartbeat ``ping`` (web form only; a no-op on Twilio streams)."""
        self._check_open()
        if not self.twilio:
            self._out.append("ping")

    def send_pong(self) -> None:
        """Queue a ``pong`` answer (web form only)."""
        self._check_open()
        if not self.twilio:
            self._out.append("pong")

    def data_to_send(self) -> list[str | bytes]:
        """The payloads queued since the last call (hands the list over)."""
        out, self._out = self._out, []
        return out

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise ProtocolError(f"cannot send on a {self.state.name.lower()} connection")

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            logger.debug("connection %s -> %s", self.state.name, state.name)
            self.state = state


def _json_object(text: str) -> dict | Unknown:
    """The JSON object in ``text``, or an :class:`Unknown` saying why there is none."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return Unknown(text, "invalid JSON")
    if not isinstance(obj, dict):
        return Unknown(text, "JSON frame is not an object")
    return obj
