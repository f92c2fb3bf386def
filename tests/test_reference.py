"""The reference aligner (aligner.speech.backends.reference): DTW paths, MFCCs, and the espeak-ng reference speech."""

from __future__ import annotations

import numpy as np
import pytest

from aligner.speech import synthesis
from aligner.speech.alignment import time_tokens
from aligner.speech.backends import reference
from aligner.speech.backends.reference import dtw_path, mfcc, speak
from aligner.speech.pronounce import token_phones
from aligner.speech.text import tokenize


def _textbook_path(a: np.ndarray, b: np.ndarray, band: int) -> tuple[list[int], list[int]]:
    """DTW written out cell by cell: the same band around the diagonal, ties diagonal, then
    (1, 0), then (0, 1)."""
    n, m = len(a), len(b)
    centre = np.arange(n) * ((m - 1) / max(1, n - 1))
    lo = np.clip(np.floor(centre).astype(int) - band, 0, m - 1)
    hi = np.maximum.accumulate(np.clip(np.ceil(centre).astype(int) + band + 1, 1, m))
    lo = np.minimum.accumulate(lo[::-1])[::-1]
    lo[0], hi[-1] = 0, m
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(lo[i], hi[i]):
            d = float(np.linalg.norm(a[i] - b[j]))
            if i == 0 and j == 0:
                acc[i, j] = d
                continue
            prev = [acc[i - 1, j - 1] if i and j else np.inf, acc[i - 1, j] if i else np.inf,
                    acc[i, j - 1] if j else np.inf]
            acc[i, j] = d + min(prev)
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i or j:
        if i == 0 or j == 0:
            i, j = max(0, i - 1), j - (i == 0)
        else:
            diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            i, j = (i - 1, j - 1) if diag <= min(up, left) else (i - 1, j) if up <= left else (
                i, j - 1)
        path.append((i, j))
    pi, pj = zip(*path[::-1], strict=True)
    return list(pi), list(pj)


@pytest.mark.parametrize("seed", range(4))
def test_dtw_path_is_the_textbook_path_ties_included(seed):
    # Small integer features: every distance and every sum is exact, so both sides compare the
    # very same costs and ties are everywhere (rows and columns of equal frames).
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n, m = (int(x) for x in rng.integers(2, 40, 2))
        band = int(rng.integers(max(3, abs(n - m)), 45))  # the bands of successive rows overlap
        a = rng.integers(0, 3, (n, 1)).astype(float)
        b = rng.integers(0, 3, (m, 1)).astype(float)
        got = [p.tolist() for p in dtw_path(a, b, band=band)]
        assert got == list(_textbook_path(a, b, band)), (n, m, band)


def test_dtw_path_on_real_valued_features_matches_the_textbook_path():
    rng = np.random.default_rng(7)
    for _ in range(10):
        n, m = (int(x) for x in rng.integers(20, 60, 2))
        a, b = rng.normal(size=(n, 4)), rng.normal(size=(m, 4))
        got = [p.tolist() for p in dtw_path(a, b, band=10 + abs(n - m))]
        assert got == list(_textbook_path(a, b, 10 + abs(n - m)))


def test_dtw_ties_go_diagonal_then_up_then_left():
    flat = np.zeros((3, 1))
    assert [p.tolist() for p in dtw_path(flat, np.zeros((3, 1)))] == [[0, 1, 2], [0, 1, 2]]
    # From (2, 1) all three ways cost 0: diagonal; then j == 0 leaves only (1, 0) -> (0, 0).
    assert [p.tolist() for p in dtw_path(flat, np.zeros((2, 1)))] == [[0, 1, 2], [0, 0, 1]]


