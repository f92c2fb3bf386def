"""Reference alignment: warp espeak-ng speech of the same text onto the audio (DTW on MFCCs).

espeak-ng knows exactly when it says each word of its own rendering. Synthesising the clip's text
and warping that reference onto the real audio with dynamic time warping over speaker-normalised
MFCCs carries the reference word boundaries over. The reference is spoken at a rate matched to the
clip's speech duration so the warp stays close to the diagonal. Needs the ``speech`` extra
(espeak-ng, GPL): :func:`reference_spans` raises :class:`MissingBackendError` without it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import numpy as np

from ...audio import frame_count, frame_start
from ...errors import MissingBackendError
from ..pronounce import espeak_to_arpabet
from ..text import Token

if TYPE_CHECKING:
    from ..synthesis import Synthesis

__all__ = ["HIGH_PITCH_HZ", "VOICES", "Reference", "dtw_path", "median_pitch", "mfcc", "prefix_cost",
           "reference_spans", "reference_voice", "speak"]

_FPS = 100  # analysis frames per second (10 ms hop, 25 ms window)
_BASE_RATE = 175  # espeak words per minute for speech of the model's expected duration
_BLOCK = 1000  # MFCC frames per block (bounded memory for long clips)
#: Frames per FFT call: numpy's float32 FFT of a 1024-point batch of hundreds of rows runs 3-4x
#: slower per row than in batches of tens (measured, numpy 2.4); every row's result is the same.
_FFT_ROWS = 64


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
    """MFCCs c1..c12 (frame ``k`` centred on ``k`` x 10 ms exactly at every rate, 25 ms window,
    mel bands up to ``top`` Hz), normalised per coefficient over the clip (speaker/channel
    normalisation), plus deltas: (frames, 24).

    Computed at the clip's own rate (no resampling), so clips at different rates compare.

    >>> mfcc(np.zeros(16000, np.int16), 16000).shape
    (100, 24)
    """
    win = int(0.025 * sample_rate)
    nfft = 1 << (win - 1).bit_length()
    x = pcm.astype(np.float32) / 32768.0
    n = max(1, frame_count(len(x), sample_rate, 1 / _FPS))
    starts = frame_start(np.arange(n), sample_rate, 1 / _FPS)  # frame k at k * 10 ms exactly
    x = np.pad(x, (win // 2, max(0, int(starts[-1]) + win - len(x))))
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    fb, dct = _mel_dct(sample_rate, nfft, min(top, 0.475 * sample_rate))
    window = np.hamming(win).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)  # a view: no copy
    logmel = np.empty((n, fb.shape[1]), np.float32)
    power = np.empty((min(n, _BLOCK), nfft // 2 + 1), np.float32)
    for b0 in range(0, n, _BLOCK):  # in blocks: bounded memory for long clips
        b1 = min(n, b0 + _BLOCK)
        for f0 in range(b0, b1, _FFT_ROWS):
            f1 = min(b1, f0 + _FFT_ROWS)
            power[f0 - b0: f1 - b0] = np.abs(
                np.fft.rfft(frames[starts[f0:f1]] * window, nfft)) ** 2
        logmel[b0:b1] = np.log(power[: b1 - b0] @ fb + 1e-8)
    ceps = (logmel @ dct)[:, 1:]
    ceps -= ceps.mean(axis=0)
    ceps /= ceps.std(axis=0) + 1e-6
    delta = np.gradient(ceps, axis=0) if n > 1 else np.zeros_like(ceps)
    return np.hstack([ceps, delta]).astype(np.float32)


def dtw_path(a: np.ndarray, b: np.ndarray, centre: np.ndarray | None = None,
             band: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The minimal-cost monotonic path between feature sequences ``a`` (n, d) and ``b`` (m, d).

    Euclidean frame distances; steps (1, 0), (0, 1), (1, 1); ties go diagonal, then (1, 0),
    then (0, 1). Only cells within ``band`` frames of ``centre[i]`` (the expected ``j`` for row
    ``i``; default the diagonal) are searched, so long clips need memory n x band, not n x m;
    consecutive rows' bands always overlap, so every searched cell is reachable. Each row is
    solved in vectorised form: the in-row recursion ``row[j] = min(a[j], row[j-1] + d[j])`` is a
    cumulative minimum.

    Returns:
        ``(i, j)`` index arrays of the path from (0, 0) to (n-1, m-1), in order.

    >>> x = np.array([[0.0], [1.0], [2.0]]); y = np.array([[0.0], [0.0], [1.0], [2.0]])
    >>> [p.tolist() for p in dtw_path(x, y)]
    [[0, 0, 1, 2], [0, 1, 2, 3]]
    """
    n, m = len(a), len(b)
    if centre is None:
        centre = np.arange(n) * ((m - 1) / max(1, n - 1))
    if band is None:
        band = max(100, int(0.1 * max(n, m)))
    lo = np.clip(np.floor(centre).astype(int) - band, 0, m - 1)
    hi = np.clip(np.ceil(centre).astype(int) + band + 1, 1, m)
    hi = np.maximum.accumulate(hi)
    lo[1:] = np.minimum(lo[1:], hi[:-1] - 1)  # overlap the row above: every cell is reachable
    lo = np.minimum.accumulate(lo[::-1])[::-1]  # non-decreasing, lo[0] = 0, hi[-1] = m
    lo[0], hi[-1] = 0, m
    width = hi - lo
    # acc[i, 1 + t] (flat: acc[i * cols + 1 + t]): the cost of reaching (i, lo[i] + t). Column 0
    # and the columns past the band stay inf, so that the row above seen from row i (j = lo[i] -
    # 1 .. hi[i] - 1) is one slice, and so is each row of the distances and their running sums.
    cols = 1 + max(int(width.max()), int((hi[1:] - lo[:-1]).max(initial=0)))
    dist = _band_distances(a, b, lo, hi, cols)
    cum = np.cumsum(dist, axis=1).ravel()
    dist = dist.ravel()
    acc = np.full(n * cols, np.inf)
    acc[1: 1 + width[0]] = cum[: width[0]]
    lo_ = lo.tolist()
    step = np.empty(cols)
    for i, k in enumerate(width[1:].tolist(), 1):
        r = i * cols
        q = r - cols + lo_[i] - lo_[i - 1]  # (i - 1, lo[i] - 1)
        st = step[:k]
        np.minimum(acc[q + 1: q + k + 1], acc[q: q + k], out=st)
        st += dist[r: r + k]
        cd = cum[r: r + k]
        st -= cd
        np.minimum.accumulate(st, out=st)
        np.add(cd, st, out=acc[r + 1: r + 1 + k])
    # The way back: from each cell to its cheapest predecessor, ties diagonal, up, left.
    at = memoryview(acc)  # Python floats, fast to index one by one
    i, j = n - 1, m - 1
    pi, pj = [i], [j]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            left = i * cols + j - lo_[i]  # (i, j - 1)
            diag = left - cols + lo_[i] - lo_[i - 1]  # (i - 1, j - 1); (i - 1, j) is next
            if at[diag] <= at[diag + 1] and at[diag] <= at[left]:
                i, j = i - 1, j - 1
            elif at[diag + 1] <= at[left]:
                i -= 1
            else:
                j -= 1
        pi.append(i)
        pj.append(j)
    return np.array(pi[::-1]), np.array(pj[::-1])


