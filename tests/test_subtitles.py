"""Subtitle and word-timing files: parse back (pysubs2, webvtt-py, praatio), times round-trip."""

from __future__ import annotations

import functools
import html
import json
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import replace

import pysubs2
import pytest
import webvtt
from caption_helpers import conversation, spoken
from hypothesis import given, settings
from hypothesis import strategies as st
from praatio import textgrid

import renderers
from aligner.timeline import Timeline, Utterance, Word
from renderers.segment import segment
from renderers.subtitles import ASS, SRT, TTML, VTT, VTTKaraoke, load_subtitles
from renderers.wordtimes import TextGrid, WordsJSON

SUBTITLE_FORMATS = {"srt": SRT, "vtt": VTT, "vtt-karaoke": VTTKaraoke, "ass": ASS, "ttml": TTML}
ALL = {**SUBTITLE_FORMATS, "textgrid": TextGrid, "json": WordsJSON}
_TS = re.compile(r"<(\d+):(\d\d):(\d\d)\.(\d{3})>")


@functools.cache
def _call() -> Timeline:
    return conversation()


def _seconds(h, m, s, ms) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_builtin_renderers_are_registered():
    listed = renderers.available()
    for name, cls in ALL.items():
        assert renderers.get(name) is cls
        assert listed[name] == cls.description and cls.description


@pytest.mark.parametrize("name", sorted(SUBTITLE_FORMATS))
def test_files_parse_back_with_pysubs2_and_cue_times_round_trip(name, tmp_path):
    tl = _call()
    cls = SUBTITLE_FORMATS[name]
    (path,) = cls().render(tl, tmp_path)
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    cues = segment(tl)
    subs = load_subtitles(path)
    assert len(subs) == len(cues)
    tol = 10 if name == "ass" else 1  # ASS has centisecond precision
    for ev, cue in zip(subs, cues, strict=True):
        assert abs(ev.start - cue.start * 1000) <= tol and abs(ev.end - cue.end * 1000) <= tol
        assert ev.end > ev.start
        assert ev.plaintext.replace("\n", " ").split() == " ".join(cue.lines).split()


@pytest.mark.parametrize("cls", [VTT, VTTKaraoke])
def test_webvtt_parses_with_webvtt_py_with_voices(cls, tmp_path):
    tl = _call()
    (path,) = cls().render(tl, tmp_path)
    cues = segment(tl)
    parsed = webvtt.read(str(path))
    assert len(parsed.captions) == len(cues)
    for cap, cue in zip(parsed.captions, cues, strict=True):
        assert cap.voice == cue.speaker.capitalize()
        assert abs(_seconds(*re.split(r"[:.]", cap.start)) - cue.start) <= 0.001
        assert abs(_seconds(*re.split(r"[:.]", cap.end)) - cue.end) <= 0.001
        assert cap.text.split() == " ".join(cue.lines).split()
        assert cap.raw_text.startswith(f"<v {cap.voice}>")


def test_karaoke_vtt_word_times_round_trip_within_1ms(tmp_path):
    tl = _call()
    (path,) = VTTKaraoke().render(tl, tmp_path)
    cues = segment(tl)
    checked = 0
    for cap, cue in zip(webvtt.read(str(path)).captions, cues, strict=True):
        stamps = [_seconds(*m) for m in _TS.findall(cap.raw_text)]
        assert stamps == sorted(stamps)
        # every word starting inside the cue has its stamp (one starting within 1 ms of the
        # cue's edges, on the 10 ms grid, may or may not), and every stamp is a word's start
        inside = [w.start for w in cue.words if cue.start + 1e-3 < w.start < cue.end - 1e-3]
        assert all(any(abs(got - want) <= 0.001 for got in stamps) for want in inside)
        for got in stamps:
            assert any(abs(got - w.start) <= 0.001 for w in cue.words)
            assert cue.start < got < cue.end
            checked += 1
    assert checked > 50
    assert "<00:00:" in path.read_text()  # pysubs2 would drop these


def test_plain_srt_and_vtt_carry_no_karaoke(tmp_path):
    tl = _call()
    assert not _TS.search(VTT().render_string(tl))
    assert "{\\" not in SRT().render_string(tl)


