"""Viseme sets, motion, live stream, renderers and the ``aligner visemes`` command.

Speech is real: espeak-ng synthesises it and reports its phone times (the ground truth).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import wave
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import renderers
from aligner.audio import resample
from aligner.cli import main
from aligner.speech.synthesis import synthesize
from aligner.timeline import AudioTrack, Phone, Timeline, TimelineEvent, Utterance, Word
from aligner.visemes import (
    METHODS,
    Cue,
    Motion,
    VisemeStream,
    blendshape_frames,
    cues,
    estimate_phones,
    heard_phones,
    pause_after,
    pronunciation_variants,
    refine_alignment,
    refine_phones,
    retime,
    text_phones,
    timeline_cues,
)
from aligner.visemes.sets import (
    ARKIT_SHAPES,
    ARKIT_WEIGHTS,
    ARPABET,
    SETS,
    espeak_phones,
    espeak_to_arpabet,
    get_set,
)

TEXT = "Maybe people believe him, but we moved the meeting to Monday."
TEXT2 = "Please bring your photo card, and a pen."
TEXT3 = "Would you like me to send a reminder by text message before your visit?"


@cache
def _spoken(text: str, voice: str = "en-us"):
    """(samples, rate, ARPAbet truth phones) of ``text`` spoken by espeak-ng."""
    syn = synthesize(text, voice=voice)
    return syn.samples, syn.sample_rate, espeak_phones(syn.phones)


def _timeline(text: str = TEXT, offset: float = 0.5, clear: float | None = None) -> Timeline:
    """One agent utterance of real espeak speech starting at ``offset``, cut by ``clear``."""
    samples, rate, phones = _spoken(text)
    ph = [Phone(p.phone, p.start + offset, p.end + offset, p.word_index) for p in phones]
    end = offset + len(samples) / rate
    events = ()
    if clear is not None:
        ph = [Phone(p.phone, p.start, min(p.end, clear), p.word_index) for p in ph
              if p.start < clear]
        end = clear
        events = (TimelineEvent(clear, "clear"),)
    words = tuple(Word(m.group(), offset, end, m.start(), m.end())
                  for m in re.finditer(r"\w+", text))
    u = Utterance("agent", offset, end, text, interrupted=clear is not None, words=words,
                  phones=tuple(ph))
    return Timeline(utterances=(u,), events=events, duration=end + 0.5)


def _at(cue_list, t):
    return next(c for c in cue_list if c.start <= t < c.end)


# --- sets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SETS))
def test_every_set_covers_every_arpabet_phone(name):
    vs = get_set(name)
    assert len(ARPABET) == 39
    for phone in (*ARPABET, "sil"):
        shapes = vs.shapes(phone)
        assert shapes and all(s in vs.visemes for s in shapes), (name, phone)
        assert vs.shapes(phone + "1") == shapes  # stress digits are ignored
    assert vs.shapes("sil") == (vs.rest,)
    assert {vs.shapes(p)[0] for p in ["P", "B", "M"]} == {vs.closed}
    assert set(vs.visemes) <= {s for p in (*ARPABET, "sil") for s in vs.shapes(p)} | {vs.rest}


def test_documented_set_inventories():
    assert SETS["oculus"].visemes == tuple(["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"])
    assert SETS["azure"].visemes == tuple(range(22))
    assert SETS["rhubarb"].visemes == tuple("ABCDEFGHX")
    assert SETS["azure"].shapes("AY") == (11,) and SETS["azure"].shapes("S") == (15,)
    assert SETS["polly"].shapes("F") == ("f",) and SETS["oculus"].shapes("TH") == ("TH",)
    assert set(ARKIT_WEIGHTS) == set(SETS["oculus"].visemes)
    with pytest.raises(ValueError, match="known: oculus"):
        get_set("klingon")


def test_espeak_mnemonics_map_to_arpabet():
    _samples, _rate, phones = _spoken(TEXT)
    assert {p.phone for p in phones} <= {*ARPABET, "sil"}
    assert espeak_to_arpabet("_:") == ("sil",) and espeak_to_arpabet("'eI") == ("EY",)


# --- motion ----------------------------------------------------------------------------------

@st.composite
def _phone_runs(draw):
    names = draw(st.lists(st.sampled_from((*ARPABET, "sil")), min_size=1, max_size=30))
    durs = draw(st.lists(st.floats(0.005, 0.3), min_size=len(names), max_size=len(names)))
    t, out = draw(st.floats(0, 1)), []
    for n, d in zip(names, durs, strict=True):
        out.append(Phone(n, t, t + d))
        t += d + draw(st.sampled_from((0.0, 0.0, 0.05)))
    return out


@settings(max_examples=150, deadline=None)
@given(_phone_runs(), st.sampled_from(sorted(SETS)), st.floats(0.04, 0.08), st.floats(0, 1))
def test_cues_are_contiguous_and_bilabials_always_close(phones, name, lead, where):
    motion = Motion(lead=lead, min_hold=0.04)
    end = phones[-1].end + 0.2
    out = cues(phones, name, motion=motion, end=end)
    vs = get_set(name)
    # a clear anywhere: the mouth is at rest from it until the next phone that starts after it
    c = phones[0].start + where * (end - phones[0].start - 0.05)
    cut = cues(phones, name, motion=motion, end=end, clears=[c])
    nxt = min([p.start for p in phones if p.start >= c - 1e-9] + [end])
    assert any(x.clear and x.start == pytest.approx(c) for x in cut) or nxt - c < 0.05
    assert all(x.viseme == vs.rest for x in cut if x.start >= c - 1e-9 and x.end <= nxt - lead
               and x.start < nxt - lead - 0.05)
    assert out[0].start == 0.0 and out[-1].end == pytest.approx(end)
    for a, b in zip(out, out[1:], strict=False):
        assert a.end == pytest.approx(b.start) and a.viseme != b.viseme
    assert all(c.end > c.start for c in out)
    for p in phones:
        if p.phone in ("P", "B", "M"):
            # the lips close around the phone (anticipated by up to the lead), long enough to see
            closed = [c for c in out if c.viseme == vs.closed
                      and c.start < p.end + 1e-9 and c.end > p.start - lead - 1e-9]
            assert closed, (p, out)
            assert max(c.end - c.start for c in closed) >= motion.min_hold - 1e-9


def test_motion_anticipates_merges_and_relaxes_in_pauses():
    ph = [Phone("sil", 0.0, 0.3), Phone("AA", 0.3, 0.5), Phone("T", 0.5, 0.52),
          Phone("IY", 0.52, 0.7), Phone("sil", 0.7, 1.2), Phone("UW", 1.2, 1.4)]
    out = cues(ph, "oculus", motion=Motion(lead=0.06, min_hold=0.04), end=1.6)
    assert _at(out, 0.25).viseme == "aa"  # anticipation: the shape starts 60 ms early
    assert "DD" not in [c.viseme for c in out]  # 20 ms T merged into its neighbour
    assert _at(out, 0.9).viseme == "sil"  # relaxed in the pause
    assert _at(out, 1.5).viseme == "sil"  # and after the speech
    assert [c.viseme for c in cues(ph, "rhubarb", end=1.6)].count("X") == 3
    # AY glides from open to spread
    glide = cues([Phone("AY", 0.0, 0.3)], "rhubarb", motion=Motion(lead=0.0))
    assert [c.viseme for c in glide] == ["D", "B"]


def test_a_short_shape_holds_the_shape_before_so_the_next_keeps_its_lead():
    motion = Motion(lead=0.06, min_hold=0.04)
    out = cues([Phone("AA", 0.0, 0.2), Phone("T", 0.2, 0.22), Phone("IY", 0.22, 0.4)], "oculus",
               motion=motion, end=0.6)
    assert [c.viseme for c in out] == ["aa", "ih", "sil"]  # the 20 ms T is never seen
    assert _at(out, 0.155).viseme == "aa"  # the open mouth is held over its time
    assert _at(out, 0.16).start == pytest.approx(0.22 - motion.lead)  # IY keeps its lead
    # after a closure nothing is held: the next shape takes the short one's time
    out = cues([Phone("M", 0.1, 0.2), Phone("T", 0.2, 0.22), Phone("AA", 0.22, 0.4)], "oculus",
               motion=motion, end=0.6)
    assert [c.viseme for c in out] == ["sil", "PP", "aa", "sil"]
    assert _at(out, 0.15).start == pytest.approx(0.2 - motion.lead)


def test_the_mouth_anticipates_speech_but_relaxes_only_when_the_sound_stops():
    motion = Motion(lead=0.06, min_hold=0.04)
    out = cues([Phone("AA", 0.2, 0.5), Phone("sil", 0.5, 0.8), Phone("IY", 0.8, 1.0)], "oculus",
               motion=motion, end=1.2)
    assert [c.viseme for c in out] == ["sil", "aa", "sil", "ih", "sil"]
    assert out[1].start == pytest.approx(0.2 - motion.lead)  # opens ahead of the sound
    assert out[2].start == pytest.approx(0.5)  # the vowel is held to its end, then rest
    assert out[3].start == pytest.approx(0.8 - motion.lead)
    assert out[4].start == pytest.approx(1.0)  # the last sound is not cut short either


def test_clear_relaxes_the_mouth_at_once():
    full = timeline_cues(_timeline(TEXT))
    tl = _timeline(TEXT, clear=1.3)
    out = timeline_cues(tl)
    assert any(c.viseme != "sil" and c.start < 1.3 < c.end for c in full)  # mid-speech
    rest = _at(out, 1.3)
    assert rest.viseme == "sil" and rest.clear and rest.start == pytest.approx(1.3)
    assert all(c.viseme == "sil" for c in out if c.end > 1.3 + 1e-9)
    assert out[-2].end == pytest.approx(1.3)  # no anticipation across the clear
    # a second utterance after the clear still animates
    u2 = Utterance("agent", 2.0, 2.5, "ma", phones=(Phone("M", 2.0, 2.1), Phone("AA", 2.1, 2.5)))
    tl2 = Timeline(utterances=(*tl.utterances, u2), events=tl.events, duration=3.0)
    out2 = timeline_cues(tl2)
    assert _at(out2, 1.5).viseme == "sil" and _at(out2, 2.2).viseme == "aa"
    assert _at(out2, 1.99).viseme == "PP"


def test_blendshapes_tween_and_close_for_bilabials():
    out = cues([Phone("AA", 0.0, 0.2), Phone("M", 0.2, 0.23), Phone("AA", 0.23, 0.5)], "oculus",
               motion=Motion(lead=0.0, min_hold=0.03), end=0.6)
    times, w = blendshape_frames(out, fps=30, tween=0.1)
    assert w.shape == (19, len(ARKIT_SHAPES)) and times[1] == pytest.approx(1 / 30)
    jaw, close = ARKIT_SHAPES.index("jawOpen"), ARKIT_SHAPES.index("mouthClose")
    assert w[:, close].max() == pytest.approx(ARKIT_WEIGHTS["PP"][close])  # the M closes
    assert w[times >= 0.5, jaw].max() < w[3, jaw]  # relaxing at the end
    steps = np.abs(np.diff(w[:, jaw]))
    assert steps[(times[1:] < 0.19) & (times[1:] > 0.5)].size > 0 or steps.max() < 0.7  # tweened
    hard = blendshape_frames(out, fps=30, tween=0.0)[1]
    assert np.abs(np.diff(hard[:, jaw])).max() > steps.max() - 1e-9
    with pytest.raises(ValueError, match="oculus"):
        blendshape_frames(cues([Phone("AA", 0, 0.2)], "rhubarb"), fps=30)


# --- live --------------------------------------------------------------------------------------

def _chunks(phones, n=4):
    """Split phones into ``n`` chunks at word boundaries (pauses)."""
    size = len(phones) // n + 1
    return [list(phones[i:i + size]) for i in range(0, len(phones), size)]


def test_live_stream_emits_ahead_of_the_audio_and_matches_batch():
    tl = _timeline(TEXT, offset=0.5)  # audio plays from 0.5 s (100 ms jitter buffer)
    phones = list(tl.utterances[0].phones)
    batch = timeline_cues(tl)
    live = renderers.get("visemes")().live()
    # the agent streams 3x faster than real time: a chunk whose audio starts s seconds into the
    # utterance arrives at 0.4 + s / 3, and plays at 0.5 + s
    events, acc = [], []
    for chunk in _chunks(phones):
        acc += chunk
        arrival = 0.4 + (chunk[0].start - 0.5) / 3
        partial = Timeline(utterances=(Utterance("agent", 0.5, acc[-1].end, TEXT,
                                                  phones=tuple(acc)),), duration=acc[-1].end)
        got = live.feed(partial, acc[-1].end)
        assert got  # every chunk animates something at once
        # each shape reaches the avatar before the audio it animates plays (the first event is
        # the initial rest at 0)
        assert all(e["t"] >= arrival for e in got if e["t"] > 0), (arrival, got)
        events += got
    events += live.finish(tl)
    ts = [e["t"] for e in events]
    assert ts == sorted(ts) and len(events) > 10
    # the live stream is the batch stream, frame for frame (100 fps), up to rounding
    grid = np.arange(0, tl.duration, 0.01)
    lv = [next(e["viseme"] for e in reversed(events) if e["t"] <= t + 1e-6) for t in grid]
    bv = [_at(batch, t).viseme if t < batch[-1].end else "sil" for t in grid]
    assert np.mean([a == b for a, b in zip(lv, bv, strict=True)]) > 0.95


def test_live_stream_clear_relaxes_and_flags():
    s = VisemeStream("rhubarb")
    _samples, _rate, phones = _spoken(TEXT)
    first = s.feed(phones[:12], phones[11].end)
    assert first and first[0].start == 0.0
    t = phones[9].end  # the user barges in while cues already sent run ahead of the audio
    assert first[-1].end > t
    cleared = s.clear(t)
    assert cleared[-1].viseme == "X" and cleared[-1].clear
    assert cleared[-1].start == pytest.approx(t)  # exactly at the clear: players drop the rest
    after = s.feed([Phone("M", 3.0, 3.1), Phone("AA", 3.1, 3.3)], 3.3) + s.finish(3.6)
    assert [c.viseme for c in after] == ["A", "D", "X"]
    assert after[0].start == pytest.approx(3.0 - Motion().lead)


def test_live_renderer_passes_clears_on():
    full = _timeline(TEXT)
    live = renderers.get("visemes")(set="rhubarb").live()
    first = live.feed(full, 1.0)  # everything before 1.0 s is final
    assert first and first[0]["t"] == 0
    cut = _timeline(TEXT, clear=1.3)  # the user barged in at 1.3 s
    got = live.feed(cut, 1.3) + live.finish(cut)
    flagged = [e for e in got if e.get("clear")]
    assert len(flagged) == 1 and flagged[0]["t"] == pytest.approx(1.3, abs=1e-3)
    assert flagged[0]["viseme"] == "X" and got[-1]["viseme"] == "X"
    assert all(e["t"] < 1.3 for e in got if e is not flagged[0] and e["viseme"] != "X")


def test_polly_live_and_batch():
    tl = _timeline(TEXT2)
    lines = [json.loads(x) for x in renderers.get("polly")().render_string(tl).splitlines()]
    assert {m["type"] for m in lines} == {"sentence", "viseme", "word"}
    for m in lines:
        assert isinstance(m["time"], int) and isinstance(m["value"], str)
        if m["type"] != "viseme":
            assert TEXT2.encode()[m["start"]:m["end"]].decode() == m["value"]
        else:
            assert m["value"] in SETS["polly"].visemes
    live = renderers.get("polly")().live()
    got = live.feed(tl, tl.duration) + live.finish(tl)
    assert [m["value"] for m in got] == [m["value"] for m in lines if m["type"] == "viseme"]


# --- renderers -------------------------------------------------------------------------------

def test_renderers_are_registered():
    names = renderers.available()
    for name in ("visemes", "polly", "rhubarb", "rhubarb-tsv", "moho", "blendshapes",
                 "blendshapes-json"):
        assert name in names and not names[name].startswith("(broken")
    assert renderers.get("visemes")().live() is not None


@pytest.mark.parametrize("vset", sorted(SETS))
def test_jsonl_stream_parses(vset):
    tl = _timeline()
    text = renderers.get("visemes")(set=vset).render_string(tl)
    events = [json.loads(x) for x in text.splitlines()]
    assert [set(e) for e in events] == [{"t", "viseme", "weight"}] * len(events)
    assert all(e["viseme"] in SETS[vset].visemes and 0 <= e["weight"] <= 1 for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    if vset == "azure":
        assert all(isinstance(e["viseme"], int) for e in events)


def test_rhubarb_json_schema(tmp_path):
    tl = _timeline().with_audio()
    paths = renderers.get("rhubarb")(sound_file="call.wav").render(tl, tmp_path)
    assert paths == [tmp_path / "call.rhubarb.json"]
    doc = json.loads(paths[0].read_text())
    assert set(doc) == {"metadata", "mouthCues"}
    assert doc["metadata"] == {"soundFile": "call.wav", "duration": round(tl.duration, 2)}
    cues_ = doc["mouthCues"]
    assert cues_[0]["start"] == 0 and cues_[-1]["end"] == doc["metadata"]["duration"]
    for a, b in zip(cues_, cues_[1:], strict=False):
        assert set(a) == {"start", "end", "value"} and a["end"] == b["start"]
        assert a["value"] != b["value"] and a["start"] < a["end"]
    assert {c["value"] for c in cues_} <= set("ABCDEFGHX") and "A" in {c["value"] for c in cues_}
    assert all(round(c["start"], 2) == c["start"] for c in cues_)


def test_rhubarb_tsv_format():
    tl = _timeline()
    lines = renderers.get("rhubarb-tsv")().render_string(tl).splitlines()
    rows = [line.split("\t") for line in lines]
    assert all(len(r) == 2 and re.fullmatch(r"\d+\.\d\d", r[0]) and r[1] in "ABCDEFGHX"
               for r in rows)
    times = [float(r[0]) for r in rows]
    assert times == sorted(times) and times[0] == 0 and rows[-1][1] == "X"
    js = json.loads(renderers.get("rhubarb")().render_string(tl))["mouthCues"]
    assert [(c["start"], c["value"]) for c in js] == [(float(t), v) for t, v in rows[:-1]]


@pytest.mark.parametrize("names", ["rhubarb", "preston-blair"])
def test_moho_dat_header_and_24fps_frames(names):
    """Rhubarb's DAT layout: each cue of the JSON export at frame 1 + int(24 * start), a cue
    that lands on the frame of the one before dropped, the closed mouth at the end."""
    tl = _timeline()
    text = renderers.get("moho")(names=names).render_string(tl)
    lines = text.splitlines()
    assert lines[0] == "MohoSwitch1"
    rows = [line.split(" ") for line in lines[1:]]
    frames = [int(f) for f, _ in rows]
    assert frames[0] == 1 and frames == sorted(set(frames))
    doc = json.loads(renderers.get("rhubarb")().render_string(tl))
    name = {"A": "MBP", "B": "etc", "C": "E", "D": "AI", "E": "O", "F": "U", "G": "FV",
            "H": "L", "X": "rest"} if names == "preston-blair" else {c: c for c in "ABCDEFGHX"}
    expect, last = [], 0
    for c in doc["mouthCues"]:
        frame = 1 + int(24 * c["start"])
        if frame != last:
            expect.append([str(frame), name[c["value"]]])
            last = frame
    end = 1 + int(24 * doc["metadata"]["duration"])
    expect.append([str(end if end != last else end + 1), name["X"]])
    assert rows == expect
    assert len(rows) >= len(doc["mouthCues"]) - 3  # 24 fps drops only the odd 40 ms cue


def test_blendshape_csv_and_json():
    tl = _timeline()
    rows = list(csv.reader(io.StringIO(renderers.get("blendshapes")(fps=60).render_string(tl))))
    assert rows[0] == ["frame", "time", *ARKIT_SHAPES]
    assert len(rows) - 1 == int(tl.duration * 60) + 1
    assert float(rows[61][1]) == pytest.approx(1.0)
    vals = np.array([[float(x) for x in r[2:]] for r in rows[1:]])
    assert vals.min() >= 0 and vals.max() <= 1 and vals[:, 0].max() > 0.3  # the jaw opens
    doc = json.loads(renderers.get("blendshapes-json")().render_string(tl))
    assert doc["fps"] == 30 and doc["names"] == list(ARKIT_SHAPES)
    assert len(doc["frames"]) == int(tl.duration * 30) + 1


# --- audio only and the command --------------------------------------------------------------

def _wav(path, samples, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, np.int16).tobytes())
    return path


def test_estimate_phones_from_audio_alone():
    samples, rate, truth = _spoken(TEXT2)
    est = estimate_phones(samples, rate)
    assert est and all(p.phone in {*ARPABET, "sil"} for p in est)
    speech = [p for p in est if p.phone != "sil"]
    t_speech = [p for p in truth if p.phone != "sil"]
    assert speech[0].start == pytest.approx(t_speech[0].start, abs=0.15)
    assert speech[-1].end == pytest.approx(t_speech[-1].end, abs=0.15)
    assert all(b.start >= a.start for a, b in zip(est, est[1:], strict=False))
    for method in METHODS:
        assert {p.phone for p in estimate_phones(np.zeros(16000, np.int16), 16000, method)} \
            == {"sil"}
        cuts = [(len(samples) - k, rate) for k in range(7, 13)]  # some resample to one more
        for n, r in ((100, 8000), (16005, 16000), *cuts):  # inside the audio
            assert all(0 <= p.start < p.end <= n / r for p in estimate_phones(samples[:n], r,
                                                                               method)), method
    assert len({p.phone for p in estimate_phones(samples, rate, "pocketsphinx")}) > 5


@cache
def _neural(text: str):
    """(16 kHz samples, the phones of aligning its text) of ``text`` in hibari's neural voice."""
    from aligner.speech.voices import synthesize as speak

    s = speak(text, "hibari")
    pcm = resample(s.samples, s.sample_rate, 16000)
    return pcm, text_phones(pcm, 16000, text)


