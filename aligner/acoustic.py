"""pocketsphinx forced alignment (its US English acoustic model and the CMU dictionary).

The text is normalised (:mod:`aligner.text`), words pocketsphinx does not know are added to its
dictionary with our phones (:mod:`aligner.pronounce`), and the decoder aligns the word sequence
as a grammar at 100 frames per second (one pass; see ``plain``), on the clip cut to its speech
and dithered (:func:`_dither`). Filler (silence) words are disabled in the grammar: with them,
pocketsphinx tends to absorb clean TTS speech into one long silence; without them it stretches
words over the pauses around them, which :func:`aligner.refine.trim_pauses` takes back out
afterwards. When the search cannot reach the end of the grammar, the tokens it did not reach
are returned as ``None``.
"""

from __future__ import annotations

import functools
import logging
import re
import threading

import numpy as np

from .audio import resample
from .fallback import HOP, frame_db, speech_mask
from .text import Token, spoken

__all__ = ["acoustic_spans"]

log = logging.getLogger(__name__)

_RATE = 16000
_PAD = 0.1  # seconds of silence around the clip: the model wants a start and an end


@functools.cache
def _config() -> dict:
    return {"lm": None, "loglevel": "FATAL", "beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100,
            "fsgusefiller": False}


def _decoder():
    from pocketsphinx import Decoder

    return Decoder(**_config())


_local = threading.local()  # one decoder per thread, made on first use (loading takes ~0.2 s)


def _thread_decoder():
    d = getattr(_local, "decoder", None)
    if d is None:
        d = _local.decoder = _decoder()
    return d


def _dither(x: np.ndarray) -> np.ndarray:
    """``x`` plus seeded noise of one least significant bit (the same for the same input).

    Digital silence (exact zeros, as TTS audio and our padding have) gives pocketsphinx
    degenerate log energies: measured on 128 espeak-ng clips of the alignment benchmark (pauses
    trimmed in both runs), dithering leaves fewer tokens unreached (89 -> 62 of 1034) and times
    the others better (mean boundary error 23.4 -> 19.6 ms). Seeded: a clip always aligns alike.
    """
    noise = np.random.default_rng(0).integers(-1, 2, len(x), dtype=np.int32)
    return np.clip(x.astype(np.int32) + noise, -32768, 32767).astype(np.int16)


def acoustic_spans(pcm: np.ndarray, sample_rate: int, tokens: tuple[Token, ...],
                   prons: list[tuple[tuple[str, ...], ...]], decoder=None, *,
                   plain: bool = False) -> list[tuple[float, float] | None]:
    """(start, end) seconds per token from pocketsphinx, ``None`` for tokens it did not reach.

    Args:
        pcm: int16 mono samples; sample_rate: their rate.
        tokens, prons: from :func:`aligner.text.tokenize` / :func:`aligner.pronounce.token_phones`.
        decoder: a pocketsphinx ``Decoder`` to reuse (made with this module's settings if None).
        plain: pocketsphinx as it comes (the alignment benchmark's peer): the whole clip, not
            dithered, and pocketsphinx's second (sub-word) pass, whose word segments it then
            returns. By default the clip is cut to its speech (keeping ``_PAD`` around it) and
            dithered (:func:`_dither`), and only the first pass runs: measured on the alignment
            benchmark the second pass halves the speed (about 50x -> 25x real time) for no
            better word times (median error 8.8 vs 8.9 ms on espeak-ng clips, 8.1 vs 8.1 ms on
            Flite's voices).
    """
    d = decoder or _thread_decoder()
    words: list[tuple[int, str]] = []  # (token index, dictionary word)
    for k, (tok, pr) in enumerate(zip(tokens, prons, strict=True)):
        for i, (w, ph) in enumerate(zip(spoken(tok.word), pr, strict=False)):
            name = re.sub(r"[^a-z']", "", w.lower()) or f"w{k}x{i}"
            if d.lookup_word(name) is None:
                name = f"{name}_oov"  # our pronunciation, added once per decoder
                if d.lookup_word(name) is None:
                    d.add_word(name, " ".join(ph), True)
            words.append((k, name))
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
    raw = (raw if plain else _dither(raw)).tobytes()
    d.set_align_text(" ".join(n for _, n in words))
    d.start_utt()
    d.process_raw(raw, full_utt=True)
    d.end_utt()
    segments = [(seg.word, seg.start_frame, seg.end_frame + 1) for seg in (d.seg() or ())]
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
    wi = 0
    for seg_name, f0, f1 in segments:
        name = re.sub(r"\(\d+\)$", "", seg_name)
        if wi >= len(words) or name != words[wi][1]:
            continue
        k = words[wi][0]
        s, e = f0 / 100 - _PAD + lead / _RATE, f1 / 100 - _PAD + lead / _RATE
        old = spans[k]
        spans[k] = (s, e) if old is None else (old[0], e)
        wi += 1
    if wi < len(words):
        log.debug("pocketsphinx aligned %d of %d words", wi, len(words))
    # A token is only aligned if all of its spoken words were.
    reached = {k for k, _ in words[:wi]}
    last_complete = words[wi][0] if wi < len(words) else len(tokens)
    duration = len(pcm) / sample_rate  # the padding is not the clip: keep times inside it
    return [(min(max(s[0], 0.0), duration), min(max(s[1], 0.0), duration))
            if s is not None and k in reached and k < last_complete else None
            for k, s in enumerate(spans)]
