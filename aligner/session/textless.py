"""Words and phones of speech that came without its text (binary agent audio, Twilio media).

A pure function of samples, in two parts:

- **words** (``recognize=True``): like Rhubarb Lip Sync's recognition mode, pocketsphinx
  recognises the words with its general English language model
  (:func:`aligner.speech.recognize.recognize_words`, at 16 kHz), then :func:`aligner.align`
  times the recognised words and their characters on the audio (where it cannot fit them, a
  word heard where the audio was cut, say, they keep the recogniser's own times, backend
  ``"recognizer"``);
- **phones**: with words, the phones of the heard words (:func:`aligner.visemes.heard_phones`:
  most recognised words are wrong on unknown speech, but a wrong word mostly sounds like the
  right one, and its dictionary phones give better mouth shapes than a free phone loop on human
  speech and on voices made from recordings of people; an espeak-like voice is read by the
  shipped phone model); without words (``recognize=False``, or nothing recognised), the
  acoustic model's phone loop (:func:`aligner.visemes.estimate_phones`, ``"acoustic"``: fast).
  Each phone is linked (``word_index``) to the word it falls in.

No I/O, no clock, no threads; the recogniser loads its model on first use (about a second) and
is slow (see ``benchmarks/textless.py``), so a live caller should run it off its event loop.

>>> import numpy as np
>>> estimate(np.zeros(0, np.int16), 8000).words
()
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..audio import as_int16, check_rate
from ..speech.alignment import Alignment, align, assemble
from ..speech.durations import monotonic_spans
from ..speech.pronounce import token_phones
from ..speech.text import tokenize
from ..timeline import Phone, Word

if TYPE_CHECKING:
    from ..speech.adaptation import VoiceProfile

__all__ = ["estimate"]


def estimate(pcm: np.ndarray, sample_rate: int, *, recognize: bool = True,
             backend: str = "auto", voice: VoiceProfile | None = None) -> Alignment:
    """Phones of ``pcm`` from the audio alone, and (``recognize``) its recognised words.

    Args:
        pcm: mono int16 speech.
        sample_rate: its rate, 8000-48000 Hz (AudioError otherwise).
        recognize: recognise words (slow); False gives the phones only (fast).
        backend: the alignment backend for the recognised words (see :func:`aligner.align`);
            ``"auto"`` is pocketsphinx's decoder here: the words are the recogniser's guesses,
            and its decoder stretches them over the speech as the recogniser heard it, where the
            acoustic backend, free to put pauses where a guessed word does not fit, leaves part
            of the speech without a word for the captions.
        voice: the speaker's profile: with ``recognize``, where it fits the audio
            (:func:`~aligner.speech.backends.acoustic.fitting_voice`), the words are recognised
            on the model adapted to it, their phones placed on it, and the profile learns from
            them (no text needed).

    Returns:
        An :class:`~aligner.speech.alignment.Alignment`, times in seconds from the start of ``pcm``:
        ``text`` is the recognised words (lower case, space-separated), with their ``words``
        and ``chars``; ``phones`` are the estimated phones. With nothing recognised (or
        ``recognize=False``): ``text == ""``, no words, ``backend == "audio"``.
    """
    pcm, sample_rate = as_int16(pcm), check_rate(sample_rate)
    duration = len(pcm) / sample_rate
    if not len(pcm):
        return Alignment(0.0, backend="audio")
    from ..visemes import estimate_phones, heard_phones

    heard = []
    if recognize:
        from ..speech.backends.acoustic import heard_words

        heard, voice = heard_words(voice, pcm, sample_rate)  # voice None: the profile does not fit
    text = " ".join(w.word for w in heard)
    phones = [replace(p, start=min(p.start, duration), end=min(p.end, duration))
              for p in (heard_phones(pcm, sample_rate, text, voice=voice) if heard
                        else estimate_phones(pcm, sample_rate, "acoustic"))
              if p.start < duration]
    if not heard:
        return Alignment(duration, phones=tuple(phones), backend="audio")
    words = align(pcm, sample_rate, text, backend="pocketsphinx" if backend == "auto" else backend)
    words = _placed(words, heard)
    return replace(words, phones=_linked(phones, words.words))


def _placed(found: Alignment, heard: list) -> Alignment:
    """``found``, or where its forced alignment left a word without time (it could not fit the
    recognised words: one heard where the audio was cut, say) the recogniser's own times, which
    always give each word some."""
    if len(heard) != len(found.words) or all(w.end > w.start for w in found.words):
        return found
    spans = monotonic_spans([(h.start, h.end) for h in heard], found.duration)
    tokens = tokenize(found.text)
    return assemble(found.text, tokens, [token_phones(t.word) for t in tokens], spans,
                    found.duration, "recognizer")


def _linked(phones: list[Phone], words: tuple[Word, ...]) -> tuple[Phone, ...]:
    """Each phone (but pauses) with the index of the word its middle falls in (-1: none)."""
    ends = np.array([w.end for w in words])
    out = []
    for p in phones:
        mid = (p.start + p.end) / 2
        k = int(np.searchsorted(ends, mid, "right"))
        inside = p.phone != "sil" and k < len(words) and words[k].start <= mid
        out.append(replace(p, word_index=k if inside else -1))
    return tuple(out)
