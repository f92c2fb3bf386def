"""Agent playback as a front end hears it: chunks queued back-to-back, cut by ``clear``.

Pure and clock-free (the session feeds it stamped times). Rules:

* A chunk starts at ``max(end of the previous chunk, arrival + jitter_buffer)``, never earlier;
  times are kept in whole samples of the call's rate, so back-to-back chunks join exactly.
* An agent utterance ends when the queue runs dry for more than ``utterance_gap`` seconds (the
  next chunk would start that much after the previous one ended), or at a ``clear``.
* Each utterance has one :class:`aligner.speech.stream.StreamAligner`, fed every chunk as it arrives.
  Its times are on the *concatenated chunk audio* clock; :class:`AgentUtterance` maps them to the
  session clock through the schedule (piecewise: a gap between chunks shifts later times; a
  boundary that ends at a chunk edge ends where that chunk ended).
* ``clear`` at ``t`` truncates the chunk playing at ``t`` and drops the rest of the queue. Words
  that had not started are kept with ``played=False`` and ``start == end == t``; a word cut
  mid-way ends at ``t``; characters likewise (one per character of the text is kept); phones
  after ``t`` are dropped and a phone cut mid-way ends at ``t``.
* An utterance whose chunks carried no text at all (binary audio, Twilio media) is, with an
  ``estimator`` (:func:`aligner.session.textless.estimate`), estimated when it ends, on the audio that
  was heard: phones from the audio, and its text the recognised words, ``source``
  ``"recognized"`` (``"audio"``: no words, phones only). Until then nothing of it is final.

>>> import numpy as np
>>> u = AgentUtterance(16000, aligner_factory=None)
>>> u.add(0.5, np.zeros(8000, np.int16), "Hi", start=8000)
>>> u.add(0.6, np.zeros(8000, np.int16), " there", start=16000)
>>> u.clear(1.25)
>>> out = u.utterance()
>>> (out.start, out.end, out.interrupted, out.text)
(0.5, 1.25, True, 'Hi there')
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..timeline import Char, Phone, Utterance, Word

__all__ = ["AgentUtterance", "PlayedChunk", "ScheduledChunk", "first_sample"]

logger = logging.getLogger(__name__)

AlignerFactory = Callable[[int], Any]
Estimator = Callable[[np.ndarray, int], Any]


def first_sample(t: float, sample_rate: int) -> int:
    """The first whole sample at or after time ``t`` (so audio never plays before ``t``).

    >>> first_sample(0.5, 16000), first_sample(0.50001, 16000)
    (8000, 8001)
    """
    return max(0, math.ceil(t * sample_rate - 1e-6))


@dataclass(slots=True)
class PlayedChunk:
    """One agent chunk as scheduled: samples ``start`` .. ``start + len(samples)`` on the session
    clock, ``offset`` on the utterance's concatenated-audio clock, ``heard`` samples played."""

    arrival: float
    start: int
    offset: int
    samples: np.ndarray
    text: str
    heard: int

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass(frozen=True, slots=True)
class ScheduledChunk:
    """Public view of one agent chunk's schedule (seconds, session clock).

    It arrived at ``arrival``, was to play ``start``..``end``, and was heard until ``heard_end``
    (``== end`` unless a clear cut it; ``== start`` if it was dropped). ``utterance`` is the
    index of its agent utterance.
    """

    utterance: int
    arrival: float
    start: float
    end: float
    heard_end: float
    text: str


