"""timeline.json: what the loader takes from outside (any JSON) and what it gives renderers."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

import renderers
from aligner.timeline import Timeline

_value = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3), max_leaves=6)
_word = {"word": "Hi", "start": 0.1, "end": 0.4, "char_start": 0, "char_end": 2, "played": True,
         "onset": 0.12, "confidence": 0.9}
_document = {
    "version": 1, "duration": 2.0, "metadata": {"call_id": "c1"},
    "utterances": [{"speaker": "agent", "start": 0.1, "end": 0.4, "text": "Hi", "interrupted": False,
                    "words": [_word], "chars": [{"char": "H", "start": 0.1, "end": 0.2}],
                    "phones": [{"phone": "HH", "start": 0.1, "end": 0.2, "word_index": 0}],
                    "source": "text"}],
    "events": [{"t": 0.3, "kind": "clear", "data": None}],
    "audio": [{"speaker": "agent", "sample_rate": 16000, "path": "agent.wav"}],
}
_PATHS = [(), ("version",), ("duration",), ("metadata",), ("utterances",),
          ("utterances", 0), ("utterances", 0, "speaker"), ("utterances", 0, "start"),
          ("utterances", 0, "end"), ("utterances", 0, "text"), ("utterances", 0, "interrupted"),
          ("utterances", 0, "words"), ("utterances", 0, "words", 0),
          ("utterances", 0, "words", 0, "word"), ("utterances", 0, "words", 0, "start"),
          ("utterances", 0, "words", 0, "end"), ("utterances", 0, "words", 0, "char_start"),
          ("utterances", 0, "words", 0, "char_end"), ("utterances", 0, "words", 0, "played"),
          ("utterances", 0, "words", 0, "onset"), ("utterances", 0, "words", 0, "confidence"),
          ("utterances", 0, "chars", 0, "start"),
          ("utterances", 0, "chars", 0, "char"), ("utterances", 0, "phones", 0, "phone"),
          ("utterances", 0, "phones", 0, "word_index"), ("utterances", 0, "source"),
          ("events",), ("events", 0, "t"), ("events", 0, "kind"), ("events", 0, "data"),
          ("audio", 0), ("audio", 0, "sample_rate"), ("audio", 0, "path"),
          ("audio", 0, "speaker")]


def _replaced(path: tuple, value) -> str:
    doc = json.loads(json.dumps(_document))
    if not path:
        return json.dumps(value)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc)


@settings(max_examples=400, deadline=None)
@example([((), None)])  # found: not an object
@example([(("utterances", 0, "start"), "0.1")])  # a string time reached the renderers
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _value), min_size=1, max_size=3)
       | st.text(max_size=40).map(lambda s: [((), s)]))
def test_any_document_loads_as_a_timeline_or_raises_value_error(changes):
    text = json.dumps(_document)
    for path, value in changes:
        text = _replaced(path, value) if path or not isinstance(value, str) else value
    try:
        tl = Timeline.from_json(text)
    except ValueError:
        return  # the documented error (a JSON syntax error is one too)
    # what it gives is a timeline the renderers can use, and that saves as it loaded (to the
    # microsecond times are saved with)
    assert Timeline.from_json(tl.to_json()).to_json() == tl.to_json()
    for name in ("srt", "ass", "json", "visemes"):
        renderers.get(name)().render_string(tl)
