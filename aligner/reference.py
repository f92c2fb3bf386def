"""Reference alignment: warp espeak-ng speech of the same text onto the audio (DTW on MFCCs).

espeak-ng knows exactly when it says each word of its own rendering. Synthesising the clip's text
and warping that reference onto the real audio with dynamic time warping over speaker-normalised
MFCCs carries the reference word boundaries over. The reference is spoken at a rate matched to the
clip's speech duration so the warp stays close to the diagonal. Needs the ``speech`` extra
(espeak-ng, GPL): :func:`reference_spans` raises :class:`MissingBackendError` without it.
"""

from __future__ import annotations

import functools

import numpy as np

from .errors import MissingBackendError
from .text import Token

__all__ = ["dtw_path", "mfcc", "reference_spans"]

_FPS = 100  # analysis frames per second (10 ms hop, 25 ms window)
_BASE_RATE = 175  # espeak words per minute for speech of the model's expected duration


@functools.cache
def _mel_dct(rate: int, nfft: int, top: float, n_mels: int = 26, n_ceps: int = 13,
             ) -> tuple[np.ndarray, np.ndarray]:
    def hz_to_mel(f):
        return 2595 * np.log10(1 + f / 700)

    mels = np.linspace(hz_to_mel(100), hz_to_mel(top), n_mels + 2)
    hz = 700 * (10 ** (mels / 2595) - 1)
    bins = hz / rate * nfft
    k = np.arange(nfft // 2 + 1)
    fb = np.zeros((n_mels, len(k)))
    for i in range(n_mels):
        a, c, b = bins[i], bins[i + 1], bins[i + 2]
        fb[i] = np.clip(np.minimum((k - a) / (c - a), (b - k) / (b - c)), 0, None)
    n = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (n[None, :] + 0.5) * np.arange(n_ceps)[:, None])
    return fb.T.astype(np.float32), dct.T.astype(np.float32)


