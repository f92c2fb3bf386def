"""Streaming alignment: one :class:`StreamAligner` per agent utterance, fed chunk by chunk.

Each alignment chunk brings audio and the text it speaks; chunk text may start or end inside a
word (``"Hel"`` + ``"lo there"``). Every chunk is aligned as it arrives, on its own audio (one
shorter than :data:`SHORT_CHUNK`, a word or two of a fast voice, with the last :data:`CONTEXT`
seconds of the chunk before it, its words kept inside it): chunk edges are hard anchors, so
each piece of a word lies inside the chunk whose text holds it, and a word split over chunks
becomes one word spanning both. A new chunk changes only the word left
unfinished at the end of the previous one; everything before :attr:`StreamResult.final_until`
is final. The stream judges its voice on its first second or so of whole words
(:attr:`StreamAligner.voice_like_espeak`) and keeps the verdict: chunks of a voice like
espeak-ng's are warped onto its speech, the others go straight to pocketsphinx. The reference's
voice (male or female, by pitch) is chosen on the first chunk with a pitch and kept too.

Times are on the *concatenated chunk audio* clock (0 = first sample of the first chunk); char
offsets index the concatenated text of all chunks.

>>> import numpy as np
>>> s = StreamAligner(16000, backend="fallback")
>>> r = s.feed(np.zeros(8000, np.int16), "Hel")
>>> r.final_until
0.0
>>> r = s.feed(np.zeros(8000, np.int16), "lo there")
>>> [(w.word, w.start < 0.5 < w.end) for w in r.words]
[('Hello', True), ('there', False)]
>>> s.finish().final_until
1.0
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import as_int16
from ..errors import AlignmentError
from ..timeline import Char, Phone, Word
from .alignment import Alignment, Timing, aligner_rate, assemble, time_tokens, voice_verdict
from .durations import monotonic_spans
from .pronounce import token_phones
from .text import tokenize

if TYPE_CHECKING:
    from .adaptation import VoiceProfile

__all__ = ["CONTEXT", "SHORT_CHUNK", "StreamAligner", "StreamResult"]

#: Seconds under which a chunk is aligned with the chunk before it as context (the backends
#: need a quarter of a second of audio to fit words on their own).
SHORT_CHUNK = 0.25
#: Seconds of the chunk before that such a chunk is aligned with (its last words).
CONTEXT = 1.0


@dataclass(frozen=True, slots=True)
class StreamResult:
    """The alignment of everything fed so far, and the time before which it is final."""

    duration: float
    words: tuple[Word, ...]
    chars: tuple[Char, ...]
    phones: tuple[Phone, ...]
    text: str
    final_until: float

    def to_dict(self) -> dict[str, Any]:
        """The ``aligner align`` JSON plus ``final_until``."""
        d = Alignment(self.duration, self.words, self.chars, self.phones, self.text).to_dict()
        d["final_until"] = round(self.final_until, 4)
        return d


@dataclass(slots=True)
class _Fragment:
    char_start: int  # in the concatenated text
    char_end: int
    start: float  # on the concatenated audio clock
    end: float
    phones: list[tuple[str, float, float]]  # timed by the backend, or empty
    confidence: float | None = None


class StreamAligner:
    """Align one utterance chunk by chunk.

    Call :meth:`feed` for each chunk in order, then :meth:`finish` once. Sans-I/O: no clock, no
    threads; feed it from wherever the chunks come.

    Args:
        sample_rate: the rate of every chunk's samples.
        backend: as for :func:`aligner.align`.
        voice: the voice's profile (:class:`aligner.speech.adaptation.VoiceProfile`), shared by
            the streams of one voice: each chunk uses it where it fits and it learns from each
            chunk, so a call's later utterances, and the next call, start adapted.
    """

    def __init__(self, sample_rate: int, *, backend: str = "auto",
                 voice: VoiceProfile | None = None) -> None:
        self.sample_rate = aligner_rate(sample_rate)
        self.backend = backend
        self.voice = voice
        self._text = ""
        self._samples = 0
        self._fragments: list[_Fragment] = []
        self._finished = False
        self._last: StreamResult | None = None
        self._voice = (0.0, 0.0)  # reference warp cost x seconds, seconds: see time_tokens
        self._reference_voice: str | None = None  # chosen on the first chunk with a pitch
        self._previous: tuple[np.ndarray, str] | None = None  # the last chunk: context

    @property
    def text(self) -> str:
        """The concatenated text of the chunks fed so far."""
        return self._text

    @property
    def voice_like_espeak(self) -> bool | None:
        """The stream's verdict on its voice (:func:`aligner.speech.alignment.voice_verdict`): True
        once it sounds like espeak-ng's (chunks timed by the reference warp), False once clearly
        not (chunks timed by pocketsphinx, without the warp), None while undecided."""
        return voice_verdict(self._voice)

    @property
    def duration(self) -> float:
        """Seconds of audio fed so far."""
        return self._samples / self.sample_rate

    def feed(self, pcm: np.ndarray, text: str) -> StreamResult:
        """Align one more chunk (its audio and the text it speaks; either may be empty).

        Returns:
            The alignment of everything fed so far.

        Raises:
            AlignmentError: after :meth:`finish`.
        """
        if self._finished:
            raise AlignmentError("feed() after finish(): start a new StreamAligner")
        pcm = as_int16(pcm)
        t0 = self._samples / self.sample_rate
        c0 = len(self._text)
        local = tokenize(text)
        if local:
            prons = [token_phones(t.word) for t in local]
            # Pieces of words split with the previous or the next chunk ("Hel" + "lo").
            partial = (bool(self._text) and not self._text[-1].isspace()
                       and local[0].token_start == 0, local[-1].token_end == len(text))
            timing = self._in_context(pcm, text, local, partial)
            if timing is None:
                timing = time_tokens(pcm, self.sample_rate, text, local, prons,
                                     backend=self.backend, voice=self._voice, partial=partial,
                                     reference_voice=self._reference_voice, profile=self.voice,
                                     learn=self.voice is not None)
            if self.voice is not None:
                self.voice.learn(timing.stats)
            self._reference_voice = self._reference_voice or timing.reference_voice
            if timing.cost is not None:
                seconds = len(pcm) / self.sample_rate
                self._voice = (self._voice[0] + timing.cost * seconds, self._voice[1] + seconds)
            phones = timing.phones or [[] for _ in local]
            confidence = timing.confidence or [None] * len(local)
            self._fragments += [
                _Fragment(c0 + t.char_start, c0 + t.char_end, t0 + s, t0 + e,
                          [(p, t0 + a, t0 + b) for p, a, b in ph], c)
                for t, (s, e), ph, c in zip(local, timing.spans, phones, confidence, strict=True)]
        self._text += text
        self._samples += len(pcm)
        self._previous = (pcm, text)
        self._last = self._result(final=False)
        return self._last

    def _context(self) -> tuple[np.ndarray, str]:
        """The last chunk's audio and text, from the first of its words that start within
        :data:`CONTEXT` s of its end (cut midway between that word and the one before)."""
        before, before_text = self._previous
        end = self._samples / self.sample_rate
        t0 = end - len(before) / self.sample_rate
        c0 = len(self._text) - len(before_text)
        mine = [f for f in self._fragments if f.char_start >= c0]
        late = [i for i, f in enumerate(mine) if f.start >= end - CONTEXT]
        k = late[0] if late else len(mine) - 1
        if k <= 0:
            return before, before_text
        cut = (mine[k - 1].end + mine[k].start) / 2 - t0
        return before[int(cut * self.sample_rate):], before_text[mine[k].char_start - c0:]

    def _in_context(self, pcm: np.ndarray, text: str, local: tuple, partial: tuple[bool, bool],
                    ) -> Timing | None:
        """The timing of a chunk too short to align on its own (under :data:`SHORT_CHUNK` s: a
        word or two of a fast voice), aligned with the chunk before it as context, its words kept
        inside the chunk; None when there is no such context (the first chunk, a word split with
        the previous chunk) or it did not help (no backend but the fallback fits)."""
        seconds = len(pcm) / self.sample_rate
        if seconds >= SHORT_CHUNK or self._previous is None or partial[0]:
            return None
        before, before_text = self._context()
        both = before_text + text
        tokens = tokenize(both)
        n = len(local)
        if len(tokens) < n or [t.word for t in tokens[len(tokens) - n:]] != [t.word for t in local]:
            return None
        timing = time_tokens(np.concatenate([before, pcm]), self.sample_rate, both, tokens,
                             [token_phones(t.word) for t in tokens], backend=self.backend,
                             voice=self._voice, partial=(False, partial[1]),
                             reference_voice=self._reference_voice, profile=self.voice)
        if timing.backend not in ("acoustic", "reference"):
            return None
        shift = len(before) / self.sample_rate

        def inside(t: float) -> float:
            return min(max(t - shift, 0.0), seconds)

        spans = [(inside(a), inside(b)) for a, b in timing.spans[-n:]]
        if any(b <= a for a, b in spans):  # a word the context put outside the chunk
            return None
        return replace(
            timing, spans=spans,
            phones=[[(p, inside(a), inside(b)) for p, a, b in ph]
                    for ph in (timing.phones or [[] for _ in tokens])[-n:]],
            confidence=timing.confidence[-n:] if timing.confidence else None, cost=None)

    def finish(self) -> StreamResult:
        """End of the utterance: everything becomes final. Idempotent."""
        self._finished = True
        self._last = self._result(final=True)
        return self._last

    def _result(self, final: bool) -> StreamResult:
        text, duration = self._text, self._samples / self.sample_rate
        tokens = tokenize(text)
        prons = [token_phones(t.word) for t in tokens]
        spans: list[tuple[float, float]] = []
        phone_times: list[list[tuple[str, float, float]]] = []
        confidence: list[float | None] = []
        groups: list[list[_Fragment]] = []
        fi = 0
        frags = self._fragments
        for tok in tokens:
            mine = []
            while fi < len(frags) and frags[fi].char_start < tok.token_end:
                if frags[fi].char_end > tok.token_start:
                    mine.append(frags[fi])
                fi += 1
            groups.append(mine)
            # Backend phones only for a word aligned in one piece (a piece of a split word has
            # the phones of its letters, not of the word).
            phone_times.append(mine[0].phones if len(mine) == 1 else [])
            known = [f.confidence for f in mine if f.confidence is not None]
            confidence.append(min(known) if known else None)
            if mine:
                spans.append((mine[0].start, mine[-1].end))
            else:  # cannot happen for well-formed input; keep the token timed anyway
                t = spans[-1][1] if spans else 0.0
                spans.append((t, t))
        al = assemble(text, tokens, prons, monotonic_spans(spans, duration), duration, self.backend,
                      phone_times, confidence if any(c is not None for c in confidence) else None)
        chars = list(al.chars)
        for tok, mine in zip(tokens, groups, strict=True):
            if len(mine) > 1:  # split word: each piece's characters stay in its own chunk
                for fr in mine:
                    n = max(1, fr.char_end - fr.char_start)
                    d = (fr.end - fr.start) / n
                    for k, i in enumerate(range(fr.char_start, fr.char_end)):
                        if tok.char_start <= i < tok.char_end:
                            chars[i] = replace(chars[i], start=fr.start + k * d,
                                               end=fr.start + (k + 1) * d)
        final_until = duration
        if not final and tokens and tokens[-1].token_end == len(text):
            # The text does not end in whitespace: the last token may go on in the next chunk
            # ("Hel" + "lo", and even "77." + "5"), so its word is not final yet.
            final_until = al.words[-1].start
        return StreamResult(duration, al.words, tuple(chars), al.phones, text, final_until)
