"""Forced alignment on pocketsphinx's acoustic model: our own search, boundaries from posteriors.

The text becomes a left-to-right graph of triphone HMMs (:mod:`aligner.speech.acoustic_model`):
each spoken word with every dictionary pronunciation and every other reading of its token
(digits one by one, a name spelled: :func:`aligner.speech.backends.sphinx.other_readings`), an
optional pause (silence or noise, repeatable) between words and around the clip. A word's first
phone has a version for each phone it can follow: the last phone of each pronunciation of the
word before it, and silence after a pause. Its last phone is in the context of the next word's
first either way: the model's phones before silence learned the lengthening and the tail of an
utterance's end, and stretch over a pause (measured: silence on that side too took TIMIT's
sentences joined into one recording from 17.4 to 18.3 ms). The clip's
frames (:mod:`aligner.speech.features`, 10 ms, of the clip dithered by one bit:
:func:`aligner.speech.signal.dither`) are scored against the graph's senones, and the
forward-backward algorithm gives each frame's posterior over the graph. A boundary is placed at
its expected position, ``sum_t P(frame t lies before it)``, not at one best path's frame edge:
the mean of the boundary's posterior, which scores better than the Viterbi path on human read
speech (TIMIT) and on neural voices. Times are frame centres' boundaries: a boundary between
frames ``t - 1`` and ``t`` lies at ``t * 10 ms + (window - hop) / 2``.

What the search gives besides times:

- **Confidence** per word (:func:`_confidence`): how much better the word's own phones explain
  its frames than the best context-independent phone would, as a goodness of pronunciation,
  mapped to 0..1. Speech that says the text scores high, noise and other words low.
- **Adaptation statistics**: the frames' posteriors over the model's Gaussians, which a
  :class:`aligner.speech.adaptation.VoiceProfile` accumulates to move the model's means towards
  a voice.
- The clip's log likelihood per frame, with and without a voice's transform: the guard that
  keeps adaptation from ever making a voice worse.

The edges of an utterance: breaths, lip smacks and room noise before the first word and after
the last look to the model like its first or last phone, and so do those around a pause of
:data:`PAUSE_EDGE` or more inside the clip (a recording of several sentences: on each TIMIT
speaker's ten sentences joined into one recording this takes the mean word boundary error from
18.6 to 17.4 ms, where each sentence alone scores 17.1). :func:`_edges` moves each such start
(end) to where the energy of that phone rises within :data:`EDGE_DB` dB of the phone's own
level (falls below it: the last frame above it anywhere in the phone, since the model may
stretch a final phone over a fading tail to twice its length), on a 2.5 ms grid.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from ...audio import resample
from ..acoustic_model import AcousticModel, MeanTransform, Mixtures, model
from ..dictionary import dictionary_variants
from ..features import HOP, RATE, WINDOW, cepstra, features
from ..pronounce import connected_speech
from ..signal import dither
from ..text import Token, spoken

if TYPE_CHECKING:
    from ..adaptation import VoiceProfile

__all__ = ["EDGE_DB", "PAUSE_EDGE", "PHONE_LM_WEIGHT", "PHONE_PENALTY", "Result", "align_tokens",
           "fitting_voice", "heard_words", "recognize_phones", "transform_fits"]

log = logging.getLogger(__name__)

#: The first phone of an utterance starts where its energy comes within this many dB of the
#: phone's own level (the median of its later half), the last one ends where it falls below it.
EDGE_DB = 15.0
#: A pause of at least this many seconds between two words is an utterance edge too: where a
#: speaker stops for this long they may breathe (studies of pausing count silent pauses from
#: 200-250 ms), and the search's pause is the shorter one, the breath given to the words.
PAUSE_EDGE = 0.2
_PAUSE = np.log(0.2)  # entering an optional pause between words
_PAUSE_AGAIN = np.log(0.5)  # another pause model after a pause
_OFFSET = (WINDOW - HOP) / 2 / RATE  # a boundary between two frames, in seconds after the later
_LONG = 30.0  # seconds: longer clips are cut at pauses and aligned piece by piece
_PIECE = 15.0  # seconds a piece aims at
_KEPT = 1000  # frames: a longer piece's adaptation statistics are gathered block by block
_HELD = 1e-5  # ... from the senones holding at least this posterior in a frame of the block
_GOP_SCALE = 0.5  # nats per frame of pronunciation score that change the odds of a fit e-fold
_GOP_CENTRE = -2.0  # nats per frame (against a free phone loop) at which confidence is 0.5


@dataclass
class Result:
    """What :func:`align_tokens` found.

    ``spans``: (start, end) seconds per token; ``phones``: per token, the ARPAbet phones of the
    pronunciation that fits best with their (start, end); ``confidence``: per token, 0..1;
    ``loglik``: the clip's log likelihood per frame; ``stats``: the adaptation statistics
    (:meth:`aligner.speech.adaptation.VoiceProfile.learn` takes them); ``adapted``: whether the
    voice's transform was used (it is only when it explains the clip better than the model).
    """

    spans: list[tuple[float, float]]
    phones: list[list[tuple[str, float, float]]]
    confidence: list[float]
    loglik: float
    stats: dict | None = None
    adapted: bool = False
    frames: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class _Graph:
    """States of the search: senone, owning segment and pronunciation, and where in the
    pronunciation the state lies (0..1: phone ``j`` of ``n``, state ``q`` at
    ``(j + (q + 1) / 4) / n``)."""

    senone: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)
    variant: list[int] = field(default_factory=list)
    rank: list[float] = field(default_factory=list)
    preds: list[list[tuple[int, float]]] = field(default_factory=list)
    start: dict[int, float] = field(default_factory=dict)
    final: dict[int, float] = field(default_factory=dict)

    def add(self, senone: int, segment: int, variant: int, rank: float) -> int:
        self.senone.append(senone)
        self.segment.append(segment)
        self.variant.append(variant)
        self.rank.append(rank)
        self.preds.append([])
        return len(self.senone) - 1


@dataclass
class _Segment:
    """A word slot (token index, pronunciations) or a pause (token index -1)."""

    token: int
    pronunciations: list[tuple[str, ...]]
    entries: list[tuple[int, set[str] | None]] = field(default_factory=list)  # (state, follows)
    exits: list[tuple[int, float, str]] = field(default_factory=list)  # (state, log exit, phone)


def _slots(tok: Token, pron: tuple[tuple[str, ...], ...]) -> list[list[tuple[str, ...]]]:
    """A token's word slots, each with its pronunciations: every spoken word with the
    dictionary's variants and ours, and the ways connected speech says them
    (:func:`aligner.speech.pronounce.connected_speech`), or, for a token read in other ways, one
    slot with every reading whole."""
    from .sphinx import other_readings

    ours = [tuple(p) for p in pron if p]
    others = [tuple(r.split()) for r in other_readings(tok.word)]
    if others:
        whole = tuple(p for ph in ours for p in ph)
        return [list(dict.fromkeys([whole, *others]))] if whole else [others]
    slots = []
    for w, ph in zip(spoken(tok.word), ours, strict=False):
        variants = list(dict.fromkeys([*(tuple(v) for v in dictionary_variants(w)), ph]))
        slots.append(list(dict.fromkeys([*variants, *(c for v in variants
                                                      for c in connected_speech(v))])))
    return slots or [[("AH",)]]


def _build(m: AcousticModel, tokens: tuple[Token, ...],
           prons: list[tuple[tuple[str, ...], ...]], context: bool = True,
           ) -> tuple[_Graph, list[_Segment]]:
    pause = [("SIL",), ("+NSN+",)]
    segments = [_Segment(-1, pause)]
    for k, (tok, pr) in enumerate(zip(tokens, prons, strict=True)):
        for prs in _slots(tok, pr):
            segments.append(_Segment(k, prs))
            segments.append(_Segment(-1, pause))
    words = [i for i, s in enumerate(segments) if s.token >= 0]
    g = _Graph()
    for si, seg in enumerate(segments):
        before, after = bisect_left(words, si), bisect_right(words, si)
        # what a word's first phone can follow: each last phone of the word before, a pause
        lefts = (sorted({p[-1] for p in segments[words[before - 1]].pronunciations} | {"SIL"})
                 if before and context else ["SIL"])
        right = (segments[words[after]].pronunciations[0][0] if after < len(words)
                 else "SIL")
        for v, pron in enumerate(seg.pronunciations):
            previous: list[tuple[int, float]] = []  # the previous phone's last states, exits
            n = len(pron)
            for j, ph in enumerate(pron):
                if seg.token < 0:
                    versions = [(m.states(ph, "SIL", "SIL", "s"), None)]
                else:
                    position = "s" if n == 1 else ("b" if j == 0 else ("e" if j == n - 1 else "i"))
                    chains: dict[tuple[int, ...], tuple[list, set[str]]] = {}
                    for lp in lefts if j == 0 else [pron[j - 1]]:
                        states = m.states(ph, lp, pron[j + 1] if j + 1 < n else right, position,
                                          context)
                        key = tuple(q[0] for q in states)  # one chain where the contexts agree
                        chains.setdefault(key, (states, set()))[1].add(lp)
                    versions = list(chains.values())
                current = []
                for states, follows in versions:
                    ids = []
                    for q, (senone, stay, _go) in enumerate(states):
                        s = g.add(senone, si, v, (j + (q + 1) / 4) / n)
                        g.preds[s].append((s, stay))
                        if q:
                            g.preds[s].append((ids[-1], states[q - 1][2]))
                        ids.append(s)
                    g.preds[ids[0]].extend(previous)
                    if j == 0:  # without context, a word's start follows anything
                        seg.entries.append((ids[0], follows if context else None))
                    current.append((ids[-1], states[-1][2]))
                previous = current
            last = "SIL" if seg.token < 0 else pron[-1]
            seg.exits.extend((s, x, last) for s, x in previous)
    for si, seg in enumerate(segments):
        targets = []
        if si + 1 < len(segments):
            nxt = segments[si + 1]
            targets.append((si + 1, _PAUSE if nxt.token < 0 else 0.0))
            if nxt.token < 0 and si + 2 < len(segments):
                targets.append((si + 2, 0.0))
        if seg.token < 0:
            targets.append((si, _PAUSE_AGAIN))
        for ti, lp in targets:
            for e, follows in segments[ti].entries:
                g.preds[e].extend((src, x + lp) for src, x, last in seg.exits
                                  if follows is None or last in follows)
    for si in (0, 1):
        g.start.update({e: 0.0 for e, _ in segments[si].entries})
    for si in (len(segments) - 1, len(segments) - 2):
        g.final.update({src: x for src, x, _ in segments[si].exits})
    return g, segments


@dataclass(frozen=True)
class _Edges:
    """The graph's transitions as arrays ordered by source (``src``, ``dst``, ``prob``),
    ``first[s]``: the index of state ``s``'s first one (one more entry: the count), and the
    reach of a step: ``ahead[s]`` the furthest state one transition leads to from ``s`` or an
    earlier state, ``behind[s]`` the nearest from ``s`` or a later one."""

    src: np.ndarray
    dst: np.ndarray
    prob: np.ndarray
    first: np.ndarray
    ahead: np.ndarray
    behind: np.ndarray


def _edges_of(g: _Graph) -> _Edges:
    """The graph's transitions as :class:`_Edges`."""
    src, dst, lp = [], [], []
    for s, ps in enumerate(g.preds):
        for a, p in ps:
            src.append(a)
            dst.append(s)
            lp.append(p)
    n = len(g.preds)
    order = np.argsort(np.asarray(src), kind="stable")
    src, dst = np.asarray(src)[order], np.asarray(dst)[order]
    ahead, behind = np.arange(n), np.arange(n)
    np.maximum.at(ahead, src, dst)
    np.minimum.at(behind, src, dst)
    return _Edges(src, dst, np.exp(np.asarray(lp))[order],
                  np.searchsorted(src, np.arange(n + 1)), np.maximum.accumulate(ahead),
                  np.minimum.accumulate(behind[::-1])[::-1])