def mfcc(pcm: np.ndarray, sample_rate: int, top: float = 7600.0) -> np.ndarray:
    """MFCCs c1..c12 (10 ms hop, 25 ms window, mel bands up to ``top`` Hz), normalised per
    coefficient over the clip (speaker/channel normalisation), plus deltas: (frames, 24).

    Computed at the clip's own rate (no resampling), so clips at different rates compare.

    >>> mfcc(np.zeros(16000, np.int16), 16000).shape
    (100, 24)
    """
    hop = sample_rate // _FPS
    win = int(0.025 * sample_rate)
    nfft = 1 << (win - 1).bit_length()
    x = pcm.astype(np.float32) / 32768.0
    n = max(1, -(-len(x) // hop))
    x = np.pad(x, (win // 2, n * hop + win))
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]
    frames = x[idx] * np.hamming(win).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2
    fb, dct = _mel_dct(sample_rate, nfft, min(top, 0.475 * sample_rate))
    logmel = np.log(power @ fb + 1e-8)
    ceps = (logmel @ dct)[:, 1:]
    ceps -= ceps.mean(axis=0)
    ceps /= ceps.std(axis=0) + 1e-6
    delta = np.gradient(ceps, axis=0) if n > 1 else np.zeros_like(ceps)
    return np.hstack([ceps, delta]).astype(np.float32)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The minimal-cost monotonic path through ``cost`` (n, m) from (0, 0) to (n-1, m-1).

    Steps (1, 0), (0, 1), (1, 1); each row is solved in vectorised form (the in-row recursion
    ``row[j] = min(a[j], row[j-1] + d[j])`` is a cumulative minimum).

    Returns:
        ``(i, j)`` index arrays of the path, in order.
    """
    n, m = cost.shape
    acc = np.empty((n, m), dtype=np.float64)
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        prev = acc[i - 1]
        d = cost[i]
        a = d + np.minimum(prev, np.concatenate([[np.inf], prev[:-1]]))
        cd = np.cumsum(d)
        acc[i] = cd + np.minimum.accumulate(a - cd)
    # Backtrack.
    i, j = n - 1, m - 1
    pi, pj = [i], [j]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diag <= up and diag <= left:
                i, j = i - 1, j - 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        pi.append(i)
        pj.append(j)
    return np.array(pi[::-1]), np.array(pj[::-1])


def reference_spans(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                    speech_seconds: float | None = None, expected_seconds: float | None = None,
                    voice: str = "en-us") -> list[tuple[float, float]]:
    """(start, end) seconds of each token, carried over from espeak-ng speech of ``text``.

    Args:
        pcm, sample_rate: the clip.
        text, tokens: its text and :func:`aligner.text.tokenize` tokens.
        speech_seconds: seconds of speech in the clip (speech frames), if known.
        expected_seconds: the duration model's estimate for the text, if known; with
            ``speech_seconds`` it sets the reference's speaking rate without a trial synthesis.
        voice: the espeak-ng voice of the reference.

    Raises:
        MissingBackendError: espeak-ng (extra ``speech``) is not installed.
    """
    try:
        import espeakng_loader  # noqa: F401
    except ImportError as exc:
        raise MissingBackendError("espeak-ng", "speech") from exc
    from .fallback import frame_db, speech_mask
    from .speech import synthesize

    def speech(x: np.ndarray, rate: int) -> float:
        return float(speech_mask(frame_db(x, rate)).sum()) / _FPS

    t_speech = speech_seconds if speech_seconds is not None else speech(pcm, sample_rate)
    rate = _BASE_RATE
    if expected_seconds and t_speech > 0:
        rate = int(np.clip(_BASE_RATE * expected_seconds / t_speech, 80, 450))
    ref = synthesize(text, voice=voice, rate=rate)
    r_speech = speech(ref.samples, ref.sample_rate)
    if t_speech > 0 and r_speech > 0 and abs(r_speech / t_speech - 1) > 0.15:
        rate = int(np.clip(rate * r_speech / t_speech, 80, 450))
        ref = synthesize(text, voice=voice, rate=rate)
    top = min(7600.0, 0.475 * min(sample_rate, ref.sample_rate))
    a, b = mfcc(pcm, sample_rate, top), mfcc(ref.samples, ref.sample_rate, top)
    # Euclidean distances between all frame pairs.
    cost = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    pi, pj = dtw_path(np.sqrt(np.maximum(cost, 0)))
    # For each reference frame, the first and last clip frame warped onto it.
    first = np.full(len(b), len(a))
    last = np.full(len(b), -1)
    np.minimum.at(first, pj, pi)
    np.maximum.at(last, pj, pi)
    ref_frames = len(b)
    duration = len(pcm) / sample_rate

    def to_target(t: float, edge: str) -> float:
        # Interpolate between frames: reference times are exact, the warp is per frame.
        x = min(max(t * _FPS, 0.0), ref_frames - 1.0)
        f = int(x)
        g = min(f + 1, ref_frames - 1)
        table = first if edge == "start" else last + 1
        return float(table[f] + (x - f) * (table[g] - table[f])) / _FPS

    # Reference words are whitespace tokens of the same text: match them by position.
    spoken = {w.char_start: w for w in ref.words}
    out: list[tuple[float, float] | None] = []
    for tok in tokens:
        w = spoken.get(tok.token_start)
        if w is None:
            w = next((x for x in ref.words if x.char_start <= tok.char_start < x.char_end), None)
        out.append(None if w is None else (to_target(w.start, "start"),
                                           to_target(max(w.start, w.end - 1 / _FPS), "end")))
    return _fill(out, duration)


def _fill(spans: list[tuple[float, float] | None], duration: float) -> list[tuple[float, float]]:
    """Give tokens espeak did not speak a zero-length time between their neighbours."""
    out: list[tuple[float, float]] = []
    for k, s in enumerate(spans):
        if s is None:
            prev = out[-1][1] if out else 0.0
            nxt = next((x[0] for x in spans[k + 1:] if x is not None), duration)
            t = min(max(prev, 0.0), nxt)
            out.append((t, t))
        else:
            out.append(s)
    return out
