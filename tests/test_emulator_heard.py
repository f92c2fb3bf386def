"""The transcript as heard (aligner.emulator.heard) and the emulator's call records: no sockets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligner.emulator.calls import CallRegistry, Turn
from aligner.emulator.heard import SpokenTurn, heard_transcript, next_change
from aligner.emulator.recording import CallRecording


def _agent(text: str, start: float, word_s: float = 0.3, complete: bool = True) -> SpokenTurn:
    """An agent turn whose words play one after another from ``start``."""
    words, spans, pos = [], [], 0
    for i, word in enumerate(text.split()):
        pos = text.index(word, pos)
        bare = word.strip(",.?!")
        words.append((bare, start + i * word_s, start + (i + 1) * word_s))
        spans.append((pos, pos + len(bare)))
        pos += len(word)
    return SpokenTurn(Turn("agent", text, words), spans=spans,
                      play_end=start + len(words) * word_s + 0.1, complete=complete)


def test_an_agent_turn_grows_word_by_word_and_ends_whole():
    turn = _agent("Hello, thanks for calling.", 1.0)
    shown = [heard_transcript([turn], t) for t in (0.5, 1.0, 1.35, 2.05, 2.35)]
    assert shown[0] == []
    assert [s[0]["content"] for s in shown[1:]] == \
        ["Hello", "Hello, thanks", "Hello, thanks for calling", "Hello, thanks for calling."]
    assert next_change([turn], 1.35) == pytest.approx(1.6)
    assert next_change([turn], 2.25) == pytest.approx(2.3)  # its audio ends
    assert next_change([turn], 2.35) is None


def test_nothing_shows_after_a_user_turn_still_being_recognised():
    greeting = _agent("Hello there.", 0.0)
    user = SpokenTurn(Turn("user"))
    answer = _agent("Of course.", 3.0)
    turns = [greeting, user, answer]
    assert [t["role"] for t in heard_transcript(turns, 4.0)] == ["agent"]  # no words yet
    user.turn.content = "i would like"  # words recognised so far
    assert [t["role"] for t in heard_transcript(turns, 4.0)] == ["agent", "user", "agent"]
    user.turn.content, user.complete = "", True  # nothing said after all: skipped
    assert [t["role"] for t in heard_transcript(turns, 4.0)] == ["agent", "agent"]


@st.composite
def _calls(draw):
    """Turns in the order said, agent turns playing one after another, user turns being
    recognised (their words appear at a time, possibly after the next agent turn started)."""
    turns, events, t = [], [], 0.0
    for i in range(draw(st.integers(1, 6))):
        if i % 2 == 0:
            words = draw(st.lists(st.sampled_from(["yes,", "table", "seven.", "the", "view"]),
                                  min_size=1, max_size=6))
            turn = _agent(" ".join(words), t, draw(st.floats(0.05, 0.5)))
            turns.append(turn)
            t = turn.play_end + draw(st.floats(0.0, 1.0))
        else:
            user = SpokenTurn(Turn("user"))
            turns.append(user)
            events.append((t + draw(st.floats(0.0, 3.0)), user, draw(st.sampled_from(
                ["", "no thanks", "the window"]))))
            t += draw(st.floats(0.3, 2.0))
    return turns, events, t + 3.0


@given(_calls(), st.lists(st.floats(0.0, 30.0), min_size=2, max_size=30))
def test_heard_transcripts_only_grow_in_the_order_said(call, times):
    turns, recognised, _ = call
    before: list[dict] = []
    for now in sorted(times):
        for at, user, words in recognised:
            if at <= now and not user.complete:
                user.turn.content, user.complete = words, True
        shown = heard_transcript(turns, now)
        assert len(shown) >= len(before)
        for old, new in zip(before, shown, strict=False):
            assert old["role"] == new["role"]
            assert new["content"].startswith(old["content"])
        before = shown


def test_recordings_of_old_calls_are_dropped():
    registry = CallRegistry(keep_recordings=2)
    calls = [registry.register({"agent_id": "a"}) for _ in range(3)]
    for call in calls:
        call.recording = CallRecording(call.sample_rate)
        call.recording.user(np.ones(160, np.int16), end_at=0.1)
        registry.retire(call)
    assert calls[0].recording is None and calls[1].recording and calls[2].recording
    assert calls[2].recording.wav()[:4] == b"RIFF"
