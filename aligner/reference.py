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
from .pronounce import espeak_to_arpabet
from .text import Token

__all__ = ["dtw_path", "mfcc", "prefix_cost", "reference_spans"]

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
    fb, dct = _mel_dct(sample_rate, nfft, min(top, 0.475 * sample_rate))
    window = np.hamming(win).astype(np.float32)
    logmel = np.empty((n, fb.shape[1]), np.float32)
    for b0 in range(0, n, 1000):  # in blocks: bounded memory for long clips
        b1 = min(n, b0 + 1000)
        idx = np.arange(b0, b1)[:, None] * hop + np.arange(win)[None, :]
        power = np.abs(np.fft.rfft(x[idx] * window, nfft)) ** 2
        logmel[b0:b1] = np.log(power @ fb + 1e-8)
    ceps = (logmel @ dct)[:, 1:]
    ceps -= ceps.mean(axis=0)
    ceps /= ceps.std(axis=0) + 1e-6
    delta = np.gradient(ceps, axis=0) if n > 1 else np.zeros_like(ceps)
    return np.hstack([ceps, delta]).astype(np.float32)


def dtw_path(a: np.ndarray, b: np.ndarray, centre: np.ndarray | None = None,
             band: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The minimal-cost monotonic path between feature sequences ``a`` (n, d) and ``b`` (m, d).

    Euclidean frame distances; steps (1, 0), (0, 1), (1, 1). Only cells within ``band`` frames of
    ``centre[i]`` (the expected ``j`` for row ``i``; default the diagonal) are searched, so long
    clips need memory n x band, not n x m. Each row is solved in vectorised form: the in-row
    recursion ``row[j] = min(a[j], row[j-1] + d[j])`` is a cumulative minimum.

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
    lo = np.minimum.accumulate(lo[::-1])[::-1]  # non-decreasing, lo[0] = 0, hi[-1] = m
    hi = np.maximum.accumulate(hi)
    lo[0], hi[-1] = 0, m
    width = int((hi - lo).max())
    acc = np.full((n, width), np.inf)
    bb = (b * b).sum(1)
    aa = (a * a).sum(1)

    full = None
    if n * m <= 2_000_000:  # small: one matrix product beats a product per row
        full = np.sqrt(np.maximum(aa[:, None] + bb[None, :] - 2 * a @ b.T, 0.0))

    def dist(i: int) -> np.ndarray:
        seg = slice(lo[i], hi[i])
        if full is not None:
            return full[i, seg]
        return np.sqrt(np.maximum(aa[i] + bb[seg] - 2 * b[seg] @ a[i], 0.0))

    d = dist(0)
    acc[0, : len(d)] = np.cumsum(d)
    for i in range(1, n):
        d = dist(i)
        k = len(d)
        # prev[j] for j = lo[i]-1 .. hi[i]-1 (inf outside the previous row's band)
        p = np.full(k + 1, np.inf)
        j0, j1 = lo[i] - 1, hi[i]
        q0, q1 = max(j0, lo[i - 1]), min(j1, hi[i - 1])
        if q1 > q0:
            p[q0 - j0: q1 - j0] = acc[i - 1, q0 - lo[i - 1]: q1 - lo[i - 1]]
        step = d + np.minimum(p[1:], p[:-1])
        cd = np.cumsum(d)
        acc[i, :k] = cd + np.minimum.accumulate(step - cd)

    def at(i: int, j: int) -> float:
        return acc[i, j - lo[i]] if lo[i] <= j < hi[i] else np.inf

    i, j = n - 1, m - 1
    pi, pj = [i], [j]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, up, left = at(i - 1, j - 1), at(i - 1, j), at(i, j - 1)
            if diag <= up and diag <= left:
                i, j = i - 1, j - 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        pi.append(i)
        pj.append(j)
    return np.array(pi[::-1]), np.array(pj[::-1])


_PREFIX_MARGIN, _PREFIX_EXTRA = 1.1, 15  # prefix cut: x its expected speech frames, + frames
_COARSE_ABOVE = 3000  # frames (30 s): longer clips are warped coarse-to-fine


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    n = len(x) // k * k
    out = x[:n].reshape(-1, k, x.shape[1]).mean(1)
    return out if n == len(x) else np.vstack([out, x[n:].mean(0, keepdims=True)])


def _speech_span(mask: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    return (int(idx[0]), int(idx[-1])) if len(idx) >= 2 and idx[-1] > idx[0] else None


def reference_spans(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                    speech_seconds: float | None = None, expected_seconds: float | None = None,
                    voice: str = "en-us", *, mask: np.ndarray | None = None,
                    partial: tuple[bool, bool] = (False, False),
                    ) -> tuple[list[tuple[float, float]], list[list[tuple[str, float, float]]],
                               float | None]:
    """Times of each token and of its phones, carried over from espeak-ng speech of ``text``.

    Args:
        pcm, sample_rate: the clip.
        text, tokens: its text and :func:`aligner.text.tokenize` tokens.
        speech_seconds: seconds of speech in the clip (speech frames), if known.
        expected_seconds: the duration model's estimate for the text, if known; with
            ``speech_seconds`` it sets the reference's speaking rate without a trial synthesis.
        voice: the espeak-ng voice of the reference.
        mask: the clip's speech frames (:func:`aligner.fallback.speech_mask`), if known.
        partial: whether the first and the last token are pieces of words that go on in the
            neighbouring stream chunks ("Hel" + "lo"): the reference says the piece as a word of
            its own, unlike the audio, so the cost leaves their frames out.

    Returns:
        ``(spans, phones, cost)``: (start, end) seconds per token; per token its phones as
        ``(ARPAbet phone, start, end)`` from espeak's own phone events (empty when espeak spoke
        the token under another token's word event); the mean feature distance along the warp
        (how alike the clip and the reference sound: under 2.5 for espeak-ng voices, over 3.5
        for Flite's voices made from recordings, measured on the alignment benchmark), over the
        whole words only (None when there are none: ``partial`` covers every token).

    Raises:
        MissingBackendError: espeak-ng (extra ``speech``) is not installed.
    """
    try:
        import espeakng_loader  # noqa: F401
    except ImportError as exc:
        raise MissingBackendError("espeak-ng", "speech") from exc
    from .fallback import frame_db, speech_mask
    from .speech import synthesize

    t_mask = speech_mask(frame_db(pcm, sample_rate)) if mask is None else mask
    t_speech = speech_seconds if speech_seconds is not None else float(t_mask.sum()) / _FPS
    rate = _BASE_RATE
    if expected_seconds and t_speech > 0:
        rate = int(np.clip(_BASE_RATE * expected_seconds / t_speech, 80, 450))
    ref = synthesize(text, voice=voice, rate=rate)
    r_mask = speech_mask(frame_db(ref.samples, ref.sample_rate))
    r_speech = float(r_mask.sum()) / _FPS
    if t_speech > 0 and r_speech > 0 and abs(r_speech / t_speech - 1) > 0.15:
        rate = int(np.clip(rate * r_speech / t_speech, 80, 450))
        ref = synthesize(text, voice=voice, rate=rate)
        r_mask = speech_mask(frame_db(ref.samples, ref.sample_rate))
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
    return spans, phones, _whole_word_cost(distance, pi, spans, partial)


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
    """Phones with times inside [start, end] from (ARPAbet phones, onset) marks in order."""
    out: list[tuple[str, float, float]] = []
    t_prev = start
    for i, (names, t0) in enumerate(marks):
        t0 = min(max(t0, t_prev), end)
        t1 = min(max(marks[i + 1][1], t0), end) if i + 1 < len(marks) else end
        step = (t1 - t0) / len(names)
        out += [(p, t0 + j * step, t0 + (j + 1) * step) for j, p in enumerate(names)]
        t_prev = t1
    if out:  # the word may start before its first phone event (a stop's closure)
        out[0] = (out[0][0], start, out[0][2])
    return out


def prefix_cost(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                expected: list[float], mask: np.ndarray, fraction: float = 0.2,
                ) -> float | None:
    """The warp cost (:func:`reference_spans`) of about the first ``fraction`` of the clip's words:
    a cheap first look at the voice (the warp of a third of the clip or so).

    The words are taken up to ``fraction`` of the expected speech (``expected``: seconds per
    token, from the duration model), plus one more as a sink; the clip is cut where its speech
    should have said them, with a margin: the sink word absorbs the audio of the margin, and its
    frames are left out of the cost.

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
    return reference_spans(pcm[: int(cut * sample_rate / _FPS)], sample_rate,
                           text[: tokens[k].token_end], tokens[: k + 1],
                           speech_seconds=speech[-1] / _FPS * cum[k] / cum[-1],
                           expected_seconds=float(cum[k]), mask=mask[:cut],
                           partial=(False, True))[2]
