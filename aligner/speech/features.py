"""pocketsphinx's acoustic features, computed with numpy: MFCCs, noise removal, deltas.

The en-us acoustic model that pocketsphinx ships was trained on a particular front end (its
``feat.params``: 25 mel filters from 130 to 6800 Hz, a DCT-II, liftering 22, spectral noise
removal, batch cepstral mean normalisation, ``1s_c_d_dd`` deltas). :func:`cepstra` reproduces
pocketsphinx 5's float front end step by step (pre-emphasis 0.97, a 25.625 ms Hamming window,
512-point FFT, the filter bank rounded to FFT points with unit area, ``fe_remove_noise``, the log
floor, the orthonormal DCT-II and the lifter): the test suite checks it against the features
pocketsphinx itself logs. Owning the front end lets the aligner score frames at any hop and
adapt the model to a voice.

>>> import numpy as np
>>> c = cepstra(np.zeros(16000, np.int16))
>>> c.shape, features(c).shape
((99, 13), (99, 39))
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["HOP", "RATE", "WINDOW", "cepstra", "features"]

RATE = 16000  #: samples per second the model was trained on
HOP = 160  #: samples between frames (10 ms)
WINDOW = 410  #: samples in a frame's window (25.625 ms)
_NFFT = 512
_FILTERS, _LOWER, _UPPER = 25, 130.0, 6800.0
_CEPSTRA, _LIFTER = 13, 22
_LOG_FLOOR = 1e-4
_FRAMES_AT_ONCE = 2000  # frames windowed and transformed in one batch
# fe_remove_noise's constants (pocketsphinx src/fe/fe_noise.c)
_LAMBDA_POWER, _LAMBDA_A, _LAMBDA_B, _LAMBDA_T, _MU_T, _MAX_GAIN, _SMOOTH = (
    0.7, 0.995, 0.5, 0.85, 0.2, 20.0, 4)


def _mel(f: float) -> float:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_inverse(m: float) -> float:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@functools.cache
def _filter_bank() -> np.ndarray:
    """(filters, FFT bins) triangular mel filters, as pocketsphinx builds them."""
    step = RATE / _NFFT
    low, high = _mel(_LOWER), _mel(_UPPER)
    width = (high - low) / (_FILTERS + 1)
    bank = np.zeros((_FILTERS, _NFFT // 2 + 1))
    for i in range(_FILTERS):
        f0, f1, f2 = (int(_mel_inverse((i + j) * width + low) / step + 0.5) * step
                      for j in range(3))
        for j in range(_NFFT // 2 + 1):
            hz = j * step
            if hz < f0:
                continue
            if hz > f2 or j == _NFFT // 2:
                break
            area = 2.0 / (f2 - f0)
            bank[i, j] = min((hz - f0) / (f1 - f0), (f2 - hz) / (f2 - f1)) * area
    return bank


@functools.cache
def _dct() -> np.ndarray:
    """(cepstra, filters): orthonormal DCT-II rows times the lifter."""
    i = np.arange(_CEPSTRA)[:, None]
    j = np.arange(_FILTERS)[None, :]
    m = np.cos(np.pi * i * (j + 0.5) / _FILTERS) * np.sqrt(2.0 / _FILTERS)
    m[0] = np.sqrt(1.0 / _FILTERS)
    lifter = 1 + (_LIFTER / 2) * np.sin(np.pi * np.arange(_CEPSTRA) / _LIFTER)
    return m * lifter[:, None]


def _remove_noise(power: np.ndarray) -> np.ndarray:
    """pocketsphinx's ``fe_remove_noise`` over (frames, filters) mel power spectra: a running
    noise estimate is taken out of each band, with temporal masking and gain smoothing. The
    bands' estimates run frame by frame; the gains and their smoothing across bands follow for
    all frames at once."""
    n_frames, n = power.shape
    smooth = np.empty_like(power)
    signal = np.empty_like(power)
    s = power[0].copy()
    noise = power[0] / _MAX_GAIN
    floor = power[0] / _MAX_GAIN
    peak = np.zeros(n)
    for t in range(n_frames):
        s = _LAMBDA_POWER * s + (1 - _LAMBDA_POWER) * power[t]
        smooth[t] = s
        a = np.where(s >= noise, _LAMBDA_A, _LAMBDA_B)
        noise = a * noise + (1 - a) * s
        sig = np.maximum(s - noise, 1.0)
        a = np.where(sig >= floor, _LAMBDA_A, _LAMBDA_B)
        floor = a * floor + (1 - a) * sig
        peak *= _LAMBDA_T
        masked = np.where(sig < _LAMBDA_T * peak, peak * _MU_T, sig)
        np.maximum(peak, sig, out=peak)
        np.maximum(masked, floor, out=signal[t])
    gain = np.where(signal < _MAX_GAIN * smooth, signal / np.maximum(smooth, 1e-300), _MAX_GAIN)
    gain = np.maximum(gain, 1.0 / _MAX_GAIN)
    cum = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(gain, 1)], 1)
    lo = np.maximum(np.arange(n) - _SMOOTH, 0)
    hi = np.minimum(np.arange(n) + _SMOOTH, n - 1) + 1
    return power * ((cum[:, hi] - cum[:, lo]) / (hi - lo))


def cepstra(pcm: np.ndarray, hop: int = HOP) -> np.ndarray:
    """13 MFCCs per frame of 16 kHz int16 ``pcm`` (frame ``t`` starts at sample ``t * hop``).

    The last frame is zero-padded, as pocketsphinx does at the end of an utterance.
    """
    x = np.asarray(pcm)
    if len(x) == 0:
        return np.zeros((0, _CEPSTRA))
    n = 1 + max(0, -(-(len(x) - WINDOW) // hop))
    y = np.zeros(max(len(x), (n - 1) * hop + WINDOW))  # pre-emphasised, zero-padded, in place
    y[0] = x[0]
    y[1:len(x)] = x[:-1]
    y[1:len(x)] *= -0.97
    y[1:len(x)] += x[1:]
    frames = np.lib.stride_tricks.sliding_window_view(y, WINDOW)[::hop][:n]
    window, bank = np.hamming(WINDOW), _filter_bank().T
    power = np.concatenate([  # a block of frames at a time: 8 MB, not 8 KB a frame at once
        np.abs(np.fft.rfft(frames[a:a + _FRAMES_AT_ONCE] * window, _NFFT)) ** 2 @ bank
        for a in range(0, n, _FRAMES_AT_ONCE)])
    return np.log(_remove_noise(power) + _LOG_FLOOR) @ _dct().T


def features(cep: np.ndarray, step: int = 1) -> np.ndarray:
    """39-dimensional ``1s_c_d_dd`` features: mean-normalised cepstra, deltas, double deltas.

    ``step``: frames per 10 ms (2 at a 5 ms hop), so that the deltas span the same time as the
    model's: ``c[t+2] - c[t-2]`` and ``(c[t+3] - c[t-1]) - (c[t+1] - c[t-3])`` in 10 ms frames,
    the edges repeated.
    """
    c = cep - cep.mean(0) if len(cep) else cep
    k = 3 * step
    p = np.concatenate([c[:1].repeat(k, 0), c, c[-1:].repeat(k, 0)]) if len(c) else c
    n = len(c)

    def at(d: int) -> np.ndarray:
        return p[k + d * step:k + d * step + n]

    return np.concatenate([c, at(2) - at(-2), (at(3) - at(-1)) - (at(1) - at(-3))], 1)