def test_audio_only_phones_come_from_the_words_heard():
    """The default audio-only path places the phones of the words pocketsphinx recognises: on a
    neural voice its mouth shapes follow those of the known text far more closely than a free
    phone loop's; a voice the aligner finds espeak-like is read by the shipped phone model."""
    from aligner.speech.recognize import recognize_words

    for text in (TEXT, TEXT3):
        pcm, with_text = _neural(text)
        heard = estimate_phones(pcm, 16000)
        words = " ".join(w.word for w in recognize_words(pcm, 16000))
        assert heard == heard_phones(pcm, 16000, words) != estimate_phones(pcm, 16000, "model")
        got, loop = (_agreement(with_text, x, "oculus")
                     for x in (heard, estimate_phones(pcm, 16000, "acoustic")))
        assert got > 0.9 and got > loop + 0.04, (got, loop)
    samples, rate, _ = _spoken(TEXT2)  # espeak-ng itself
    words = " ".join(w.word for w in recognize_words(samples, rate))
    assert heard_phones(samples, rate, words) == estimate_phones(samples, rate, "model")
    # nothing heard: the phone loop
    assert heard_phones(samples, rate, " ") == estimate_phones(samples, rate, "acoustic")


def _agreement(truth, phones, vset="rhubarb", lead=0.06):
    """Share of 10 ms frames where our motion shows the truth's shape (now or within lead)."""
    return _cue_agreement(truth, cues(phones, vset, end=truth[-1].end), vset, lead)


