"""Caption segmentation: each captioner's rule, interruptions, adversarial text (real espeak timings)."""

from __future__ import annotations

import functools

import pytest
from caption_helpers import conversation, spoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligner.timeline import Timeline, Utterance, Word
from renderers.conformance import RULES, check
from renderers.segment import CaptionRules, segment


@functools.cache
def _call() -> Timeline:
    return conversation(repeat=2)


def _one(*utterances: Utterance) -> Timeline:
    end = max((u.end for u in utterances), default=0.0)
    return Timeline(utterances=tuple(utterances), duration=end + 5.0)


def test_long_call_conforms_to_every_rule():
    tl = _call()
    cues = segment(tl)
    assert len(cues) > 20
    report = check(cues, timeline=tl)
    assert set(report) == set(RULES)
    assert {rule: v for rule, v in report.items() if v} == {}


@pytest.mark.parametrize("rules", [
    CaptionRules(max_chars_per_line=20),
    CaptionRules(max_chars_per_line=32, max_lines=1),
    CaptionRules(max_lines=3, max_duration=5.0),
    CaptionRules(max_cps=15.0, min_gap=0.2),
])
def test_rules_are_configurable_and_kept(rules):
    tl = _call()
    cues = segment(tl, rules)
    assert all(len(line) <= rules.max_chars_per_line for c in cues for line in c.lines)
    assert all(len(c.lines) <= rules.max_lines for c in cues)
    assert all(c.end - c.start <= rules.max_duration + 1e-6 for c in cues)
    report = check(cues, rules, tl)
    for rule in ("line_length", "lines", "max_duration", "gap", "inside_word", "speaker",
                 "unheard", "interruption"):
        assert report[rule] == [], (rule, report[rule][:3])


def test_defaults_are_the_professional_ones():
    r = CaptionRules()
    assert (r.max_chars_per_line, r.max_lines, r.max_cps) == (42, 2, 20.0)
    assert r.min_duration == pytest.approx(5 / 6) and r.max_duration == 7.0
    assert r.min_gap == pytest.approx(0.083, abs=1e-3)
    with pytest.raises(ValueError):
        CaptionRules(min_duration=8.0)


def test_words_are_never_split_and_keep_their_order():
    tl = _call()
    for c in segment(tl):
        u = tl.utterances[c.utterance]
        tokens = u.text.split()
        for w in c.words:
            assert c.lines[w.line][w.offset:w.offset + len(w.text)] == w.text
            assert w.text.rstrip("—") in tokens or any(t.startswith(w.text.rstrip("—"))
                                                      for t in tokens)
        starts = [w.start for w in c.words]
        assert starts == sorted(starts)


def test_short_cue_is_extended_to_the_minimum_duration():
    tl = _one(spoken("user", "Yes.", 1.0))
    (cue,) = segment(tl)
    assert tl.utterances[0].end - tl.utterances[0].start < 5 / 6  # the speech itself is short
    assert cue.end - cue.start >= 5 / 6 - 1e-6
    assert cue.start <= 1.0 + 1e-6


def test_fast_speech_is_extended_into_silence_for_reading_speed():
    u = spoken("agent", "Absolutely, unquestionably extraordinary circumstances.", 0.5, rate=420)
    (cue,) = segment(_one(u))
    speech = u.heard_words[-1].end - u.heard_words[0].start
    assert cue.chars / speech > 20  # too fast to read during the speech alone
    assert cue.chars / (cue.end - cue.start) <= 20 + 1e-6


def test_long_utterance_is_cut_at_sentence_and_clause_boundaries():
    text = ("The parcel left our warehouse on Monday morning. The carrier then marked it as "
            "delayed, because of the storm in the north. It should arrive on Thursday.")
    cues = segment(_one(spoken("agent", text, 0.0)))
    assert len(cues) >= 2
    for c in cues[:-1]:
        assert c.lines[-1][-1] in ".,", c.lines  # every cut after a full stop or a comma


def test_gap_between_cues_and_max_duration():
    cues = segment(_call())
    for a, b in zip(cues, cues[1:], strict=False):
        if a.speaker == b.speaker:
            assert b.start - a.end >= 2 / 24 - 1e-6
    assert max(c.end - c.start for c in cues) <= 7.0 + 1e-6


def test_no_one_word_orphan_lines():
    text = "I can certainly help you with changing the delivery address for that order today."
    for width in (30, 36, 42):
        for c in segment(_one(spoken("agent", text, 0.0)), CaptionRules(max_chars_per_line=width)):
            if len(c.words) >= 3:
                assert all(len(line.split()) > 1 for line in c.lines), c.lines


def test_each_cue_belongs_to_one_speaker():
    a = spoken("agent", "Would you like the tracking link by text message?", 0.0)
    b = spoken("user", "Yes please, text is fine.", a.end + 0.2)
    c = spoken("agent", "Done.", b.end + 0.2)
    tl = _one(a, b, c)
    cues = segment(tl)
    assert [x.speaker for x in cues] == ["agent", "user", "agent"]
    for x in cues:
        assert tl.utterances[x.utterance].speaker == x.speaker


