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

import numpy as np

from ..durations import PHONE_SECONDS

__all__ = ["CLASS_OF", "class_features", "hmm_spans"]

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
_EMIT_WEIGHT = 0.3  # trust in the acoustic classes relative to the duration model
_ENTER_PAUSE = np.log(0.3)
_SKIP_PAUSE = np.log(0.7)


def class_features(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per 10 ms frame: [relative dB, log high-band share, log low-band share, dB slope]."""
    hop = sample_rate // 100
    win = int(0.025 * sample_rate)
    nfft = 1 << (win - 1).bit_length()
    x = pcm.astype(np.float32) / 32768.0
    n = max(1, -(-len(x) // hop))
    x = np.pad(x, (win // 2, n * hop + win))
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]
    power = np.abs(np.fft.rfft(x[idx] * np.hanning(win).astype(np.float32), nfft)) ** 2
    f = np.fft.rfftfreq(nfft, 1 / sample_rate)
    total = power[:, f >= 80].sum(1) + 1e-10
    low = power[:, (f >= 80) & (f < 1000)].sum(1)
    high = power[:, (f >= 2500) & (f < min(8000, sample_rate / 2))].sum(1)
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
              reach: float = 0.15) -> list[tuple[float, float]] | None:
    """(start, end) seconds per token by Viterbi over the phone-class chain, or None when the
    clip is too short for the phones (the caller then uses the duration model alone).

    Args:
        pcm, sample_rate: the clip.
        prons: per token, the phones of each spoken word (:func:`aligner.speech.pronounce.token_phones`).
        speech_seconds: seconds of speech in the clip, to scale the phone durations.
        guide: a rough (start, end) per token (the duration model's); each word's states are
            then only allowed within ``reach`` seconds of it, which keeps the path from drifting.
        reach: see ``guide``.
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
    for k, ph in enumerate(phones):
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
    cls_a = np.array(cls)
    stay_a = np.array(stay)
    move_a = np.log1p(-np.exp(stay_a))  # leave a state
    opt = np.array(optional)
    # Entering a pause costs extra; skipping it (from the state before) costs a little.
    enter = move_a + np.where(np.roll(opt, -1), _ENTER_PAUSE, 0.0)
    skip_ok = np.roll(opt, -1)  # state s may jump to s + 2 over the pause at s + 1
    emit = _loglik(feats)[:, cls_a]
    if guide is not None:
        own = np.array(owner)
        frame_t = np.arange(frames)[:, None] / 100.0
        lo = np.array([guide[k][0] - reach if k >= 0 else -np.inf for k in own])
        hi = np.array([guide[k][1] + reach if k >= 0 else np.inf for k in own])
        emit = np.where((frame_t >= lo[None]) & (frame_t <= hi[None]), emit, -1e9)
    neg = -np.inf
    score = np.full(n_states, neg)
    score[0] = emit[0, 0]
    score[1] = emit[0, 1] + _SKIP_PAUSE
    back = np.zeros((frames, n_states), np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, frames):
        from1 = np.concatenate([[neg], score[:-1] + enter[:-1]])
        from2 = np.concatenate([[neg, neg], np.where(skip_ok[:-2], score[:-2] + move_a[:-2]
                                                      + _SKIP_PAUSE, neg)])
        cand = np.stack([score + stay_a, from1, from2])
        choice = cand.argmax(0)
        score = cand[choice, np.arange(n_states)] + emit[t]
        back[t] = choice
    last = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    path = np.empty(frames, np.int64)
    s = last
    for t in range(frames - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    own = np.array(owner)[path]
    spans = []
    for k in range(len(phones)):
        idx = np.flatnonzero(own == k)
        if len(idx) == 0:
            return None
        spans.append((idx[0] / 100.0, (idx[-1] + 1) / 100.0))
    duration = len(pcm) / sample_rate
    return [(min(a, duration), min(b, duration)) for a, b in spans]