def _cue_agreement(truth, ours, vset="rhubarb", lead=0.06):
    """Share of 10 ms frames where the cues ``ours`` show the truth's shape (within lead)."""
    vs = get_set(vset)
    end = truth[-1].end
    grid = np.arange(0, end - 0.01, 0.01)

    def shape(ph, t):
        p = next((p for p in ph if p.start <= t < p.end), None)
        return vs.rest if p is None else vs.shapes(p.phone)[0]

    ok = [any(_at(ours, t).viseme == shape(truth, t + d) for d in np.arange(0, lead + 1e-9, 0.01))
          for t in grid]
    return float(np.mean(ok))


def test_phone_model_decodes_and_retimes_real_speech():
    from aligner.speech.alignment import align
    from aligner.visemes.model import PhoneModel

    samples, rate, truth = _spoken(TEXT2, voice="en-us+f2")
    heard = estimate_phones(samples, rate, "model")  # the shipped model
    assert _agreement(truth, heard) > 0.7
    for text, voice in ((TEXT2, "en-us+f2"), (TEXT, "en-us+m3"), (TEXT3, "en-us+f4")):
        samples, rate, truth = _spoken(text, voice=voice)
        for backend in ("pocketsphinx", "reference"):
            aligned = list(align(samples, rate, text, backend=backend).phones)
            retimed = PhoneModel.load().force_align(samples, rate, aligned)
            speech = [p.phone for p in aligned if p.phone != "sil"]
            assert [p.phone for p in retimed if p.phone != "sil"] == speech  # new times only
            assert all(a.end == pytest.approx(b.start)
                       for a, b in zip(retimed, retimed[1:], strict=False))
            got, given = (_agreement(truth, x, "oculus") for x in (retimed, aligned))
            assert got > 0.8, (voice, backend)
            if backend == "pocketsphinx":  # phones spread over each word by a duration model:
                assert got > given + 0.04, voice  # the re-timing places them
            else:  # espeak-ng's own phone times, warped onto the clip: it stays near them (it
                # loses 0.01-0.06 here, so refine_alignment keeps them, see the test below)
                assert got > given - 0.1, voice


