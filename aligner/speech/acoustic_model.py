"""pocketsphinx's US English acoustic model, read with numpy: triphones, senones, scores.

The model that the ``pocketsphinx`` package ships (``model/en-us/en-us``, BSD licence) is a
phonetically tied mixture model: 42 context-independent phones (39 ARPAbet phones, ``SIL`` and
the fillers ``+NSN+`` noise and ``+SPN+`` speech-like noise), 137,053 triphones tied to 5,126
senones, each senone a mixture over its base phone's three codebooks (cepstra, deltas, double
deltas) of 128 diagonal Gaussians. :class:`AcousticModel` reads the binary model definition
(``mdef``), the Gaussians (``means``, ``variances``), the quantised mixture weights
(``sendump``) and the transition matrices, and scores feature frames
(:mod:`aligner.speech.features`) against any senones, optionally with the means moved by a
voice's adaptation (:class:`MeanTransform`).

>>> m = model()
>>> m.phone_names[m.SIL], len(m.senone_base)
('SIL', 5126)
>>> len(m.states("AE", "K", "T", "i"))  # the three senones of AE between K and T, in a word
3
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AcousticModel", "MeanTransform", "Mixtures", "model", "model_dir"]

_LOG_BASE = np.log(1.0001)  # pocketsphinx's log base; mixture weights are 8-bit quantised logs
_WEIGHT_SHIFT = 10
_VARIANCE_FLOOR = 1e-4
_STREAMS, _DENSITIES, _DIM = 3, 128, 13
#: log units the best Gaussian of a codebook is raised to before the exponential (float32 holds
#: e^88), and the floor of a senone's mixture: 1e-30 of the best Gaussian's density
_SHIFT = 80.0
_MIX_FLOOR = float(np.float32(1e-30 * np.exp(_SHIFT)))
_FRAMES_AT_ONCE = 3000  # frames scored in one batch (the densities take 64 KB a frame)
#: word positions of a triphone in the model definition
POSITIONS = {"i": 0, "b": 1, "e": 2, "s": 3}


def model_dir() -> str:
    """The folder of the acoustic model shipped with the ``pocketsphinx`` package."""
    import pocketsphinx

    return os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us")


def _s3(path: str) -> tuple[bytes, int]:
    """A Sphinx-3 binary file's bytes and the offset of its data (after the text header and the
    byte-order magic)."""
    with open(path, "rb") as f:
        data = f.read()
    i = data.index(b"endhdr\n") + 7
    if struct.unpack("<I", data[i:i + 4])[0] != 0x11223344:
        raise ValueError(f"{path}: not a little-endian Sphinx-3 file")
    return data, i + 4


def _gaussians(path: str) -> np.ndarray:
    data, o = _s3(path)
    n_mgau, n_feat, n_density = struct.unpack("<3i", data[o:o + 12])
    o += 12 + 4 * n_feat
    n = struct.unpack("<i", data[o:o + 4])[0]
    values = np.frombuffer(data[o + 4:o + 4 + 4 * n], "<f4")
    return values.reshape(n_mgau, n_feat, n_density, -1).astype(np.float64)


def _transitions(path: str) -> np.ndarray:
    data, o = _s3(path)
    n_tmat, n_src, n_dst = struct.unpack("<3i", data[o:o + 12])
    n = struct.unpack("<i", data[o + 12:o + 16])[0]
    t = np.frombuffer(data[o + 16:o + 16 + 4 * n], "<f4").reshape(n_tmat, n_src, n_dst)
    t = t.astype(np.float64) / t.sum(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(t)


def _mixture_weights(path: str, n_senones: int) -> np.ndarray:
    """(streams, densities, senones) linear mixture weights from a ``sendump`` file."""
    with open(path, "rb") as f:
        data = f.read()
    o, header = 0, {}
    while (n := struct.unpack("<i", data[o:o + 4])[0]) != 0:
        key, _, value = data[o + 4:o + 4 + n].rstrip(b"\0").decode().partition(" ")
        header[key] = value
        o += 4 + n
    o += 4
    if int(header.get("cluster_count", 0)) != 0:
        raise ValueError(f"{path}: clustered mixture weights are not supported")
    rows, cols = struct.unpack("<2i", data[o:o + 8])
    o += 8
    streams = int(header.get("feature_count", 1))
    q = np.frombuffer(data[o:o + streams * rows * cols], np.uint8).reshape(streams, rows, cols)
    if cols != n_senones:
        raise ValueError(f"{path}: {cols} senones, the model definition has {n_senones}")
    return np.exp(-q.astype(np.float64) * (1 << _WEIGHT_SHIFT) * _LOG_BASE)


def _definition(path: str) -> dict:
    """The binary model definition (pocketsphinx's ``bin_mdef`` layout)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"BMDF":
        raise ValueError(f"{path}: not a binary model definition")
    o = 8
    n = struct.unpack("<i", data[o:o + 4])[0]
    o += 4 + n
    (n_ci, n_phone, n_emit, _n_ci_sen, n_sen, _n_tmat, n_sseq, _n_ctx, n_tree,
     sil) = struct.unpack("<10i", data[o:o + 40])
    o += 40
    names = []
    for _ in range(n_ci):
        end = data.index(b"\0", o)
        names.append(data[o:end].decode())
        o = end + 1
    o = (o + 3) & ~3
    o += 8 * n_tree  # the context tree: the triphone table below is all we need
    phones = np.frombuffer(data[o:o + 12 * n_phone],
                           dtype=[("ssid", "<i4"), ("tmat", "<i4"), ("attr", "u1", 4)])
    sseq = np.frombuffer(data[len(data) - 2 * n_sseq * n_emit:], "<i2").reshape(n_sseq, n_emit)
    return {"names": names, "phones": phones, "sseq": sseq.astype(np.int64), "n_sen": n_sen,
            "sil": sil}


@dataclass(frozen=True)
class MeanTransform:
    """An affine transform of the model's Gaussian means, one per feature stream
    (maximum-likelihood linear regression): ``mean' = A @ mean + b``, ``matrices[s]`` being
    ``[b | A]`` (13 x 14) for stream ``s``."""

    matrices: tuple[np.ndarray, np.ndarray, np.ndarray]

    def apply(self, means: np.ndarray) -> np.ndarray:
        """The transformed copy of (codebooks, streams, densities, 13) ``means``."""
        out = np.empty_like(means)
        for s, w in enumerate(self.matrices):
            out[:, s] = means[:, s] @ w[:, 1:].T + w[:, 0]
        return out

    def sphinx_mllr(self) -> str:
        """The transform as a pocketsphinx MLLR file (its ``mllr`` setting): one regression
        class, the model's three 13-dimensional streams (``-svspec 0-12/13-25/26-38``), each
        ``A``, ``b`` and variances unscaled."""
        lines = ["1", str(len(self.matrices))]
        for w in self.matrices:
            lines.append(str(len(w)))
            lines += [" ".join(f"{x:.8g}" for x in row) for row in (*w[:, 1:], w[:, 0])]
            lines.append(" ".join(["1"] * len(w)))
        return "\n".join(lines) + "\n"


class AcousticModel:
    """The en-us model in memory (about 30 MB; load it once with :func:`model`)."""

    def __init__(self, folder: str | None = None) -> None:
        folder = folder or model_dir()
        d = _definition(os.path.join(folder, "mdef"))
        self.phone_names: list[str] = d["names"]
        self.phone_index = {n: i for i, n in enumerate(self.phone_names)}
        self.SIL = d["sil"]
        self.NOISE = self.phone_index["+NSN+"]
        self.means = _gaussians(os.path.join(folder, "means"))
        variances = np.maximum(_gaussians(os.path.join(folder, "variances")), _VARIANCE_FLOOR)
        self.precisions = 1.0 / variances
        self._norm = -0.5 * np.log(2 * np.pi * variances).sum(-1)
        self.weights = _mixture_weights(os.path.join(folder, "sendump"), d["n_sen"])
        self.weights32 = self.weights.astype(np.float32)
        self.log_transitions = _transitions(os.path.join(folder, "transition_matrices"))
        phones, sseq = d["phones"], d["sseq"]
        self._phone_senones = sseq[phones["ssid"]]
        self._phone_tmat = phones["tmat"].astype(np.int64)
        n_ci = len(self.phone_names)
        attr = phones["attr"][n_ci:].astype(np.int64)  # (position, base, left, right)
        keys = ((attr[:, 0] * 64 + attr[:, 1]) * 64 + attr[:, 2]) * 64 + attr[:, 3]
        self._triphones = dict(zip(keys.tolist(), range(n_ci, len(phones)), strict=True))
        base = np.arange(len(phones))
        base[n_ci:] = phones["attr"][n_ci:, 1]
        self.senone_base = np.zeros(d["n_sen"], np.int64)
        self.senone_base[self._phone_senones.reshape(-1)] = np.repeat(base, 3)
        #: (phones, 3) senones and (phones, 3, 4) log transitions of the context-independent
        #: phones, in :attr:`phone_names` order
        self.ci_senones = self._phone_senones[:n_ci]
        self.ci_transitions = self.log_transitions[self._phone_tmat[:n_ci]]
        self._mean_terms: dict[int, tuple] = {}

    def _triphone(self, base: int, left: int, right: int, position: int) -> int:
        """The model's phone for ``base`` between ``left`` and ``right`` at a word position,
        the nearest one when the model lacks it (another position, silence as context, the
        context-independent phone), as pocketsphinx looks them up."""
        sil = self.SIL
        for key in ((position, base, left, right),
                    *((p, base, left, right) for p in range(4) if p != position),
                    *((p, base, lc, rc) for lc, rc in ((sil, right), (left, sil), (sil, sil))
                      for p in (position, *range(4)))):
            code = ((key[0] * 64 + key[1]) * 64 + key[2]) * 64 + key[3]
            if code in self._triphones:
                return self._triphones[code]
        return base

    def states(self, phone: str, left: str, right: str, position: str, context: bool = True,
               ) -> list[tuple[int, float, float]]:
        """``(senone, log self-loop, log exit)`` of the three states of ``phone`` in context.

        ``left``/``right``: the neighbouring phones (``"SIL"`` at a pause); ``position``: ``b``,
        ``i``, ``e`` or ``s`` (first, inside, last, only phone of its word); ``context=False``:
        the context-independent phone's.
        """
        idx = self.phone_index
        if phone not in idx:
            raise KeyError(f"the acoustic model has no phone {phone!r}")
        p = idx[phone] if not context else self._triphone(
            idx[phone], idx.get(left, self.SIL), idx.get(right, self.SIL), POSITIONS[position])
        t = self.log_transitions[self._phone_tmat[p]]
        return [(int(self._phone_senones[p][j]), float(t[j, j]), float(t[j, j + 1]))
                for j in range(3)]

    def _terms(self, transform: MeanTransform | None) -> list[np.ndarray]:
        """Per stream, the (codebooks, densities, 13 + 13 + 1) float32 matrices that turn a
        frame's ``[x, x * x, 1]`` into every Gaussian's log density in one batched product:
        ``x . mean * precision - x * x . precision / 2 + constant`` (cached per transform)."""
        key = id(transform)
        if key not in self._mean_terms:
            if len(self._mean_terms) > 8:
                self._mean_terms.clear()
            means = self.means if transform is None else transform.apply(self.means)
            scaled = means * self.precisions
            const = self._norm - 0.5 * np.einsum("cskd,cskd->csk", scaled, means)
            mats = []
            for s in range(_STREAMS):
                mats.append(np.concatenate([
                    scaled[:, s], -0.5 * self.precisions[:, s], const[:, s, :, None]],
                    2).astype(np.float32))
            self._mean_terms[key] = (transform, mats)
        return self._mean_terms[key][1]

    def densities(self, feats: np.ndarray, stream: int, transform: MeanTransform | None = None,
                  books: np.ndarray | None = None) -> np.ndarray:
        """(codebooks, 128, frames) log densities of every Gaussian in one stream; ``books``: of
        those codebooks only.

        float32: near a Gaussian the terms that cancel are about ``precision * mean ** 2``, a few
        hundred for the Gaussians speech reaches (errors of 1e-4 nats); the Gaussians whose terms
        reach 1e8 have every variance at the floor and lie far from any frame, where an error of
        a few nats in a density a million nats down changes nothing."""
        x = np.asarray(feats[:, _DIM * stream:_DIM * (stream + 1)], np.float32)
        xx = np.concatenate([x, x * x, np.ones((len(x), 1), np.float32)], 1).T
        terms = self._terms(transform)[stream]
        if books is not None and len(books) < len(terms):
            terms = terms[books]
        return np.matmul(terms, xx[None])

    def _layout(self, senones: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each senone's mixture goes in a batched product: the codebooks involved, and
        per senone its codebook's row among them and its slot in that row."""
        bases = self.senone_base[senones]
        books, rows = np.unique(bases, return_inverse=True)
        order = np.argsort(rows, kind="stable")
        slots = np.empty(len(senones), np.int64)
        counts = np.bincount(rows, minlength=len(books))
        slots[order] = np.arange(len(senones)) - np.repeat(np.cumsum(counts) - counts, counts)
        return books, rows, slots

    def scores(self, feats: np.ndarray, *senone_sets: np.ndarray,
               transform: MeanTransform | None = None, keep: bool = False) -> list:
        """(frames, senones) log likelihoods of ``feats`` (from :func:`features`) under each
        senone of each set: the sum over the three streams of the log of its mixture. One pass
        over the Gaussians and one product per stream serve every set. ``keep``: also return,
        last, the :class:`Mixtures` (what adaptation statistics are gathered from) of the first
        set."""
        if not keep and len(feats) > _FRAMES_AT_ONCE:  # a long clip: bounded memory
            parts = [self.scores(feats[a:a + _FRAMES_AT_ONCE], *senone_sets,
                                 transform=transform)
                     for a in range(0, len(feats), _FRAMES_AT_ONCE)]
            return [np.concatenate(ps) for ps in zip(*parts, strict=True)]
        sets = [np.asarray(s, np.int64) for s in senone_sets]
        every = np.concatenate(sets)
        books, rows, slots = self._layout(every)
        ends = np.cumsum([len(s) for s in sets])
        parts = list(zip(np.split(rows, ends[:-1]), np.split(slots, ends[:-1]), strict=True))
        out: list = [np.zeros((len(feats), len(s))) for s in sets]
        kept = Mixtures(books, *parts[0]) if keep else None
        for stream in range(_STREAMS):
            # (codebooks, 128, frames) mixture terms relative to each codebook's best, raised by
            # _SHIFT so that Gaussians up to ~160 nats below the best still count
            e = self.densities(feats, stream, transform, books)
            top = e.max(1)
            top -= _SHIFT
            e -= top[:, None, :]
            np.exp(e, out=e)
            table = np.zeros((len(books), slots.max() + 1, _DENSITIES), np.float32)
            table[rows, slots] = self.weights32[stream][:, every].T
            mix = np.matmul(table, e)  # (books, slots, frames)
            for o, (r, k) in zip(out, parts, strict=True):
                o += (top[r] + np.log(np.maximum(mix[r, k], _MIX_FLOOR))).T
            if kept is not None:
                kept.streams.append((e, table, mix))
        return out + [kept] if keep else out


@dataclass
class Mixtures:
    """The mixtures of a senone set over a clip's frames, as :meth:`AcousticModel.scores` computed
    them: the codebooks involved (``books``, maybe more than the set's), where each of the set's
    senones sits among them (``rows``, ``slots``), and per stream the Gaussians' densities
    relative to each frame's best in their codebook (books, 128, frames), the mixture weights
    laid out per codebook (books, slots, 128) and the mixtures (books, slots, frames)."""

    books: np.ndarray
    rows: np.ndarray
    slots: np.ndarray
    streams: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def gaussian_sums(self, occupancy: np.ndarray, feats: np.ndarray,
                      floor: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
        """Each Gaussian's occupancy and occupancy-weighted sum of its stream's features, given
        (frames, senones) ``occupancy`` of the set's senones and the (frames, 39) ``feats``: each
        senone's share of a frame split over its Gaussians in proportion to their weighted
        densities. Returns ``(3, books, 128)`` occupancies and ``(3, books, 128, 13)`` sums.

        A frame's posterior sits on a few states, so only the (codebook, frame) pairs whose
        senones hold at least ``floor`` of the frame are summed: a few codebooks of the 42 in each
        frame (what is left out is under ``floor`` per codebook and frame)."""
        n_books, n_frames = len(self.books), len(occupancy)
        by_book = np.zeros((n_books, n_frames))
        np.add.at(by_book, self.rows, np.asarray(occupancy).T)
        occ = np.zeros((_STREAMS, n_books, _DENSITIES))
        sx = np.zeros((_STREAMS, n_books, _DENSITIES, _DIM))
        x = np.asarray(feats, np.float32)
        tiny = np.finfo(np.float32).tiny
        for b in np.flatnonzero(by_book.max(1) >= floor):
            frames = np.flatnonzero(by_book[b] >= floor)
            mine = np.flatnonzero(self.rows == b)
            slots = self.slots[mine]
            held = np.asarray(occupancy[np.ix_(frames, mine)], np.float32)
            for s, (relative, table, mix) in enumerate(self.streams):
                share = held / np.maximum(mix[b][np.ix_(slots, frames)].T, tiny)
                per = relative[b][:, frames].T * (share @ table[b][slots])  # (frames, 128)
                occ[s, b] = per.sum(0)
                sx[s, b] = per.T @ x[frames, _DIM * s:_DIM * (s + 1)]
        return occ, sx


@functools.cache
def model() -> AcousticModel:
    """The shared :class:`AcousticModel` (read on first use, about 0.4 s)."""
    return AcousticModel()