class AgentUtterance:
    """One agent utterance: its chunks, their schedule, its aligner and an optional ``clear``.

    Call :meth:`add` for each chunk in order, :meth:`clear` when a clear cuts it, :meth:`finish`
    when it is over; :meth:`utterance` gives the frozen :class:`~aligner.timeline.Utterance` at
    any point (live: the alignment so far).

    Args:
        sample_rate: the call's rate (Hz).
        aligner_factory: ``f(sample_rate)`` returning a streaming aligner (``feed(pcm, text)``,
            ``finish()``, results with ``words``/``chars``/``phones``/``final_until``), or None
            to keep text without word timings.
        estimator: ``f(pcm, sample_rate)`` returning an alignment (``text``, ``words``,
            ``chars``, ``phones``) of audio that came without text, e.g.
            :func:`aligner.session.textless.estimate`; None leaves such utterances without timings
            (``source`` stays ``"text"``, the text ``""``).
    """

    def __init__(self, sample_rate: int, aligner_factory: AlignerFactory | None,
                 estimator: Estimator | None = None) -> None:
        self.sample_rate = sample_rate
        self.chunks: list[PlayedChunk] = []
        self.text = ""
        self.source = "text"  # "recognized" / "audio" once an estimator filled in the text
        self.cut: float | None = None  # time of the clear that cut it
        self.finished = False
        self._factory = aligner_factory
        self._estimator = estimator
        self._aligner: Any = None
        self._result: Any = None
        self._failed = False
        self._frozen: Utterance | None = None
        self._length = 0  # samples on the concatenated clock

    # --- feeding ---------------------------------------------------------------------------------
    def add(self, arrival: float, samples: np.ndarray, text: str, *, start: int) -> None:
        """Queue a chunk that arrived at ``arrival`` and plays from sample ``start``."""
        if self.finished:
            raise ValueError("utterance already finished")
        self.chunks.append(PlayedChunk(arrival, start, self._length, samples, text, len(samples)))
        self._length += len(samples)
        self.text += text
        self._frozen = None
        if self._factory is None or self._failed:
            return
        if self._aligner is None:
            if not self.text:
                return  # audio only so far; fed on the first chunk with text
            self._aligner = self._factory(self.sample_rate)
            for c in self.chunks[:-1]:  # earlier text-less chunks (silence, breath)
                self._feed(c.samples, c.text)
        self._feed(samples, text)

    def _feed(self, samples: np.ndarray, text: str) -> None:
        try:
            self._result = self._aligner.feed(samples, text)
        except Exception:  # an aligner failure must not end the session; align() at finish
            logger.exception("streaming aligner failed; aligning the utterance at its end")
            self._failed = True

    def clear(self, t: float) -> None:
        """A ``clear`` at ``t``: cut the chunk playing at ``t``, drop the ones after it."""
        if self.finished or t >= self.end_time:
            return
        self.cut = t
        cut = first_sample(t, self.sample_rate)
        for c in self.chunks:
            c.heard = min(len(c.samples), max(0, cut - c.start))
        self._frozen = None

    def finish(self) -> None:
        """No more chunks: finalise the alignment (idempotent)."""
        if self.finished:
            return
        self.finished = True
        self._frozen = None
        if self._aligner is not None and not self._failed:
            try:
                self._result = self._aligner.finish()
            except Exception:
                logger.exception("streaming aligner failed at finish; aligning the whole utterance")
                self._failed = True
        if self._failed and self.text:
            self._result = self._align_whole()
        elif not self.text and self._estimator is not None:
            self._estimate()

    def _align_whole(self) -> Any:
        from ..speech.alignment import align

        try:
            return align(self.samples(), self.sample_rate, self.text)
        except Exception:
            logger.exception("could not align agent utterance %r", self.text[:60])
            return None

    def _estimate(self) -> None:
        """Estimate phones and words of a text-less utterance from its heard audio (a prefix of
        the concatenated clock: a clear cuts a suffix)."""
        heard = sum(c.heard for c in self.chunks)
        if not heard:
            return
        try:
            result = self._estimator(self.samples()[:heard], self.sample_rate)
        except Exception:  # an estimate is optional: keep the audio-only utterance
            logger.exception("could not estimate %.2f s of text-less agent audio",
                             heard / self.sample_rate)
            return
        self.text, self.source, self._result = result.text, "audio", result
        if result.words:
            self.source = "recognized"

    # --- views -----------------------------------------------------------------------------------
    @property
    def start_time(self) -> float:
        """When its first audio plays (chunks with text but no audio do not count)."""
        first = next((c for c in self.chunks if len(c.samples)), self.chunks[0])
        return first.start / self.sample_rate

    @property
    def end_time(self) -> float:
        """Scheduled end (seconds) of the last chunk, ignoring any clear."""
        return self.chunks[-1].end / self.sample_rate

    @property
    def heard_end(self) -> int:
        """Last sample heard (exclusive) on the session clock."""
        ends = [c.start + c.heard for c in self.chunks if c.heard]
        if ends:
            return max(ends)
        start = self.chunks[0].start
        return start if self.cut is None else min(start, first_sample(self.cut, self.sample_rate))

    def samples(self) -> np.ndarray:
        """The concatenated chunk audio (the aligner's clock)."""
        if not self.chunks:
            return np.zeros(0, np.int16)
        return np.concatenate([c.samples for c in self.chunks])

    def final_until(self) -> float:
        """Session time before which this utterance's timings will not change (inf when done)."""
        if self.finished:
            return math.inf
        if self._aligner is None:  # text-less so far: an estimator times it all at the end
            return math.inf if self._estimator is None else self.start_time
        if self._result is None or self._failed:  # (a failed aligner: realigned at finish)
            return self.start_time
        x = min(float(self._result.final_until), self._length / self.sample_rate)
        return float(self._map(np.array([x]), "end")[0])

    def _map(self, x: np.ndarray, side: str) -> np.ndarray:
        """Concatenated-clock times -> session times; ``side`` "start" or "end" at chunk edges."""
        sr = self.sample_rate
        offsets = np.array([c.offset for c in self.chunks], dtype=np.float64) / sr
        starts = np.array([c.start for c in self.chunks], dtype=np.float64) / sr
        lengths = np.array([len(c.samples) for c in self.chunks], dtype=np.float64) / sr
        k = np.searchsorted(offsets, x, "right" if side == "start" else "left") - 1
        k = np.clip(k, 0, len(offsets) - 1)
        return starts[k] + np.clip(x - offsets[k], 0.0, lengths[k])

    def utterance(self) -> Utterance:
        """The utterance as heard so far, on the session clock (cached once finished)."""
        if self._frozen is not None:
            return self._frozen
        start, end = self.start_time, self.end_time
        cut = self.cut
        if cut is not None:
            start, end = min(start, cut), cut
        words: list[Word] = []
        chars: list[Char] = []
        phones: list[Phone] = []
        res = self._result
        if res is not None:
            onsets = self._map(np.array([np.nan if w.onset is None else w.onset
                                         for w in res.words], dtype=np.float64), "start")
            for (w, s, e), onset in zip(self._timed(res.words), onsets.tolist(), strict=True):
                played = cut is None or s < cut
                if not played:
                    s = e = cut
                elif cut is not None:
                    e = min(e, cut)
                heard = w.onset is not None and s <= onset < e  # the onset a clear left
                words.append(Word(w.word, _r(s), _r(e), w.char_start, w.char_end, played,
                                  _r(onset) if heard else None, w.confidence))
            for c, s, e in self._timed(res.chars):
                if cut is not None:
                    s, e = min(s, cut), min(e, cut)
                chars.append(Char(c.char, _r(s), _r(e)))
            for p, s, e in self._timed(res.phones):
                if cut is not None:
                    if s >= cut:
                        continue
                    e = min(e, cut)
                phones.append(Phone(p.phone, _r(s), _r(e), p.word_index))
        out = Utterance("agent", _r(start), _r(end), self.text, cut is not None,
                        tuple(words), tuple(chars), tuple(phones), self.source)
        if self.finished:
            self._frozen = out
        return out

    def _timed(self, items: Any) -> list[tuple[Any, float, float]]:
        items = list(items)
        if not items:
            return []
        s, e = _microseconds(
            self._map(np.array([i.start for i in items], dtype=np.float64), "start"),
            self._map(np.array([i.end for i in items], dtype=np.float64), "end"))
        return list(zip(items, s.tolist(), e.tolist(), strict=True))


def _microseconds(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of consecutive items rounded to the microsecond (what ``timeline.json``
    keeps), each item ending no later than the next one starts where the two meet.

    Two times that are equal but were computed along different float paths (across a chunk
    edge, or the aligner's own sums) can lie on either side of a half microsecond, where the
    sample times of 16 kHz audio often sit; rounded apart, neighbours that met would overlap
    by a microsecond.
    """
    s = np.round(np.asarray(starts, np.float64), 6)
    e = np.maximum(np.round(np.asarray(ends, np.float64), 6), s)
    if len(s) > 1:
        meet = e[:-1] - s[1:] <= 1.5e-6  # apart, touching, or overlapping by the rounding
        e[:-1] = np.where(meet, np.maximum(np.minimum(e[:-1], s[1:]), s[:-1]), e[:-1])
    return s, e


def _r(x: float) -> float:
    """Round to the microsecond (what ``timeline.json`` keeps), so timelines round-trip exactly."""
    return round(float(x), 6)
