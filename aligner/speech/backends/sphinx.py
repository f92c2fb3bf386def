"""pocketsphinx forced alignment (its US English acoustic model and the CMU dictionary).

The text is normalised (:mod:`aligner.speech.text`), words pocketsphinx does not know are added to its
dictionary with our phones (:mod:`aligner.speech.pronounce`), and the decoder aligns the word sequence
as a grammar at 100 frames per second (one pass; see ``plain``), on the clip cut to its speech
and dithered (:func:`aligner.speech.signal.dither`). Filler (silence) words are disabled in the grammar: with them,
pocketsphinx tends to absorb clean TTS speech into one long silence; without them it stretches
words over the pauses around them, which :func:`aligner.speech.refine.trim_pauses` takes back out
afterwards. A token a synthesiser may read another way (digits one by one, a name spelled) is
one dictionary word with every reading (:func:`other_readings`). When the search cannot reach
the end of the grammar, it tries again with a closing silence word; the tokens it still did not
reach are returned as ``None``.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import zlib

import numpy as np

from ...audio import resample
from ..dictionary import in_dictionary, letter_phones
from ..pronounce import phones
from ..signal import HOP, dither, frame_db, speech_mask
from ..text import Token, number_words, spoken

__all__ = ["acoustic_spans", "other_readings"]

log = logging.getLogger(__name__)

_RATE = 16000
_SPELLED_NAME = 5  # capitalised words this long may be spelled too (shorter: "The" -> T, H, E)
_PAD = 0.1  # seconds of silence around the clip: the model wants a start and an end


@functools.cache
def _config() -> dict:
    return {"lm": None, "loglevel": "FATAL", "beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100,
            "fsgusefiller": False}


def _decoder():
    from pocketsphinx import Decoder

    return Decoder(**_config())


_local = threading.local()  # one decoder per thread, made on first use (loading takes ~0.2 s)
#: Words added to a thread's decoder (unknown words, tokens with other readings: every order
#: number) before it is made afresh, so that a long-running service does not grow without end.
_MAX_ADDED = 20000


def _thread_decoder():
    d = getattr(_local, "decoder", None)
    if d is None or _local.added > _MAX_ADDED:
        d = _local.decoder = _decoder()
        _local.added = 0
    return d


def _add_word(d, name: str, pron: str, update: bool) -> None:
    d.add_word(name, pron, update)
    _local.added = getattr(_local, "added", 0) + 1


def other_readings(word: str) -> list[str]:
    """Other ways a synthesiser may read a token (ARPAbet, space-separated phones each).

    A run of 3 or more digits (dashes and spaces allowed: "4815162342", "742", "555-1234") may be
    read digit by digit, as voice agents read order and phone numbers; a full hour ("17:00") as
    the hour alone or with "hundred"; numbers between slashes ("12/25/1985") as they are, with
    "slash"; a word not in the dictionary, or a capitalised one of ``_SPELLED_NAME`` letters or
    more (a name: "Tchaikovsky", "Nguyen"), may be spelled. pocketsphinx gets every reading and
    keeps the one that fits. Flite reads "4815162342" digit by digit, spells "Tchaikovsky" and
    "Nguyen", says "17:00" as "seventeen" and "12/25/1985" with "slash": without the other
    reading pocketsphinx did not align those clips at all (the order number: the phone HMM timed
    them) or put the words after the token up to 1.7 s early. Measured on the alignment
    benchmark's 256 Flite clips (digits and spelling): mean word-boundary error 16.8 -> 12.4 ms,
    within 50 ms 96.2 -> 97.3%; the espeak-ng clips through pocketsphinx (the permissive path)
    24.2 -> 24.3 ms (which of two neighbours absorbs a pause changes on a few clips). Spelled
    readings of short capitalised words were chosen wrongly ("The" as T, H, E over "the CEO").
    """
    said: list[tuple[str, ...]] = []
    digits = re.sub(r"[\s-]", "", word)
    if len(digits) >= 3 and digits.isdigit():
        said.append(tuple(digits))
    if m := re.fullmatch(r"(\d{1,2}):00", word):
        hour = number_words(int(m.group(1)))
        said += [hour, (*hour, "hundred")]
    parts = word.split("/")
    if len(parts) > 1 and all(part.isdigit() for part in parts):
        said.append(tuple(w for i, part in enumerate(parts)
                          for w in (("slash",) if i else ()) + spoken(part)))
    readings = [" ".join(p for w in words for p in phones(w)) for words in said]
    if word.isalpha() and len(word) >= 3 and (not in_dictionary(word) or (
            word[0].isupper() and len(word) >= _SPELLED_NAME)):
        readings.append(" ".join(letter_phones(word)))
    return readings


def _variants(d, word: str) -> list[str]:
    """The decoder's dictionary pronunciations of ``word`` ("the", "the(2)", ...)."""
    out: list[str] = []
    while (p := d.lookup_word(f"{word}({len(out) + 1})" if out else word)) is not None:
        out.append(p)
    return out


