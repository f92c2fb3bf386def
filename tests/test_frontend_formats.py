"""Front-end formats (TalkingHead, ElevenLabs, Azure, Polly) against their documented shapes.

The timeline is a real call built by the product's own path (espeak-ng speech cut into
alignment chunks, a capture, the session and the aligner), with a barge-in: the agent's answer
is cut by a ``clear`` at 2.0 s, so every format must leave out what was never heard.
"""

from __future__ import annotations

import json
import re

import pytest
from session_helpers import AGENT_TEXT, barge_in_timeline

import renderers
from aligner.timeline import Char, Phone, Timeline, Utterance, Word
from aligner.visemes import Motion, timeline_cues

CLEAR = 2.0


@pytest.fixture(scope="module")
def call(tmp_path_factory) -> Timeline:
    return barge_in_timeline(str(tmp_path_factory.mktemp("call")))


def _heard(tl: Timeline) -> list[Word]:
    return [w for u in tl.speaker("agent") for w in u.heard_words]


def _render(name: str, tl: Timeline, **options) -> str:
    return renderers.get(name)(**options).render_string(tl)


# --- TalkingHead ------------------------------------------------------------------------------
# Shape from met4citizen/TalkingHead, README.md ("speakAudio(audio, [opt={}], [onsubtitles=null])":
# "Property words is an array of words, wtimes is an array of corresponding starting times in
# milliseconds, and wdurations an array of durations in milliseconds. If the Oculus viseme IDs
# are known, they can be given in optional visemes, vtimes and vdurations arrays") and
# modules/talkinghead.mjs (typedef Audio; speakAudio reads r.visemes only inside `if (r.words)`;
# `this.visemeNames = ['aa','E','I','O','U','PP','SS','TH','DD','FF','kk','nn','RR','CH','sil']`,
# each viseme drives the morph target 'viseme_' + name).
TALKINGHEAD_VISEMES = {"aa", "E", "I", "O", "U", "PP", "SS", "TH", "DD", "FF", "kk", "nn", "RR",
                       "CH", "sil"}


def test_talkinghead_speakaudio_object(call):
    doc = json.loads(_render("talkinghead", call))
    assert set(doc) == {"words", "wtimes", "wdurations", "visemes", "vtimes", "vdurations"}
    assert len(doc["words"]) == len(doc["wtimes"]) == len(doc["wdurations"])
    assert len(doc["visemes"]) == len(doc["vtimes"]) == len(doc["vdurations"]) > 10
    for key in ("wtimes", "wdurations", "vtimes", "vdurations"):
        assert all(isinstance(x, int) and x >= 0 for x in doc[key]), key  # milliseconds
    # the words heard, as written (punctuation: TalkingHead shows them as subtitles), in ms
    heard = _heard(call)
    assert [re.sub(r"\W", "", w) for w in doc["words"]] == [w.word for w in heard]
    assert doc["words"][0] == "Sure," and "four" in doc["words"] and "people" not in doc["words"]
    assert doc["wtimes"] == [round(w.start * 1000) for w in heard]
    assert all(t + d <= CLEAR * 1000 for t, d in zip(doc["wtimes"], doc["wdurations"], strict=True))
    # visemes: TalkingHead's names, contiguous (no overlap), nothing after the clear, no pauses
    assert set(doc["visemes"]) <= TALKINGHEAD_VISEMES - {"sil"}
    assert {"PP", "aa"} <= set(doc["visemes"])  # the closed lips of "book", "table"; open "a"
    ends = [t + d for t, d in zip(doc["vtimes"], doc["vdurations"], strict=True)]
    assert all(e <= t for e, t in zip(ends, doc["vtimes"][1:], strict=False))
    assert ends[-1] <= CLEAR * 1000
    # each viseme starts when its sound does (TalkingHead anticipates it by itself): the mouth
    # motion without a lead, and the lips close around the B of "book"
    sounding = [c for c in timeline_cues(call, "talkinghead", motion=Motion(lead=0.0),
                                            retimed=True)
                if c.viseme != "sil"]
    assert doc["vtimes"] == [round(c.start * 1000) for c in sounding]
    u = call.speaker("agent")[0]
    b = next(p for p in u.phones if p.phone == "B")
    assert any(v == "PP" and t - 40 <= b.start * 1000 <= t + d
               for v, t, d in zip(doc["visemes"], doc["vtimes"], doc["vdurations"], strict=True))