@dataclass(frozen=True)
class _Posteriors:
    """State posteriors of a clip where they are above zero, as (frame, state, value) triples:
    a band of a few dozen states per frame, where the graph has hundreds or thousands."""

    frame: np.ndarray
    state: np.ndarray
    value: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, post: np.ndarray) -> _Posteriors:
        """The triples of a full (frames, states) matrix."""
        frame, state = np.nonzero(post)
        return cls(frame, state, post[frame, state], post.shape)

    def dense(self) -> np.ndarray:
        """The full (frames, states) matrix."""
        out = np.zeros(self.shape)
        out[self.frame, self.state] = self.value
        return out

    def by(self, group: np.ndarray, size: int) -> np.ndarray:
        """(frames, size): each frame's posterior summed over the states of each group
        (``group[state]``: a segment, a senone)."""
        n = self.shape[0]
        return np.bincount(self.frame * size + group[self.state], self.value,
                           n * size).reshape(n, size)

    def per_segment(self, segment: np.ndarray, size: int,
                    weight: np.ndarray | None = None) -> np.ndarray:
        """Each segment's posterior summed over the frames (``segment[state]``), each frame's
        weighted by ``weight[frame]`` if given."""
        value = self.value if weight is None else self.value * weight[self.frame]
        return np.bincount(segment[self.state], value, size)

    def per_state(self) -> np.ndarray:
        """Each state's posterior summed over the frames: its expected frames."""
        return np.bincount(self.state, self.value, self.shape[1])

    def expect(self, scores: np.ndarray, inv: np.ndarray) -> np.ndarray:
        """Per frame, the expected score of the state: ``scores[t, inv[state]]`` weighted by
        the posterior."""
        return np.bincount(self.frame, self.value * scores[self.frame, inv[self.state]],
                           self.shape[0])