def _dictionary_words(d, tokens: tuple[Token, ...], prons: list[tuple[tuple[str, ...], ...]],
                      plain: bool) -> list[tuple[int, str]]:
    """(token index, dictionary word) per word of the grammar, adding the words ``d`` lacks:
    a token with other readings (:func:`other_readings`, not when ``plain``) is one word with
    all of them, otherwise each spoken word is one (our pronunciation where the dictionary has
    none)."""
    words: list[tuple[int, str]] = []
    for k, (tok, pr) in enumerate(zip(tokens, prons, strict=True)):
        others = [] if plain else other_readings(tok.word)
        if others:
            ours = _variants(d, spoken(tok.word)[0]) if len(pr) == 1 else []
            readings = list(dict.fromkeys([*ours, " ".join(p for ph in pr for p in ph), *others]))
            name = f"t{zlib.crc32('|'.join(readings).encode()):08x}_alt"
            if d.lookup_word(name) is None:
                for i, r in enumerate(readings):
                    _add_word(d, f"{name}({i + 1})" if i else name, r, i == len(readings) - 1)
            words.append((k, name))
            continue
        for i, (w, ph) in enumerate(zip(spoken(tok.word), pr, strict=False)):
            name = re.sub(r"[^a-z']", "", w.lower()) or f"w{k}x{i}"
            if d.lookup_word(name) is None:
                name = f"{name}_oov"  # our pronunciation, added once per decoder
                if d.lookup_word(name) is None:
                    _add_word(d, name, " ".join(ph), True)
            words.append((k, name))
    return words


def _first_pass(d, raw: bytes, grammar: str) -> list[tuple[str, int, int]]:
    """(word, first frame, end frame) of pocketsphinx's first pass aligning ``grammar``."""
    d.set_align_text(grammar)
    d.start_utt()
    d.process_raw(raw, full_utt=True)
    d.end_utt()
    return [(seg.word, seg.start_frame, seg.end_frame + 1) for seg in (d.seg() or ())]


def _matched(segments: list[tuple[str, int, int]], words: list[tuple[int, str]],
             ) -> list[tuple[int, int, int]]:
    """(token index, first frame, end frame) of the grammar's words found in ``segments``, in
    order, up to the first one missing (silences skipped, "word(2)" read as "word")."""
    out: list[tuple[int, int, int]] = []
    for seg_name, f0, f1 in segments:
        if len(out) < len(words) and re.sub(r"\(\d+\)$", "", seg_name) == words[len(out)][1]:
            out.append((words[len(out)][0], f0, f1))
    return out


