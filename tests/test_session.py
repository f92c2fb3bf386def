"""The session model: playback scheduling, clear truncation, user turns, events, timeline files.

Audio is real espeak-ng speech (aligner.speech.synthesis); agent chunks are cut from it at espeak's own
word times, so a chunk's text is exactly what its audio says.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from session_helpers import AGENT_TEXT, SR, USER_TEXT, Speech, write_capture

from aligner.audio import decode, encode, load, resample
from aligner.cli import main
from aligner.errors import SessionError
from aligner.session import Session, build_timeline, save_timeline
from aligner.session.usertrack import UserAudio
from aligner.speech.adaptation import VoiceProfile
from aligner.speech.text import tokenize
from aligner.timeline import Timeline
from aligner.wire.events import (
    AgentAudio,
    AlignedAudio,
    Clear,
    Metadata,
    MicAudio,
    Ping,
    Stamped,
    TranscriptTurn,
    TranscriptWord,
    TwilioClear,
    TwilioMark,
    TwilioMedia,
    TwilioStart,
    TwilioStop,
    Unknown,
    Update,
)


@pytest.fixture(scope="module")
def agent() -> Speech:
    return Speech(AGENT_TEXT, "en-us")


@pytest.fixture(scope="module")
def user() -> Speech:
    return Speech(USER_TEXT, "en-us+f3")


def feed_chunks(session: Session, chunks, arrivals) -> None:
    for (pcm, text), t in zip(chunks, arrivals, strict=True):
        session.receive(Stamped(t, "in", AlignedAudio(encode(pcm, "s16le"), text)))


def all_words(tl: Timeline, speaker: str = "agent"):
    return [w for u in tl.speaker(speaker) for w in u.words]


# --- scheduling -----------------------------------------------------------------------------------

FIXTURES = [HealthCheck.function_scoped_fixture]  # module fixtures: the same speech every example


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(steps=st.lists(st.tuples(st.floats(0.0, 1.5), st.integers(1, 8000)),
                      min_size=1, max_size=12),
       jitter=st.sampled_from([0.0, 0.05, 0.2]))
def test_chunks_play_back_to_back_never_before_arrival(agent, steps, jitter):
    session = Session(SR, jitter_buffer=jitter, align=False)
    t, pos, sent = 0.1, 0, []
    for dt, n in steps:
        t += dt
        pcm = agent.pcm[pos:pos + n]
        pos = (pos + n) % (len(agent.pcm) - 8000)
        session.receive(Stamped(t, "in", AgentAudio(encode(pcm, "s16le"))))
        sent.append((t, pcm))
    sched = session.schedule()
    tl = session.finish()
    track = tl.track("agent").samples
    prev_end = 0.0
    for c, (sent_at, pcm) in zip(sched, sent, strict=True):
        arrival = round(sent_at, 6)  # the session clock's resolution is 1 us
        assert c.arrival == arrival
        assert c.start >= arrival + jitter - 1e-9  # never before arrival + jitter
        assert c.start - max(prev_end, arrival + jitter) < 1.0 / SR + 1e-9  # and no later
        assert c.start >= prev_end - 1e-9  # never overlapping
        assert math.isclose(c.end - c.start, len(pcm) / SR)
        a = round(c.start * SR)
        assert np.array_equal(track[a:a + len(pcm)], pcm)  # played exactly as received
        prev_end = c.end
    # a new utterance exactly where the queue ran dry for longer than the gap
    breaks = sum(1 for p, c in zip(sched, sched[1:], strict=False)
                 if c.start - p.end > session.utterance_gap)
    assert len(tl.speaker("agent")) == breaks + 1
    assert [c.utterance for c in sched] == sorted(c.utterance for c in sched)


def test_utterance_gap_ends_an_utterance(agent):
    chunks = agent.chunks([6])
    first = len(chunks[0][0]) / SR
    for gap, expected in ((0.3, 1), (0.8, 2)):
        session = Session(SR, align=False, utterance_gap=0.5)
        feed_chunks(session, chunks, [0.0, first + gap])
        utts = session.finish().speaker("agent")
        assert len(utts) == expected
        assert "".join(u.text for u in utts) == AGENT_TEXT


def test_live_session_ends_utterance_when_time_passes(agent):
    session = Session(SR, align=False)
    feed_chunks(session, agent.chunks([]), [0.0])
    end = len(agent.pcm) / SR
    session.advance(end + 0.2)
    assert session.schedule()[0].utterance == 0
    session.advance(end + 0.6)  # the queue has been dry for longer than the gap
    feed_chunks(session, agent.chunks([]), [end + 0.7])
    assert [c.utterance for c in session.schedule()] == [0, 1]


# --- clear truncation -----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURES)
@given(cuts=st.lists(st.integers(1, 16), unique=True, max_size=5).map(sorted),
       midword=st.booleans(),
       delays=st.lists(st.floats(0.0, 0.4), min_size=6, max_size=6),
       jitter=st.sampled_from([0.0, 0.08]),
       clear_at=st.floats(0.0, 1.0))
@example(cuts=[], midword=False, delays=[0.0] * 6, jitter=0.08, clear_at=0.0)  # before playback
def test_clear_truncates_what_was_heard(agent, cuts, midword, delays, jitter, clear_at):
    chunks = agent.chunks(cuts, midword)
    arrivals, t = [], 0.2
    for (pcm, _), d in zip(chunks, delays, strict=False):
        arrivals.append(t)
        t += len(pcm) / SR * 0.5 + d  # sometimes ahead of playback, sometimes behind
    full = Session(SR, jitter_buffer=jitter, backend="fallback")
    feed_chunks(full, chunks, arrivals)
    uncut = full.finish()
    sched = full.schedule()
    # the clear comes after the last chunk arrived, somewhere in the utterance (or after it)
    t_clear = round(arrivals[-1] + clear_at * (sched[-1].end + 0.3 - arrivals[-1]), 6)
    cut = Session(SR, jitter_buffer=jitter, backend="fallback")
    feed_chunks(cut, chunks, arrivals)
    cut.receive(Stamped(t_clear, "in", Clear()))
    tl = cut.finish()

    assert [(e.t, e.kind) for e in tl.events] == [(t_clear, "clear")]
    track = tl.track("agent").samples
    assert len(track) <= math.ceil(t_clear * SR)  # nothing heard after the clear
    assert np.array_equal(track, uncut.track("agent").samples[:len(track)])
    (u,), (v,) = tl.speaker("agent"), uncut.speaker("agent")
    assert u.text == v.text == AGENT_TEXT
    if t_clear >= sched[-1].end:  # nothing left to cut
        assert u == v
        return
    assert u.interrupted and u.end == t_clear
    assert len(u.words) == len(v.words) == len(tokenize(AGENT_TEXT))
    assert len(u.chars) == len(u.text)
    for w, x in zip(u.words, v.words, strict=True):
        assert (w.word, w.char_start, w.char_end) == (x.word, x.char_start, x.char_end)
        if x.start >= t_clear:  # not started: unplayed, pinned at the clear
            assert not w.played and w.start == w.end == t_clear
        elif x.end > t_clear:  # cut mid-way: ends at the clear
            assert w.played and w.start == x.start and w.end == t_clear
        else:
            assert w == x
    assert all(p.end <= t_clear for p in u.phones)
    assert all(c.end <= t_clear for c in u.chars)
    assert [(w.start, w.end) for w in u.words] == sorted((w.start, w.end) for w in u.words)
    for seq in (u.words, u.chars, u.phones):  # in order, never overlapping
        assert all(a.end <= b.start + 1e-6 for a, b in zip(seq, seq[1:], strict=False))


def test_neighbours_that_meet_never_overlap_once_rounded_to_the_microsecond():
    """A word's end and the next word's start, equal but computed along different float paths
    (across a chunk edge), straddle a 16 kHz sample time, which sits on a half microsecond:
    rounded on their own they would overlap by a microsecond (a hypothesis example of the
    clear test found it)."""
    from aligner.session.playback import _microseconds

    edge = 23267 / 16000  # 1.4541875 s
    starts = np.array([1.0, edge - 2e-13, 1.7, 1.9])
    ends = np.array([edge + 2e-13, 1.6, 1.95, 2.0])  # meet; a gap; a real 50 ms overlap
    assert np.round(ends[0], 6) > np.round(starts[1], 6)  # each rounded alone: they overlap
    s, e = _microseconds(starts, ends)
    assert e[0] <= s[1] and e[0] - s[0] > 0.45
    assert (e[1], s[2]) == (1.6, 1.7)  # a gap stays
    assert e[2] - s[3] > 0.049  # a real overlap is not hidden
    assert np.array_equal(s, np.round(starts, 6)) and (e >= s).all()
    assert all(round(float(x), 6) == x for x in (*s, *e))  # what timeline.json keeps


def test_clear_before_playback_leaves_all_words_unplayed(agent):
    session = Session(SR, jitter_buffer=0.5, backend="fallback")
    feed_chunks(session, agent.chunks([5]), [1.0, 1.1])
    session.receive(Stamped(1.2, "in", Clear()))
    feed_chunks(session, agent.chunks([]), [2.0])  # a new answer after the barge-in
    tl = session.finish()
    first, second = tl.speaker("agent")
    assert first.interrupted and first.start == first.end == 1.2
    assert first.words and not first.heard_words
    assert not second.interrupted and second.start == 2.5
    assert len(second.heard_words) == len(tokenize(AGENT_TEXT))


# --- alignment through the schedule ---------------------------------------------------------------

def test_words_land_in_their_chunks_across_gaps(agent):
    """Chunk edges stay hard anchors on the session clock: a gap between chunks shifts the
    words after it, and a word split across a gap spans it."""
    chunks = agent.chunks([3, 9, 14], midword=True)
    arrivals, t = [], 0.0
    for pcm, _ in chunks:
        arrivals.append(t)
        t += len(pcm) / SR + 0.3  # the queue runs dry for 0.3 s before every next chunk
    session = Session(SR)
    feed_chunks(session, chunks, arrivals)
    sched = session.schedule()
    tl = session.finish()
    (u,) = tl.speaker("agent")
    assert u.end == pytest.approx(sched[-1].end)
    for seq in (u.words, u.chars, u.phones):  # in order, never overlapping, across the gaps
        assert all(a.end <= b.start + 1e-6 for a, b in zip(seq, seq[1:], strict=False))
    bounds, pos = [], 0
    for c in sched:
        bounds.append((pos, pos + len(c.text), c.start, c.end))
        pos += len(c.text)
    errors = []
    for w, truth in zip(u.words, agent.words, strict=True):
        first = next(b for b in bounds if b[0] <= w.char_start < b[1])
        last = next(b for b in bounds if b[0] < w.char_end <= b[1])
        assert first[2] - 1e-6 <= w.start <= first[3] + 1e-6
        assert last[2] - 1e-6 <= w.end <= last[3] + 1e-6
        k = bounds.index(first)
        shift = sched[k].start - round(sum(len(p) for p, _ in chunks[:k])) / SR
        errors.append(abs(w.start - (truth.start + shift)))
    # the times themselves follow the speech (a mapping off by a gap would be >= 0.3 s out)
    assert np.mean(errors) < 0.06
    split = [w for w in u.words if any(b[0] < w.char_start < b[1] <= w.char_end - 1 for b in bounds)
             or any(w.char_start < b[0] < w.char_end for b in bounds)]
    assert split and all(w.end - w.start > 0.3 for w in split)  # spans the 0.3 s gap
    # where the aligner timed a word's phones (warped from espeak-ng's speech) the word's onset
    # moves across the gaps with it; a word split between chunks has none
    onsets = [w for w in u.words if w.onset is not None]
    assert len(onsets) >= len(u.words) // 2
    assert all(w.start <= w.onset < w.end for w in onsets)
    assert not any(w.onset is not None for w in split)


# --- user side ------------------------------------------------------------------------------------

def send_mic(session: Session, pcm: np.ndarray, t0: float, until: float) -> float:
    """Mic frames of 20 ms in real time from t0 (silence around the speech) until ``until``."""
    n = SR // 50
    t = 0.0
    audio = np.concatenate([pcm, np.zeros(max(0, round((until - t0) * SR) - len(pcm)), np.int16)])
    for i in range(0, len(audio), n):
        t = t0 + i / SR
        session.receive(Stamped(t, "out", MicAudio(encode(audio[i:i + n], "s16le"))))
    return t


def test_user_utterance_aligned_from_voice_activity(agent, user):
    session = Session(SR)
    send_mic(session, np.zeros(SR, np.int16), 0.0, 1.0)
    speech_end = 1.0 + len(user.pcm) / SR
    t = send_mic(session, user.pcm, 1.0, speech_end + 0.6)
    turns = (TranscriptTurn("agent", "Hi."), TranscriptTurn("user", USER_TEXT))
    session.receive(Stamped(t, "in", Update(turns, "agent_turn")))
    # the user turn is the last one: it may still change, so it is not final yet
    assert session.final_until <= 1.0 + 0.05
    feed_chunks(session, agent.chunks([]), [t + 0.1])
    session.receive(Stamped(t + 0.2, "in", Update(turns + (TranscriptTurn("agent", "Sure"),))))
    assert session.final_until > speech_end
    tl = session.finish()
    (u,) = tl.speaker("user")
    assert u.text == USER_TEXT
    voiced = [w for w in user.words]
    assert u.start == pytest.approx(1.0 + voiced[0].start, abs=0.06)
    assert u.end == pytest.approx(1.0 + voiced[-1].end, abs=0.1)
    assert len(u.words) == len(tokenize(USER_TEXT))
    for w, truth in zip(u.words, user.words, strict=True):
        assert u.start <= w.start <= w.end <= u.end
        assert abs(w.start - (1.0 + truth.start)) < 0.15
    track = tl.track("user").samples
    a = round(1.0 * SR)
    assert np.array_equal(track[a:a + len(user.pcm)], user.pcm)  # placed when it was sent
    assert [e.data for e in tl.events if e.kind == "turn"] == [{"turn": "agent_turn"}]


@pytest.mark.parametrize("burst", [True, False])
def test_user_audio_keeps_real_timing_through_sender_stalls(user, burst):
    """A sender that stalls 0.48 s and then catches up in a burst must not shift the rest of the
    call late; a sender that really pauses leaves silence where it paused."""
    n, a, stall = SR // 50, round(0.3 * SR), round(0.48 * SR)
    audio = UserAudio(SR)
    sent = a  # send time in samples (exact arithmetic)
    for k, i in enumerate(range(0, len(user.pcm), n)):
        if k == 20:
            sent += stall  # nothing sent for a while
        audio.add(sent / SR, user.pcm[i:i + n])
        behind = k >= 20 and burst and sent > a + k * n
        sent += n // 5 if behind else n  # catching up: 5x real time until on time again
    track = audio.samples()
    if burst:  # the mic kept recording during the stall: one unbroken stretch, on time
        assert np.array_equal(track[a:a + len(user.pcm)], user.pcm)
        assert len(track) == a + len(user.pcm)
    else:
        cut = 20 * n
        assert np.array_equal(track[a:a + cut], user.pcm[:cut])
        assert not track[a + cut:a + cut + stall].any()
        assert np.array_equal(track[a + cut + stall:], user.pcm[cut:])


@pytest.mark.parametrize("noise_db", [None, -50.0, -38.0])
def test_user_speech_found_over_mic_noise(user, noise_db):
    """Voice activity follows the noise floor: steady mic hiss is not speech."""
    pcm = np.concatenate([np.zeros(SR, np.int16), user.pcm, np.zeros(SR, np.int16)])
    if noise_db is not None:
        hiss = np.random.default_rng(1).normal(0, 32768 * 10 ** (noise_db / 20), len(pcm))
        pcm = np.clip(pcm + hiss, -32768, 32767).astype(np.int16)
    audio = UserAudio(SR)
    for i in range(0, len(pcm), 320):
        audio.add(i / SR, pcm[i:i + 320])
    (start, end), = audio.islands()
    assert start == pytest.approx(1.0 + user.words[0].start, abs=0.05)
    assert end == pytest.approx(1.0 + user.words[-1].end, abs=0.25)


def test_untranscribed_user_speech_holds_final_until_for_a_while_only(user):
    session = Session(SR, align=False)
    session.receive(Stamped(0.0, "in", Update((TranscriptTurn("agent", "Hi."),))))
    t = send_mic(session, user.pcm, 1.0, 2.0 + len(user.pcm) / SR)
    assert session.final_until == pytest.approx(1.0 + user.words[0].start, abs=0.05)
    session.advance(t + 6.0)  # no update ever covered it: a cough, noise, the agent's echo
    assert session.final_until == t + 6.0


def test_user_utterance_uses_update_words():
    session = Session(SR)
    words = (TranscriptWord("Five", 2.0, 2.3), TranscriptWord("people,", 2.35, 2.8),
             TranscriptWord("please", 2.9, 3.3))
    turn = TranscriptTurn("user", "Five people, please.", words)
    session.receive(Stamped(3.5, "in", Update((turn,), "agent_turn")))
    tl = session.finish()
    (u,) = tl.speaker("user")
    assert [(w.word, w.start, w.end) for w in u.words] == [
        ("Five", 2.0, 2.3), ("people", 2.35, 2.8), ("please", 2.9, 3.3)]
    assert [u.text[w.char_start:w.char_end] for w in u.words] == ["Five", "people", "please"]
    assert (u.start, u.end) == (2.0, 3.3)
    assert len(u.chars) == len(u.text)
    assert all(a.start <= b.start for a, b in zip(u.chars, u.chars[1:], strict=False))


def test_user_turn_without_audio_or_words_still_gets_times():
    session = Session(SR, backend="fallback")
    session.receive(Stamped(4.0, "in", Update((TranscriptTurn("user", "Yes, two people."),))))
    (u,) = session.finish().speaker("user")
    assert u.end == 4.0 and 0 < u.start < u.end  # assumed to end when it first appeared
    assert [w.word for w in u.words] == ["Yes", "two", "people"]
    assert all(u.start <= w.start <= w.end <= u.end for w in u.words)


# --- events, errors, live contract ----------------------------------------------------------------

def test_events_are_kept_and_malformed_frames_counted(agent):
    session = Session(SR, align=False)
    session.receive(Stamped(0.1, "in", Metadata({"order": [1, 2]})))
    session.receive(Stamped(0.2, "in", Update((), "agent_turn")))
    session.receive(Stamped(0.3, "in", Update((), "agent_turn")))  # no change: no new event
    session.receive(Stamped(0.4, "in", Unknown("{bad", "invalid JSON")))
    session.receive(Stamped(0.5, "in", AgentAudio(b"\x01\x02\x03")))  # odd s16le byte count
    session.receive(Stamped(0.6, "in", Ping()))
    session.receive(Stamped(0.7, "in", Update((), "user_turn")))
    session.receive_close(0.9, 1011, "error_frontend_corrupted_payload")
    tl = session.finish()
    assert [(e.t, e.kind) for e in tl.events] == [
        (0.1, "metadata"), (0.2, "turn"), (0.4, "unknown"), (0.5, "unknown"), (0.7, "turn"),
        (0.9, "close")]
    assert tl.events[0].data == {"order": [1, 2]}
    assert tl.events[-1].data["reason"] == "error_frontend_corrupted_payload"
    assert tl.events[-1].data["error"] is True
    assert dict(tl.metadata)["malformed_frames"] == 2
    track = tl.track("agent").samples  # the usable part of the odd frame was kept, at 0.5 s
    assert len(track) == 8001 and track[-1] == 0x0201
    with pytest.raises(SessionError):
        session.receive(Stamped(1.0, "in", Clear()))


def test_final_until_only_covers_what_no_longer_changes(agent, user):
    chunks = agent.chunks([2, 5, 8, 12], midword=True)
    events, t = [], 0.0
    for pcm, text in chunks:
        events.append(Stamped(t, "in", AlignedAudio(encode(pcm, "s16le"), text)))
        t += len(pcm) / SR + 0.2  # each chunk late: the word split at its end waits for the next
    events.append(Stamped(t - 0.5, "in", Clear()))
    t_user = t + 0.8  # the mic sends 20 ms frames all along: silence, the user, silence
    mic = np.concatenate([np.zeros(round(t_user * SR), np.int16), user.pcm, np.zeros(SR, np.int16)])
    n = SR // 50
    for i in range(0, len(mic), n):
        events.append(Stamped(i / SR, "out", MicAudio(encode(mic[i:i + n], "s16le"))))
    t_end = events[-1].t
    events.append(Stamped(t_end, "in", Update((TranscriptTurn("user", USER_TEXT),), "agent_turn")))
    events.sort(key=lambda s: s.t)
    session = Session(SR, backend="fallback")
    snapshots, finals = [], []
    for stamped in events:
        session.receive(stamped)
        f = session.final_until
        assert f <= session.now
        finals.append(f)
        live = session.timeline(audio=False)
        snapshots.append((f, [(u.speaker, w) for u in live.utterances for w in u.words
                              if w.end < f]))
    session.receive(Stamped(t_end + 0.5, "in", Update((TranscriptTurn("user", USER_TEXT),
                                                       TranscriptTurn("agent", "Okay.")))))
    assert session.final_until > t_user + len(user.pcm) / SR
    final = session.finish()
    assert session.final_until == math.inf
    assert finals == sorted(finals) and finals[-1] > 1.0
    everything = [(u.speaker, w) for u in final.utterances for w in u.words]
    for _, words in snapshots:
        assert all(x in everything for x in words)


# --- Twilio form ----------------------------------------------------------------------------------

def twilio_events(agent: Speech, user: Speech) -> list[Stamped]:
    rate = 8000
    a8 = encode(resample(agent.pcm, SR, rate), "mulaw")
    u8 = encode(resample(user.pcm, SR, rate), "mulaw")
    ev = [Stamped(0.0, "out", TwilioStart("MZ1", call_sid="CA1"))]
    for i in range(0, len(u8), 160):  # caller audio: 20 ms frames in real time
        ev.append(Stamped(0.02 + i / rate, "out", TwilioMedia(u8[i:i + 160], "MZ1")))
    start = 0.5
    for i in range(0, len(a8), 1600):  # agent audio: 200 ms frames, faster than real time
        ev.append(Stamped(start + i / rate / 4, "in", TwilioMedia(a8[i:i + 1600], "MZ1")))
    ev.append(Stamped(start + len(a8) / rate / 4, "in", TwilioMark("said-all", "MZ1")))
    ev.append(Stamped(2.0, "in", TwilioClear("MZ1")))
    ev.append(Stamped(2.5, "out", TwilioStop("MZ1")))
    ev.sort(key=lambda s: s.t)
    return ev


def test_twilio_form(agent, user):
    # recognition of the text-less agent audio: tests/test_session_textless.py
    session = Session(8000, "mulaw", recognize=False)
    session.receive_all(twilio_events(agent, user))
    tl = session.finish()
    (u,) = tl.speaker("agent")
    assert (u.text, u.words, u.source) == ("", (), "audio")  # phones estimated, no words
    assert u.phones and all(0.5 <= p.start <= p.end <= 2.0 for p in u.phones)
    assert (u.interrupted, u.start, u.end) == (True, 0.5, 2.0)
    agent8 = decode(encode(resample(agent.pcm, SR, 8000), "mulaw"), "mulaw")
    track = tl.track("agent").samples
    assert len(track) == 2.0 * 8000
    assert np.array_equal(track[4000:], agent8[:12000])
    assert len(tl.track("user").samples) >= len(user.pcm) // 2
    assert [e.kind for e in tl.events] == ["start", "mark", "clear", "stop"]
    agent_end = 0.5 + len(agent8) / 8000  # the mark plays when the audio before it has
    assert tl.events[1].data == {"name": "said-all", "direction": "in",
                                 "plays_at": pytest.approx(agent_end, abs=1e-3)}
    assert dict(tl.metadata)["stream_sid"] == "MZ1"


# --- captures, files, CLI -------------------------------------------------------------------------

def test_build_timeline_from_capture_matches_live_session(tmp_path, agent, user):
    events = write_capture(tmp_path / "cap", agent, user)
    seen = []
    tl = build_timeline(tmp_path / "cap", backend="fallback",
                        progress=lambda t, total: seen.append((t, total)))
    live = Session(SR, backend="fallback")
    live.receive_all(events)
    live.receive_close(4.0, 1000, "call ended")
    expected = live.finish(4.0)
    assert tl.utterances == expected.utterances and tl.events == expected.events
    assert np.array_equal(tl.track("agent").samples, expected.track("agent").samples)
    assert dict(tl.metadata)["call_id"] == "call_1"
    assert [u.speaker for u in tl.utterances] == ["agent", "user"]
    assert tl.utterances[0].interrupted and 0 < len(tl.utterances[0].heard_words) < 17
    assert seen[-1] == (4.0, 4.0)


def test_torn_capture_still_gives_a_timeline(tmp_path, agent, user):
    write_capture(tmp_path / "cap", agent, user)
    with open(tmp_path / "cap" / "events.jsonl", "ab") as f:
        f.write(b'{"t": 4.5, "d": "in", "te')  # a recorder killed mid-line
    tl = build_timeline(tmp_path / "cap", align=False)
    assert dict(tl.metadata)["capture_skipped_lines"] == 1
    assert [u.speaker for u in tl.utterances] == ["agent", "user"]
    assert tl.events[-1].kind == "close"


def test_timeline_json_round_trip(tmp_path, agent, user):
    write_capture(tmp_path / "cap", agent, user)
    tl = build_timeline(tmp_path / "cap", backend="fallback")
    path = save_timeline(tl, tmp_path / "out")
    back = Timeline.load(path)
    assert back.to_dict() == json.loads(path.read_text())
    assert back.utterances == tl.utterances and back.events == tl.events
    assert back.duration == tl.duration and back.metadata == tl.metadata
    assert [a.path for a in back.audio] == ["agent.wav", "user.wav"]
    for a in back.audio:
        assert np.array_equal(a.load(tmp_path / "out"), tl.track(a.speaker).samples)
    assert Timeline.from_json(back.to_json()) == back


def test_cli_timeline_teaches_the_voice_profile_once_per_call(tmp_path, agent, user, capsys):
    write_capture(tmp_path / "cap", agent, user)
    profile = tmp_path / "agent.json"
    args = ["timeline", str(tmp_path / "cap"), "--out", str(tmp_path / "o"), "--backend",
            "acoustic", "--voice-profile", str(profile)]
    assert main(args) == 0
    first = VoiceProfile.load(profile)
    assert first.frames > 0 and first.sources == ["call_1"]
    assert main(args) == 0  # the same call again: used, not learned from twice
    again = VoiceProfile.load(profile)
    assert (again.clips, again.frames) == (first.clips, first.frames)
    assert "learned from this audio already" in capsys.readouterr().err


def test_cli_timeline(tmp_path, agent, user, capsys):
    write_capture(tmp_path / "cap", agent, user)
    assert main(["timeline", str(tmp_path / "cap"), "--out", str(tmp_path / "o"),
                 "--backend", "fallback"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "o" / "timeline.json")
    assert "utterances" in err and "/ 4.0 s" in err  # progress on stderr
    tl = Timeline.load(tmp_path / "o" / "timeline.json")
    assert tl.events[-1].kind == "close" and tl.events[-1].data["reason"] == "call ended"
    wav = load(tmp_path / "o" / "agent.wav", SR)
    assert np.array_equal(wav, tl.track("agent").load(tmp_path / "o"))
    # default output: next to the capture
    assert main(["timeline", str(tmp_path / "cap"), "--no-align"]) == 0
    assert (tmp_path / "cap" / "timeline.json").is_file()
    capsys.readouterr()
    assert main(["timeline", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a capture" in err
    with pytest.raises(SystemExit):
        main(["timeline", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_timeline_words_keep_the_aligners_confidence(tmp_path, agent, user):
    """Both speakers' words carry how sure the aligner is of them, into timeline.json."""
    write_capture(tmp_path / "cap", agent, user)
    tl = build_timeline(tmp_path / "cap")  # auto: the reference warp, or the acoustic model
    spoken = [w for u in tl.utterances for w in u.words if w.played]
    assert spoken and all(w.confidence is not None and 0 <= w.confidence <= 1 for w in spoken)
    assert {u.speaker for u in tl.utterances} == {"agent", "user"}
    tl.save(tmp_path / "timeline.json")
    again = type(tl).load(tmp_path / "timeline.json")
    assert [w.confidence for u in again.utterances for w in u.words if w.played] == [
        w.confidence for w in spoken]