def _moves(edges: _Edges, low: int, size: int, to_low: int, to_size: int,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transitions from the window of ``size`` states from ``low`` into the window of
    ``to_size`` from ``to_low``: sources and destinations relative to their windows, and
    probabilities."""
    e0, e1 = edges.first[low], edges.first[low + size]
    d = edges.dst[e0:e1] - to_low
    inside = (d >= 0) & (d < to_size)
    return edges.src[e0:e1][inside] - low, d[inside], edges.prob[e0:e1][inside]


_FLOOR = 1e-300  # a frame's forward mass below this share is dropped (it underflows anyway)
_BLOCK = 16  # frames per window of states


def _forward_backward(g: _Graph, scores: np.ndarray, inv: np.ndarray, edges: _Edges,
                      backward: bool = True, exact: bool = True,
                      ) -> tuple[_Posteriors | None, float]:
    """State posteriors and the log likelihood of the clip (state ``s`` emits
    ``scores[:, inv[s]]``), by the scaled forward-backward algorithm on windows of the graph:
    each frame's emissions relative to the best in its window, each frame's forward mass
    normalised (its scale kept for the likelihood), the backward values normalised to a
    maximum of 1. Every :data:`_BLOCK` frames the window moves to the states that hold a share
    of the forward mass above :data:`_FLOOR` and those the next frames can reach from them: a
    few dozen states however long the clip, so the pass costs its frames times that, where the
    graph has hundreds or thousands. Where the mass leaves the float range the log-domain sums
    decide (:func:`_log_forward_backward`; ``exact=False``: the result is then None and -inf,
    for a graph too large for the whole-graph sums, and the windows keep their values in float32,
    for a rough pass over a long clip). ``backward=False``: the likelihood only."""
    n_frames = len(scores)
    kept_as = np.float64 if exact else np.float32  # what the windows keep for the backward pass

    def exact_sums(backward: bool = True) -> tuple[_Posteriors | None, float]:
        if not exact:
            return None, -np.inf
        return _log_forward_backward(g, scores[:, inv], edges, backward)

    starts = np.fromiter(g.start, np.int64)
    lo = int(starts.min())
    a = np.zeros(int(starts.max()) - lo + 1)
    a[starts - lo] = np.exp(np.fromiter(g.start.values(), float))
    blocks = []  # (first frame, window's first state, window's size, its alphas, emissions)
    loglik = 0.0
    for t0 in range(0, n_frames, _BLOCK):
        steps = min(_BLOCK, n_frames - t0)
        low, high = lo, lo + len(a) - 1
        for _ in range(steps - (t0 == 0)):
            low, high = int(edges.behind[low]), int(edges.ahead[high])
        size = high - low + 1
        s_in, d_in, p_in = _moves(edges, low, size, low, size)
        emit = scores[t0:t0 + steps, inv[low:high + 1]]
        top = emit.max(1)
        b = np.exp(emit - top[:, None]).astype(kept_as)
        alpha = np.empty((steps, size), kept_as)
        x = np.zeros(size)
        x[lo - low:lo - low + len(a)] = a
        for k in range(steps):
            if t0 or k:
                x = np.bincount(d_in, x[s_in] * p_in, size)
            x *= b[k]
            scale = x.sum()
            if not scale > 0:  # the mass left the float range: the exact sums decide
                return exact_sums(backward)
            x /= scale
            alpha[k] = x
            loglik += np.log(scale) + top[k]
        kept = np.flatnonzero(x > _FLOOR)
        lo, a = low + int(kept[0]), x[kept[0]:kept[-1] + 1]
        blocks.append((t0, low, size, alpha, b))
    fin = np.zeros(size)
    for s, lp in g.final.items():
        if low <= s <= high:
            fin[s - low] = np.exp(lp)
    end = float(x @ fin)
    if not end > 0:  # no final state holds mass at the last frame
        return exact_sums(backward)
    loglik += np.log(end)
    if not backward:
        return None, loglik
    frame, state, value = [], [], []
    beta_next = fin / fin.max()
    nxt = None  # the next window: its first state, size, and its first frame's emissions
    while blocks:  # each window's values are let go once its posteriors are taken
        t0, low, size, alpha, b = blocks.pop()
        steps = len(alpha)
        beta = np.empty((steps, size))
        inner = _moves(edges, low, size, low, size)
        for k in range(steps - 1, -1, -1):
            if k < steps - 1:
                (s_in, d_in, p_in), v = inner, b[k + 1]
            elif nxt is None:  # the clip's last frame
                beta[k] = beta_next
                continue
            else:
                nlow, nsize, v = nxt
                s_in, d_in, p_in = _moves(edges, low, size, nlow, nsize)
            x = np.bincount(s_in, p_in * (v * beta_next)[d_in], size)
            top = x.max()
            if not top > 0:  # forward and backward mass met nowhere in float range
                return exact_sums()
            beta[k] = beta_next = x / top
        nxt = (low, size, b[0])
        post = alpha * beta
        total = post.sum(1, keepdims=True)
        if not (total > 0).all():
            return exact_sums()
        rows, cols = np.nonzero(post)
        frame.append((t0 + rows).astype(np.int32))
        state.append((low + cols).astype(np.int32))
        value.append((post / total)[rows, cols])
    return _Posteriors(np.concatenate(frame[::-1]), np.concatenate(state[::-1]),
                       np.concatenate(value[::-1]), (n_frames, len(inv))), loglik


def _lse(x: np.ndarray) -> np.ndarray:
    """log-sum-exp over the last axis (rows of -inf give -inf)."""
    top = x.max(-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(x - safe[..., None]).sum(-1))


def _padded(index: np.ndarray, other: np.ndarray, lp: np.ndarray, n: int,
            ) -> tuple[np.ndarray, np.ndarray]:
    """For each state, the ``other`` ends (and log probabilities) of its edges, padded."""
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=n)
    slot = np.arange(len(index)) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.zeros((n, max(int(counts.max()), 1)), np.int64)
    out = np.full(idx.shape, -np.inf)
    idx[index[order], slot] = other[order]
    out[index[order], slot] = lp[order]
    return idx, out


def _log_forward_backward(g: _Graph, emit: np.ndarray, edges: _Edges, backward: bool = True,
                          ) -> tuple[_Posteriors | None, float]:
    """:func:`_forward_backward` in the log domain, on every state (``emit``: (frames, states)):
    exact whatever the dynamic range, slower. The log likelihood is -inf when no path through
    the graph fits the frames."""
    src, dst, prob = edges.src, edges.dst, edges.prob
    n_frames, n = emit.shape
    lp = np.log(prob)
    pi, pl = _padded(dst, src, lp, n)  # predecessors
    alpha = np.full(emit.shape, -np.inf)
    for s, p in g.start.items():
        alpha[0, s] = p
    alpha[0] += emit[0]
    for t in range(1, n_frames):
        alpha[t] = _lse(alpha[t - 1][pi] + pl) + emit[t]
    fin = np.full(n, -np.inf)
    for s, p in g.final.items():
        fin[s] = p
    loglik = float(_lse(alpha[-1] + fin))
    if not backward or not np.isfinite(loglik):
        return None, loglik
    si, sl = _padded(src, dst, lp, n)  # successors
    beta = np.full(emit.shape, -np.inf)
    beta[-1] = fin
    for t in range(n_frames - 2, -1, -1):
        beta[t] = _lse(sl + (emit[t + 1] + beta[t + 1])[si])
    post = alpha + beta
    post = np.exp(post - post.max(1, keepdims=True))
    return _Posteriors.of(post / post.sum(1, keepdims=True)), loglik


def _phone_loop(m: AcousticModel, ci: np.ndarray, moves: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """The best path of a free loop of the model's context-independent phones (any phone after
    any phone, each with its own HMM) through the frames: what they say when nothing is known
    of the text. Returns, per frame, the emission score along the path (the reference of the
    pronunciation score) and the phone (index into ``m.phone_names``).

    ``moves``: (phones, phones) log score of entering a phone (column) after another (row); by
    default every phone is as likely, ``-log(phones)``.
    """
    n = len(m.phone_names)
    e = ci.reshape(len(ci), n, 3)
    stay = m.ci_transitions[:, np.arange(3), np.arange(3)]
    go = m.ci_transitions[:, np.arange(3), np.arange(1, 4)]
    v = np.full((n, 3), -np.inf)
    v[:, 0] = (-np.log(n) if moves is None else moves[m.SIL]) + e[0, :, 0]
    back = np.zeros((len(e), n, 3), np.int16)  # 0: stayed, 1: came from the state before,
    cols = np.arange(n)                      # 2 + p: entered after phone p's exit
    for t in range(1, len(e)):
        if moves is None:  # every phone as likely: the best exit serves every entry
            leave = v[:, 2] + go[:, 2]
            came_from = int(leave.argmax())
            entered = np.full(n, leave[came_from] - np.log(n))
        else:
            ways = (v[:, 2] + go[:, 2])[:, None] + moves
            came_from = ways.argmax(0)
            entered = ways[came_from, cols]
        new = np.empty_like(v)
        came = v[:, :2] + go[:, :2]
        kept = v + stay
        new[:, 1:] = np.maximum(kept[:, 1:], came)
        back[t, :, 1:] = (came > kept[:, 1:])
        new[:, 0] = np.maximum(kept[:, 0], entered)
        back[t, :, 0] = np.where(entered > kept[:, 0], 2 + came_from, 0)
        v = new + e[t]
    phone, state = int(np.argmax(v[:, 2])), 2
    scores = np.empty(len(e))
    phones = np.empty(len(e), np.int64)
    for t in range(len(e) - 1, -1, -1):
        scores[t], phones[t] = e[t, phone, state], phone
        b = back[t, phone, state]
        if b == 1:
            state -= 1
        elif b >= 2:
            phone, state = int(b) - 2, 2
    return scores, phones


#: Phone loop decoding without text: weight of the English phone bigram (pocketsphinx's en-us
#: phone language model) against the acoustic scores, and the log score of starting a phone.
PHONE_LM_WEIGHT = 2.0
PHONE_PENALTY = -2.0


def _phone_moves(m: AcousticModel, weight: float, penalty: float) -> np.ndarray:
    """(phones, phones) scores of one phone following another: the weighted bigram plus the
    penalty; noise and silence count as the language model's pause."""
    from ..phonotactics import phone_bigram

    names = tuple("sil" if n in ("SIL", "+NSN+", "+SPN+") else n for n in m.phone_names)
    return weight * phone_bigram(names) + penalty


