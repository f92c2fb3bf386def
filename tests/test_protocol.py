"""The sans-I/O codec: round-trips of every event in both forms, and a tolerant reader."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio_helpers import twilio_messages

from aligner.errors import ProtocolError
from aligner.wire.events import (
    AgentAudio,
    AlignedAudio,
    Clear,
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
from aligner.wire.protocol import (
    State,
    WebClientProtocol,
    decode_client_binary,
    decode_client_text,
    decode_server_binary,
    decode_server_text,
    decode_twilio,
    encode,
    encode_twilio,
)

_json_scalar = (st.none() | st.booleans() | st.integers(-2**53, 2**53)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
_json = st.recursive(_json_scalar, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
_finite = st.floats(allow_nan=False, allow_infinity=False)


def _extra(reserved):
    keys = st.text(max_size=10).filter(lambda k: k not in reserved)
    return st.dictionaries(keys, _json, max_size=3).map(lambda d: tuple(sorted(d.items())))


_aligned = st.builds(AlignedAudio, st.binary(max_size=300), st.text(max_size=40),
                     st.text(max_size=10),
                     _extra({"event_type", "audio", "text", "content"}))
_turn = st.builds(TranscriptTurn, st.sampled_from(["agent", "user"]), st.text(max_size=40),
                  st.lists(st.builds(TranscriptWord, st.text(max_size=8), _finite, _finite),
                           max_size=3).map(tuple))
_update = st.builds(Update, st.lists(_turn, max_size=4).map(tuple),
                    st.none() | st.sampled_from(["agent_turn", "user_turn"]),
                    _extra({"event_type", "transcript", "turntaking"}))
_server_events = (_aligned | _update | st.builds(Metadata, _json)
                  | st.builds(AgentAudio, st.binary(max_size=300))
                  | st.sampled_from([Clear(), Ping(), Pong()]))

_sid = st.text(max_size=12)
_seq = st.integers(0, 10**9)
_twilio_events = (
    st.builds(TwilioConnected, st.text(max_size=8), st.text(max_size=8))
    | st.builds(TwilioStart, _sid, _sid, _sid, st.lists(st.text(max_size=8), max_size=2).map(tuple),
                st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
                .map(lambda d: tuple(sorted(d.items()))),
                st.text(max_size=12), st.integers(8000, 48000), st.integers(1, 2), _seq)
    | st.builds(TwilioMedia, st.binary(max_size=200), _sid, st.sampled_from(["inbound", "outbound"]),
                _seq, _seq, _seq)
    | st.builds(TwilioMark, st.text(max_size=10), _sid, _seq)
    | st.builds(TwilioClear, _sid)
    | st.builds(TwilioDtmf, st.text(min_size=1, max_size=1), _sid, st.text(max_size=12), _seq)
    | st.builds(TwilioStop, _sid, _sid, _sid, _seq)
)


@given(_server_events)
def test_every_server_event_round_trips(event):
    payload = encode(event)
    decoded = (decode_server_binary(payload) if isinstance(payload, bytes)
               else decode_server_text(payload))
    assert decoded == event


@given(st.binary(max_size=300) | st.sampled_from(["ping", "pong"]))
def test_every_client_event_round_trips(payload):
    event = (decode_client_binary(payload) if isinstance(payload, bytes)
             else decode_client_text(payload))
    assert isinstance(event, MicAudio | Ping | Pong)
    assert encode(event) == payload


@given(_twilio_events)
def test_every_twilio_event_round_trips(event):
    assert decode_twilio(encode_twilio(event)) == event


_frames = (st.text() | st.binary()
           | _json.map(json.dumps)
           | st.dictionaries(st.sampled_from(["event_type", "audio", "text", "content", "transcript",
                                              "turntaking", "metadata", "event", "media", "start",
                                              "mark", "dtmf", "stop", "streamSid",
                                              "sequenceNumber"]),
                             _json | st.text(alphabet="AQgw=+/!", max_size=12), max_size=5)
           .map(json.dumps))


@settings(max_examples=150)
@given(_frames)
def test_arbitrary_frames_never_raise_and_unrecognised_ones_become_unknown(frame):
    for decode in (decode_server_text, decode_twilio, decode_client_text):
        event = decode(frame)
        assert event is not None
        if isinstance(event, Unknown):
            assert event.raw == frame and event.reason
    p = WebClientProtocol()
    (p.receive_binary if isinstance(frame, bytes) else p.receive_text)(frame)
    events = p.events_received()
    assert len(events) == 1
    assert p.malformed == sum(isinstance(e, Unknown) for e in events)


def test_tolerant_reader_rules():
    # a string "audio" field makes an alignment chunk whatever the event_type; text under content
    ev = decode_server_text('{"event_type": "agent_audio", "audio": "AA==", "content": "Hi",'
                            ' "seq": 3}')
    assert ev == AlignedAudio(b"\x00", "Hi", "agent_audio", (("seq", 3),))
    # no text at all: a silent chunk with empty text
    assert decode_server_text('{"audio": ""}') == AlignedAudio(b"", "", "audio")
    # base64 wrapped over lines is fine, garbage is not
    assert decode_server_text('{"audio": "AA\\nAA"}').audio == b"\x00\x00\x00"
    assert isinstance(decode_server_text('{"audio": "A*A="}'), Unknown)
    # unknown fields of an update are kept, unknown event types are kept whole
    up = decode_server_text('{"event_type": "update", "transcript": [], "new": [1]}')
    assert up == Update((), None, (("new", [1]),))
    unk = decode_server_text('{"event_type": "surprise"}')
    assert isinstance(unk, Unknown) and "surprise" in unk.reason
    assert decode_server_text(" clear\n") == Clear()
    assert isinstance(decode_server_text('{"event_type": "update", "transcript": 5}'), Unknown)


def test_encode_rejects_events_without_a_wire_form():
    with pytest.raises(ProtocolError):
        encode(TwilioClear("x"))
    with pytest.raises(ProtocolError):
        encode_twilio(Clear())
    with pytest.raises(ProtocolError):
        encode(Metadata(object()))


def test_client_protocol_queues_and_answers_and_closes():
    p = WebClientProtocol()
    p.receive_text("ping")
    assert p.data_to_send() == ["pong"]
    p.send_audio(b"\x01\x02")
    p.send_ping()
    assert p.data_to_send() == [b"\x01\x02", "ping"]
    assert p.data_to_send() == []
    p.receive_close(1011, "boom")
    assert p.state is State.CLOSED and (p.close_code, p.close_reason) == (1011, "boom")
    with pytest.raises(ProtocolError):
        p.send_audio(b"\x00\x00")


def test_twilio_client_sends_media_on_its_stream():
    p = WebClientProtocol(twilio=True)
    p.receive_text(encode_twilio(TwilioStart("MZ9")))
    p.send_audio(b"\xff" * 160)
    (frame,) = p.data_to_send()
    media = decode_twilio(frame)
    assert isinstance(media, TwilioMedia) and media.stream_sid == "MZ9"
    assert media.payload == b"\xff" * 160 and media.chunk == 1
    p.receive_binary(b"\x00")
    assert isinstance(p.events_received()[-1], Unknown) and p.malformed == 1


@settings(max_examples=400)
@given(twilio_messages)
def test_any_twilio_message_decodes_to_an_event_that_round_trips_or_to_unknown(text):
    event = decode_twilio(text)
    if isinstance(event, Unknown):
        assert event.raw == text and event.reason
    else:  # what the codec accepts it can write back, and reads again the same
        assert decode_twilio(encode_twilio(event)) == event
    p = WebClientProtocol(twilio=True)
    p.receive_text(text)
    assert len(p.events_received()) == 1
