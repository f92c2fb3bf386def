"""The agent's voice: speech cut into wire chunks, each paired with its exact text.

:func:`speak` synthesises a line with a voice (:mod:`aligner.speech.voices`: espeak-ng or hibari),
resamples it to the call's rate, encodes it and cuts it at word boundaries (the synthesiser's
word times), so that each chunk's ``text`` is exactly what its audio says and the chunk texts of
a line concatenate back to the line. With ``split_words`` the
cuts fall at fixed times, inside words too, and the text is split in proportion to the phones.
:class:`SpeechCache` shares results between calls (50 calls saying the same script synthesise
each line once) and runs synthesis off the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from .. import audio
from ..speech import synthesis, voices

__all__ = ["Chunk", "SpeechCache", "SpokenLine", "speak"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Encoded audio of one chunk, the text it speaks, and where it sits in its line (s)."""

    audio: bytes
    text: str
    start: float
    duration: float


@dataclass(frozen=True, slots=True)
class SpokenLine:
    """A line as chunks, plus its words ``(word, start, end)`` in seconds of the line."""

    text: str
    chunks: tuple[Chunk, ...]
    words: tuple[tuple[str, float, float], ...]
    duration: float


def _word_cuts(syn: synthesis.Synthesis, min_s: float, max_s: float) -> list[tuple[float, int]]:
    """Cut points ``(time, char)`` between words (at the end of one or the start of the next,
    so pauses can go either way), greedily keeping chunks within min..max."""
    total = syn.duration
    bounds = sorted({(t, b.char_start) for a, b in zip(syn.words, syn.words[1:], strict=False)
                     for t in (a.end, b.start)})
    cuts: list[tuple[float, int]] = []
    start = 0.0
    while total - start > max_s:
        later = [b for b in bounds if b[0] > start + 0.02]
        if not later:
            break
        ok = [b for b in later if start + min_s <= b[0] <= start + max_s]
        if ok:
            cut = ok[-1]
        else:  # no boundary in range: the one giving the chunk closest to the range
            short = [b for b in later if b[0] < start + min_s]
            long = [b for b in later if b[0] > start + max_s]
            cut = min(short[-1:] + long[:1], key=lambda b: max(start + min_s - b[0],
                                                                  b[0] - start - max_s))
        if total - cut[0] < min_s and total - start <= max_s:
            break
        cuts.append(cut)
        start = cut[0]
    return cuts


def _char_at(syn: synthesis.Synthesis, t: float) -> int:
    """Text position spoken at time ``t``: inside a word, in proportion to its phones."""
    for i, w in enumerate(syn.words):
        if t < w.start:
            return w.char_start
        if t < w.end:
            own = [p for p in syn.phones if p.word_index == i]
            done = sum(1 for p in own if p.start < t)
            frac = done / len(own) if own else (t - w.start) / max(w.end - w.start, 1e-6)
            return w.char_start + round(frac * (w.char_end - w.char_start))
    return len(syn.text)


def _fixed_cuts(syn: synthesis.Synthesis, min_s: float, max_s: float) -> list[tuple[float, int]]:
    size = (min_s + max_s) / 2
    times = np.arange(size, syn.duration - min_s / 2, size)
    cuts, last = [], 0
    for t in times:
        pos = max(last, _char_at(syn, float(t)))
        cuts.append((float(t), pos))
        last = pos
    return cuts


def speak(text: str, encoding: str, sample_rate: int, *, voice: str = "espeak",
          words_per_minute: int = voices.DEFAULT_RATE, chunk_min_ms: int = 150,
          chunk_max_ms: int = 400, split_words: bool = False) -> SpokenLine:
    """Synthesise ``text`` and cut it into chunks for a call.

    Args:
        text: the line to say.
        encoding, sample_rate: the call's audio format.
        voice, words_per_minute: the voice (a name of :data:`aligner.speech.voices.VOICES`) and its
            rate (see :func:`aligner.speech.voices.synthesize`).
        chunk_min_ms, chunk_max_ms: chunk duration bounds (the last chunk may be shorter).
        split_words: cut at fixed times, inside words too.

    Returns:
        A :class:`SpokenLine`; ``"".join(c.text for c in line.chunks) == text``.

    >>> line = speak("Hello there, how are you?", "s16le", 24000)  # doctest: +SKIP
    >>> "".join(c.text for c in line.chunks)                      # doctest: +SKIP
    'Hello there, how are you?'
    """
    syn = voices.synthesize(text, voice, words_per_minute)
    pcm = audio.resample(syn.samples, syn.sample_rate, sample_rate)
    min_s, max_s = chunk_min_ms / 1000, chunk_max_ms / 1000
    cuts = (_fixed_cuts if split_words else _word_cuts)(syn, min_s, max_s)
    edges = [(0.0, 0)] + cuts + [(len(pcm) / sample_rate, len(text))]
    chunks = []
    for (t0, c0), (t1, c1) in zip(edges, edges[1:], strict=False):
        a, b = round(t0 * sample_rate), round(t1 * sample_rate)
        if b <= a:
            continue
        chunks.append(Chunk(audio.encode(pcm[a:b], encoding), text[c0:c1], a / sample_rate,
                            (b - a) / sample_rate))
    if chunks and sum(len(c.text) for c in chunks) != len(text):  # an empty audio span ate text
        last = chunks[-1]
        chunks[-1] = Chunk(last.audio, text[sum(len(c.text) for c in chunks[:-1]):],
                           last.start, last.duration)
    words = tuple((text[w.char_start:w.char_end], w.start, w.end) for w in syn.words)
    return SpokenLine(text, tuple(chunks), words, len(pcm) / sample_rate)


class SpeechCache:
    """Spoken lines shared by all calls of a server, synthesised once per distinct request.

    Concurrent requests for the same line wait for the one synthesis in flight.
    """

    def __init__(self) -> None:
        self._lines: dict[tuple, asyncio.Future[SpokenLine]] = {}

    def prefetch(self, text: str, encoding: str, sample_rate: int, **options) -> asyncio.Future:
        """Start synthesising a line (if not cached) without waiting for it."""
        key = (text, encoding, sample_rate, tuple(sorted(options.items())))
        future = self._lines.get(key)
        if future is None:
            future = asyncio.ensure_future(
                asyncio.to_thread(speak, text, encoding, sample_rate, **options))
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
            self._lines[key] = future
        return future

    async def speak(self, text: str, encoding: str, sample_rate: int, **options) -> SpokenLine:
        """:func:`speak` in a worker thread, cached on all its arguments."""
        key = (text, encoding, sample_rate, tuple(sorted(options.items())))
        future = self.prefetch(text, encoding, sample_rate, **options)
        try:
            return await asyncio.shield(future)
        except Exception:
            self._lines.pop(key, None)
            raise