def _event_cues(events, end):
    """The cues a player shows for JSON-lines viseme ``events``."""
    return [Cue(a["t"], b["t"] if b is not None else end, a["viseme"])
            for a, b in zip(events, [*events[1:], None], strict=True)]


def test_live_and_batch_renderers_refine_phones_on_the_audio():
    from aligner.speech.alignment import align

    samples, rate, truth = _spoken(TEXT, voice="en-us+f2")
    pcm, offset = resample(samples, rate, 16000), 0.5
    track = np.concatenate([np.zeros(int(offset * 16000), np.int16), pcm])
    result = align(pcm, 16000, TEXT)
    aligned = [Phone(p.phone, p.start + offset, p.end + offset, p.word_index)
               for p in result.phones if p.end > p.start]
    words = tuple(dataclasses.replace(w, start=w.start + offset, end=w.end + offset,
                                      onset=None if w.onset is None else w.onset + offset)
                  for w in result.words)
    truth = [Phone("sil", 0.0, offset), *(Phone(p.phone, p.start + offset, p.end + offset)
                                          for p in truth)]
    end = len(track) / 16000

    def timeline(phones, audio=track):
        u = Utterance("agent", offset, phones[-1].end, TEXT, words=words, phones=tuple(phones))
        tracks = (AudioTrack("agent", 16000, samples=audio),) if audio is not None else ()
        return Timeline(utterances=(u,), audio=tracks, duration=end)

    def events(renderer, tl):
        return [json.loads(x) for x in renderer.render_string(tl).splitlines()]

    plain = events(renderers.get("visemes")(set="oculus", retime=False), timeline(aligned))
    assert plain == events(renderers.get("visemes")(), timeline(aligned, audio=None))
    batch = events(renderers.get("visemes")(), timeline(aligned))
    # the renderer refines as the library does (aligner.visemes.refine_phones), which moves
    # shapes (here the phones were warped from espeak-ng's speech: where they sound)
    refined = refine_phones(aligned, words, track, 16000, pauses=pause_after(TEXT, words),
                            variants=pronunciation_variants(words, aligned))
    assert batch == [c.event() for c in cues(refined, end=end)] != plain
    assert _cue_agreement(truth, _event_cues(batch, end), "oculus") > 0.8
    # live: chunks aligned 3x faster than real time, each with the audio that came so far
    live, got = renderers.get("visemes")().live(), []
    for chunk in _chunks(aligned):
        arrival = 0.4 + (chunk[0].start - offset) / 3
        done = aligned[:aligned.index(chunk[-1]) + 1]
        heard = track[:int(round((offset + 3 * (arrival - 0.4) + 1.0) * 16000))]
        new = live.feed(timeline(done, heard), chunk[-1].end)
        assert all(e["t"] >= arrival for e in new if e["t"] > 0)  # ahead of the audio
        got += new
    got += live.finish(timeline(aligned))
    grid = np.arange(0, end, 0.01)
    lv = [_at(_event_cues(got, end + 1), t).viseme for t in grid]
    bv = [_at(_event_cues(batch, end + 1), t).viseme for t in grid]
    assert np.mean([a == b for a, b in zip(lv, bv, strict=True)]) > 0.9


