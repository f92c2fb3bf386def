"""Twilio Media Streams messages as Twilio sends them, and damaged ones: fields of a real
message replaced by any JSON value, or dropped, a few at a time (for fuzzing the readers of
Twilio frames)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

__all__ = ["TWILIO", "twilio_messages"]

TWILIO = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
     "start": {"streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
               "customParameters": {"a": "b"},
               "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    {"event": "media", "sequenceNumber": "2", "streamSid": "MZ1",
     "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": "//8="}},
    {"event": "mark", "sequenceNumber": "3", "streamSid": "MZ1", "mark": {"name": "end"}},
    {"event": "dtmf", "sequenceNumber": "4", "streamSid": "MZ1",
     "dtmf": {"track": "inbound_track", "digit": "1"}},
    {"event": "stop", "sequenceNumber": "5", "streamSid": "MZ1",
     "stop": {"accountSid": "AC1", "callSid": "CA1"}},
    {"event": "clear", "streamSid": "MZ1"},
]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))


def _mutated(message: int, changes: list[tuple[int, object, bool]]) -> str:
    doc = json.loads(json.dumps(TWILIO[message]))
    for pick, value, drop in changes:
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = paths[pick % len(paths)]
        node = doc
        for key in path[:-1]:
            node = node[key]
        if drop:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return json.dumps(doc)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats() | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=3), max_leaves=8)

#: A Twilio message (text) with one to three fields replaced by any JSON value, or dropped.
twilio_messages = st.builds(_mutated, st.integers(0, len(TWILIO) - 1), st.lists(
    st.tuples(st.integers(0, 40), _json, st.booleans()), min_size=1, max_size=3))