def test_talkinghead_names_are_the_oculus_set_renamed(call):
    th = [c.viseme for c in timeline_cues(call, "talkinghead")]
    ovr = [c.viseme for c in timeline_cues(call, "oculus")]
    rename = {"ih": "I", "oh": "O", "ou": "U"}
    assert th == [rename.get(v, v) for v in ovr]


# --- ElevenLabs -------------------------------------------------------------------------------
# Shape from elevenlabs/elevenlabs-python, src/elevenlabs/types/character_alignment_response_model.py
# (CharacterAlignmentResponseModel: characters: List[str], character_start_times_seconds:
# List[float], character_end_times_seconds: List[float]), the `alignment` of
# audio_with_timestamps_response.py.

def test_elevenlabs_character_alignment(call):
    doc = json.loads(_render("elevenlabs", call))
    assert set(doc) == {"characters", "character_start_times_seconds",
                        "character_end_times_seconds"}
    chars, starts, ends = (doc["characters"], doc["character_start_times_seconds"],
                           doc["character_end_times_seconds"])
    assert len(chars) == len(starts) == len(ends)
    assert all(isinstance(c, str) and len(c) == 1 for c in chars)
    assert all(isinstance(t, float | int) for t in starts + ends)
    # the heard text, spaces and punctuation included, up to the last word heard
    text = "".join(chars)
    assert AGENT_TEXT.startswith(text) and text.endswith("four")
    assert starts == sorted(starts) and all(a <= b for a, b in zip(starts, ends, strict=True))
    assert ends[-1] <= CLEAR
    # a word's characters lie inside the word
    for w in _heard(call):
        span = range(w.char_start, w.char_end)
        assert all(w.start - 1e-3 <= starts[i] and ends[i] <= w.end + 1e-3 for i in span), w


def test_elevenlabs_joins_utterances_with_a_space():
    def utt(text, t0):
        chars = tuple(Char(c, t0 + 0.1 * i, t0 + 0.1 * (i + 1)) for i, c in enumerate(text))
        return Utterance("agent", t0, t0 + 0.1 * len(text), text,
                         words=(Word(text, t0, t0 + 0.1 * len(text), 0, len(text)),), chars=chars)

    tl = Timeline(utterances=(utt("Hi", 0.0), utt("Yes", 2.0)), duration=3.0)
    doc = json.loads(_render("elevenlabs", tl))
    assert "".join(doc["characters"]) == "Hi Yes"
    assert doc["character_start_times_seconds"][2] == 0.2  # the space fills the pause
    assert doc["character_end_times_seconds"][2] == 2.0


# --- Azure ------------------------------------------------------------------------------------
# Shape from the Azure Speech SDK reference, SpeechSynthesisVisemeEventArgs (C++/C#: "AudioOffset:
# Audio offset, in ticks (100 nanoseconds)", uint64; "VisemeId", uint32), and the viseme ids of
# the Speech Platform's SPVISEMES (Disney 13) table that Azure keeps: 0 silence ... 21 p, b, m.

def test_azure_viseme_events(call):
    lines = _render("azure", call).splitlines()
    events = [json.loads(x) for x in lines]
    assert all(list(e) == ["AudioOffset", "VisemeId"] for e in events)
    assert all(re.fullmatch(r'\{"AudioOffset":\d+,"VisemeId":\d+\}', x) for x in lines)
    assert events[0] == {"AudioOffset": 0, "VisemeId": 0}
    offsets = [e["AudioOffset"] for e in events]
    assert offsets == sorted(offsets) and len(events) > 10
    assert all(0 <= e["VisemeId"] <= 21 for e in events)
    assert all(a["VisemeId"] != b["VisemeId"] for a, b in zip(events, events[1:], strict=False))
    # ticks of 100 ns, each event when its sound starts (as Azure's): the motion without a lead
    cues = timeline_cues(call, "azure", motion=Motion(lead=0.0), retimed=True)
    assert events == [{"AudioOffset": round(c.start * 10_000_000), "VisemeId": c.viseme}
                      for c in cues]
    assert 21 in {e["VisemeId"] for e in events}  # the closed lips of "book"
    assert events[-1]["VisemeId"] == 0 and events[-1]["AudioOffset"] <= CLEAR * 10_000_000


def test_azure_live_follows_batch(call):
    batch = [json.loads(x) for x in _render("azure", call).splitlines()]
    live = renderers.get("azure")().live()
    got = live.feed(call, 1.0) + live.feed(call, call.duration) + live.finish(call)
    assert all(list(e) == ["AudioOffset", "VisemeId"] for e in got)
    assert got[-1] == batch[-1] == {"AudioOffset": round(CLEAR * 10_000_000), "VisemeId": 0}

    def at(events, t):  # the viseme shown at t (ticks)
        return next(e["VisemeId"] for e in reversed(events) if e["AudioOffset"] <= t)

    grid = range(0, round(CLEAR * 10_000_000), 100_000)  # 10 ms
    assert sum(at(got, t) == at(batch, t) for t in grid) / len(grid) > 0.9


