"""Frame energy and speech detection: the signal primitives every alignment backend shares.

>>> import numpy as np
>>> db = frame_db(np.r_[np.zeros(1600), 8000 * np.ones(1600)].astype(np.int16), 16000)
>>> speech_mask(db).astype(int).tolist()
[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
"""

from __future__ import annotations

import numpy as np

from ..audio import frame_count, frame_start

__all__ = ["HOP", "dither", "frame_db", "speech_mask", "speech_threshold"]

#: Analysis hop (seconds): 100 frames per second.
HOP = 0.01


def frame_db(pcm: np.ndarray, sample_rate: int, hop: float = HOP,
             window: float = 0.025) -> np.ndarray:
    """Frame energies in dB (full scale), one per ``hop`` seconds, windows centred on the hop.

    Args:
        pcm: int16 (or float) mono samples.
        sample_rate: their rate.
        hop: frame step in seconds.
        window: window length in seconds.

    Returns:
        ``ceil(len(pcm) / (hop * rate))`` values, frame ``k`` centred on ``k * hop`` seconds
        exactly (:func:`aligner.audio.frame_start`), -100 dB for digital silence.
    """
    n = frame_count(len(pcm), sample_rate, hop)
    if n == 0:
        return np.zeros(0)
    x = pcm.astype(np.float32) / 32768.0
    win = max(1, int(window * sample_rate))
    sq = np.zeros(len(x) + 1)  # sq[k]: the energy of x[:k]; silence before and after x
    np.cumsum(np.square(x, dtype=np.float64), out=sq[1:])
    starts = frame_start(np.arange(n), sample_rate, hop) - win // 2
    energy = (sq[np.clip(starts + win, 0, len(x))] - sq[np.clip(starts, 0, len(x))]) / win
    return 10 * np.log10(np.maximum(energy, 1e-10))


def speech_threshold(db: np.ndarray) -> float:
    """The dB level above which a frame holds speech: between the floor and the peak.

    ``-inf`` for flat noise (everything is "speech"), ``+inf`` for silence.
    """
    if len(db) == 0:
        return float("inf")
    peak, floor = (float(x) for x in np.percentile(db, [99, 5]))
    if peak < -60:
        return float("inf")
    if peak - floor < 10:  # flat noise: no structure to use
        return float("-inf")
    return max(floor + 0.25 * (peak - floor), peak - 40)


def speech_mask(db: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """True for frames with speech energy (above :func:`speech_threshold`)."""
    return db > (speech_threshold(db) if threshold is None else threshold)


def dither(x: np.ndarray) -> np.ndarray:
    """``x`` plus seeded noise of one least significant bit (the same for the same input).

    Digital silence (exact zeros, as TTS audio and padding have) gives log-spectral features
    degenerate values: measured on 128 espeak-ng clips of the alignment benchmark (pauses
    trimmed in both runs), dithering leaves fewer tokens unreached (89 -> 62 of 1034) and times
    the others better (mean boundary error 23.4 -> 19.6 ms); the acoustic backend's own search
    on the benchmark's 256 espeak-ng clips: 46.3 -> 25.8 ms. Seeded: a clip always aligns alike.
    """
    out = np.random.default_rng(0).integers(-1, 2, len(x), dtype=np.int32)
    out += x  # in place: a long clip takes one int32 copy, not four
    np.clip(out, -32768, 32767, out=out)
    return out.astype(np.int16)