def test_ass_karaoke_round_trips_within_10ms_and_has_a_style_per_speaker(tmp_path):
    tl = _call()
    (path,) = ASS().render(tl, tmp_path)
    subs = pysubs2.load(str(path))
    assert {"Agent", "User"} <= set(subs.styles)
    assert subs.styles["Agent"].primarycolor != subs.styles["User"].primarycolor
    cues = segment(tl)
    checked = 0
    for ev, cue in zip(subs, cues, strict=True):
        assert ev.style == cue.speaker.capitalize()
        t = ev.start / 1000
        parts = re.findall(r"\{\\kf(\d+)\}([^{]*)", ev.text)
        words = [(t0, txt) for t0, txt in _karaoke_starts(t, parts) if txt.replace("\\N", "").strip()]
        assert len(words) == len(cue.words)
        for (start, txt), w in zip(words, cue.words, strict=True):
            assert txt.replace("\\N", "").strip() == w.text
            want = min(max(w.start, cue.start), cue.end)
            assert abs(start - want) <= 0.010 + 1e-9
            checked += 1
    assert checked > 50


def _karaoke_starts(t: float, parts):
    for dur, txt in parts:
        yield t, txt
        t += int(dur) / 100


def test_ass_karaoke_can_be_k_or_off():
    tl = _call()
    assert "{\\k" in ASS(karaoke="k").render_string(tl)
    assert "\\kf" not in ASS(karaoke="k").render_string(tl)
    assert "{\\k" not in ASS(karaoke="none").render_string(tl)


def test_ttml_is_imsc1_text_with_agents(tmp_path):
    tl = _call()
    (path,) = TTML().render(tl, tmp_path)
    root = ET.parse(path).getroot()
    tt = "{http://www.w3.org/ns/ttml}"
    assert root.tag == tt + "tt"
    assert root.get("{http://www.w3.org/ns/ttml#parameter}profile").endswith("imsc1/text")
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    ps = root.findall(f".//{tt}p")
    assert len(ps) == len(segment(tl))
    agents = {p.get("{http://www.w3.org/ns/ttml#metadata}agent") for p in ps}
    assert len(agents) == 2