def recognize_phones(pcm16k: np.ndarray, weight: float = PHONE_LM_WEIGHT,
                     penalty: float = PHONE_PENALTY) -> list[tuple[str, float, float]]:
    """ARPAbet phones heard in 16 kHz ``pcm16k`` without its text: the model's phone loop with
    the English phone bigram. ``"sil"`` for silence and noise; times inside the audio."""
    m = model()
    total = len(pcm16k) / RATE
    feats = features(cepstra(dither(pcm16k)))
    if not len(feats):
        return []
    (ci,) = m.scores(feats, m.ci_senones.reshape(-1))
    _, path = _phone_loop(m, ci, _phone_moves(m, weight, penalty))
    out: list[tuple[str, float, float]] = []
    edges = np.flatnonzero(np.diff(path)) + 1
    for a, b in zip([0, *edges], [*edges, len(path)], strict=True):
        name = m.phone_names[path[a]]
        name = "sil" if name in ("SIL", "+NSN+", "+SPN+") else name
        start = a * HOP / RATE + (_OFFSET if a else 0.0)
        end = min(b * HOP / RATE + _OFFSET, total)
        if start >= end:
            continue
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1], end)
        else:
            out.append((name, start, end))
    return out


def transform_fits(pcm16k: np.ndarray, transform: MeanTransform) -> bool:
    """Whether a voice's transform explains 16 kHz ``pcm16k`` better than the model alone, the
    text unknown: the best path of the free phone loop (:func:`_phone_loop`) scores higher per
    frame with it. Measured on espeak-ng voices moved 20% down and 30% up: a profile of the
    clip's own voice gains 9-12 nats a frame, one of the other voice loses 1-4. Costs about 2.5%
    of real time."""
    m = model()
    feats = features(cepstra(dither(pcm16k)))
    if not len(feats):
        return False
    senones = m.ci_senones.reshape(-1)
    (plain,) = m.scores(feats, senones)
    (moved,) = m.scores(feats, senones, transform=transform)
    return bool(_phone_loop(m, moved)[0].mean() > _phone_loop(m, plain)[0].mean())


