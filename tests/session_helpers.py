"""A short real call for tests: espeak-ng speech cut into alignment chunks, a barge-in.

``Speech`` is espeak-ng speech of a text with its word times; :func:`write_capture` writes a
web-protocol capture of an agent answer that the user interrupts (clear at 2.0 s), and
:func:`barge_in_timeline` is its timeline, built by the product's own path (capture ->
session -> aligner), with audio tracks in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aligner.audio import encode, resample
from aligner.speech.synthesis import synthesize
from aligner.timeline import Timeline
from aligner.wire.capture import CaptureWriter
from aligner.wire.events import (
    AlignedAudio,
    Clear,
    Metadata,
    MicAudio,
    Stamped,
    TranscriptTurn,
    Update,
)
from aligner.wire.protocol import encode as encode_web

SR = 16000
AGENT_TEXT = ("Sure, I can book a table for four people at seven tonight. "
              "Would you like a window seat?")
USER_TEXT = "Actually make it five people please."


class Speech:
    """Speech at SR with espeak's word times (seconds) and char offsets."""

    def __init__(self, text: str, voice: str) -> None:
        s = synthesize(text, voice=voice)
        self.text = text
        self.pcm = resample(s.samples, s.sample_rate, SR)
        self.words = s.words

    def chunks(self, cuts: list[int], midword: bool = False) -> list[tuple[np.ndarray, str]]:
        """Split before each word index in ``cuts`` (mid-word: inside that word instead)."""
        a_cuts, t_cuts = [0], [0]
        for i in cuts:
            w = self.words[i]
            if midword and w.char_end - w.char_start >= 2:
                t_cuts.append(w.char_start + (w.char_end - w.char_start) // 2)
                a_cuts.append(round((w.start + w.end) / 2 * SR))
            else:
                t_cuts.append(w.char_start)
                a_cuts.append(round(w.start * SR))
        a_cuts.append(len(self.pcm))
        t_cuts.append(len(self.text))
        return [(self.pcm[a_cuts[k]:a_cuts[k + 1]], self.text[t_cuts[k]:t_cuts[k + 1]])
                for k in range(len(a_cuts) - 1)]


def write_capture(path: Path, agent: Speech, user: Speech) -> list[Stamped]:
    """A web-protocol capture of a short call with a barge-in; returns its events."""
    events = []
    t = 0.1
    for pcm, text in agent.chunks([4, 9]):
        events.append(Stamped(t, "in", AlignedAudio(encode(pcm, "s16le"), text)))
        t += 0.3
    events.append(Stamped(0.2, "in", Metadata({"step": "greeting"})))
    for i in range(0, len(user.pcm), 320):
        events.append(Stamped(1.5 + i / SR, "out", MicAudio(encode(user.pcm[i:i + 320], "s16le"))))
    events.append(Stamped(2.0, "in", Clear()))
    events.append(Stamped(3.9, "in", Update((TranscriptTurn("agent", AGENT_TEXT),
                                             TranscriptTurn("user", USER_TEXT)), "agent_turn")))
    events.sort(key=lambda s: s.t)
    with CaptureWriter(path, {"call_id": "call_1", "protocol": "web", "audio_encoding": "s16le",
                              "sample_rate": SR}) as w:
        for s in events:
            w.write(s.t, s.direction, encode_web(s.event))
        w.write_close(4.0, 1000, "call ended")
    return events


def barge_in_timeline(folder: str) -> Timeline:
    """The timeline of :func:`write_capture`'s call (written under ``folder``), built by
    :func:`aligner.session.build_timeline` with the default backend."""
    from aligner.session import build_timeline

    path = Path(folder) / "capture"
    write_capture(path, Speech(AGENT_TEXT, "en-us"), Speech(USER_TEXT, "en-us+f3"))
    return build_timeline(path)
