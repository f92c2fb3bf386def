"""A small acoustic phone model for audio-only visemes (no text, no recogniser vocabulary).

MFCC frames (10 ms, 25 ms window, per-clip mean/variance normalised, +-60 ms context) go through
a fixed random ReLU layer and a ridge-regression read-out to ARPAbet phone scores (an
"extreme learning machine": trained in closed form, runs as two matrix products); a Viterbi
pass with a switching penalty and an English phone bigram (pocketsphinx's en-us phone language
model) turns the scores into phone segments. It runs hundreds of times faster than real time on
one core and needs nothing but numpy and pocketsphinx's model files.

The shipped weights (``aligner/data/viseme_model.npz``) were trained with :func:`main` on
espeak-ng speech of random dictionary words in voices that the benchmark does not use
(``python -m aligner.visemes.model``). It knows synthetic voices best; on other voices the
pocketsphinx phone loop (``estimate_phones(..., method="pocketsphinx")``) is the alternative.

>>> m = PhoneModel.load()                                # doctest: +SKIP
>>> [p.phone for p in m.phones(pcm, 16000)][:3]         # doctest: +SKIP
['sil', 'HH', 'AH']
"""

from __future__ import annotations

import functools
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import as_int16, check_rate, resample
from ..speech.phonotactics import phone_bigram
from ..timeline import Phone
from .sets import ARPABET

__all__ = ["CLASSES", "MODEL_PATH", "PhoneModel", "PhoneStream", "features", "train"]


CLASSES = ("sil", *ARPABET)
MODEL_PATH = Path(__file__).parents[1] / "data" / "viseme_model.npz"
RATE = 16000
_HOP, _WIN, _NFFT, _MELS, _CEPS = 160, 400, 512, 40, 13
_CONTEXT = (-6, -4, -2, -1, 0, 1, 2, 4, 6)
_QUIET_DB = -55.0