def fitting_voice(voice: VoiceProfile | None, pcm: np.ndarray, sample_rate: int
                  ) -> VoiceProfile | None:
    """``voice`` if its profile may hear ``pcm``, its text unknown: it has no transform yet (it
    is still learning), or its transform explains the clip better than the model alone
    (:func:`transform_fits`); else None, and the clip is heard and placed on the model alone,
    and not learned from (it is not that voice). Recognition then uses the returned profile's
    transform (:func:`aligner.speech.recognize.recognize_words`'s ``transform``)."""
    transform = voice.transform if voice is not None else None
    if transform is None:
        return voice
    x = pcm if sample_rate == RATE else resample(pcm, sample_rate, RATE)
    return voice if transform_fits(x, transform) else None


def heard_words(voice: VoiceProfile | None, pcm: np.ndarray, sample_rate: int,
                ) -> tuple[list, VoiceProfile | None]:
    """The words pocketsphinx recognises in ``pcm``, on the model adapted to ``voice`` where
    :func:`fitting_voice` lets it hear the clip, and the profile that did (None: the model
    alone heard it; the clip is then neither placed on the profile nor learned from)."""
    from ..recognize import recognize_words

    fits = fitting_voice(voice, pcm, sample_rate)
    words = recognize_words(pcm, sample_rate,
                            transform=fits.transform if fits is not None else None,
                            voice=fits.key if fits is not None else None)
    return words, fits