def test_json_word_times_round_trip_within_1ms(tmp_path):
    tl = _call()
    (path,) = WordsJSON().render(tl, tmp_path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    words = [w for s in doc["segments"] for w in s["words"]]
    heard = [w for u in sorted(tl.utterances, key=lambda u: u.start) for w in u.heard_words]
    assert len(words) == len(heard)
    by_start = sorted(heard, key=lambda w: w.start)
    for got, want in zip(sorted(words, key=lambda w: w["start"]), by_start, strict=True):
        assert abs(got["start"] - want.start) <= 0.001 and abs(got["end"] - want.end) <= 0.001
        assert want.word in got["word"]
    assert {s["speaker"] for s in doc["segments"]} == {"agent", "user"}
    assert any(s["interrupted"] and s["text"].endswith("—") for s in doc["segments"])


def test_textgrid_parses_with_praatio_and_word_times_round_trip(tmp_path):
    tl = _call()
    (path,) = TextGrid().render(tl, tmp_path)
    tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    assert set(tg.tierNames) == {"agent words", "agent phones", "user words", "user phones"}
    got = tg.getTier("agent words").entries
    want = [w for u in tl.speaker("agent") for w in u.heard_words]
    assert len(got) == len(want)
    for entry, w in zip(got, want, strict=True):
        assert abs(entry.start - w.start) <= 0.001 or entry.start > w.start  # overlaps trimmed
        assert abs(entry.end - w.end) <= 0.001
    phones = tg.getTier("agent phones").entries
    assert len(phones) > 100
    cut = next(u for u in tl.utterances if u.interrupted)
    resume = min(u.start for u in tl.speaker("agent") if u.start > cut.start)
    assert not [p for p in phones if p.start < cut.end < p.end - 1e-6]
    assert not [p for p in phones if cut.end < p.start < resume]


@pytest.mark.parametrize("name", sorted(ALL))
def test_empty_timeline_gives_valid_files(name, tmp_path):
    (path,) = ALL[name]().render(Timeline(), tmp_path)
    assert path.exists()
    if name in SUBTITLE_FORMATS:
        assert len(load_subtitles(path)) == 0
    elif name == "json":
        assert json.loads(path.read_text()) == {"segments": []}
    else:
        assert textgrid.openTextgrid(str(path), includeEmptyIntervals=False).tierNames == ()


def _tricky() -> Timeline:
    text = "Ünïcödé {braces} & <tags> 你好世界 🎉 שלום \\N end"
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    at = 2 * 3600 + 5.25  # hours beyond 99 minutes
    words = tuple(Word(text[a:b], at + 0.4 * i, at + 0.4 * i + 0.35, a, b)
                  for i, (a, b) in enumerate(spans))
    return Timeline(utterances=(Utterance("agent", at, at + 5, text, words=words),),
                    duration=at + 10)


@pytest.mark.parametrize("name", sorted(SUBTITLE_FORMATS))
def test_unicode_markup_characters_and_hours(name, tmp_path):
    (path,) = ALL[name]().render(_tricky(), tmp_path)
    subs = load_subtitles(path)
    assert abs(subs[0].start - (2 * 3600 + 5.25) * 1000) <= 10
    text = subs[0].plaintext.replace("\n", " ")
    if name == "ttml":  # pysubs2 turns TTML text into ASS text, where {...} is a tag: use XML
        p = ET.parse(path).getroot().find(".//{http://www.w3.org/ns/ttml}p")
        text = " ".join(p.itertext())
    if name.startswith("vtt"):  # entities are decoded by players, not by the parsers
        text = html.unescape(webvtt.read(str(path)).captions[0].text)
    tags = "‹tags›" if name == "srt" else "<tags>"  # SRT players read <...> as markup
    for part in ("Ünïcödé", "你好世界", "🎉", "שלום", "&", tags, "braces", "end"):
        assert part in text, (part, text)
    if name in ("vtt", "vtt-karaoke"):
        assert "02:00:05.250 -->" in path.read_text(encoding="utf-8")
        assert "&amp;" in path.read_text(encoding="utf-8") and "&lt;tags&gt;" in path.read_text(encoding="utf-8")


def test_karaoke_lines_are_not_misread_as_timing_lines(tmp_path):
    (path,) = VTTKaraoke().render(_call(), tmp_path)
    n = len(segment(_call()))
    assert len(pysubs2.load(str(path))) > n  # pysubs2's gap: a line with two stamps = timing
    assert len(load_subtitles(path)) == n


def test_vtt_with_a_bom_is_read_back(tmp_path):
    body = VTT().render_string(_call())
    plain, bom = tmp_path / "a.vtt", tmp_path / "b.vtt"
    plain.write_text(body, encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert [e.start for e in load_subtitles(bom)] == [e.start for e in load_subtitles(plain)]
    assert len(load_subtitles(bom)) == len(segment(_call()))


def test_no_zero_length_cues_even_for_zero_length_words():
    u = Utterance("agent", 1.0, 1.0, "Oh", words=(Word("Oh", 1.0, 1.0, 0, 2),))
    tl = Timeline(utterances=(u,), duration=2.0)
    for cls in (VTT, SRT):
        for ev in pysubs2.SSAFile.from_string(cls().render_string(tl)):
            assert ev.end > ev.start
    # pysubs2 itself would write this zero-length cue as it is
    subs = pysubs2.SSAFile()
    subs.append(pysubs2.SSAEvent(start=1000, end=1000, text="Oh"))
    assert "00:00:01.000 --> 00:00:01.000" in subs.to_string("vtt")


@pytest.mark.parametrize("cls", [SRT, VTT, VTTKaraoke])
def test_live_output_equals_batch_output(cls):
    tl = _call()
    live = cls().live()
    out = []
    utts = sorted(tl.utterances, key=lambda u: u.end)
    for k in range(1, len(utts) + 1):
        partial = Timeline(utterances=tuple(sorted(utts[:k], key=lambda u: u.start)))
        out.extend(live.feed(partial, utts[k - 1].end))
    full = Timeline(utterances=tuple(sorted(utts, key=lambda u: u.start)))
    out.extend(live.finish(full))
    batch = cls().render_string(full)
    assert "".join(out).replace("\r", "") == batch.replace("\r", "")
    assert "".join(cls().live().finish(Timeline())) == cls().render_string(Timeline())


def test_options_become_caption_rules():
    r = SRT(max_cps="17", max_chars_per_line=30, allow_speaker_overlap="false")
    assert (r.rules.max_cps, r.rules.max_chars_per_line, r.rules.allow_speaker_overlap) == \
        (17.0, 30, False)


def test_cut_sentence_in_every_format():
    u = spoken("agent", "Let me check the order status for you right now.", 0.0, cut=1.0)
    tl = Timeline(utterances=(u,), duration=3.0)
    for name, cls in SUBTITLE_FORMATS.items():
        text = cls().render_string(tl)
        assert "—" in text, name
        assert "now" not in text and "status" not in text, name


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")),
                min_size=1, max_size=20)


@settings(max_examples=25, deadline=None)
@given(tokens=st.lists(_text, min_size=1, max_size=25), at=st.floats(0.0, 20000.0))
def test_any_text_renders_to_files_that_parse_back(tokens, at):
    text = " ".join(tokens)
    words, pos = [], 0
    for i, tok in enumerate(tokens):
        words.append(Word(tok, at + 0.3 * i, at + 0.3 * i + 0.25, pos, pos + len(tok)))
        pos += len(tok) + 1
    tl = Timeline(utterances=(Utterance("agent", at, at + 0.3 * len(tokens), text,
                                        words=tuple(words)),))
    n = len(segment(tl))
    for name, cls in SUBTITLE_FORMATS.items():
        body = cls().render_string(tl)
        fmt = {"vtt-karaoke": "vtt"}.get(name, name)
        if fmt == "vtt":
            body = "\n".join(x if "-->" in x else re.sub(r"<\d+:\d\d:\d\d\.\d{3}>", "", x)
                             for x in body.split("\n"))
        assert len(pysubs2.SSAFile.from_string(body, format_=fmt)) == n, name
    doc = json.loads(WordsJSON().render_string(tl))
    assert [w["start"] for s in doc["segments"] for w in s["words"]] == \
        [round(w.start, 3) for w in words]


def _words(text: str, at: float, durations: list[float], gaps: list[float]) -> tuple[Word, ...]:
    out, t = [], at
    for k, m in enumerate(re.finditer(r"\w+", text)):
        d = durations[k % len(durations)]
        out.append(Word(m.group(), t, t + d, m.start(), m.end()))
        t += d + gaps[k % len(gaps)]
    return tuple(out)


_TURN = "we have a table by the window at seven or one on the terrace later tonight"


@settings(max_examples=60, deadline=None)
@given(durations=st.lists(st.floats(0.05, 0.6), min_size=1, max_size=6),
       gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=6),
       starts=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=6),
       cut=st.one_of(st.none(), st.floats(0.3, 3.0)))