def test_interrupted_sentence_ends_at_the_clear_with_an_em_dash():
    text = "It left our warehouse on Monday, but the carrier marked it as delayed because of rain."
    cut = spoken("agent", text, 1.0, cut=2.2)
    assert any(not w.played for w in cut.words)
    user = spoken("user", "Text is fine.", cut.end - 0.3)
    tl = _one(cut, user)
    cues = segment(tl)
    agent = [c for c in cues if c.speaker == "agent"]
    assert agent[-1].interrupted and agent[-1].end == pytest.approx(cut.end, abs=1e-6)
    assert agent[-1].lines[-1].endswith("—")
    shown = " ".join(" ".join(c.lines) for c in agent)
    for w in cut.words:
        if not w.played:
            assert w.word not in shown.split() or w.word in {x.word for x in cut.heard_words}
    assert "rain" not in shown and "delayed" not in shown
    assert check(cues, timeline=tl)["interruption"] == []
    assert check(cues, timeline=tl)["unheard"] == []


def test_clear_in_trailing_silence_is_not_a_cut_sentence():
    u = spoken("agent", "Thanks for calling.", 0.0)
    u = Utterance(u.speaker, u.start, u.end + 0.5, u.text, True, u.words, u.chars, u.phones)
    (cue,) = segment(_one(u))
    assert not cue.interrupted and cue.lines == ("Thanks for calling.",)


def test_a_300_character_word_is_broken_into_lines():
    word = "supercalifragilistic" * 15
    text = f"Say {word} now."
    u = Utterance("agent", 0.0, 20.0, text, words=(
        Word("Say", 0.0, 0.3, 0, 3), Word(word, 0.3, 19.0, 4, 304), Word("now", 19.0, 19.5, 305, 308)))
    cues = segment(_one(u))
    assert "".join("".join(c.lines) for c in cues).replace(" ", "") == text.replace(" ", "")
    assert all(len(line) <= 42 for c in cues for line in c.lines)
    assert check(cues, timeline=_one(u))["inside_word"] == []


def test_punctuation_only_and_empty_utterances():
    punct = Utterance("agent", 0.0, 1.0, "?!... —", words=(Word("?!...", 0.1, 0.6, 0, 5),))
    empty = Utterance("user", 2.0, 3.0, "", words=())
    silent = Utterance("agent", 4.0, 5.0, "never heard", interrupted=True,
                       words=(Word("never", 4.0, 4.0, 0, 5, played=False),))
    cues = segment(_one(punct, empty, silent))
    assert [c.lines for c in cues] == [("?!... —",)]
    assert segment(Timeline()) == ()


@pytest.mark.parametrize("text", [
    "Café déjà vu, naïve façade.",
    "こんにちは、お元気ですか。今日はとても良い天気ですね。駅まで歩いて十五分くらいかかります。",
    "Great news 🎉 your order 📦 ships today 🚚 👍🏽",
    "שלום, מה שלומך היום? אני כאן לעזור.",
])
def test_unicode_text(text):
    spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+", text)]
    words = tuple(Word(text[a:b], 0.5 * i, 0.5 * i + 0.45, a, b) for i, (a, b) in enumerate(spans))
    tl = _one(Utterance("agent", 0.0, 0.5 * len(spans), text, words=words))
    cues = segment(tl)
    assert "".join("".join(c.lines) for c in cues).replace(" ", "") == text.replace(" ", "")
    assert all(len(line) <= 42 for c in cues for line in c.lines)


def test_speech_starting_at_the_clear_keeps_the_gap():
    cut = spoken("agent", "Of course. We have a table by the window at seven.", 0.0, cut=1.6)
    user = spoken("user", "That window table, please.", cut.end)  # starts right at the clear
    tl = _one(cut, user)
    a, b = segment(tl)
    assert a.interrupted and a.end == pytest.approx(cut.end, abs=1e-6)
    assert b.start - a.end >= 2 / 24 - 1e-6
    assert check((a, b), timeline=tl)["gap"] == []


_token = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")),
                 min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(st.tuples(_token, st.floats(0.0, 1.5), st.floats(0.0, 1.0)), max_size=40),
       cut=st.one_of(st.none(), st.integers(0, 40)), speaker=st.sampled_from(["agent", "user"]))
def test_any_text_and_timing_keeps_the_hard_rules(tokens, cut, speaker):
    text = " ".join(t for t, _, _ in tokens)
    words, pos, t = [], 0, 0.0
    for i, (tok, pause, dur) in enumerate(tokens):
        t += pause
        heard = cut is None or i < cut
        words.append(Word(tok, t if heard else t, t + dur if heard else t, pos, pos + len(tok),
                          heard))
        t += dur
        pos += len(tok) + 1
    end = words[cut].start if cut is not None and cut < len(words) else t
    u = Utterance(speaker, 0.0, end, text, interrupted=cut is not None and cut < len(words),
                  words=tuple(words))
    tl = _one(u)
    cues = segment(tl)
    report = check(cues, timeline=tl)
    for rule in ("line_length", "lines", "max_duration", "gap", "speaker", "unheard",
                 "interruption"):
        assert report[rule] == [], (rule, report[rule])
    assert all(c.end > c.start for c in cues)
    shown = "".join("".join(c.lines) for c in cues).replace(" ", "")
    heard = list(u.heard_words)
    if u.interrupted and heard:
        heard = heard[:-1]  # its trailing punctuation gives way to the em dash
    at = 0
    for w in heard:  # every heard word is shown, whole and in order
        found = shown.find(w.word, at)
        assert found >= 0, (w.word, shown)
        at = found + len(w.word)