def _confidence(gop: float) -> float:
    """A word's goodness of pronunciation (nats per frame, <= 0 mostly) as 0..1."""
    return float(1.0 / (1.0 + np.exp(-(gop - _GOP_CENTRE) / _GOP_SCALE)))


def _edges(spans: list[tuple[float, float]], phones: list[list[tuple[str, float, float]]],
           pcm: np.ndarray) -> list[tuple[float, float]]:
    """Every utterance edge moved onto the energy of its phone (see the module docstring): the
    clip's first start and last end, and the end before and the start after every pause of
    :data:`PAUSE_EDGE` or more. A span never grows."""
    from ..signal import frame_db

    if not spans:
        return spans
    hop = 0.0025
    db = frame_db(pcm, RATE, hop=hop)
    centre = (np.arange(len(db)) + 0.5) * hop
    gaps = [np.inf, *(b[0] - a[1] for a, b in pairwise(spans)), np.inf]
    out = list(spans)
    for k, (start, end) in enumerate(spans):
        if not phones[k]:
            continue
        if gaps[k] >= PAUSE_EDGE:
            _, a, b = phones[k][0]
            level = db[(centre >= (a + b) / 2) & (centre <= b)]
            hit = np.flatnonzero((centre >= start) & (centre <= (a + b) / 2)
                                 & (db > np.median(level) - EDGE_DB)) if len(level) else []
            if len(hit):
                start = max(start, min(end, centre[hit[0]] - hop / 2))
        if gaps[k + 1] >= PAUSE_EDGE:
            _, a, b = phones[k][-1]
            level = db[(centre >= a) & (centre <= (a + b) / 2)]
            hit = np.flatnonzero((centre >= a) & (centre <= end)
                                 & (db > np.median(level) - EDGE_DB)) if len(level) else []
            if len(hit):
                end = max(start, min(end, centre[hit[-1]] + hop / 2))
        out[k] = (start, end)
    return out


