"""Agent audio that came without text: phones estimated from the audio, words recognised and
aligned, the utterance marked estimated (``source``).

Real espeak-ng speech (aligner.speech.synthesis) through the real recogniser (pocketsphinx) and aligner:
the recognised words may differ from the spoken ones, so the tests check what must hold whatever
was recognised: words exist, lie inside the audio that was heard, sit on the speech (not in the
silence around it), and the utterance says it was estimated (``source``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_session import AGENT_TEXT, SR, Speech, twilio_events

from aligner.audio import encode, resample
from aligner.session import Session
from aligner.session.textless import estimate
from aligner.speech.synthesis import synthesize
from aligner.timeline import Timeline, Utterance
from aligner.visemes import estimate_phones
from aligner.wire.events import AgentAudio, AlignedAudio, Stamped

SHORT_TEXT = "Would you like a window seat?"


@pytest.fixture(scope="module")
def agent() -> Speech:
    return Speech(AGENT_TEXT, "en-us")


@pytest.fixture(scope="module")
def user() -> Speech:
    return Speech("Yes.", "en-us+f3")


def speech_spans(words, offset: float, until: float = np.inf) -> list[tuple[float, float]]:
    """espeak's word times on the session clock, cut at ``until``, overlaps merged."""
    spans: list[list[float]] = []
    for w in words:
        s, e = offset + w.start, min(offset + w.end, until)
        if s >= until:
            break
        if spans and s <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e])
    return [(s, e) for s, e in spans]


def overlap(a: tuple[float, float], spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a[1], e) - max(a[0], s)) for s, e in spans)


def check_estimated(u: Utterance, heard: tuple[float, float], spoken: list[tuple[float, float]]):
    """What recognised words must satisfy, whichever words were recognised."""
    assert u.source == "recognized" and u.words
    assert u.text == " ".join(w.word for w in u.words)
    assert [u.text[w.char_start:w.char_end] for w in u.words] == [w.word for w in u.words]
    assert len(u.chars) == len(u.text)
    assert all(w.played for w in u.words)
    times = [t for w in u.words for t in (w.start, w.end)]
    assert times == sorted(times)
    assert heard[0] - 1e-6 <= times[0] and times[-1] <= heard[1] + 1e-6
    # the words sit on the speech: most of their time is spoken, and they cover most of it
    word_time = sum(w.end - w.start for w in u.words)
    on_speech = sum(overlap((w.start, w.end), spoken) for w in u.words)
    speech_time = sum(e - s for s, e in spoken)
    assert on_speech >= 0.7 * word_time and on_speech >= 0.7 * speech_time
    assert u.phones and all(heard[0] - 1e-6 <= p.start <= p.end <= heard[1] + 1e-6
                            for p in u.phones)
    assert any(p.word_index >= 0 for p in u.phones)
    for p in u.phones:  # each phone linked to the word its middle falls in
        if p.word_index >= 0:
            w = u.words[p.word_index]
            assert w.start <= (p.start + p.end) / 2 <= w.end


def shifted(phones, t0: float) -> list[tuple]:
    return [(p.phone, pytest.approx(t0 + p.start, abs=1e-5), pytest.approx(t0 + p.end, abs=1e-5))
            for p in phones]


def test_twilio_agent_audio_gets_recognised_words(agent, user):
    """Twilio media from the server (8 kHz mu-law, no text), cut by a clear at 2.0 s."""
    session = Session(8000, "mulaw")
    session.receive_all(twilio_events(agent, user))
    tl = session.finish()
    (u,) = tl.speaker("agent")
    assert (u.start, u.end, u.interrupted) == (0.5, 2.0, True)
    check_estimated(u, (0.5, 2.0), speech_spans(agent.words, 0.5, until=2.0))
    back = Timeline.from_json(tl.to_json())  # the source survives timeline.json
    assert back.speaker("agent")[0].source == "recognized" and back.utterances == tl.utterances


def empty_or_binary(k: int, data: bytes):
    """Binary frames (alignment off) and alignment chunks with empty text, mixed."""
    return AlignedAudio(data, "") if k % 2 else AgentAudio(data)


