"""A small phone-class HMM: the acoustic pass of the permissive core (no espeak-ng needed).

Each frame (10 ms) is described by four numbers: energy relative to the clip's peak, the share
of energy above 2.5 kHz, the share below 1 kHz, and the energy slope. Six phone classes (pause,
vowel-like, nasal, strident fricative, weak fricative, stop) are diagonal Gaussians over them,
fitted once on espeak-ng speech of sentences that are not in the benchmark (the table below).
The utterance becomes a left-to-right chain: every phone two states (a minimum of 20 ms) whose
self-loops follow the phone-duration model scaled to the clip's speaking rate, an optional pause
before every word and at the end. Viterbi finds the best path; word times are where it enters
and leaves each word's phones.

>>> import numpy as np
>>> sr = 16000; tone = 8000 * np.sin(2 * np.pi * 220 * np.arange(sr // 2) / sr)
>>> pcm = np.concatenate([np.zeros(sr // 4), tone, np.zeros(sr // 4)]).astype(np.int16)
>>> [(round(float(a), 2), round(float(b), 2)) for a, b in hmm_spans(pcm, sr, [(("AY",),)])]
[(0.25, 0.76)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...audio import frame_count, frame_start
from ..durations import PHONE_SECONDS

__all__ = ["CLASS_OF", "REACH", "class_features", "hmm_spans"]

_GROUPS = ("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW W Y R L",  # 1 vowel-like
           "M N NG",  # 2 nasal
           "S Z SH ZH CH JH",  # 3 strident fricative / affricate
           "F TH V DH HH",  # 4 weak fricative
           "B D G P T K")  # 5 stop
#: ARPAbet phone -> acoustic class (0 is the pause).
CLASS_OF = {p: i + 1 for i, group in enumerate(_GROUPS) for p in group.split()}
_SIL = 0

# (means, standard deviations) of the features per class: pause, vowel-like, nasal, strident,
# weak fricative, stop. Fitted on 64 espeak-ng clips (2 voices x 2 rates x 16 sentences).
_MEANS = np.array([
    [-49.15, -2.788, -2.850, -8.073],
    [-8.977, -1.613, -0.218, -2.048],
    [-13.88, -2.253, -0.062, -1.022],
    [-18.11, -0.346, -1.545, -0.728],
    [-24.52, -1.035, -0.442, 0.251],
    [-25.40, -1.263, -0.589, -1.020],
])
_STDS = np.array([
    [16.48, 1.713, 1.653, 20.14],
    [11.25, 0.734, 0.692, 11.77],
    [6.265, 0.428, 0.395, 7.733],
    [6.151, 0.673, 1.118, 6.927],
    [4.806, 0.846, 0.639, 4.131],
    [9.791, 1.306, 0.877, 15.11],
])
#: How far (seconds) from the duration model's times of a word the search looks for it: a
#: thirtieth of the clip's length, within these bounds. The duration model errs more the longer
#: the clip (its pauses can go to the wrong words). Measured on espeak-ng clips of call-centre
#: sentences (tests/speech_helpers.py) at 175 and 120 words a minute, median word-boundary
#: error: 210 s long, 45 and 100 ms at 0.15 s, 34 and 58 ms at 1 s, 21 and 34 ms at 2 s, 21 and
#: 43 ms at 3-5 s (the duration model alone: 98 and 168 ms, up to 0.7 s off); 10-30 s long,
#: 0.15 s best at 175 words a minute but 80-185 ms at 120, 0.33-2 s 19-48 ms; the alignment
#: benchmark's sentences (3 s), 0.15 s best (mean 72.6 ms against 75.9 at 0.3 s, 78.4 at 2 s).
REACH = (0.15, 2.0)
_REACH_PER_SECOND = 1 / 30
_EMIT_WEIGHT = 0.3
_BLOCK = 500  # frames per FFT batch  # trust in the acoustic classes relative to the duration model
_ENTER_PAUSE = np.log(0.3)
_SKIP_PAUSE = np.log(0.7)


def class_features(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per 10 ms frame: [relative dB, log high-band share, log low-band share, dB slope]."""
    win = int(0.025 * sample_rate)
    nfft = 1 << (win - 1).bit_length()
    x = pcm.astype(np.float32) / 32768.0
    n = max(1, frame_count(len(x), sample_rate, 0.01))
    starts = frame_start(np.arange(n), sample_rate, 0.01)  # frame k at k * 10 ms exactly
    x = np.pad(x, (win // 2, max(0, int(starts[-1]) + win - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)  # a view: no copy
    window = np.hanning(win).astype(np.float32)
    f = np.fft.rfftfreq(nfft, 1 / sample_rate)
    bands = np.stack([f >= 80, (f >= 80) & (f < 1000),
                      (f >= 2500) & (f < min(8000, sample_rate / 2))], 1).astype(np.float32)
    total, low, high = np.empty((3, n))
    for b0 in range(0, n, _BLOCK):  # in blocks: bounded memory for long clips
        b1 = min(n, b0 + _BLOCK)
        power = np.abs(np.fft.rfft(frames[starts[b0:b1]] * window, nfft)) ** 2
        total[b0:b1], low[b0:b1], high[b0:b1] = (power @ bands).T
    total += 1e-10
    db = 10 * np.log10(total)
    db = db - np.percentile(db, 99)
    return np.stack([np.maximum(db, -60), np.log10(high / total + 1e-4),
                     np.log10(low / total + 1e-4), np.gradient(db) if n > 1 else db * 0], 1)


def _loglik(feats: np.ndarray) -> np.ndarray:
    z = (feats[:, None, :] - _MEANS[None]) / _STDS[None]
    return _EMIT_WEIGHT * (-0.5 * (z * z).sum(-1) - np.log(_STDS).sum(-1)[None])


def hmm_spans(pcm: np.ndarray, sample_rate: int, prons: list[tuple[tuple[str, ...], ...]],
              speech_seconds: float | None = None,
              guide: list[tuple[float, float]] | None = None,
              reach: float | None = None) -> list[tuple[float, float]] | None:
    """(start, end) seconds per token by Viterbi over the phone-class chain, or None when the
    clip is too short for the phones (the caller then uses the duration model alone).

    Args:
        pcm, sample_rate: the clip.
        prons: per token, the phones of each spoken word (:func:`aligner.speech.pronounce.token_phones`).
        speech_seconds: seconds of speech in the clip, to scale the phone durations.
        guide: a rough (start, end) per token (the duration model's): the search then only
            looks at each word's states within ``reach`` seconds of it (a band: memory and time
            grow with the clip's length, not with length x words).
        reach: see ``guide``; by default a thirtieth of the clip's length within
            :data:`REACH`. When no path fits in the band, it is searched again twice as wide.
    """
    phones = [[p for w in pr for p in w] or ["AH"] for pr in prons]
    if not phones:
        return []
    feats = class_features(pcm, sample_rate)
    frames = len(feats)
    expected = sum(PHONE_SECONDS.get(p, 0.05) for ph in phones for p in ph)
    tempo = (speech_seconds / expected) if speech_seconds and expected else 1.0
    tempo = float(np.clip(tempo, 0.5, 2.0))
    # The chain: [pause?] word0 phones (2 states each) [pause?] word1 ... [pause?]
    cls, stay, owner, optional = [], [], [], []
    first = []  # per word: its pause state (the word's phones follow it)
    for k, ph in enumerate(phones):
        first.append(len(cls))
        cls.append(_SIL)
        stay.append(np.log(0.9))
        owner.append(-1)
        optional.append(True)
        for p in ph:
            half = max(1.0, tempo * PHONE_SECONDS.get(p, 0.05) * 100 / 2)
            for _ in range(2):
                cls.append(CLASS_OF.get(p, 1))
                stay.append(np.log(1 - 1 / (half + 1)))
                owner.append(k)
                optional.append(False)
    cls.append(_SIL)
    stay.append(np.log(0.9))
    owner.append(-1)
    optional.append(True)
    n_states = len(cls)
    if frames < sum(not o for o in optional):
        return None
    chain = _Chain(np.array(cls), np.array(stay), np.array(optional))
    if reach is None:
        reach = float(np.clip(frames / 100 * _REACH_PER_SECOND, *REACH))
    loglik = _loglik(feats)  # (frames, classes): the emissions are looked up per frame
    while True:
        band = _band(frames, n_states, first, guide, reach)
        path = _viterbi(chain, loglik, *band)
        if path is not None or guide is None:
            break
        guide, reach = (guide, 2 * reach) if reach < frames / 100 else (None, reach)
    if path is None:
        return None
    own = np.array(owner)[path]
    spans = []
    for k in range(len(phones)):
        idx = np.flatnonzero(own == k)
        if len(idx) == 0:
            return None
        spans.append((idx[0] / 100.0, (idx[-1] + 1) / 100.0))
    duration = len(pcm) / sample_rate
    return [(min(a, duration), min(b, duration)) for a, b in spans]


@dataclass(frozen=True, slots=True)
class _Chain:
    """The left-to-right chain's states: acoustic class, log self-loop, optional (pauses)."""

    cls: np.ndarray
    stay: np.ndarray
    optional: np.ndarray


def _band(frames: int, n_states: int, first: list[int],
          guide: list[tuple[float, float]] | None, reach: float,
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` per frame: the states searched at that frame, ``lo <= s < hi``. With a
    guide, those of the words whose guide span, widened by ``reach`` seconds, holds the frame,
    with the pauses around them; both edges only move forward."""
    if guide is None:
        return np.zeros(frames, np.int64), np.full(frames, n_states, np.int64)
    t = np.arange(frames) / 100.0
    ends = np.maximum.accumulate([e for _, e in guide]) + reach
    starts = np.maximum.accumulate([s for s, _ in guide]) - reach
    heads = np.array([*first, n_states - 1])  # the pause before each word, the closing pause
    a = np.searchsorted(ends, t, "left")  # the first word not yet over
    b = np.searchsorted(starts, t, "right")  # the words begun (+1): its pause after is heads[b]
    lo = heads[a]
    hi = np.maximum(heads[b] + 1, 2)
    lo[0], hi[-1] = 0, n_states
    return np.maximum.accumulate(lo), np.maximum.accumulate(hi)


def _viterbi(chain: _Chain, loglik: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             ) -> np.ndarray | None:
    """The best state per frame through the chain within the band ``lo``/``hi``, or None
    when no path fits in it. Work and memory: the band's cells, frame by frame."""
    frames, n_states = len(loglik), len(chain.cls)
    neg = -np.inf
    move = np.log1p(-np.exp(chain.stay))  # leave a state
    # Entering a pause costs extra; skipping it (from the state before) costs a little.
    opt_next = np.roll(chain.optional, -1)
    enter = move + np.where(opt_next, _ENTER_PAUSE, 0.0)
    skip = np.where(opt_next, move + _SKIP_PAUSE, neg)  # state s jumps to s + 2
    # Arrays shifted by two states (index s + 2 is state s), so that s - 1 and s - 2 of the
    # band's first states are in range.
    pad = np.full(2, neg)
    enter_p, skip_p = np.concatenate([pad, enter]), np.concatenate([pad, skip])
    score = np.full(n_states + 2, neg)
    score[2] = loglik[0, chain.cls[0]]
    score[3] = loglik[0, chain.cls[1]] + _SKIP_PAUSE
    offsets = np.concatenate([[0], np.cumsum(hi - lo)])
    back = np.zeros(int(offsets[-1]), np.int8)  # per band cell: 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, frames):
        a, b = int(lo[t]), int(hi[t])
        cand = np.stack([score[a + 2: b + 2] + chain.stay[a:b],
                         score[a + 1: b + 1] + enter_p[a + 1: b + 1],
                         score[a: b] + skip_p[a: b]])
        choice = cand.argmax(0)
        best = cand[choice, np.arange(b - a)]
        if not np.isfinite(best).any():
            return None
        score[int(lo[t - 1]) + 2: a + 2] = neg  # states behind the band are left for good
        score[a + 2: b + 2] = best + loglik[t, chain.cls[a:b]]
        back[offsets[t]: offsets[t + 1]] = choice
    tail = score[n_states:]  # the last word's last state, the closing pause
    if not np.isfinite(tail).any():
        return None
    s = n_states - 1 if tail[1] >= tail[0] else n_states - 2
    path = np.empty(frames, np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = s
        s -= int(back[offsets[t] + s - lo[t]]) if t else 0
    return path