def _align_piece(m: AcousticModel, feats: np.ndarray, tokens: tuple[Token, ...],
                 prons: list[tuple[tuple[str, ...], ...]], transform: MeanTransform | None,
                 learn: bool, guard: bool = True) -> tuple[Result, dict]:
    g, segments = _build(m, tokens, prons)
    senone = np.asarray(g.senone)
    uniq, inv = np.unique(senone, return_inverse=True)
    edges = _edges_of(g)
    ci_senones = m.ci_senones.reshape(-1)
    keep = learn and len(feats) <= _KEPT  # the mixtures, for the statistics (memory bounded)
    base, ci, *kept = m.scores(feats, uniq, ci_senones, transform=transform, keep=keep)
    post, loglik = _forward_backward(g, base, inv, edges)
    adapted = transform is not None  # unchecked: a stream that has found it fits its voice
    if adapted and guard:  # the guard: the voice's transform only where it explains the clip
        # better; the model alone scored as a clip without a transform is (the same product,
        # so the same rounding): where it wins, the result is the unadapted one exactly
        plain, plain_ci, *plain_kept = m.scores(feats, uniq, ci_senones, keep=keep)
        _, plain_loglik = _forward_backward(g, plain, inv, edges, backward=False)
        adapted = loglik > plain_loglik
        if not adapted:
            base, ci, kept = plain, plain_ci, plain_kept
            post, loglik = _forward_backward(g, base, inv, edges)
    if post is None:
        raise ValueError("the clip is too short for the text")
    frames = len(feats)
    seg = np.asarray(g.segment)
    held = post.per_segment(seg, len(segments))
    before = np.cumsum(held)  # expected frames up to the end of each segment
    # the pronunciation score: against the best of the context-independent senones
    frame_fit = post.expect(base, inv) - _phone_loop(m, ci)[0]
    segment_fit = post.per_segment(seg, len(segments), frame_fit)
    expected = post.per_state()
    spans = _token_spans(segments, before, len(tokens))
    phones: list[list[tuple[str, float, float]]] = [[] for _ in tokens]
    fit = np.zeros(len(tokens))
    weight = np.zeros(len(tokens))
    rank = np.asarray(g.rank)
    variant = np.asarray(g.variant)
    for si, sg in enumerate(segments):
        if sg.token < 0:
            continue
        k = sg.token
        start, end = _seconds(before[si - 1]), _seconds(before[si])
        fit[k] += segment_fit[si]
        weight[k] += held[si]
        # the pronunciation that holds the most posterior, its phones at expected boundaries
        cols = np.flatnonzero(seg == si)
        mass = np.bincount(variant[cols], expected[cols], minlength=len(sg.pronunciations))
        pron = sg.pronunciations[int(np.argmax(mass))]
        n = len(pron)
        mass_by_rank = expected[cols]
        edges = [start]
        for j in range(n - 1):
            inside = mass_by_rank[rank[cols] <= (j + 1) / n].sum()
            edges.append(_seconds(before[si - 1] + inside))
        edges.append(end)
        edges = np.maximum.accumulate(np.clip(edges, start, end))
        phones[k] += [(p, float(edges[j]), float(edges[j + 1])) for j, p in enumerate(pron)]
    confidence = [_confidence(fit[k] / weight[k]) if weight[k] > 0 else 0.0
                  for k in range(len(tokens))]

    stats = None
    if learn:
        stats = _statistics(m, feats, uniq, post.by(inv, len(uniq)), transform if adapted else None,
                            kept[0] if kept else None)
    result = Result([s if s is not None else (0.0, 0.0) for s in spans], phones, confidence,
                    loglik / max(frames, 1), stats, adapted, frames)
    return result, {"segments": segments}


def _anchor_spans(m: AcousticModel, pcm16k: np.ndarray, tokens: tuple[Token, ...],
                  prons: list[tuple[tuple[str, ...], ...]]) -> list[tuple[float, float]] | None:
    """Rough (start, end) of every token of a long clip, to cut it at: the forward-backward
    pass over the whole clip with context-independent phones (their scores are a few hundred
    senones whatever the text; the pass follows the speech on a window of the graph). None when
    no path stays in float range (the text does not fit the audio somewhere)."""
    feats = features(cepstra(dither(pcm16k)))
    g, segments = _build(m, tokens, prons, context=False)
    senones, inv = np.unique(np.asarray(g.senone), return_inverse=True)
    (scores,) = m.scores(feats, senones)
    post, _ = _forward_backward(g, scores, inv, _edges_of(g), exact=False)
    if post is None:
        return None
    before = np.cumsum(post.per_segment(np.asarray(g.segment), len(segments)))
    return _token_spans(segments, before, len(tokens))


def _seconds(frames: float) -> float:
    """Where a boundary after this many frames lies, in seconds (between two frames' windows)."""
    return frames * HOP / RATE + _OFFSET


def _token_spans(segments: list[_Segment], before: np.ndarray,
                 n_tokens: int) -> list[tuple[float, float] | None]:
    """Each token's (start, end) from its segments (``before``: the expected frames up to the
    end of each segment); None for a token no segment holds."""
    spans: list[tuple[float, float] | None] = [None] * n_tokens
    for si, sg in enumerate(segments):
        if sg.token >= 0:
            start, end = _seconds(before[si - 1]), _seconds(before[si])
            k = sg.token
            spans[k] = (start, end) if spans[k] is None else (spans[k][0], end)
    return spans