def _band_distances(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, cols: int,
                    ) -> np.ndarray:
    """Euclidean distances ``|a[i] - b[lo[i] + t]|`` of the band's cells, (n, cols); inf past
    each row's band."""
    n, m = len(a), len(b)
    bb = (b * b).sum(1)
    aa = (a * a).sum(1)
    if n * m <= 2_000_000:  # small: one matrix product beats a product per row
        j = lo[:, None] + np.arange(cols)
        past = j >= hi[:, None]
        np.minimum(j, m - 1, out=j)
        ab = (2 * a @ b.T).ravel()[j + np.arange(n)[:, None] * m]  # only the band's cells
        squared = bb[j]
        squared += aa[:, None]
        squared -= ab
        out = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared)
        out[past] = np.inf
        return out
    rows = [np.sqrt(np.maximum(aa[i] + bb[lo[i]:hi[i]] - 2 * b[lo[i]:hi[i]] @ a[i], 0.0))
            for i in range(n)]
    out = np.full((n, cols), np.inf, rows[0].dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


_PREFIX_MARGIN, _PREFIX_EXTRA = 1.1, 15  # prefix cut: x its expected speech frames, + frames
_COARSE_ABOVE = 3000  # frames (30 s): longer clips are warped coarse-to-fine


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n = len(x) // k * k
    out = x[:n].reshape(-1, k, x.shape[1]).mean(1)
    return out if n == len(x) else np.vstack([out, x[n:].mean(0, keepdims=True)])


def _speech_span(mask: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    return (int(idx[0]), int(idx[-1])) if len(idx) >= 2 and idx[-1] > idx[0] else None


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    """espeak-ng speech of a clip's text (:func:`speak`) and its speech frames (100 a second)."""

    speech: Synthesis
    mask: np.ndarray

    def head(self, char: int) -> Reference:
        """The speech before the first word at or after character ``char`` of the text (all of
        it when there is none)."""
        s = self.speech
        after = [w.start for w in s.words if w.char_start >= char]
        if not after:
            return self
        from ..signal import frame_db, speech_mask

        kept = sum(w.char_start < char for w in s.words)
        samples = s.samples[: int(after[0] * s.sample_rate)]
        cut = dataclasses.replace(
            s, text=s.text[:char], samples=samples, words=s.words[:kept],
            phones=tuple(p for p in s.phones if p.start < after[0] and p.word_index < kept))
        return Reference(cut, speech_mask(frame_db(samples, s.sample_rate)))


def speak(text: str, speech_seconds: float, expected_seconds: float | None = None,
          voice: str = "en-us") -> Reference:
    """espeak-ng speech of ``text`` at about the speaking rate of a clip with ``speech_seconds``
    of speech: the reference that :func:`reference_spans` warps onto the clip.

    ``expected_seconds`` (the duration model's estimate for the text) sets the first rate tried;
    when the speech comes out more than 15% longer or shorter than the clip's, it is spoken again
    at the rate that corrects it.

    Raises:
        MissingBackendError: espeak-ng (extra ``speech``) is not installed.
    """
    try:
        import espeakng_loader  # noqa: F401
    except ImportError as exc:
        raise MissingBackendError("espeak-ng", "speech") from exc
    from ..signal import frame_db, speech_mask
    from ..synthesis import synthesize

    rate = _BASE_RATE
    if expected_seconds and speech_seconds > 0:
        rate = int(np.clip(_BASE_RATE * expected_seconds / speech_seconds, 80, 450))
    ref = synthesize(text, voice=voice, rate=rate)
    r_mask = speech_mask(frame_db(ref.samples, ref.sample_rate))
    r_speech = float(r_mask.sum()) / _FPS
    if speech_seconds > 0 and r_speech > 0 and abs(r_speech / speech_seconds - 1) > 0.15:
        rate = int(np.clip(rate * r_speech / speech_seconds, 80, 450))
        ref = synthesize(text, voice=voice, rate=rate)
        r_mask = speech_mask(frame_db(ref.samples, ref.sample_rate))
    return Reference(ref, r_mask)


#: The reference voice by the clip's median pitch: espeak-ng's male voices speak at ~95-110 Hz,
#: its female variants at ~175-215 Hz; warped onto a clip of the other kind the reference costs
#: over :data:`aligner.speech.alignment.MAX_REFERENCE_COST` (measured on the viseme benchmark's clips:
#: espeak's ``+f2``/``+f3``/``+f4`` against ``en-us`` 3.0-4.1, so most went to pocketsphinx;
#: against ``en-us+f3`` they all warp), so a higher voice gets a female reference. Flite's female
#: voice (``slt``, made from recordings) costs over the limit against either and still goes to
#: pocketsphinx.
HIGH_PITCH_HZ = 150.0
VOICES = ("en-us", "en-us+f3")  # (lower, higher)


def reference_voice(pcm: np.ndarray, sample_rate: int) -> str | None:
    """The espeak-ng voice to warp onto the clip: :data:`VOICES` ``[1]`` when its median pitch
    is above :data:`HIGH_PITCH_HZ`, else ``[0]``; None when no pitch is found.

    >>> t = np.arange(16000) / 16000
    >>> reference_voice((np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16), 16000)
    'en-us+f3'
    """
    f0 = median_pitch(pcm, sample_rate)
    return None if f0 is None else VOICES[1] if f0 > HIGH_PITCH_HZ else VOICES[0]


def median_pitch(pcm: np.ndarray, sample_rate: int, lo: float = 60.0, hi: float = 400.0,
                 frames: int = 24) -> float | None:
    """Median fundamental frequency (Hz) of the clip's loud, periodic 40 ms frames, by
    autocorrelation (a peak of at least half the frame's energy between ``lo`` and ``hi``), on
    at most ``frames`` of them spread over the clip; None when no frame is periodic. About
    0.3 ms of CPU per second of audio (measured on the viseme benchmark's clips)."""
    n, hop = int(0.04 * sample_rate), int(0.02 * sample_rate)
    x = np.asarray(pcm, np.float32)
    if len(x) < n:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    blocks = (x[: len(x) // hop * hop].reshape(-1, hop) ** 2).sum(axis=1)
    energy = (blocks[:-1] + blocks[1:])[: len(windows)]  # a window is two blocks
    if not len(energy) or not energy.max():
        return None
    loud = np.flatnonzero(energy > 0.1 * energy.max())
    loud = loud[np.linspace(0, len(loud) - 1, min(frames, len(loud))).astype(int)]
    w = windows[loud] - windows[loud].mean(axis=1, keepdims=True)
    a, b = int(sample_rate / hi), min(n - 1, int(sample_rate / lo))
    spec = np.fft.rfft(w, 1 << int(np.ceil(np.log2(n + b))))  # no wrap-around up to lag b
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2)[:, :n]
    ac = ac / (ac[:, :1] + 1e-9)
    lag = a + np.argmax(ac[:, a:b], axis=1)
    periodic = ac[np.arange(len(ac)), lag] > 0.5
    return float(np.median(sample_rate / lag[periodic])) if periodic.any() else None


def reference_spans(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                    speech_seconds: float | None = None, expected_seconds: float | None = None,
                    voice: str = "en-us", *, mask: np.ndarray | None = None,
                    partial: tuple[bool, bool] = (False, False),
                    reference: Reference | None = None,
                    ) -> tuple[list[tuple[float, float]], list[list[tuple[str, float, float]]],
                               float | None]:
    """Times of each token and of its phones, carried over from espeak-ng speech of ``text``.

    Args:
        pcm, sample_rate: the clip.
        text, tokens: its text and :func:`aligner.speech.text.tokenize` tokens.
        speech_seconds: seconds of speech in the clip (speech frames), if known.
        expected_seconds: the duration model's estimate for the text, if known; with
            ``speech_seconds`` it sets the reference's speaking rate without a trial synthesis.
        voice: the espeak-ng voice of the reference.
        mask: the clip's speech frames (:func:`aligner.speech.signal.speech_mask`), if known.
        partial: whether the first and the last token are pieces of words that go on in the
            neighbouring stream chunks ("Hel" + "lo"): the reference says the piece as a word of
            its own, unlike the audio, so the cost leaves their frames out.
        reference: the reference speech of ``text``, if already spoken (:func:`speak`, which
            is called with ``speech_seconds``, ``expected_seconds`` and ``voice`` otherwise).

    Returns:
        ``(spans, phones, cost, word_costs)``: (start, end) seconds per token; per token its phones as
        ``(ARPAbet phone, start, end)`` from espeak's own phone events (empty when espeak spoke
        the token under another token's word event); the mean feature distance along the warp
        (how alike the clip and the reference sound: under 2.5 for espeak-ng voices, over 3.5
        for Flite's voices made from recordings, measured on the alignment benchmark), over the
        whole words only (None when there are none: ``partial`` covers every token); and each
        word's own mean distance (None for a word with no clip frame).

    Raises:
        MissingBackendError: espeak-ng (extra ``speech``) is not installed.
    """
    from ..signal import frame_db, speech_mask

    t_mask = speech_mask(frame_db(pcm, sample_rate)) if mask is None else mask
    if reference is None:
        t_speech = speech_seconds if speech_seconds is not None else float(t_mask.sum()) / _FPS
        reference = speak(text, t_speech, expected_seconds, voice)
    ref, r_mask = reference.speech, reference.mask
    top = min(7600.0, 0.475 * min(sample_rate, ref.sample_rate))
    a, b = mfcc(pcm, sample_rate, top), mfcc(ref.samples, ref.sample_rate, top)
    # Search near the line mapping the clip's speech onto the reference's speech.
    t_span, r_span = _speech_span(t_mask), _speech_span(r_mask)
    n, m = len(a), len(b)
    centre = None
    if t_span and r_span:
        centre = np.interp(np.arange(n), [0, t_span[0], t_span[1], n - 1],
                           [0, r_span[0], r_span[1], m - 1])
    if n > _COARSE_ABOVE:  # long clip: find the way at 50 ms first, then refine in a narrow band
        pool = 5
        ca, cb = _pool(a, pool), _pool(b, pool)
        ci, cj = dtw_path(ca, cb, None if centre is None else centre[::pool][: len(ca)] / pool)
        coarse = np.zeros(len(ca))
        np.maximum.at(coarse, ci, cj)
        centre = np.interp(np.arange(n), np.arange(len(ca)) * pool + pool / 2,
                           coarse * pool + pool / 2)
        pi, pj = dtw_path(a, b, centre, band=40)
    else:
        pi, pj = dtw_path(a, b, centre)
    distance = np.linalg.norm(a[pi] - b[pj], axis=1)
    # For each reference frame, the first and last clip frame warped onto it.
    first = np.full(len(b), len(a))
    last = np.full(len(b), -1)
    np.minimum.at(first, pj, pi)
    np.maximum.at(last, pj, pi)
    ref_frames = len(b)

    def to_target(t: float, edge: str) -> float:
        # Interpolate between frames: reference times are exact, the warp is per frame.
        x = min(max(t * _FPS, 0.0), ref_frames - 1.0)
        f = int(x)
        g = min(f + 1, ref_frames - 1)
        table = first if edge == "start" else last + 1
        return float(table[f] + (x - f) * (table[g] - table[f])) / _FPS

    # Reference words are whitespace tokens of the same text: match them by position.
    spoken = {w.char_start: k for k, w in enumerate(ref.words)}
    ref_phones: dict[int, list] = {}
    for ph in ref.phones:
        if ph.word_index >= 0:
            ref_phones.setdefault(ph.word_index, []).append(ph)
    owner: list[int | None] = [spoken.get(tok.token_start) for tok in tokens]
    spans: list[tuple[float, float]] = []
    phones: list[list[tuple[str, float, float]]] = []
    k = 0
    while k < len(tokens):
        wi = owner[k]
        if wi is None:  # before any word espeak spoke: nothing to carry over
            t = spans[-1][1] if spans else 0.0
            spans.append((t, t))
            phones.append([])
            k += 1
            continue
        # espeak may say several tokens under one word event ("on the"): share it out.
        group = [k]
        while k + len(group) < len(tokens) and owner[k + len(group)] is None:
            group.append(k + len(group))
        w = ref.words[wi]
        start = to_target(w.start, "start")
        end = max(start, to_target(max(w.start, w.end - 1 / _FPS), "end"))
        weights = np.array([max(1, tokens[g].char_end - tokens[g].char_start) for g in group],
                           dtype=float)
        cuts = start + np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * (end - start)
        if len(group) == 1:
            marks = [(espeak_to_arpabet(ph.phone), to_target(ph.start, "start"))
                     for ph in ref_phones.get(wi, [])]
            phones.append(_phone_spans([(p, t) for p, t in marks if p], start, end))
            spans.append((start, end))
        else:
            for n_g in range(len(group)):
                spans.append((float(cuts[n_g]), float(cuts[n_g + 1])))
                phones.append([])
        k += len(group)
    return spans, phones, _whole_word_cost(distance, pi, spans, partial), _word_costs(
        distance, pi, spans)


def _word_costs(distance: np.ndarray, pi: np.ndarray, spans: list[tuple[float, float]],
                ) -> list[float | None]:
    """Each word's mean warp distance over its clip frames (None for a word with none)."""
    frame = np.asarray(pi)
    out: list[float | None] = []
    for s, e in spans:
        keep = (frame >= int(s * _FPS)) & (frame < max(int(round(e * _FPS)), int(s * _FPS) + 1))
        out.append(float(distance[keep].mean()) if keep.any() else None)
    return out


def _whole_word_cost(distance: np.ndarray, pi: np.ndarray, spans: list[tuple[float, float]],
                     partial: tuple[bool, bool]) -> float | None:
    """The mean warp distance over the clip frames outside the ``partial`` edge words."""
    if len(spans) <= int(partial[0]) + int(partial[1]):  # no whole word: nothing to judge by
        return None
    lo = int(round(spans[0][1] * _FPS)) if partial[0] else 0
    hi = int(round(spans[-1][0] * _FPS)) if partial[1] else int(pi[-1]) + 1
    keep = (pi >= lo) & (pi < hi)
    return float(distance[keep].mean()) if keep.any() else None


def _phone_spans(marks: list[tuple[tuple[str, ...], float]], start: float, end: float,
                 ) -> list[tuple[str, float, float]]:
    """Phones with times inside [start, end] from (ARPAbet phones, onset) marks in order.

    The first phone starts at its own onset, which may come after the word's start: espeak-ng
    starts a word at the silent closure of a stop it begins with ("total") and the stop's phone
    at the burst. :func:`aligner.speech.alignment.assemble` gives the closure to the stop (and keeps
    the first phone's start as the word's ``onset``); the viseme phones
    (:func:`aligner.visemes.phones.by_sound`) give it to the sound before, as espeak does.
    """
    out: list[tuple[str, float, float]] = []
    t_prev = start
    for i, (names, t0) in enumerate(marks):
        t0 = min(max(t0, t_prev), end)
        t1 = min(max(marks[i + 1][1], t0), end) if i + 1 < len(marks) else end
        step = (t1 - t0) / len(names)
        out += [(p, t0 + j * step, t0 + (j + 1) * step) for j, p in enumerate(names)]
        t_prev = t1
    return out


def prefix_cost(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                expected: list[float], mask: np.ndarray, fraction: float = 0.2,
                reference: Reference | None = None) -> float | None:
    """The warp cost (:func:`reference_spans`) of about the first ``fraction`` of the clip's words:
    a cheap first look at the voice (the warp of a third of the clip or so).

    The words are taken up to ``fraction`` of the expected speech (``expected``: seconds per
    token, from the duration model), plus one more as a sink; the clip is cut where its speech
    should have said them, with a margin: the sink word absorbs the audio of the margin, and its
    frames are left out of the cost. The reference is the start of the whole text's
    (``reference``, spoken by :func:`speak` if not given) up to the word after the sink, so that
    the warp of the whole clip can use the same speech.

    Returns:
        The cost, or None when the clip is too short for a prefix (fewer than two tokens after
        the sink) or has no speech.
    """
    cum = np.cumsum(expected)
    k = int(np.searchsorted(cum, fraction * cum[-1])) + 1  # judged tokens 0..k-1, k the sink
    speech = np.cumsum(mask)
    if k + 3 > len(tokens) or not speech[-1] or cum[-1] <= 0:
        return None
    target = cum[k - 1] / cum[-1] * speech[-1] * _PREFIX_MARGIN + _PREFIX_EXTRA
    cut = int(np.searchsorted(speech, target))
    if reference is None:
        reference = speak(text, speech[-1] / _FPS, float(cum[-1]))
    return reference_spans(pcm[: int(cut * sample_rate / _FPS)], sample_rate,
                           text[: tokens[k].token_end], tokens[: k + 1], mask=mask[:cut],
                           partial=(False, True),
                           reference=reference.head(tokens[k + 1].token_start))[2]
