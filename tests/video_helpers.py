"""Calls with real espeak-ng speech and audio tracks, for the video tests and benchmark."""

from __future__ import annotations

import numpy as np
from caption_helpers import heard_words

from aligner.speech.synthesis import synthesize
from aligner.timeline import AudioTrack, Phone, Timeline, TimelineEvent, Utterance
from aligner.visemes.sets import espeak_to_arpabet

__all__ = ["RATE", "call"]

RATE = 22050


def _utterance(speaker: str, text: str, at: float, cut: float | None, tracks: dict) -> Utterance:
    """``text`` spoken by espeak-ng from ``at``; its samples are added to ``tracks[speaker]``.

    ``cut`` (seconds after ``at``): a ``clear`` there; later words are unplayed and their audio
    never reaches the track.
    """
    s = synthesize(text)
    assert s.sample_rate == RATE
    clear = at + cut if cut is not None else None
    end = clear if clear is not None else at + s.duration
    words = heard_words(text, [(w.char_start, w.char_end, w.start, w.end) for w in s.words], at,
                        clear)
    phones = []
    for p in s.phones:
        if at + p.start >= end:
            break
        arpa = espeak_to_arpabet(p.phone) or ("sil",)
        step = (p.end - p.start) / len(arpa)
        for k, ph in enumerate(arpa):
            phones.append(Phone(ph, at + p.start + k * step, min(end, at + p.start + (k + 1) * step),
                                p.word_index))
    pcm = s.samples[: round((end - at) * RATE)]
    tracks[speaker].append((round(at * RATE), pcm))
    return Utterance(speaker, at, end, text, interrupted=clear is not None, words=tuple(words),
                     phones=tuple(phones))


def call(lines: list[tuple[str, str, float | None]], *, gap: float = 0.5,
         tail: float = 0.6) -> Timeline:
    """A call of ``(speaker, text, cut_after_seconds_or_None)`` turns, with audio tracks.

    A cut turn ends with a ``clear``; the next turn starts right at it.
    """
    tracks: dict[str, list] = {"agent": [], "user": []}
    utterances, events = [], []
    t = 0.4
    for speaker, text, cut in lines:
        u = _utterance(speaker, text, t, cut, tracks)
        utterances.append(u)
        if cut is not None:
            events.append(TimelineEvent(u.end, "clear"))
            t = u.end
        else:
            t = u.end + gap
    duration = t - gap + tail
    audio = []
    for speaker, parts in tracks.items():
        buf = np.zeros(round(duration * RATE), np.int16)
        for off, pcm in parts:
            n = min(len(pcm), len(buf) - off)
            buf[off:off + n] = pcm[:n]
        audio.append(AudioTrack(speaker, RATE, samples=buf))
    return Timeline(utterances=tuple(utterances), events=tuple(events), audio=tuple(audio),
                    duration=duration)