def test_web_binary_audio_recognised_and_text_chunks_unchanged():
    """Text-less frames after a text-carrying utterance: the text one is aligned as before; the
    text-less one is recognised when it ends, and is not final until then."""
    spoken = synthesize(SHORT_TEXT, voice="en-us")
    pcm = resample(spoken.samples, spoken.sample_rate, SR)
    text_events = [Stamped(0.1, "in", AlignedAudio(encode(pcm, "s16le"), SHORT_TEXT))]
    # well after the first one ended (a new utterance), on a whole half second (exact in
    # binary: the session places chunks on whole samples)
    start = math.ceil((0.1 + len(pcm) / SR + 1.0) * 2) / 2
    frames = [Stamped(start + i / SR / 2, "in", empty_or_binary(k, encode(pcm[i:i + 3200], "s16le")))
              for k, i in enumerate(range(0, len(pcm), 3200))]  # 200 ms frames, 2x real time
    session = Session(SR, backend="fallback")
    session.receive_all(text_events + frames)
    live = session.timeline(audio=False).speaker("agent")
    assert live[1].words == () and session.final_until <= start  # not estimated yet
    tl = session.finish()
    first, second = tl.speaker("agent")
    reference = Session(SR, backend="fallback", recognize=False)
    reference.receive_all(text_events)
    assert first == reference.finish().speaker("agent")[0] and first.source == "text"
    end = start + len(pcm) / SR
    assert (second.start, second.end) == (pytest.approx(start), pytest.approx(end))
    check_estimated(second, (start, end), speech_spans(spoken.words, start))
    # the phones are the heard words' (the audio-only viseme path's default)
    assert [(p.phone, p.start, p.end) for p in second.phones] == shifted(
        estimate_phones(pcm, SR, "words"), start)


def test_nothing_recognised_keeps_the_audio_only_phones():
    """A hum: no words, but the phones of the acoustic phone loop so a mouth still moves."""
    hum = (np.sin(np.arange(SR // 2) / 3) * 6000).astype(np.int16)
    session = Session(SR, backend="fallback")
    session.receive(Stamped(1.0, "in", AgentAudio(encode(hum, "s16le"))))
    (u,) = session.finish().speaker("agent")
    expected = estimate_phones(hum, SR, "acoustic")
    assert expected and estimate(hum, SR).words == ()
    assert (u.source, u.text, u.words) == ("audio", "", ())
    assert [(p.phone, p.start, p.end) for p in u.phones] == shifted(expected, 1.0)


def test_words_heard_where_the_audio_was_cut_keep_some_time():
    """Audio cut mid-sentence (a busy relay splits an utterance where its audio paused): a word
    the recogniser heard at the cut, which the forced alignment cannot fit, keeps the
    recogniser's time instead of an empty span, so every word event has a duration."""
    s = synthesize("Of course, a table for two at seven. Goodbye!")
    pcm = resample(s.samples, s.sample_rate, 8000)
    for cut in (7447, 8141, 8302, 8638, 9069, 10394):
        found = estimate(pcm[:cut], 8000)
        assert found.words, cut
        times = [t for w in found.words for t in (w.start, w.end)]
        assert times == sorted(times) and times[-1] <= cut / 8000 + 1e-6, cut
        assert all(w.end > w.start for w in found.words), (cut, found.words)


def test_an_agent_heard_without_text_is_learned_and_heard_on_its_voice():
    """Text-less agent utterances teach the agent voice's profile from the words recognised in
    them, and a profile that has learned the voice makes its speech heard on the adapted model
    (and learns from it again)."""
    import copy

    from test_visemes import LINES, _shifted

    from aligner.speech import recognize
    from aligner.speech.adaptation import VoiceProfile

    assert SR == 16000  # the voice below is made at 16 kHz
    profile = VoiceProfile("agent_7")
    events, t = [], 1.0
    for text in LINES[1:]:
        pcm = _shifted(text)[0]
        events.append(Stamped(t, "in", AgentAudio(encode(pcm, "s16le"))))
        t = math.ceil(t + len(pcm) / SR + 1.5)
    session = Session(SR, voice=profile)
    session.receive_all(events)
    assert [u.source for u in session.finish().speaker("agent")] == ["recognized"] * 4
    assert profile.clips == len(LINES) - 1 and profile.transform is not None
    pcm = _shifted(LINES[0])[0]
    mine = copy.deepcopy(profile)
    got = estimate(pcm, SR, voice=mine)
    assert got.words and mine.clips == profile.clips + 1  # learned from the words heard
    # heard on the voice's model: the recogniser's adapted decoder holds its transform
    last = next(reversed(recognize._adapted))
    assert recognize._adapted[last][0] == profile.transform.sphinx_mllr()
