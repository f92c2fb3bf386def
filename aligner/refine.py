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
>>> from aligner.fallback import frame_db, speech_mask
>>> db = frame_db(pcm, 16000)
>>> [(round(a, 2), round(b, 2)) for a, b in refine([(0.0, 0.2), (0.53, 1.0)], pcm, 16000, db)]
[(0.0, 0.2), (0.5, 1.0)]
"""

from __future__ import annotations

import numpy as np

from .fallback import frame_db, speech_threshold

__all__ = ["refine"]

_FINE = 0.0025  # seconds per fine frame
_MIN_PAUSE = 0.06  # silences at least this long have edges worth snapping to


def _edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, offsets) in seconds of the pauses of at least ``_MIN_PAUSE`` in a fine mask."""
    m = np.concatenate([[True], mask, [True]]).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == -1)  # first silent frame
    ends = np.flatnonzero(d == 1)  # first speech frame after it
    keep = (ends - starts) * _FINE >= _MIN_PAUSE
    return ends[keep] * _FINE, starts[keep] * _FINE


def refine(spans: list[tuple[float, float]], pcm: np.ndarray, sample_rate: int,
           db: np.ndarray | None = None, reach: float = 0.04) -> list[tuple[float, float]]:
    """Move word boundaries onto nearby pause edges (see the module docstring).

    Args:
        spans: monotonic (start, end) seconds per word.
        pcm, sample_rate: the clip.
        db: its 10 ms frame energies (:func:`aligner.fallback.frame_db`), to set the threshold.
        reach: the largest move, in seconds.

    Returns:
        The refined spans, still monotonic and non-overlapping.
    """
    if not spans or len(pcm) == 0:
        return list(spans)
    threshold = speech_threshold(db if db is not None else frame_db(pcm, sample_rate))
    if not np.isfinite(threshold):
        return list(spans)
    fine = frame_db(pcm, sample_rate, hop=_FINE, window=0.005) > threshold
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