def test_several_formats_of_one_timeline_retime_its_audio_once(monkeypatch):
    from aligner.speech.alignment import align
    from aligner.visemes import motion

    samples, rate, _truth = _spoken(TEXT, voice="en-us+f2")  # the clip of the test above
    pcm = resample(samples, rate, 16000)
    phones = align(pcm, 16000, TEXT).phones
    u = Utterance("agent", 0.0, phones[-1].end, TEXT, phones=tuple(phones))
    tl = Timeline(utterances=(u,), audio=(AudioTrack("agent", 16000, samples=pcm),),
                  duration=len(pcm) / 16000)
    calls = []
    real = motion.refine_phones
    monkeypatch.setattr(motion, "refine_phones",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    outputs = [renderers.get(name)().render_string(tl)
               for name in ("visemes", "polly", "rhubarb", "rhubarb-tsv")]
    assert len(calls) == 1 and all(outputs)
    # another timeline (even an equal one) is re-timed afresh
    renderers.get("visemes")().render_string(Timeline(utterances=tl.utterances, audio=tl.audio,
                                                      duration=tl.duration))
    assert len(calls) == 2


def test_renderers_keep_the_timeline_times_when_its_audio_file_is_missing(tmp_path, caplog):
    tl = _timeline(TEXT)
    gone = tl.with_audio(AudioTrack("agent", 16000, path="gone.wav"))
    r = renderers.get("visemes")()
    with caplog.at_level("WARNING", logger="aligner.visemes.motion"):
        assert r.render(gone, tmp_path, base=tmp_path)[0].read_text() == r.render_string(tl)
    assert "not re-timed" in caplog.text and "gone.wav" in caplog.text


def test_retiming_keeps_the_ends_of_each_stretch_so_live_pieces_join():
    from aligner.speech.alignment import align

    samples, rate, _truth = _spoken(TEXT3, voice="en-us+f4")
    aligned = [p for p in align(samples, rate, TEXT3).phones if p.end > p.start]
    whole = retime(aligned, samples, rate)
    assert (whole[0].start, whole[-1].end) == (aligned[0].start, aligned[-1].end)
    assert [p.start for p in whole] != [p.start for p in aligned]  # the inside moved
    # a live chunk edge inside a stretch stays where the aligner put it: the pieces join
    cut = len(aligned) // 2
    first, second = retime(aligned[:cut], samples, rate), retime(aligned[cut:], samples, rate)
    assert first[-1].end == second[0].start == aligned[cut].start
    assert all(a.end == b.start for a, b in zip(first, first[1:], strict=False))


def test_retiming_on_recent_audio_equals_retiming_on_all_of_it():
    """A live caller keeps only recent audio: re-timed on it (its first sample's time given),
    phones land where the whole audio puts them."""
    from aligner.speech.alignment import align

    samples, rate, _truth = _spoken(TEXT3, voice="en-us+f4")
    aligned = list(align(samples, rate, TEXT3).phones)
    later = aligned[len(aligned) // 2:]
    cut = int(0.5 * rate)  # 11025 samples at espeak-ng's 22050 Hz: an odd count
    live = retime(later, samples[cut:], rate, start=cut / rate)
    whole = retime(later, samples, rate)
    assert [p.phone for p in live] == [p.phone for p in whole]
    assert [t for p in live for t in (p.start, p.end)] == \
        pytest.approx([t for p in whole for t in (p.start, p.end)], abs=1e-9)
    assert [(p.start, p.end) for p in whole] != [(p.start, p.end) for p in later]


def test_phone_stream_decodes_live_audio_chunk_by_chunk():
    from aligner.visemes.model import PhoneStream

    samples, rate, truth = _spoken(TEXT, voice="en-us+f3")
    stream = PhoneStream(rate)
    phones, piece = [], rate // 50  # 20 ms chunks, as a telephony stream sends them
    for i in range(0, len(samples), piece):
        got = stream.feed(samples[i:i + piece])
        assert all(p.end <= (i + piece) / rate for p in got)  # nothing from audio not yet fed
        phones += got
    phones += stream.finish()
    whole = estimate_phones(samples, rate, "model")  # PhoneStream is the model, live
    assert len(phones) >= 0.8 * len(whole)
    assert phones[-1].end == pytest.approx(whole[-1].end, abs=0.02)
    assert all(b.start >= a.end - 1e-9 for a, b in zip(phones, phones[1:], strict=False))
    live = VisemeStream("rhubarb")
    assert live.feed(phones, phones[-1].end) + live.finish(truth[-1].end)
    # about as good as decoding the whole clip at once
    assert _agreement(truth, phones) > max(0.6, _agreement(truth, whole) - 0.1)


def test_phone_model_trains_saves_and_loads(tmp_path):
    from aligner.visemes.model import CLASSES, PhoneModel, train

    clips = []
    for text in (TEXT, TEXT2):
        samples, rate, truth = _spoken(text, voice="en-us+m2")
        clips.append((resample(samples, rate, 16000), truth))
    model = train(clips, hidden=300, seed=3)
    assert model.w2.shape == (300, len(CLASSES))
    path = model.save(tmp_path / "m.npz")
    again = PhoneModel.load(path)
    assert np.allclose(again.w2, model.w2, atol=1e-2 * np.abs(model.w2).max())
    # it learnt something: on its own training speech most frames get the right shape
    assert _agreement(clips[1][1], again.phones(clips[1][0], 16000)) > 0.6
    with pytest.raises(ValueError, match="no training"):
        train([], hidden=10)


def test_audio_only_phones_follow_english_phonotactics():
    from aligner.speech.phonotactics import phone_bigram
    from aligner.visemes.model import _INDEX, CLASSES, _moves, _viterbi

    bigram = phone_bigram(CLASSES)
    total = np.exp(bigram).sum(1)  # probabilities of the next phone (the rest: the end)
    assert ((total > 0.85) & (total < 1.001)).all()
    dh, ah, zh = _INDEX["DH"], _INDEX["AH"], _INDEX["ZH"]
    assert bigram[dh, ah] > bigram[dh, zh] + 3  # "the": a vowel follows DH, ZH hardly ever
    # DH clearly, then a frame where the sound is a toss-up between ZH and AH (ZH a hair ahead)
    scores = np.zeros((6, len(_INDEX)))
    scores[:3, dh] = 1.0
    scores[3:, zh], scores[3:, ah] = 0.51, 0.5
    flat = np.full_like(bigram, -0.1)  # the switching penalty alone
    np.fill_diagonal(flat, 0.0)
    assert _viterbi(scores, flat).tolist() == [dh] * 3 + [zh] * 3
    assert _viterbi(scores, _moves(0.1)).tolist() == [dh] * 3 + [ah] * 3


def test_cli_visemes_with_text_and_audio_only(tmp_path, capsys):
    samples, rate, truth = _spoken(TEXT2)
    wav = _wav(tmp_path / "clip.wav", samples, rate)
    dur = len(samples) / rate
    assert main(["visemes", str(wav), "--text", TEXT2, "--set", "rhubarb"]) == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert events[0]["t"] == 0 and all(e["viseme"] in "ABCDEFGHX" for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events) and events[-1]["t"] < dur
    assert "A" in {e["viseme"] for e in events}  # "Please bring ... photo ... pen": P B M close
    out = tmp_path / "v.jsonl"
    assert main(["visemes", str(wav), "--set", "azure", "--out", str(out)]) == 0
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(isinstance(e["viseme"], int) and 0 <= e["viseme"] <= 21 for e in events)
    assert len({e["viseme"] for e in events}) >= 5  # the mouth moves without the text


def test_cli_visemes_bad_input(tmp_path, capsys):
    assert main(["visemes", str(tmp_path / "missing.wav")]) == 2
    assert "not found" in capsys.readouterr().err
    wav = _wav(tmp_path / "s.wav", np.zeros(8000, np.int16), 16000)
    assert main(["visemes", str(wav), "--lead", "0.5"]) == 2
    assert "lead" in capsys.readouterr().err


def _first_phones(phones, words):
    return {k: next(p for p in phones if p.word_index == k) for k in words}


def test_phones_of_a_voice_like_espeak_follow_its_speech_without_the_phone_model(monkeypatch):
    from aligner.speech.alignment import align
    from aligner.visemes.model import PhoneModel

    calls = []
    real = PhoneModel.force_align
    monkeypatch.setattr(PhoneModel, "force_align",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    text = "Call Bob today, please. We kept a good deal for you."
    samples, rate, truth = _spoken(text)
    result = align(samples, rate, text)
    phones = refine_alignment(samples, rate, result)
    assert result.backend == "reference" and not calls  # espeak-ng's speech timed every phone
    assert all(w.onset is not None and w.start <= w.onset < w.end for w in result.words)
    assert [p.phone for p in phones] == [p.phone for p in result.phones]
    assert all(abs(a.end - b.start) < 1e-9  # one after another
               for a, b in zip(phones, phones[1:], strict=False))
    # words starting with a stop after another sound: the stop starts at its burst, where
    # espeak-ng's phone event puts it, and the sound before runs on through the closure
    stops = [k for k in range(1, len(result.words))
             if _first_phones(truth, [k])[k].phone in {"P", "B", "T", "D", "K", "G"}]
    assert len(stops) >= 4
    said, ours, aligned = (_first_phones(x, stops) for x in (truth, phones, result.phones))
    assert all(abs(ours[k].start - said[k].start) < 0.015 for k in stops)
    gains = [abs(aligned[k].start - said[k].start) - abs(ours[k].start - said[k].start)
             for k in stops]
    assert sum(gains) / len(gains) > 0.02  # the aligner's phones start at the closure
    # without the words' onsets, every phone is re-timed on the phone model
    plain = dataclasses.replace(result, words=tuple(dataclasses.replace(w, onset=None)
                                                    for w in result.words))
    assert refine_alignment(samples, rate, plain) != phones and calls == [1]
    # words espeak-ng said under one word event ("in the") have their phones spread by the
    # aligner: those alone are re-timed on the phone model, from where they started
    text = "We're open from nine in the morning."
    samples, rate, _truth = _spoken(text)
    result = align(samples, rate, text)
    spread = [k for k, w in enumerate(result.words) if w.onset is None]
    assert [result.words[k].word for k in spread] == ["in", "the"]
    phones = refine_alignment(samples, rate, result)
    assert calls == [1, 1]
    mine = [p for p in phones if p.word_index in spread]
    given = [p for p in result.phones if p.word_index in spread]
    assert [p.phone for p in mine] == [p.phone for p in given] and mine != given
    assert given[0].start in [p.start for p in phones]
    assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(phones, phones[1:], strict=False))
    # text_phones aligns and refines in one call (espeak-ng's reference speech varies a little
    # from call to call, so the times of two alignments agree only closely)
    for got, want in ((text_phones(samples, rate, text, refine=False), result.phones),
                      (text_phones(samples, rate, text), phones)):
        assert [p.phone for p in got] == [p.phone for p in want]
        assert max(abs(a.start - b.start) for a, b in zip(got, want, strict=True)) < 0.02


def test_by_sound_runs_the_sound_before_on_through_a_closure_even_across_chunks():
    from aligner.visemes import by_sound

    silent = np.zeros(16000, np.int16)  # every word has an onset: no audio is read
    onsets = [0.3, 0.55]  # word 1 ("car") starts at its K's closure, 0.5, and sounds at 0.55
    before = Phone("AA", 0.3, 0.5, 0)
    car = [Phone("K", 0.5, 0.6, 1), Phone("AA", 0.6, 0.8, 1)]
    whole = by_sound([before, *car], onsets, silent, 16000)
    assert whole == [Phone("AA", 0.3, 0.55, 0), Phone("K", 0.55, 0.6, 1), car[1]]
    # live, "car" comes in a later chunk, after "AA" was used: the piece it runs on comes first
    later = by_sound(car, onsets, silent, 16000, before=before)
    assert later == [Phone("AA", 0.5, 0.55, 0), Phone("K", 0.55, 0.6, 1), car[1]]
    assert by_sound(car, onsets, silent, 16000) == car  # the first phone's start stays


def test_a_timeline_keeps_word_onsets_and_its_visemes_follow_them(monkeypatch):
    from aligner.speech.alignment import align
    from aligner.visemes import by_sound, timeline_phones
    from aligner.visemes.model import PhoneModel

    text = "Call Bob today, please."
    samples, rate, _truth = _spoken(text)
    result = align(samples, rate, text)
    u = Utterance("agent", 0.0, result.duration, text, words=result.words,
                  phones=result.phones)
    tl = Timeline(utterances=(u,), audio=(AudioTrack("agent", rate, samples=samples),),
                  duration=result.duration)
    back = Timeline.from_dict(json.loads(json.dumps(tl.to_dict())))  # timeline.json keeps them
    assert [w.onset for w in back.utterances[0].words] == \
        [round(w.onset, 6) for w in result.words]
    calls = []
    real = PhoneModel.force_align
    monkeypatch.setattr(PhoneModel, "force_align",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    phones = timeline_phones(tl, retimed=True)
    assert not calls  # where espeak-ng's speech says they sound, as aligner visemes --text
    assert phones == by_sound([p for p in result.phones if p.end > p.start],
                              [w.onset for w in result.words], samples, rate)
    assert phones != [p for p in result.phones if p.end > p.start]


def test_retiming_says_dictionary_words_in_the_variant_that_fits_the_audio():
    from aligner.speech.alignment import align
    from aligner.visemes.model import PhoneModel

    text = "See you on Tuesday."
    samples, rate, truth = _spoken(text)
    said = [p.phone for p in truth if p.word_index == 3]
    assert said[-2:] == ["D", "EY"]  # espeak's Tuesday, not the dictionary's first (-D IY)
    result = align(samples, rate, text, backend="pocketsphinx")  # dictionary phones
    assert [p.phone for p in result.phones if p.word_index == 3][-2:] == ["D", "IY"]
    variants = pronunciation_variants(result.words, result.phones)
    assert variants[3][0] == ("T", "UW", "Z", "D", "IY") and ("T", "UW", "Z", "D", "EY") in \
        variants[3]
    refined = refine_alignment(samples, rate, result)
    assert [p.phone for p in refined if p.word_index == 3][-2:] == ["D", "EY"]
    # words whose phones the aligner heard itself (not the dictionary's first entry) keep them
    heard = [Phone("D", 0.0, 0.1, 0), Phone("EY", 0.1, 0.2, 0)]
    assert pronunciation_variants([Word("day", 0.0, 0.2, 0, 3)], heard) == {}
    # a word cut by a stream chunk (only some of its phones given) keeps its phones
    model = PhoneModel.load()
    part = [p for p in result.phones if p.word_index == 3][:3]
    got = model.force_align(samples, rate, part, span=(part[0].start, part[-1].end),
                            variants=variants)
    assert [p.phone for p in got if p.phone != "sil"] == [p.phone for p in part]


LINES = [TEXT, TEXT2, TEXT3, "Your appointment is confirmed for Tuesday morning at nine.",
         "We have two openings next week, on Monday and on Friday."]


@cache
def _shifted(text: str, shift: float = 0.8):
    """(16 kHz samples, truth phones) of espeak-ng speech with its formants and pitch moved by
    ``shift`` (played slower): one voice unlike the acoustic model's average speaker."""
    syn = synthesize(text, "en+m3", 150)
    pcm = resample(syn.samples, int(round(syn.sample_rate * shift)), 16000)
    return pcm, [dataclasses.replace(p, start=p.start / shift, end=p.end / shift)
                 for p in espeak_phones(syn.phones)]


def test_visemes_of_a_voice_use_what_its_profile_learned(tmp_path, capsys):
    """Phones for visemes are timed on the acoustic model adapted to a voice's profile (with
    text, and from the words heard), the profile learns from each clip, and the command keeps
    the profile in a file."""
    from aligner.speech.adaptation import VoiceProfile

    profile = VoiceProfile("narrator")
    for text in LINES[1:]:
        text_phones(_shifted(text)[0], 16000, text, voice=profile)
    assert profile.clips == len(LINES) - 1 and profile.transform is not None
    saved = profile.save(tmp_path / "narrator.json")
    pcm, truth = _shifted(LINES[0])
    cold = text_phones(pcm, 16000, LINES[0])
    warm = text_phones(pcm, 16000, LINES[0], voice=profile)
    assert warm != cold and profile.clips == len(LINES)
    assert _agreement(truth, warm, "oculus") > _agreement(truth, cold, "oculus") + 0.1
    heard = estimate_phones(pcm, 16000, voice=profile)  # audio only: the words heard
    assert heard and profile.clips == len(LINES) + 1
    with pytest.raises(ValueError, match="words"):
        estimate_phones(pcm, 16000, "acoustic", voice=profile)

    wav = _wav(tmp_path / "line.wav", pcm, 16000)
    for extra, phones in ((["--voice-profile", str(saved)], warm),
                          (["--adapt"], text_phones(pcm, 16000, LINES[0], adapt=True))):
        assert main(["visemes", str(wav), "--text", LINES[0], *extra]) == 0
        got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert got == [c.event() for c in cues(phones, "oculus", end=len(pcm) / 16000)]
    assert VoiceProfile.load(saved).clips == len(LINES)  # learned from the line, saved back
    assert main(["visemes", str(wav), "--voice-profile", str(saved), "--audio-only",
                 "acoustic"]) == 2
    assert "--audio-only words" in capsys.readouterr().err


def test_audio_only_words_are_heard_on_the_model_adapted_to_the_voice(monkeypatch):
    """With a voice's profile, learned from the words heard in its other clips (no text), the
    words are recognised on the acoustic model adapted to the voice; a profile of another voice,
    which does not fit the clip, is neither used nor taught by it;
    ``adapt`` learns a long recording's voice from a first hearing."""
    from aligner.speech import recognize
    from aligner.speech.adaptation import VoiceProfile
    from aligner.speech.backends.acoustic import transform_fits

    profile, other = VoiceProfile("narrator"), VoiceProfile("other")
    for text in LINES[1:]:
        estimate_phones(_shifted(text)[0], 16000, voice=profile)
        estimate_phones(_shifted(text, 1.3)[0], 16000, voice=other)
    assert profile.clips == other.clips == len(LINES) - 1 and profile.transform is not None
    pcm, truth = _shifted(LINES[0])
    plain = estimate_phones(pcm, 16000)
    adapted = estimate_phones(pcm, 16000, voice=profile)
    assert _agreement(truth, adapted, "oculus") > _agreement(truth, plain, "oculus") + 0.1
    assert not transform_fits(pcm, other.transform)  # the other voice's profile: not used,
    learned, heard_with = other.clips, []
    real = recognize.recognize_words
    monkeypatch.setattr(recognize, "recognize_words", lambda *args, **kwargs: (
        heard_with.append(kwargs.get("transform")) or real(*args, **kwargs)))
    estimate_phones(pcm, 16000, voice=other)
    monkeypatch.undo()
    assert other.clips == learned  # and not taught by a voice it does not fit
    assert heard_with == [None]  # nor heard with it

    clips = [_shifted(text) for text in LINES]
    gap = np.zeros(8000, np.int16)
    long = np.concatenate([x for p, _ in clips for x in (p, gap)])
    starts = np.cumsum([0] + [(len(p) + len(gap)) / 16000 for p, _ in clips[:-1]])
    truth = [dataclasses.replace(t, start=t.start + s, end=t.end + s)
             for (_, ts), s in zip(clips, starts, strict=True) for t in ts]
    once = estimate_phones(long, 16000)
    twice = estimate_phones(long, 16000, adapt=True, voice=(learner := VoiceProfile("n")))
    assert _agreement(truth, twice, "oculus") > _agreement(truth, once, "oculus") + 0.1
    assert learner.clips == 1