# --- Polly ------------------------------------------------------------------------------------
# Shape from the Amazon Polly developer guide: "Speech mark output" (line-delimited JSON; time in
# ms from the start of the audio; type sentence|word|viseme|ssml; start/end byte offsets, not
# characters, into the input text; value) and "Speech marks without SSML example", whose lines
# read {"time":0,"type":"sentence","start":0,"end":23,"value":"Mary had a little lamb."},
# {"time":6,"type":"word","start":0,"end":4,"value":"Mary"}, {"time":6,"type":"viseme","value":"p"}.
# The en-US viseme names are those of "Phoneme and viseme tables" (English, US).
POLLY_VISEMES = {"p", "t", "S", "T", "f", "k", "i", "r", "s", "u", "@", "a", "e", "E", "o", "O",
                 "sil"}
POLLY_LINE = {
    "sentence": r'\{"time":\d+,"type":"sentence","start":\d+,"end":\d+,"value":".+"\}',
    "word": r'\{"time":\d+,"type":"word","start":\d+,"end":\d+,"value":".+"\}',
    "viseme": r'\{"time":\d+,"type":"viseme","value":"[^"]+"\}',
}


def test_polly_speech_marks_have_the_documented_shape(call):
    lines = _render("polly", call).splitlines()
    marks = [json.loads(x) for x in lines]
    for line, m in zip(lines, marks, strict=True):
        assert re.fullmatch(POLLY_LINE[m["type"]], line), line
    kinds = [m["type"] for m in marks]
    assert kinds[0] == "sentence" and kinds.count("sentence") == 1  # the second was never heard
    assert marks[0]["value"] == "Sure, I can book a table for four people at seven tonight."
    raw = AGENT_TEXT.encode("utf-8")
    for m in marks:
        if m["type"] != "viseme":
            assert raw[m["start"]:m["end"]].decode("utf-8") == m["value"]
        else:
            assert m["value"] in POLLY_VISEMES
    words = [m for m in marks if m["type"] == "word"]
    assert [m["value"] for m in words] == [w.word for w in _heard(call)]
    times = [m["time"] for m in marks]
    assert times == sorted(times)
    # as in Polly's example, a viseme mark is when its sound starts: the "p" of "book" at the
    # word's onset (its burst; the word itself starts with the closure)
    book = next(w for w in _heard(call) if w.word == "book")
    assert {"time": round(book.onset * 1000), "type": "viseme", "value": "p"} in marks


def test_polly_offsets_are_bytes_and_sentences_order_first():
    text = "Café ouvert. Yes!"
    words = (Word("Café", 0.1, 0.5, 0, 4), Word("ouvert", 0.5, 0.9, 5, 11),
             Word("Yes", 1.2, 1.5, 13, 16))
    phones = (Phone("K", 0.1, 0.2, 0), Phone("AE", 0.2, 0.3, 0), Phone("F", 0.3, 0.4, 0),
              Phone("EY", 0.4, 0.5, 0), Phone("Y", 1.2, 1.3, 2), Phone("EH", 1.3, 1.4, 2),
              Phone("S", 1.4, 1.5, 2))
    tl = Timeline(utterances=(Utterance("agent", 0.1, 1.5, text, words=words, phones=phones),),
                  duration=2.0)
    lines = _render("polly", tl).splitlines()
    assert lines[0] == '{"time":100,"type":"sentence","start":0,"end":13,"value":"Café ouvert."}'
    assert lines[1] == '{"time":100,"type":"word","start":0,"end":5,"value":"Café"}'
    assert lines[2] == '{"time":100,"type":"viseme","value":"k"}'
    assert '{"time":1200,"type":"sentence","start":14,"end":18,"value":"Yes!"}' in lines
    assert '{"time":600,"type":"word","start":6,"end":12,"value":"ouvert"}' not in lines  # 500
    assert '{"time":500,"type":"word","start":6,"end":12,"value":"ouvert"}' in lines


def test_front_end_renderers_are_registered():
    names = renderers.available()
    for name in ("talkinghead", "elevenlabs", "azure"):
        assert name in names and not names[name].startswith("(broken"), names.get(name)