def _statistics(m: AcousticModel, feats: np.ndarray, senones: np.ndarray, occupancy: np.ndarray,
                transform: MeanTransform | None, kept: Mixtures | None) -> dict:
    """Adaptation statistics of an aligned piece: from the mixtures its scoring kept, or for a
    long piece, block by block (its mixtures would take hundreds of megabytes at once), each
    block scored on the senones its posterior reaches (a few dozen of the piece's hundreds)."""
    from ..adaptation import accumulate, add_stats

    if kept is not None:
        return accumulate(m, feats, kept, occupancy)
    stats = None
    for a in range(0, len(feats), _KEPT):
        held = occupancy[a:a + _KEPT]
        used = np.flatnonzero(held.max(0) >= _HELD)
        _, mixtures = m.scores(feats[a:a + _KEPT], senones[used], transform=transform,
                               keep=True)
        more = accumulate(m, feats[a:a + _KEPT], mixtures, held[:, used])
        stats = more if stats is None else add_stats(stats, more)
    return stats


def align_tokens(pcm16k: np.ndarray, tokens: tuple[Token, ...],
                 prons: list[tuple[tuple[str, ...], ...]], *,
                 transform: MeanTransform | None = None, learn: bool = False,
                 anchors: list[tuple[float, float] | None] | Callable | None = None,
                 guard: bool = True) -> Result:
    """Align ``tokens`` on 16 kHz int16 ``pcm16k``.

    Args:
        tokens, prons: from :func:`aligner.speech.text.tokenize` and
            :func:`aligner.speech.pronounce.token_phones`.
        transform: a voice's mean transform; used only where it explains the clip better.
        guard: compare the clip's likelihood with and without ``transform`` (the default);
            False uses it without the check (a stream whose first chunks chose it).
        learn: also return adaptation statistics (``Result.stats``).
        anchors: for clips over 30 s, rough (start, end) per token (None where unknown) at
            which the clip is cut into pieces of about 15 s, at the widest gaps, or what gives
            them; used only when the model's own pass over the whole clip
            (:func:`_anchor_spans`) finds no path.

    Raises:
        ValueError: no tokens, or a clip too short to hold them (a frame per HMM state).
    """
    if not tokens:
        raise ValueError("nothing to align")
    m = model()
    duration = len(pcm16k) / RATE
    cuts, found = [], None
    if duration > _LONG:
        found = _anchor_spans(m, pcm16k, tokens, prons)
        if found is None and anchors is not None:
            log.info("the clip is cut where the anchors given say, not the model's own pass")
            found = anchors() if callable(anchors) else anchors
        cuts = _cuts(found, duration) if found is not None else []
    bounds = [0, *cuts, len(tokens)]
    times = [0.0, *[_cut_time(found, c) for c in cuts], duration]
    parts = []
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        t0, t1 = times[i], times[i + 1]
        feats = features(cepstra(dither(pcm16k[int(t0 * RATE):int(t1 * RATE)])))
        need = sum(3 * len(p) for pr in prons[a:b] for p in pr[:1] or [("AH",)])
        if len(feats) < need:
            raise ValueError(f"{len(feats)} frames cannot hold {need} HMM states")
        r, _ = _align_piece(m, feats, tokens[a:b], prons[a:b], transform, learn, guard)
        parts.append((t0, r))
    spans, phones, confidence = [], [], []
    stats = None
    loglik = frames = 0.0
    adapted = False
    for t0, r in parts:
        spans += [(s + t0, e + t0) for s, e in r.spans]
        phones += [[(p, s + t0, e + t0) for p, s, e in ph] for ph in r.phones]
        confidence += r.confidence
        loglik += r.loglik * r.frames
        frames += r.frames
        adapted = adapted or r.adapted
        if r.stats is not None:
            from ..adaptation import add_stats

            stats = r.stats if stats is None else add_stats(stats, r.stats)
    spans = [(min(max(s, 0.0), duration), min(max(e, 0.0), duration)) for s, e in spans]
    spans = _edges(spans, phones, pcm16k)
    return Result(spans, phones, confidence, loglik / max(frames, 1), stats, adapted,
                  int(frames))


def _cuts(anchors: list[tuple[float, float] | None], duration: float) -> list[int]:
    """Token indices to start pieces at: about every ``_PIECE`` seconds, at the widest gap
    between two anchored neighbours."""
    cuts: list[int] = []
    last = 0.0
    known = [(k, a) for k, a in enumerate(anchors) if a is not None]
    while True:
        window = [(known[i + 1][1][0] - known[i][1][1], known[i + 1][0])
                  for i in range(len(known) - 1)
                  if last + 0.6 * _PIECE <= known[i][1][1] <= last + 1.4 * _PIECE
                  and known[i + 1][1][0] < duration - 0.4 * _PIECE]
        if not window:
            return cuts
        gap, k = max(window)
        cuts.append(k)
        last = _cut_time(anchors, k)


def _cut_time(anchors: list[tuple[float, float] | None], k: int) -> float:
    """Where to cut before token ``k``: the middle of the gap before its anchor."""
    prev = next(a for a in reversed(anchors[:k]) if a is not None)
    return (prev[1] + anchors[k][0]) / 2