@functools.cache
def _filters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hamming window, mel filter bank (40 x 257) and DCT-II matrix (13 x 40)."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    pts = 700 * (10 ** (np.linspace(mel(100), mel(7600), _MELS + 2) / 2595) - 1)
    bins = np.floor((_NFFT + 1) * pts / RATE).astype(int)
    fb = np.zeros((_MELS, _NFFT // 2 + 1))
    for i in range(_MELS):
        a, b, c = bins[i], bins[i + 1], bins[i + 2]
        fb[i, a:b] = (np.arange(a, b) - a) / max(b - a, 1)
        fb[i, b:c] = (c - np.arange(b, c)) / max(c - b, 1)
    k = np.arange(_MELS)
    dct = np.cos(np.pi / _MELS * (k[None, :] + 0.5) * np.arange(_CEPS)[:, None])
    return np.hamming(_WIN), fb, dct


def features(pcm: np.ndarray) -> np.ndarray:
    """Per-frame features of 16 kHz int16 ``pcm``: (frames, 14 x 9) = MFCC + log energy, in
    context, normalised over the clip. One frame per 10 ms; frame i starts at sample 160 i.
    """
    x = np.asarray(pcm, np.float32) / 32768.0
    if len(x) < _WIN:
        x = np.pad(x, (0, _WIN - len(x)))
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    n = 1 + (len(x) - _WIN) // _HOP
    window, fb, dct = _filters()
    frames = np.lib.stride_tricks.sliding_window_view(x, _WIN)[::_HOP][:n] * window
    power = np.abs(np.fft.rfft(frames, _NFFT)) ** 2
    cep = np.log(power @ fb.T + 1e-10) @ dct.T
    m = np.hstack([cep, np.log(power.sum(1) + 1e-10)[:, None]])
    m = (m - m.mean(0)) / (m.std(0) + 1e-6)
    idx = np.clip(np.arange(n)[:, None] + np.array(_CONTEXT)[None, :], 0, n - 1)
    return m.astype(np.float32)[idx].reshape(n, -1)


class PhoneStream:
    """Phones from live audio without text (a Twilio stream, binary audio with alignment off).

    Sans-I/O: :meth:`feed` audio chunks as they come; every ``step`` seconds the model decodes
    the recent window (``context`` seconds before the undecided part) and returns the phones
    that ended more than ``lag`` seconds ago; :meth:`finish` returns the rest. Times are seconds
    from the first sample fed. Feed the phones to :class:`aligner.visemes.VisemeStream`; the
    cues trail the audio by about ``lag + step``, so delay playback that much to stay in sync.

    Args:
        sample_rate: rate of the chunks (8000-48000).
        model: the phone model (default the shipped one).
        context: seconds of already decided audio decoded again for context.
        lag: how long a phone waits before it is final.
        step: decode at most this often (seconds of new audio).
    """

    def __init__(self, sample_rate: int, model: PhoneModel | None = None, *,
                 context: float = 1.5, lag: float = 0.25, step: float = 0.25) -> None:
        self.sample_rate = check_rate(sample_rate)
        self.model = model or PhoneModel.load()
        self.context, self.lag, self.step = context, lag, step
        self._chunks: list[np.ndarray] = []
        self._start = 0  # sample index of the buffer's first sample
        self._fed = 0  # samples fed in all
        self._decoded = 0  # samples fed at the last decode
        self._done = 0.0  # phones before this time were returned

    def feed(self, pcm: np.ndarray) -> list[Phone]:
        """Add mono int16 samples; return the phones that became final."""
        pcm = as_int16(pcm)
        self._chunks.append(pcm)
        self._fed += len(pcm)
        if (self._fed - self._decoded) < self.step * self.sample_rate:
            return []
        return self._decode(self._fed / self.sample_rate - self.lag)

    def finish(self) -> list[Phone]:
        """The phones of the audio not returned yet."""
        return self._decode(float("inf")) if self._fed else []

    def _decode(self, until: float) -> list[Phone]:
        self._decoded = self._fed
        buf = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks = [buf]
        t0 = self._start / self.sample_rate
        out = []
        for p in self.model.phones(buf, self.sample_rate):
            s, e = p.start + t0, p.end + t0
            if e <= self._done + 1e-9 or e > until:
                continue
            out.append(Phone(p.phone, max(s, self._done), e))
        if out:
            self._done = out[-1].end
        # keep ``context`` seconds before the undecided audio
        keep_from = max(self._start, int((self._done - self.context) * self.sample_rate))
        self._chunks = [buf[keep_from - self._start:]]
        self._start = keep_from
        return out


def _frame_db(pcm: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each :func:`features` frame."""
    x = np.asarray(pcm, np.float32) / 32768.0
    if len(x) < _WIN:
        x = np.pad(x, (0, _WIN - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, _WIN)[::_HOP]
    return 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


@dataclass(frozen=True, slots=True, eq=False)
class PhoneModel:
    """Random ReLU layer ``w1, b1`` and linear read-out ``w2`` to :data:`CLASSES` scores."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    switch: float = 1.0  # Viterbi cost of changing phone, in score units

    @classmethod
    def load(cls, path: str | Path | None = None) -> PhoneModel:
        """The model at ``path`` (default the shipped one); cached per path."""
        return _load(str(path or MODEL_PATH))

    def save(self, path: str | Path) -> Path:
        """Write the weights (float16, compressed) atomically."""
        from ..timeline import write_atomic

        buf = io.BytesIO()
        np.savez_compressed(buf, w1=self.w1.astype(np.float16), b1=self.b1.astype(np.float16),
                            w2=self.w2.astype(np.float16), switch=np.float32(self.switch),
                            classes=np.array(CLASSES))
        out = write_atomic(path, buf.getvalue())
        out.chmod(0o644)  # package data: readable by all
        return out

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Phone scores (frames, len(CLASSES)) for :func:`features` output."""
        h = feats @ self.w1
        h += self.b1  # in place: the hidden layer is the largest array here
        return np.maximum(h, 0, out=h) @ self.w2

    def _scores(self, pcm: np.ndarray) -> np.ndarray:
        """Scores of 16 kHz ``pcm``; frames quieter than -55 dBFS are silence, whatever the
        clip-normalised features say (digital silence has no shape to normalise)."""
        s = self.scores(features(pcm))
        quiet = _frame_db(pcm)[: len(s)] < _QUIET_DB
        s[quiet] = 0.0
        s[quiet, 0] = 1.0
        return s

    def phones(self, pcm: np.ndarray, sample_rate: int) -> list[Phone]:
        """ARPAbet phones (``"sil"`` pauses) with times in seconds from the start of ``pcm``."""
        pcm = as_int16(pcm)
        if check_rate(sample_rate) != RATE:
            pcm = resample(pcm, sample_rate, RATE)
        if len(pcm) == 0:
            return []
        path = _viterbi(self._scores(pcm), _moves(self.switch))
        cuts = np.flatnonzero(np.diff(path)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(path)]])
        dur = len(pcm) / RATE
        return [Phone(CLASSES[path[a]], float(a / 100), float(min(b / 100, dur)))
                for a, b in zip(starts, ends, strict=True) if a / 100 < dur]


    def force_align(self, pcm: np.ndarray, sample_rate: int,
                    phones: list[Phone] | tuple[Phone, ...],
                    span: tuple[float, float] | None = None,
                    pauses: Collection[int] = (),
                    variants: Mapping[int, Sequence[tuple[str, ...]]] | None = None,
                    ) -> list[Phone]:
        """Re-time a known phone sequence (from a text aligner) on this model's frame scores.

        A left-to-right Viterbi pass: every phone keeps its place in the sequence and gets at
        least one frame; ``"sil"`` phones (and pauses at both ends) may vanish. A phone placed
        far (over 30 ms) outside its given span pays for it (:data:`_STAY`).

        Args:
            pcm: mono int16 samples.
            sample_rate: their rate.
            phones: the sequence, e.g. ``align(...).phones``; word indexes are kept.
            span: (start, end) seconds of ``pcm`` the phones lie in (default all of it); the
                audio around it is only context for the features.
            pauses: word indexes after which a pause may come (a comma, a full stop...) even
                if ``phones`` have none there.
            variants: pronunciations of some words, by word index: a word whose phones are one
                of them takes the one that fits its audio best (in the context of its
                neighbours' edge phones); the phones given win ties. A word given in part (cut
                by a stream chunk) keeps its phones.

        Returns:
            The same phones (pauses possibly dropped or added) with new times, in seconds from
            the start of ``pcm``.
        """
        pcm = as_int16(pcm)
        if check_rate(sample_rate) != RATE:
            pcm = resample(pcm, sample_rate, RATE)
        if len(pcm) == 0:
            return list(phones)
        scores = self._scores(pcm)
        if variants:
            phones = _pick_variants(scores, list(phones), variants)
        dur = len(pcm) / RATE
        seq = [Phone("sil", 0, 0)]
        for p in phones:
            if p.end <= p.start:
                continue
            if seq[-1].phone != "sil" != p.phone and seq[-1].word_index in pauses \
                    and p.word_index != seq[-1].word_index:
                # a pause may come here (punctuation)
                seq.append(Phone("sil", seq[-1].end, seq[-1].end))
            seq.append(p)
        if len(seq) < 2:
            return list(phones)
        seq[0] = Phone("sil", 0.0, seq[1].start)
        seq.append(Phone("sil", seq[-1].end, dur))
        cls = _classes([p.phone for p in seq])
        lo, hi = (0, len(scores)) if span is None else \
            (max(0, int(round(span[0] * 100))), min(len(scores), int(round(span[1] * 100))))
        n, m = hi - lo, len(seq)
        if m > n:
            return list(phones)
        path = _forced(scores[lo:hi, cls] - _STAY * _far(seq, lo, hi), cls == 0)
        out = []
        cuts = np.flatnonzero(np.diff(path)) + 1
        for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [n]]), strict=True):
            p = seq[path[a]]
            out.append(Phone(p.phone, float((a + lo) / 100), float(min((b + lo) / 100, dur)),
                             p.word_index))
        return out


_INDEX = {c: i for i, c in enumerate(CLASSES)}
#: The re-timing's pull towards the aligner's times: a phone pays this (in score units) per
#: 10 ms that it lies more than :data:`_NEAR` seconds outside the span the aligner gave it, so
#: the model moves a boundary far only where its scores are clear. Measured on the viseme
#: benchmark's 32 clips with one fixed set of alignments (OVR, with text): 92.4% without,
#: 92.8-92.9% for any of 0.02-0.05 and 20-50 ms.
_STAY = 0.03
_NEAR = 0.03


def _far(phones: Sequence[Phone], lo: int, hi: int) -> np.ndarray:
    """(frames lo..hi-1, phones): how many 10 ms steps each frame lies beyond :data:`_NEAR`
    outside each phone's span."""
    t = (np.arange(lo, hi) + 0.5) / 100
    start = np.array([p.start for p in phones]) - _NEAR
    end = np.array([p.end for p in phones]) + _NEAR
    return np.maximum(0.0, np.maximum(start[None, :] - t[:, None], t[:, None] - end[None, :])
                      ) * 100


def _classes(names: Iterable[str]) -> np.ndarray:
    """The :data:`CLASSES` index of each phone name (stress stripped; unknown ones are
    silence)."""
    return np.array([_INDEX[x] if x in _INDEX else _INDEX.get(x.rstrip("012").upper(), 0)
                     for x in names], np.int64)


def _pick_variants(scores: np.ndarray, phones: list[Phone],
                   variants: Mapping[int, Sequence[tuple[str, ...]]]) -> list[Phone]:
    """``phones`` with each word said as one of its ``variants`` in the one that scores best.

    A pronunciation is scored by the best path through its phones, between the last phone of
    the word before and the first of the word after, over their frames (the aligner's word
    edges); the phones given win ties. A new pronunciation spreads evenly over the word's span
    (the re-timing places it).
    """
    runs: list[list[Phone]] = []  # the phones of each word, in order; pauses apart
    for p in phones:
        if runs and p.word_index >= 0 and runs[-1][0].word_index == p.word_index:
            runs[-1].append(p)
        else:
            runs.append([p])
    words = [i for i, r in enumerate(runs) if r[0].word_index >= 0 and r[0].phone != "sil"]
    for n, i in enumerate(words):
        run = runs[i]
        given = tuple(p.phone for p in run)
        known = variants.get(run[0].word_index, ())
        if given not in known or len(known) < 2:
            continue
        candidates = [given, *(v for v in known if v and v != given)]
        before = runs[words[n - 1]][-1:] if n > 0 else []
        after = runs[words[n + 1]][:1] if n + 1 < len(words) else []
        window = scores[int(round((before or run)[0].start * 100)):
                        int(round((after or run)[-1].end * 100))]
        context = ([p.phone for p in before], [p.phone for p in after])
        # argmax keeps the first of equals: the phones given
        best = candidates[int(np.argmax(_fits(window, candidates, context)))]
        if best != given:
            a, b = run[0].start, run[-1].end
            step = (b - a) / len(best)
            runs[i] = [Phone(x, a + j * step, a + (j + 1) * step, run[0].word_index)
                       for j, x in enumerate(best)]
    return [p for r in runs for p in r]


def _fits(scores: np.ndarray, candidates: Sequence[tuple[str, ...]],
          context: tuple[list[str], list[str]]) -> np.ndarray:
    """Score of the best path through ``context[0] + v + context[1]`` over ``scores``, for each
    ``v`` of ``candidates`` (-inf if it has more phones than there are frames).

    One pass for all: the sequences lie side by side in one row of states, each after a
    state that no path can be in (its scores are -inf), where paths start.
    """
    seqs = [(*context[0], *v, *context[1]) for v in candidates]
    emit = scores[:, _classes([x for seq in seqs for x in ("sil", *seq)])]
    walls = np.cumsum([0] + [len(seq) + 1 for seq in seqs[:-1]])
    emit[:, walls] = -np.inf
    table = _table(emit, np.full(emit.shape[1], -np.inf), walls + 1)
    return table[-1, walls + [len(seq) + 2 for seq in seqs]]


def _table(emit: np.ndarray, skip: np.ndarray, starts: Sequence[int] | np.ndarray
           ) -> np.ndarray:
    """Dynamic-programming table of the best left-to-right paths through ``emit`` (frames x
    states).

    A path starts at frame 0 in one of the states ``starts``, and at each frame stays, moves
    to the next state, or to the one after over state ``s - 1``, paying ``skip[s]`` (0 where
    state ``s - 1`` may be skipped, also at the start, else -inf). Row ``t + 1`` holds the best
    score of a path in each state at frame ``t`` in columns 2 onwards; row 0 is where paths
    start (0 just before each start, else -inf), and columns 0-1 are states before the first
    (-inf but for a start), so that each move reads a slice of the row before: no copies, as
    the loop runs per frame.
    """
    n, m = emit.shape
    table = np.full((n + 1, m + 2), -np.inf)
    table[0, np.asarray(starts) + 1] = 0.0
    over, step, stay = table[:, :m], table[:, 1:-1], table[:, 2:]
    add, maximum = np.add, np.maximum
    for two, one, same, out, row in zip(over[:-1], step[:-1], stay[:-1], stay[1:], emit,
                                        strict=True):
        add(two, skip, out=out)  # from two states back
        maximum(out, one, out=out)
        maximum(out, same, out=out)
        add(out, row, out=out)
    return table


def _forced(emit: np.ndarray, optional: np.ndarray) -> np.ndarray:
    """Best left-to-right state path through ``emit`` (frames x states); optional states may be
    skipped. Returns the state of each frame."""
    n, m = emit.shape
    skip = np.where(np.concatenate([[False], optional[:-1]]), 0.0, -np.inf)  # into s over s-1
    table = _table(emit, skip, [0])
    # how many states the path advanced into each frame after the first, read from the table
    # (it keeps every frame, as large as ``emit``) after the loop: ties stay, then step rather
    # than skip
    prior = table[1:-1]
    over = prior[:, :m] + skip
    step = prior[:, 1:-1]
    ahead = np.maximum(step, over) > prior[:, 2:]
    back = ahead.astype(np.uint8)
    back += ahead & (over > step)
    last = table[-1, 2:]
    s = m - 1 if not optional[-1] or last[m - 1] >= last[m - 2] else m - 2
    moves = back.tobytes()  # indexing bytes gives ints, much faster than numpy scalars
    path = [0] * n
    for t in range(n - 1, 0, -1):
        path[t] = s
        s -= moves[(t - 1) * m + s]
    path[0] = s
    return np.array(path, np.int64)


@functools.cache
def _load(path: str) -> PhoneModel:
    with np.load(path) as z:
        if tuple(str(c) for c in z["classes"]) != CLASSES:
            raise ValueError(f"{path}: the model's phone classes differ from this version's")
        return PhoneModel(z["w1"].astype(np.float32), z["b1"].astype(np.float32),
                          z["w2"].astype(np.float32), float(z["switch"]))


#: Weight of the phone bigram (:func:`aligner.speech.phonotactics.phone_bigram`) against the model's scores when phones
#: are decoded without text. Chosen on espeak-ng speech of the alignment benchmark's sentences in
#: training voices (none of the viseme benchmark's voices or sentences), OVR frame agreement:
#: 85.2% without the bigram, 85.4-86.0% for 0.01-0.16, 84.8% at 0.32.
_LM_WEIGHT = 0.12


def _moves(switch: float) -> np.ndarray:
    """(classes x classes) score of a step from one class (row) to another: 0 to stay, else
    ``-switch`` plus the weighted phone bigram."""
    moves = _LM_WEIGHT * phone_bigram(CLASSES) - switch
    np.fill_diagonal(moves, 0.0)
    return moves


def _viterbi(scores: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """Best class path: sum of ``scores`` plus ``moves[a, b]`` per step from class a to b."""
    n, k = scores.shape
    best = scores[0].astype(np.float64)  # best score of a path in each class at this frame
    back = np.empty((n, k), np.int8)  # the class of the frame before on that path (k < 128)
    cols = np.arange(k)
    for t in range(1, n):
        ways = best[:, None] + moves
        came = ways.argmax(0)
        back[t] = came
        best = ways[came, cols] + scores[t]
    path = np.empty(n, np.int32)
    c = path[-1] = int(best.argmax())
    for t in range(n - 1, 0, -1):
        c = path[t - 1] = back[t, c]
    return path


def train(clips, hidden: int = 2000, ridge: float = 1.0, seed: int = 0,
          switch: float = 0.1) -> PhoneModel:
    """Fit a model on ``clips``: iterable of (16 kHz int16 pcm, ARPAbet phones with times).

    Args:
        clips: speech with its true phone times (``"sil"`` or gaps for pauses).
        hidden: width of the random layer.
        ridge: L2 regularisation of the read-out.
        seed: seed of the random layer.
        switch: Viterbi switching penalty stored with the model.

    Returns:
        The trained :class:`PhoneModel`.
    """
    index = {c: i for i, c in enumerate(CLASSES)}
    rng = np.random.default_rng(seed)
    w1 = b1 = hth = hty = None
    for f, y in _batches(clips, index):
        if w1 is None:
            w1 = rng.normal(0, 1 / np.sqrt(f.shape[1]), (f.shape[1], hidden)).astype(np.float32)
            b1 = rng.normal(0, 1, hidden).astype(np.float32)
            hth = np.zeros((hidden, hidden), np.float32)
            hty = np.zeros((hidden, len(CLASSES)))
        h = np.maximum(f @ w1 + b1, 0)
        hth += h.T @ h  # normal equations, accumulated batch by batch (memory stays small)
        np.add.at(hty.T, y, h)
    if w1 is None:
        raise ValueError("no training clips")
    w2 = np.linalg.solve(hth.astype(np.float64) + ridge * np.eye(hidden), hty)
    return PhoneModel(w1, b1, w2.astype(np.float32), switch)


def _batches(clips, index: dict[str, int], frames: int = 20000):
    """(features, class per frame) of ``clips``, about ``frames`` frames at a time."""
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for pcm, phones in clips:
        f = features(pcm)
        y = np.zeros(len(f), np.int64)
        for p in phones:
            y[int(round(p.start * 100)):int(round(p.end * 100))] = index.get(p.phone, 0)
        feats.append(f)
        labels.append(y)
        if sum(len(x) for x in feats) >= frames:
            yield np.concatenate(feats), np.concatenate(labels)
            feats, labels = [], []
    if feats:
        yield np.concatenate(feats), np.concatenate(labels)


# voices the model learns from; the benchmark speaks with others (en-us and its variants
# +f2 +f3 +f4 +m1 +m3 +m6 +m8), and its sentences are not random dictionary words
_TRAIN_VOICES = ("en-us+f1", "en-us+m2", "en-us+f5", "en-us+m4", "en", "en-us+m7", "en-us+m5",
                 "en-us+klatt", "en-us+Alex", "en-us+Andy", "en-us+Annie", "en-us+adam",
                 "en-us+anika", "en-us+aunty", "en-us+belinda", "en-us+benjamin", "en-us+boris",
                 "en-us+caleb", "en-us+david", "en-us+ed", "en-us+edward", "en-us+iven",
                 "en-us+john", "en-us+linda", "en-us+max", "en-us+norbert")


def main(argv: list[str] | None = None) -> int:
    """Train the shipped model from espeak-ng speech (needs the ``speech`` extra).

    Random dictionary words (5-12 per utterance) in 26 voices, 130-220 words per minute, random
    pitch; 10-15 minutes on a shared 2-core machine, most of it fitting.
    """
    import argparse
    import random
    import sys

    from pocketsphinx import get_model_path

    from ..speech.synthesis import synthesize
    from .sets import espeak_phones

    ap = argparse.ArgumentParser(prog="python -m aligner.visemes.model", description=main.__doc__)
    ap.add_argument("--out", default=str(MODEL_PATH), help="where to write the weights")
    ap.add_argument("--utterances", type=int, default=2600, help="training utterances (2600)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the training text (7)")
    ap.add_argument("--hidden", type=int, default=2000, help="random-layer width (2000)")
    ap.add_argument("--switch", type=float, default=0.1, help="Viterbi switching penalty (0.1)")
    args = ap.parse_args(argv)
    dict_path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = [line.split(" ", 1)[0] for line in dict_path.read_text().splitlines()
             if line and line.split(" ", 1)[0].isalpha()]
    rng = random.Random(args.seed)
    clips = []
    for i in range(args.utterances):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 12)))
        text += rng.choice((".", ",", "?", "!"))
        syn = synthesize(text, voice=_TRAIN_VOICES[i % len(_TRAIN_VOICES)],
                         rate=rng.randint(130, 220), pitch=rng.randint(25, 75))
        clips.append((resample(syn.samples, syn.sample_rate, RATE), espeak_phones(syn.phones)))
        if i % 200 == 0:
            print(f"synthesised {i}/{args.utterances}", file=sys.stderr)
    print("fitting ...", file=sys.stderr)
    model = train(clips, hidden=args.hidden, switch=args.switch)
    print(f"wrote {model.save(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
