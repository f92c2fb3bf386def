"""Sub-frame refinement of word boundaries on the signal, around pauses.

Used after the fallback and pocketsphinx backends (not after the reference backend, whose
times carried over from espeak are already finer than energy edges). The backends time words on
a 10 ms grid and know little about where sound actually starts and
stops. This pass looks at the energy on a 2.5 ms grid (5 ms windows) and moves a boundary that
sits in speech just after a pause onto the onset, and a word end that sits near the offset
before a pause onto that offset. It only moves boundaries towards a pause edge, by at most
``reach`` seconds, and never past a neighbouring word, so it cannot reorder anything. A word
start inside a pause is left alone: before a stop consonant the silent closure is part of the
word.

>>> import numpy as np
>>> pcm = np.zeros(16000, np.int16); pcm[8000:] = 3000           # sound from 0.5 s
>>> from aligner.speech.signal import frame_db, speech_mask
>>> db = frame_db(pcm, 16000)
>>> [(round(a, 2), round(b, 2)) for a, b in refine([(0.0, 0.2), (0.53, 1.0)], pcm, 16000, db)]
[(0.0, 0.2), (0.5, 1.0)]
"""

from __future__ import annotations

import numpy as np

from .durations import expected_seconds, monotonic_spans
from .signal import frame_db, speech_threshold

__all__ = ["refine", "trim_pauses"]

_FINE = 0.0025  # seconds per fine frame
_MIN_PAUSE = 0.06  # silences at least this long have edges worth snapping to
_CLOSURE = 0.03  # seconds of a pause a word starting with a stop keeps (its silent closure)
_NEAR = 0.05  # a boundary this close before a pause is taken to lie in it
_MIN_WORD = 0.04  # a word with less speech than this outside a pause was put in the pause
_STOPS = frozenset(["B", "D", "G", "K", "P", "T", "CH", "JH"])  # they start with a closure
#: dB below the clip's peak (99th percentile of 10 ms frames) where the speech's last sound
#: ends: voices made from recordings fade out over 50-100 ms above the speech threshold after
#: their last phone. Measured on the alignment benchmark's pocketsphinx spans, the clips' last
#: word ends: Flite's voices 15.8 -> 13.6 ms mean error (17 -> 7 over 50 ms), espeak-ng 9.1 ->
#: 8.9 ms (30 and 36 dB: 14.7 and 14.3 ms on Flite). The same rule at the clip's start made its
#: first word start worse (Flite 15.4 -> 17.2 ms: onsets are sharp, weak first consonants
#: fall under it), so it is not applied there.
_TAIL_DB = 33.0


def _fine_mask(pcm: np.ndarray, sample_rate: int, db: np.ndarray | None,
               tail: bool = False) -> np.ndarray | None:
    """Speech flags on the fine grid, None when the clip has no usable energy threshold.

    ``tail``: the speech ends with its last frame within ``_TAIL_DB`` of the clip's peak (the
    faint decay after it is not speech)."""
    db = db if db is not None else frame_db(pcm, sample_rate)
    threshold = speech_threshold(db)
    if not np.isfinite(threshold):
        return None
    fine = frame_db(pcm, sample_rate, hop=_FINE, window=0.005)
    mask = fine > threshold
    if tail:
        loud = np.flatnonzero(fine > max(threshold, float(np.percentile(db, 99)) - _TAIL_DB))
        if len(loud):
            mask[loud[-1] + 1:] = False
    return mask