def test_dtw_path_reaches_every_row_when_the_centre_line_jumps():
    # The centre jumps by more than two bands between rows 0 and 1: the bands are joined, so
    # the path is a real one (each step one of the three moves, every cell it crosses searched).
    a, b = np.zeros((30, 2)), np.ones((400, 2))
    centre = np.concatenate([[0.0], np.linspace(300, 399, 29)])
    pi, pj = dtw_path(a, b, centre, band=20)
    steps = set(zip(np.diff(pi).tolist(), np.diff(pj).tolist(), strict=True))
    assert steps <= {(1, 0), (0, 1), (1, 1)}
    assert (pi[0], pj[0], pi[-1], pj[-1]) == (0, 0, 29, 399)


def test_mfcc_frames_do_not_depend_on_how_the_clip_is_blocked():
    # A clip of two blocks (1000 frames each, FFTs in smaller batches) has the same frames as a
    # shorter clip cut from it, up to the per-clip normalisation (an affine map per coefficient).
    rng = np.random.default_rng(3)
    pcm = (rng.normal(size=16000 * 12) * 3000).astype(np.int16)
    whole, head = mfcc(pcm, 16000), mfcc(pcm[: 16000 * 5], 16000)
    assert whole.shape == (1200, 24) and head.shape == (500, 24)

    def z(x):
        x = x[10:400, :12]
        return (x - x.mean(0)) / x.std(0)

    assert np.allclose(z(whole), z(head), atol=1e-3)


def test_the_head_of_a_reference_is_its_speech_before_a_word():
    text = "Hello there, how are you doing today?"
    ref = speak(text, 2.0)
    char = text.index("how")
    head = ref.head(char)
    assert [text[w.char_start:w.char_end] for w in head.speech.words] == ["Hello", "there,"]
    start = next(w.start for w in ref.speech.words if w.char_start == char)
    assert abs(head.speech.duration - start) < 1 / head.speech.sample_rate
    assert head.speech.phones and all(p.start < start for p in head.speech.phones)
    assert len(head.mask) == -(-len(head.speech.samples) // 220) and head.mask.any()
    assert ref.head(len(text)) is ref  # no word after the end: all of it


def test_the_start_of_a_long_clip_is_judged_on_the_speech_the_whole_warp_uses(monkeypatch):
    text = "Thank you for calling Acme Insurance, this is Jordan speaking. How can I help?"
    s = synthesis.synthesize(text, "en-us", 150)
    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    spoken, warped = [], []
    synthesize, warp = synthesis.synthesize, reference.reference_spans

    def watched_speech(words, *args, **kwargs):
        spoken.append(words)
        return synthesize(words, *args, **kwargs)

    def watched_warp(pcm, rate, text, tokens, *args, **kwargs):
        warped.append(len(tokens))
        return warp(pcm, rate, text, tokens, *args, **kwargs)

    monkeypatch.setattr(synthesis, "synthesize", watched_speech)
    monkeypatch.setattr(reference, "reference_spans", watched_warp)
    assert len(s.samples) / s.sample_rate >= 2.0  # long enough to be judged on its start first
    timing = time_tokens(s.samples, s.sample_rate, text, tokens, prons)
    assert timing.backend == "reference"
    assert len(warped) == 2 and warped[0] < len(tokens) / 2 and warped[1] == len(tokens)
    assert spoken and set(spoken) == {text} and len(spoken) <= 2  # at most one rate correction


@pytest.mark.parametrize("rate", [11025, 22050, 44100])
def test_mfcc_frame_k_lies_at_k_times_10_ms_at_every_rate(rate):
    # a click 30 s in: its frame is number 3000 whatever the rate (220 samples a frame at
    # 22050 Hz put it at frame 3007: 70 ms early by then, 0.48 s after 210 s)
    pcm = np.zeros(31 * rate, np.int16)
    at = 30 * rate
    pcm[at - rate // 400: at + rate // 400] = 20000
    delta = mfcc(pcm, rate)[:, 12:]  # the deltas peak around the click
    loud = np.flatnonzero(np.abs(delta).sum(1) > 0.5 * np.abs(delta).sum(1).max())
    assert loud.min() >= 2997 and loud.max() <= 3003, (loud.min(), loud.max())
    assert len(mfcc(pcm, rate)) == 3100
