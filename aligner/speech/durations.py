"""The phone-duration model: expected durations of phones, and words placed on speech frames.

Works on any audio, however short or odd (silence, noise, 20 ms chunks): given the frames that
carry speech energy (:func:`aligner.speech.signal.speech_mask`), it lets long pauses fall on word
boundaries (after punctuation first), and spreads the words over the speech frames in proportion
to the expected durations of their phones.
Times are always monotonic and inside ``[0, duration]``.

>>> import numpy as np
>>> spans = place([1.0, 1.0], np.ones(100, bool), 0.01)
>>> [(round(a, 2), round(b, 2)) for a, b in spans]
[(0.0, 0.5), (0.5, 1.0)]
"""

from __future__ import annotations

import numpy as np

from .signal import HOP

__all__ = ["PHONE_SECONDS", "expected_seconds", "monotonic_spans", "place"]

#: Mean duration (seconds) of each ARPAbet phone in fluent (TTS-like) English.
PHONE_SECONDS = {
    "AA": 0.11, "AE": 0.11, "AH": 0.06, "AO": 0.11, "AW": 0.14, "AY": 0.13, "EH": 0.09,
    "ER": 0.10, "EY": 0.12, "IH": 0.07, "IY": 0.09, "OW": 0.12, "OY": 0.15, "UH": 0.07,
    "UW": 0.10, "B": 0.06, "D": 0.05, "G": 0.06, "K": 0.07, "P": 0.07, "T": 0.06, "CH": 0.09,
    "DH": 0.04, "F": 0.08, "HH": 0.05, "JH": 0.08, "S": 0.09, "SH": 0.10, "TH": 0.07, "V": 0.05,
    "Z": 0.07, "ZH": 0.08, "M": 0.06, "N": 0.05, "NG": 0.06, "L": 0.06, "R": 0.06, "W": 0.05,
    "Y": 0.05,
}

_MIN_PAUSE = 0.08  # silences shorter than this are closures inside speech, not pauses


def expected_seconds(phones: tuple[str, ...]) -> float:
    """Expected duration of a phone sequence (0.05 s per unknown phone, 0.05 s minimum)."""
    return max(0.05, sum(PHONE_SECONDS.get(p, 0.05) for p in phones))


def _pauses(mask: np.ndarray, hop: float) -> list[tuple[int, int]]:
    """Runs of non-speech frames (start, end) of at least ``_MIN_PAUSE``, strictly inside."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    out = []
    changes = np.flatnonzero(np.diff(mask[idx[0]: idx[-1] + 1].astype(np.int8))) + 1 + idx[0]
    edges = [idx[0], *changes.tolist(), idx[-1] + 1]
    for a, b in zip(edges, edges[1:], strict=False):
        if not mask[a] and (b - a) * hop >= _MIN_PAUSE:
            out.append((a, b))
    return out


def _spread(weights: list[float], cum: np.ndarray, a: int, b: int, hop: float) -> list[float]:
    """Boundaries (seconds) splitting frames a..b so each item gets speech time ~ its weight."""
    total_w = sum(weights) or 1.0
    s0, s1 = cum[a], cum[b]
    if s1 - s0 < 1e-9:  # no speech frames: spread over the time itself
        fr = np.cumsum([0.0, *weights]) / total_w
        return [(a + f * (b - a)) * hop for f in fr]
    targets = s0 + np.cumsum([0.0, *weights]) / total_w * (s1 - s0)
    frames = np.arange(a, b + 1, dtype=float)
    return (np.interp(targets, cum[a: b + 1], frames) * hop).tolist()


def place(weights: list[float], mask: np.ndarray, hop: float = HOP,
          pause_after: list[bool] | None = None) -> list[tuple[float, float]]:
    """Place consecutive items (words) of given weights on a speech mask.

    Args:
        weights: expected durations of the items, in order.
        mask: per-frame speech flags (:func:`speech_mask`).
        hop: seconds per frame.
        pause_after: per item, True where a pause is likely after it (punctuation).

    Returns:
        ``(start, end)`` seconds per item: monotonic, inside ``[0, len(mask) * hop]``; long
        pauses fall between items rather than inside them.
    """
    n, total = len(weights), len(mask)
    if n == 0:
        return []
    if total == 0:
        return [(0.0, 0.0)] * n
    speech = np.flatnonzero(mask)
    lo, hi = (int(speech[0]), int(speech[-1]) + 1) if len(speech) else (0, total)
    m = mask.copy() if len(speech) else np.ones(total, bool)
    cum = np.concatenate([[0.0], np.cumsum(m)])
    # Provisional boundaries, then give each long pause to the nearest word boundary.
    bounds = _spread(weights, cum, lo, hi, hop)
    anchors: dict[int, tuple[float, float]] = {}
    pause_after = pause_after or [False] * n
    for a, b in sorted(_pauses(m, hop), key=lambda p: p[0] - p[1]):  # longest first
        ta, tb = a * hop, b * hop
        centre = (ta + tb) / 2
        best, best_cost = None, None
        for k in range(1, n):
            if k in anchors:
                continue
            cost = abs(bounds[k] - centre) - (0.4 if pause_after[k - 1] else 0.0)
            if best_cost is None or cost < best_cost:
                best, best_cost = k, cost
        if best is None:
            continue
        if any((k < best and anchors[k][1] > ta) or (k > best and anchors[k][0] < tb)
               for k in anchors):
            continue
        anchors[best] = (ta, tb)
    # Final spread between anchors.
    spans: list[tuple[float, float]] = []
    cuts = [0, *sorted(anchors), n]
    for i in range(len(cuts) - 1):
        k0, k1 = cuts[i], cuts[i + 1]
        a = lo if k0 == 0 else int(round(anchors[k0][1] / hop))
        b = hi if k1 == n else int(round(anchors[k1][0] / hop))
        b = max(a, b)
        bs = _spread(weights[k0:k1], cum, a, b, hop)
        spans += [(bs[j], bs[j + 1]) for j in range(k1 - k0)]
    # Enforce monotonic, in-range output whatever rounding did.
    return monotonic_spans(spans, total * hop)


def monotonic_spans(spans: list[tuple[float, float]], end: float) -> list[tuple[float, float]]:
    """Clamp ``(start, end)`` spans into ``[0, end]`` so that each starts where or after the
    previous one ends (rounding must never make times run backwards).

    >>> monotonic_spans([(0.0, 0.5), (0.4, 0.9), (1.2, 2.0)], 1.0)
    [(0.0, 0.5), (0.5, 0.9), (1.0, 1.0)]
    """
    out, t = [], 0.0
    for s, e in spans:
        s = min(max(s, t), end)
        e = min(max(e, s), end)
        out.append((s, e))
        t = e
    return out