def test_every_format_keeps_every_rule_the_cues_keep(durations, gaps, starts, cut):
    from renderers.conformance import check

    # ASS stores centiseconds: a 83.3 ms gap between cues came out as 80 ms (rounded down)
    utterances, t = [], 0.2
    for k, pause in enumerate(starts):
        speaker = ("agent", "user")[k % 2]
        words = _words(_TURN[: 20 + 9 * k], t, durations, gaps)
        end = words[-1].end
        if k == 0 and cut is not None and t + cut < end:
            words = tuple(w if w.start < t + cut else replace(w, start=t + cut, end=t + cut,
                                                               played=False) for w in words)
            words = tuple(replace(w, end=min(w.end, t + cut)) for w in words)
            end = t + cut
        utterances.append(Utterance(speaker, t, end, _TURN[: 20 + 9 * k],
                                    interrupted=k == 0 and cut is not None and end == t + cut,
                                    words=words))
        t = end + pause - (0.3 if k == 0 and cut is not None else 0.0)  # barge-in overlap
    tl = Timeline(utterances=tuple(utterances), duration=t + 1.0)
    cues = segment(tl)
    report = check(cues, timeline=tl)
    assert not (report["gap"] or report["unheard"] or report["interruption"]), report
    want = {rule: len(found) for rule, found in report.items()}
    for name, cls in SUBTITLE_FORMATS.items():
        with tempfile.TemporaryDirectory() as d:
            (path,) = cls().render(tl, d)
            parsed = list(load_subtitles(path))
        assert len(parsed) == len(cues), name
        timed = [replace(c, start=ev.start / 1000, end=ev.end / 1000)
                 for c, ev in zip(cues, parsed, strict=True)]
        got = {rule: len(found) for rule, found in check(timed, timeline=tl).items()}
        assert got == want, (name, {r: check(timed, timeline=tl)[r] for r in got
                                    if got[r] != want[r]})