def _edges(mask: np.ndarray, outer: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ends, starts) in seconds of the pauses of at least ``_MIN_PAUSE`` in a fine mask: where
    each gives way to speech, and where it began. ``outer``: the silence before the first and
    after the last speech counts whatever its length."""
    m = np.concatenate([[True], mask, [True]]).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == -1)  # first silent frame
    ends = np.flatnonzero(d == 1)  # first speech frame after it
    keep = (ends - starts) * _FINE >= _MIN_PAUSE
    if outer:
        keep |= (starts == 0) | (ends == len(mask))
    return ends[keep] * _FINE, starts[keep] * _FINE


def refine(spans: list[tuple[float, float]], pcm: np.ndarray, sample_rate: int,
           db: np.ndarray | None = None, reach: float = 0.04) -> list[tuple[float, float]]:
    """Move word boundaries onto nearby pause edges (see the module docstring).

    Args:
        spans: monotonic (start, end) seconds per word.
        pcm, sample_rate: the clip.
        db: its 10 ms frame energies (:func:`aligner.speech.signal.frame_db`), to set the threshold.
        reach: the largest move, in seconds.

    Returns:
        The refined spans, still monotonic and non-overlapping.
    """
    fine = _fine_mask(pcm, sample_rate, db) if spans and len(pcm) else None
    if fine is None:
        return list(spans)
    onsets, offsets = _edges(fine)
    out = [list(s) for s in spans]
    n = len(out)
    for i in range(n):
        s, e = out[i]
        lo = out[i - 1][1] if i else 0.0
        hi = out[i + 1][0] if i + 1 < n else float("inf")
        # A start in speech shortly after an onset: the word starts at the onset.
        k = np.searchsorted(onsets, s, side="right") - 1
        if k >= 0 and 0 < s - onsets[k] <= reach and onsets[k] >= lo:
            out[i][0] = float(onsets[k])
        # An end near the offset before a pause: the word ends at the offset.
        k = np.searchsorted(offsets, e - reach)
        if k < len(offsets) and abs(offsets[k] - e) <= reach and out[i][0] < offsets[k] <= hi:
            out[i][1] = float(offsets[k])
    return [(a, b) for a, b in out]


def trim_pauses(spans: list[tuple[float, float]], prons: list[tuple[tuple[str, ...], ...]],
                pcm: np.ndarray, sample_rate: int, db: np.ndarray | None = None,
                ) -> list[tuple[float, float]]:
    """Take pauses (and the silence before and after the speech) back out of words.

    pocketsphinx aligns without silence fillers (see :mod:`aligner.speech.backends.sphinx`), so a word next to
    a pause covers it. A word start inside a pause moves to where the speech resumes (a word
    starting with a stop keeps the last ``_CLOSURE`` of the pause: its closure); a word end
    inside a pause moves to where the speech stopped. A boundary up to ``_NEAR`` before a pause
    counts as in it (measured on the alignment benchmark: mean error 18.9 -> 17.9 ms on
    espeak-ng clips, 14.0 -> 12.6 ms on Flite's voices), and so does one up to ``_NEAR`` after
    a pause the word before runs over ("address: 742" ended in "742"; measured: Flite's voices
    11.9 -> 11.8 ms, 97.9 -> 98.0% within 50 ms, espeak-ng 24.3 -> 24.0 ms). The speech ends
    where its last sound within ``_TAIL_DB`` of the peak ends (a faint tail after it is
    silence). A word pocketsphinx put (nearly: all but ``_MIN_WORD``) inside a pause shares the
    speech of the next word, in proportion to expected phone durations.

    Args:
        spans: monotonic (start, end) seconds per word.
        prons: per word, the phones of each spoken word (:func:`aligner.speech.pronounce.token_phones`).
        pcm, sample_rate: the clip; db: its 10 ms frame energies, if at hand.

    Returns:
        The spans, still monotonic, non-overlapping and inside the clip.

    >>> pcm = np.zeros(16000, np.int16); pcm[4000:12000] = 3000   # sound 0.25-0.75 s
    >>> spans = trim_pauses([(0.0, 0.9)], [(("AH",),)], pcm, 16000)
    >>> [(round(a, 2), round(b, 2)) for a, b in spans]
    [(0.25, 0.75)]
    """
    fine = _fine_mask(pcm, sample_rate, db, tail=True) if spans and len(pcm) else None
    if fine is None:
        return list(spans)
    ends, starts = _edges(fine, outer=True)
    phones = [[p for word in pr for p in word] for pr in prons]
    out = [list(s) for s in spans]
    lost = [False] * len(out)  # put in a pause
    for pa, pb in zip(starts, ends, strict=True):
        # Words starting in the pause, or just before it and going on after it, start after it.
        moves = [pa <= s < pb or (pa - _NEAR <= s < pa and e > pb) for s, e in out]
        # A word running over the whole pause and up to _NEAR into the next word ends before the
        # pause, and the next word starts after it.
        for i in range(len(out) - 1):
            if out[i][0] < pa and pb < out[i][1] <= pb + _NEAR and out[i + 1][0] >= pb:
                moves[i + 1] = True
        for i, e in enumerate([e for _, e in out]):
            if moves[i]:
                lost[i] = e <= pb
                stop = bool(phones[i]) and phones[i][0] in _STOPS
                out[i][0] = max(pa, pb - (_CLOSURE if stop else 0.0))
                out[i][1] = max(e, out[i][0])
            ends_in = pa < e <= pb or (pa - _NEAR <= e <= pb + _NEAR and i + 1 < len(out)
                                       and moves[i + 1])
            if ends_in and out[i][0] < pa:  # ... and the word before ends where it begins
                out[i][1] = pa
                lost[i] = pa - out[i][0] < _MIN_WORD
    out = [list(s) for s in monotonic_spans([(float(a), float(b)) for a, b in out],
                                            len(pcm) / sample_rate)]
    i = 0
    while i < len(out):  # lost words and the word after them share that word's span
        j = i
        while j < len(out) - 1 and lost[j]:
            j += 1
        if j > i:
            weights = np.array([expected_seconds(tuple(phones[k])) for k in range(i, j + 1)])
            a, b = out[i][0], out[j][1]
            cuts = a + np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * (b - a)
            for k in range(i, j + 1):
                out[k] = [float(cuts[k - i]), float(cuts[k - i + 1])]
        i = j + 1
    return [(a, b) for a, b in out]
