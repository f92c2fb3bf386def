"""Voice adaptation: a voice's profile moves the acoustic model's means towards the voice.

An agent speaks with one voice on every call, and every chunk arrives with its exact text, so
each aligned chunk is supervised adaptation data. A :class:`VoiceProfile` accumulates, from the
frames the aligner has already aligned (:func:`accumulate`: their posteriors over the model's
Gaussians), the statistics of maximum-likelihood linear regression, and solves them for one
affine transform of the means per feature stream (:func:`solve`; shrunk towards the identity
while there is little data: :data:`PRIOR_FRAMES`). The statistics add up over chunks, calls and
processes; a profile is a small JSON file (:meth:`VoiceProfile.save`, :meth:`VoiceProfile.load`)
keyed by what identifies the voice (an agent id, a voice name).

The guard: the aligner uses a profile's transform on a clip only when the clip's likelihood is
higher with it than without (:func:`aligner.speech.backends.acoustic.align_tokens`), so a
profile learned on another voice, or on too little, cannot make a clip worse than the model
itself; and a profile gives no transform before :data:`MIN_FRAMES` frames of speech. Once
:data:`TRUSTED_AFTER` checks in a row chose the transform, the profile's voice is taken to fit
it and only every :data:`CHECK_EVERY`-th clip is checked (a stream's chunks pay for the check
at its start and now and then); one check that prefers the model alone starts checking every
clip again.

>>> p = VoiceProfile("agent_123")
>>> p.transform is None, p.frames
(True, 0)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .acoustic_model import AcousticModel, MeanTransform, Mixtures, model

__all__ = ["CHECK_EVERY", "MAX_SOURCES", "MIN_FRAMES", "PRIOR_FRAMES", "TRUSTED_AFTER", "VoiceProfile",
           "accumulate", "add_stats", "merge_file", "profile_path", "solve"]

#: Frames (10 ms) of aligned speech before a profile's transform is used at all.
MIN_FRAMES = 300
#: Checks in a row that chose the transform, after which only some clips are checked ...
TRUSTED_AFTER = 3
#: ... one in this many.
CHECK_EVERY = 8
#: The transform is shrunk towards the identity as if this many frames followed the model as it
#: is: with a few seconds of a voice it moves the means a little, with minutes as the data say.
PRIOR_FRAMES = 500
#: Ids of the latest calls (recordings) a profile learned from that it remembers, so that one
#: call taught twice (its live events and its recording; a render run again) counts once.
MAX_SOURCES = 1000
_VERSION = 1
_STREAMS, _DIM = 3, 13


def accumulate(m: AcousticModel, feats: np.ndarray, mixtures: Mixtures,
               occupancy: np.ndarray) -> dict[str, Any]:
    """Regression statistics of one aligned clip.

    Args:
        m: the model; feats: (frames, 39) features; mixtures: the mixtures of the senones of
            the clip's search (``AcousticModel.scores(..., keep=True)``); occupancy: (frames,
            senones) posterior of each of those senones in each frame.

    Returns:
        ``{"G": (3, 13, 14, 14), "k": (3, 13, 14), "frames": n}``: per stream and dimension, the
        normal equations of that dimension's row of ``[b | A]``.
    """
    n_cb, _, n_dens, _ = m.means.shape
    occ = np.zeros((_STREAMS, n_cb, n_dens))
    sx = np.zeros((_STREAMS, n_cb, n_dens, _DIM))
    occ[:, mixtures.books], sx[:, mixtures.books] = mixtures.gaussian_sums(occupancy, feats)
    G = np.zeros((_STREAMS, _DIM, _DIM + 1, _DIM + 1))
    k = np.zeros((_STREAMS, _DIM, _DIM + 1))
    means, outer, (iu, ju) = _mean_products(m)
    for s in range(_STREAMS):
        used = np.flatnonzero(occ[s])  # the Gaussians the clip reached (a few in ten)
        precision = m.precisions[:, s].reshape(-1, _DIM)[used]
        weight = occ[s].reshape(-1)[used, None] * precision  # (gaussians, 13)
        G[s][:, iu, ju] = G[s][:, ju, iu] = weight.T @ outer[s][used]
        k[s] = (precision * sx[s].reshape(-1, _DIM)[used]).T @ means[s][used]
    return {"G": G, "k": k, "frames": len(feats)}


@functools.cache
def _mean_products(m: AcousticModel) -> tuple[list[np.ndarray], list[np.ndarray], tuple]:
    """Per stream, every Gaussian's extended mean ``[1, mean]`` (gaussians, 14) and the upper
    triangle of its outer product with itself (gaussians, 105; the triangle's indices last):
    the normal equations are sums of these weighted by occupancy and precision."""
    iu, ju = np.triu_indices(_DIM + 1)
    means, outer = [], []
    for s in range(_STREAMS):
        xi = m.means[:, s].reshape(-1, _DIM)
        xi = np.concatenate([np.ones((len(xi), 1)), xi], 1)
        means.append(xi)
        outer.append(xi[:, iu] * xi[:, ju])
    return means, outer, (iu, ju)


def add_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The statistics of two clips together."""
    return {"G": a["G"] + b["G"], "k": a["k"] + b["k"], "frames": a["frames"] + b["frames"]}


def solve(stats: dict[str, Any], prior_frames: float = PRIOR_FRAMES) -> MeanTransform:
    """The mean transform that best explains the statistics, shrunk towards the identity.

    Each row ``w_i`` of ``[b | A]`` solves ``(G_i + tau Gbar_i) w_i = k_i + tau Gbar_i e_i``:
    ``tau = prior_frames`` frames of data for which the identity is exact (``Gbar_i`` is
    ``G_i`` per frame, ``e_i`` the identity's row).
    """
    frames = max(float(stats["frames"]), 1.0)
    mats = []
    for s in range(_STREAMS):
        w = np.zeros((_DIM, _DIM + 1))
        for i in range(_DIM):
            G = stats["G"][s, i]
            prior = G * (prior_frames / frames)
            e = np.zeros(_DIM + 1)
            e[i + 1] = 1.0
            lhs = G + prior + 1e-6 * np.eye(_DIM + 1) * max(np.trace(G), 1.0)
            w[i] = np.linalg.solve(lhs, stats["k"][s, i] + prior @ e)
        mats.append(w)
    return MeanTransform(tuple(mats))


class VoiceProfile:
    """What the aligner has learned of one voice (see the module docstring).

    ``key`` names the voice (an agent id, a voice name); ``frames`` and ``clips`` count what it
    learned from, ``sources`` are the ids of the latest calls it learned from (oldest first, at
    most :data:`MAX_SOURCES`). :meth:`learn` adds a clip's statistics (``Result.stats`` of the
    acoustic backend); :attr:`transform` is the current transform, or None before
    :data:`MIN_FRAMES`.
    """

    def __init__(self, key: str = "voice", stats: dict[str, Any] | None = None,
                 clips: int = 0, sources: list[str] | None = None) -> None:
        self.key = key
        self.stats = stats
        self.clips = clips
        self.sources = list(sources or ())[-MAX_SOURCES:]
        self._transform: MeanTransform | None = None
        self._solved_at = 0  # frames the current transform was solved from
        self._fits = 0  # checks in a row that chose the transform
        self._unchecked = 0  # clips aligned with it since the last check

    @property
    def frames(self) -> int:
        return int(self.stats["frames"]) if self.stats else 0

    @property
    def transform(self) -> MeanTransform | None:
        """The current transform, solved again once the profile has learned a tenth more (a
        stream's profile learns every chunk; the transform barely moves between two)."""
        if self.stats is None or self.frames < MIN_FRAMES:
            return None
        if self._transform is None or self.frames >= 1.1 * self._solved_at:
            self._transform = solve(self.stats)
            self._solved_at = self.frames
        return self._transform

    def should_check(self) -> bool:
        """Whether the next clip's alignment should check that the transform fits it."""
        return self._fits < TRUSTED_AFTER or self._unchecked >= CHECK_EVERY - 1

    def checked(self, chose: bool | None) -> None:
        """Record a clip aligned with the transform: ``chose`` is what its check found (True:
        the transform fits better), None when it was not checked."""
        if chose is None:
            self._unchecked += 1
        else:
            self._fits, self._unchecked = (self._fits + 1 if chose else 0), 0

    def learn(self, stats: dict[str, Any] | None, source: str | None = None) -> None:
        """Add one aligned clip's statistics (None: nothing learned); ``source``: the id of the
        call they came from, remembered in :attr:`sources`."""
        if stats is None:
            return
        self.stats = stats if self.stats is None else add_stats(self.stats, stats)
        self.clips += 1
        if source is not None:
            self.sources = [*self.sources, source][-MAX_SOURCES:]

    def add(self, stats: dict[str, Any] | None, clips: int = 1,
            source: str | None = None) -> bool:
        """Add what one call (recording) of ``clips`` clips taught, unless the profile learned
        from call ``source`` already; False if nothing was added."""
        if stats is None or (source is not None and source in self.sources):
            return False
        self.learn(stats, source)
        self.clips += clips - 1
        return True

    def learned_since(self, before: dict[str, Any] | None) -> dict[str, Any] | None:
        """The statistics this profile gathered after it held ``before`` (None: nothing new)."""
        if self.stats is None:
            return None
        if before is None:
            return self.stats
        if self.stats["frames"] <= before["frames"]:
            return None
        return {"G": self.stats["G"] - before["G"], "k": self.stats["k"] - before["k"],
                "frames": self.stats["frames"] - before["frames"]}

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data."""
        return {"version": _VERSION, "key": self.key, "clips": self.clips,
                "frames": self.frames, "sources": self.sources,
                "G": self.stats["G"].tolist() if self.stats else None,
                "k": self.stats["k"].tolist() if self.stats else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoiceProfile:
        """The profile of :meth:`to_dict`'s data.

        Raises:
            ValueError: another version, or arrays of the wrong shape.
        """
        if d.get("version") != _VERSION:
            raise ValueError(f"voice profile version {d.get('version')!r}, expected {_VERSION}")
        stats = None
        if d.get("G") is not None:
            G, k = np.asarray(d["G"], np.float64), np.asarray(d["k"], np.float64)
            if G.shape != (_STREAMS, _DIM, _DIM + 1, _DIM + 1) or k.shape != (_STREAMS, _DIM, _DIM + 1):
                raise ValueError("voice profile statistics have the wrong shape")
            stats = {"G": G, "k": k, "frames": int(d.get("frames", 0))}
        sources = d.get("sources") or []
        if not isinstance(sources, list):
            raise ValueError("voice profile sources are not a list")
        return cls(str(d.get("key", "voice")), stats, int(d.get("clips", 0)),
                   [str(s) for s in sources])

    def save(self, path: str | Path) -> Path:
        """Write the profile to ``path`` atomically (about 150 KB of JSON, and up to 40 KB of
        call ids)."""
        from ..timeline import write_atomic

        return write_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path, key: str | None = None) -> VoiceProfile:
        """The profile saved at ``path``; a new, empty one (named ``key``) if there is none.

        Raises:
            ValueError: the file is not a voice profile.
        """
        p = Path(path)
        if not p.exists():
            return cls(key or p.stem)
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ValueError(f"{p} is not a voice profile: {exc}") from exc


def merge_file(path: str | Path, stats: dict[str, Any] | None, clips: int = 1,
               source: str | None = None,
               read: Callable[[Path], VoiceProfile] = VoiceProfile.load) -> tuple[VoiceProfile, bool]:
    """Add one call's statistics to the profile stored at ``path`` (:meth:`VoiceProfile.add`),
    under an exclusive lock (``path`` with the suffix ``.lock``) so that processes merging into
    one file at once all count; the file is re-read inside the lock and written atomically.

    Args:
        read: reads the stored profile (default :meth:`VoiceProfile.load`, a new one for a
            missing file).

    Returns:
        The profile as stored, and whether it changed.

    Raises:
        OSError: the file or its lock cannot be written. ValueError: from ``read``.
    """
    import fcntl

    path = Path(path)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        profile = read(path)
        added = profile.add(stats, clips, source)
        if added:
            profile.save(path)
        return profile, added


def profile_path(folder: str | Path, key: str) -> Path:
    """Where the profile of voice ``key`` lives in a folder of profiles (a safe file name)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:120].lstrip(".") or "voice"
    return Path(folder) / f"{safe}.json"


def warm() -> None:
    """Load the acoustic model now (workers call it before their first clip)."""
    model()