def acoustic_spans(pcm: np.ndarray, sample_rate: int, tokens: tuple[Token, ...],
                   prons: list[tuple[tuple[str, ...], ...]], decoder=None, *,
                   plain: bool = False, retry: bool = True) -> list[tuple[float, float] | None]:
    """(start, end) seconds per token from pocketsphinx, ``None`` for tokens it did not reach.

    Args:
        pcm: int16 mono samples; sample_rate: their rate.
        tokens, prons: from :func:`aligner.speech.text.tokenize` / :func:`aligner.speech.pronounce.token_phones`.
        decoder: a pocketsphinx ``Decoder`` to reuse (made with this module's settings if None).
        plain: pocketsphinx as it comes (the alignment benchmark's peer): the whole clip, not
            dithered, one reading per word, no help for a one-word grammar, and pocketsphinx's
            second (sub-word) pass, whose word segments it then returns. By default the clip is
            cut to its speech (keeping ``_PAD`` around it) and dithered (:func:`aligner.speech.signal.dither`), and
            only the first pass runs: measured on the alignment benchmark the second pass
            halves the speed (about 50x -> 25x real time) for no better word times (median
            error 8.8 vs 8.9 ms on espeak-ng clips, 8.1 vs 8.1 ms on Flite's voices).
        retry: search again with a closing silence word when the first search stops short of
            the last word (not for a stream chunk cut mid-word: measured on the alignment
            benchmark's Flite streams, that costs CPU per chunk p99 44 -> 60 ms for streamed
            words 29.3 -> 26.7 ms mean error).
    """
    d = decoder or _thread_decoder()
    words = _dictionary_words(d, tokens, prons, plain)
    if not words:
        return [None] * len(tokens)
    x = resample(pcm, sample_rate, _RATE) if sample_rate != _RATE else pcm
    # Long silence before or after the speech lures the search into stretching words over it
    # (and then losing its way): keep at most _PAD of it.
    speech = np.flatnonzero(speech_mask(frame_db(x, _RATE)))
    lead, tail = 0, len(x)
    if len(speech) and not plain:
        lead = max(0, int((speech[0] * HOP - _PAD) * _RATE))
        tail = min(len(x), int(((speech[-1] + 1) * HOP + _PAD) * _RATE))
    pad = np.zeros(int(_PAD * _RATE), np.int16)
    raw = np.concatenate([pad, x[lead:tail].astype(np.int16), pad])
    raw = (raw if plain else dither(raw)).tobytes()
    grammar = " ".join(n for _, n in words)
    # A grammar of one word never aligns (pocketsphinx 5 gives no result, "Sure." as much as
    # "Hello."); led by a silence word, which the padding always gives it, it does.
    if len(words) == 1 and not plain:
        grammar = f"<sil> {grammar}"
    segments = _first_pass(d, raw, grammar)
    if retry and not plain and len(_matched(segments, words)) < len(words):
        # The search sometimes stops short of the last word (Flite: 17 of 256 clips, "... look
        # that up." without "up"); a closing silence word gets it there. Only then: as the rule
        # it cost other clips (espeak-ng through pocketsphinx: mean error 24.0 -> 25.1 ms), and
        # only when that silence holds no more than the padding: it may swallow speech. Measured
        # on the alignment benchmark: Flite's voices 11.8 -> 11.3 ms, 98.0 -> 98.3% within 50
        # ms; espeak-ng through pocketsphinx 24.0 -> 23.4 ms, 80.7 -> 81.2% within 20 ms.
        again = _first_pass(d, raw, f"{grammar} <sil>")
        found = _matched(again, words)
        closing = len(raw) / 2 / _RATE - (found[-1][2] / 100 if found else 0.0)  # seconds
        if len(found) > len(_matched(segments, words)) and closing <= 2 * _PAD:
            segments = again
    if plain:  # when the first pass did not finish, this raises: keep its segments
        try:
            d.set_alignment()
            d.start_utt()
            d.process_raw(raw, full_utt=True)
            d.end_utt()
            segments = [(seg.name, seg.start, seg.start + seg.duration)
                        for seg in d.get_alignment()]
        except RuntimeError:
            pass
    spans: list[tuple[float, float] | None] = [None] * len(tokens)
    found = _matched(segments, words)
    for k, f0, f1 in found:
        s, e = f0 / 100 - _PAD + lead / _RATE, f1 / 100 - _PAD + lead / _RATE
        old = spans[k]
        spans[k] = (s, e) if old is None else (old[0], e)
    wi = len(found)
    if wi < len(words):
        log.debug("pocketsphinx aligned %d of %d words", wi, len(words))
    # A token is only aligned if all of its spoken words were.
    reached = {k for k, _ in words[:wi]}
    last_complete = words[wi][0] if wi < len(words) else len(tokens)
    duration = len(pcm) / sample_rate  # the padding is not the clip: keep times inside it
    return [(min(max(s[0], 0.0), duration), min(max(s[1], 0.0), duration))
            if s is not None and k in reached and k < last_complete else None
            for k, s in enumerate(spans)]
