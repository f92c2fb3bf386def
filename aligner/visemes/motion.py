"""Viseme motion: phone timings -> natural mouth-shape cues, blend-shape frames, a live stream.

Not one shape per phone: the mouth anticipates the next shape by ``Motion.lead`` (coarticulation,
40-80 ms; but it relaxes only when the sound stops), shapes shorter than ``Motion.min_hold`` are
dropped (the shape before is held), diphthongs glide between two shapes, ``P B M`` always close
the lips (held for at least ``min_hold``), and the mouth relaxes to the set's rest shape in pauses
and at once after a ``clear``. The blend-shape stream tweens between shapes. Everything here is
pure: no I/O, no clock. The phones come from a timeline, or from audio via
:mod:`aligner.visemes.phones` (re-timing on the shipped phone model, audio-only recognition).

>>> from aligner.timeline import Phone
>>> ph = [Phone("HH", 0.10, 0.16), Phone("AH", 0.16, 0.30), Phone("M", 0.30, 0.40)]
>>> [(round(c.start, 2), c.viseme) for c in cues(ph, "rhubarb", end=0.6)]
[(0.0, 'X'), (0.04, 'B'), (0.1, 'C'), (0.24, 'A'), (0.4, 'X')]
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AudioError
from ..timeline import Phone, Timeline
from .phones import pause_after, pronunciation_variants, refine_phones
from .sets import ARKIT_SHAPES, ARKIT_WEIGHTS, BILABIALS, VisemeSet, get_set

__all__ = [
    "Cue",
    "Motion",
    "VisemeStream",
    "blendshape_frames",
    "blendshape_weights",
    "cues",
    "timeline_cues",
    "timeline_phones",
]


_EPS = 1e-9
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Motion:
    """How the mouth moves between shapes.

    Attributes:
        lead: coarticulation: each shape starts this many seconds before its phone (0.04-0.08).
        min_hold: shorter shapes are dropped (the shape before is held); closures are held
            this long.
        glide: fraction of a diphthong spent in its first shape.
        tween: blend-shape crossfade window in seconds (a linear ramp across each change).
    """

    lead: float = 0.06
    min_hold: float = 0.04
    glide: float = 0.6
    tween: float = 0.08

    def __post_init__(self) -> None:
        if not 0 <= self.lead <= 0.2:
            raise ValueError(f"lead {self.lead} s is outside 0-0.2 s")
        if not 0 <= self.min_hold <= 0.2:
            raise ValueError(f"min_hold {self.min_hold} s is outside 0-0.2 s")
        if not 0 < self.glide <= 1:
            raise ValueError(f"glide {self.glide} is outside (0, 1]")
        if self.tween < 0:
            raise ValueError(f"tween {self.tween} s is negative")


@dataclass(frozen=True, slots=True)
class Cue:
    """One mouth shape held from ``start`` to ``end`` (seconds).

    ``viseme`` is the set's name for it (an int id for ``azure``); ``weight`` how far the
    mouth gets to it (short shapes undershoot); ``closed`` is True for lips closed by ``P B M``; ``clear`` marks the rest shape that starts at a ``clear`` (consumers
    drop any cue they scheduled after it).
    """

    start: float
    end: float
    viseme: Any
    weight: float = 1.0
    closed: bool = False
    clear: bool = False

    def event(self) -> dict[str, Any]:
        """The JSON-lines stream event ``{"t", "viseme", "weight"}`` (+ ``"clear": true``)."""
        d = {"t": round(self.start, 4), "viseme": self.viseme, "weight": round(self.weight, 3)}
        if self.clear:
            d["clear"] = True
        return d


def _vset(vset: VisemeSet | str) -> VisemeSet:
    return vset if isinstance(vset, VisemeSet) else get_set(vset)


def cues(phones: Sequence[Phone], vset: VisemeSet | str = "oculus", *, motion: Motion = Motion(),
         start: float = 0.0, end: float | None = None, clears: Iterable[float] = ()) -> list[Cue]:
    """Mouth-shape cues for time-ordered ARPAbet ``phones``.

    Args:
        phones: ARPAbet phones (stress ignored, ``"sil"`` pauses) on any clock, sorted by start.
        vset: a :class:`VisemeSet` or its name (``oculus``, ``azure``, ``polly``, ``rhubarb``).
        motion: coarticulation lead, minimum hold, diphthong glide.
        start: where the first cue starts (rest until the first phone); earlier phones are cut.
        end: where the last cue ends (rest after the last phone); default the last phone's end.
        clears: times of ``clear`` events: speech stops there and the mouth relaxes at once.

    Returns:
        Contiguous cues from ``start`` to ``end``, no two neighbours with the same viseme.

    Raises:
        ValueError: unknown set name.
    """
    vs = _vset(vset)
    clear_times = sorted(c for c in clears if c >= start)
    segs = _segments(phones, vs, motion, start, clear_times)
    if end is None:
        end = segs[-1][1] if segs else start
    if segs and segs[-1][1] < end - _EPS:
        segs.append([segs[-1][1], end, vs.rest, False, False])
    segs = [s for s in segs if s[0] < end - _EPS]
    if not segs:
        segs = [[start, end, vs.rest, False, False]] if end > start else []
    if not segs:
        return []
    segs[-1][1] = end
    segs = _mark_clears(segs, clear_times, vs.rest)
    _shift(segs, motion.lead, start, vs.rest)
    segs = _merge(segs)
    segs = _hold(segs, motion.min_hold)
    return [Cue(s, e, v, _weight(e - s, closed or v == vs.rest), closed, hard and v == vs.rest)
            for s, e, v, closed, hard in segs]


def _weight(duration: float, full: bool) -> float:
    """How far the mouth gets to a shape: short shapes undershoot (0.6 at 40 ms, 1.0 from
    120 ms); closures and the rest shape are always reached."""
    return 1.0 if full else round(min(1.0, 0.4 + 5.0 * duration), 3)


def _segments(phones: Sequence[Phone], vs: VisemeSet, motion: Motion, start: float,
              clears: list[float]) -> list[list]:
    """[start, end, viseme, closed, hard] per shape: gaps are rest, diphthongs split, a clear
    cuts the phone it falls in."""
    segs: list[list] = []
    t = start
    for p in phones:
        s, e = (p.start if p.start > t + _EPS else t), p.end
        j = bisect.bisect_right(clears, s + _EPS)
        if j < len(clears) and clears[j] < e:
            e = clears[j]
        if e <= s + _EPS:
            continue
        if s > t + _EPS:
            segs.append([t, s, vs.rest, False, False])
        shapes = vs.shapes(p.phone)
        closed = p.phone.rstrip("012").upper() in BILABIALS
        if len(shapes) == 2:
            m = s + (e - s) * motion.glide
            segs.append([s, m, shapes[0], closed, False])
            segs.append([m, e, shapes[1], closed, False])
        else:
            segs.append([s, e, shapes[0], closed, False])
        t = e
    return segs


def _mark_clears(segs: list[list], clears: list[float], rest: Any) -> list[list]:
    """Split rest shapes at each clear and mark the rest that starts there as hard."""
    out: list[list] = []
    for sg in segs:
        if sg[2] == rest:
            for c in clears:
                if sg[0] + _EPS < c < sg[1] - _EPS:
                    out.append([sg[0], c, rest, False, sg[4]])
                    sg = [c, sg[1], rest, False, True]
            if any(abs(sg[0] - c) <= _EPS for c in clears):
                sg[4] = True
        out.append(sg)
    return out


def _shift(segs: list[list], lead: float, start: float, rest: Any) -> None:
    """Coarticulation: move each boundary ``lead`` earlier, except at a clear (hard), at the
    start, and into the rest shape: the mouth anticipates the next sound, but holds the last
    one until it ends (relaxing early would cut its shape short, a final vowel most visibly)."""
    floor = start
    for i in range(1, len(segs)):
        b = segs[i][0]
        if segs[i][4] or segs[i][2] == rest:  # a clear, or the sound stops here
            floor = b
            continue
        nb = max(b - lead, floor, segs[i - 1][0])
        segs[i][0] = nb
        segs[i - 1][1] = nb
    for i in range(len(segs) - 1):  # the hard boundaries kept their place; close the chain
        segs[i][1] = segs[i + 1][0]


def _merge(segs: list[list]) -> list[list]:
    out: list[list] = []
    carry: float | None = None
    for sg in segs:
        if carry is not None:
            sg = [carry, *sg[1:]]
            carry = None
        if sg[1] <= sg[0] + _EPS and not sg[4] and not sg[3]:
            carry = sg[0]  # squeezed out by the lead (closures survive: _hold widens them)
            continue
        if out and out[-1][2] == sg[2] and not sg[4]:
            out[-1][1] = sg[1]
            out[-1][3] = out[-1][3] or sg[3]
        else:
            out.append(list(sg))
    if carry is not None and out:
        out[-1][1] = segs[-1][1]
    return out


def _hold(segs: list[list], min_hold: float) -> list[list]:
    """Drop too-short shapes; hold closures for ``min_hold``.

    A shape shorter than ``min_hold`` is never seen; the shape before it is held over its time
    (rather than the next one starting earlier), so no shape runs more than the coarticulation
    lead ahead of its sound. After a closure (or at the start) the next shape takes it instead.
    """
    if min_hold <= 0 or len(segs) < 2:
        return segs
    out: list[list] = []
    carry: float | None = None  # start of a dropped short shape, given to the next one
    for i, sg in enumerate(segs):
        if carry is not None and not sg[4]:
            sg[0] = carry
        carry = None
        short = sg[1] - sg[0] < min_hold - _EPS
        last = i == len(segs) - 1
        if short and not sg[3] and not sg[4] and not last and not segs[i + 1][4]:
            if out and not out[-1][3]:  # hold the shape before: the next keeps its lead
                out[-1][1] = sg[1]
            else:  # after a closure or at the start: the next shape comes early
                carry = sg[0]
            continue
        if out and out[-1][2] == sg[2] and not sg[4]:
            out[-1][1] = sg[1]
            out[-1][3] = out[-1][3] or sg[3]
            continue
        out.append(sg)
    # closures shorter than min_hold borrow time from their neighbours
    for i, sg in enumerate(out):
        need = min_hold - (sg[1] - sg[0])
        if not sg[3] or need <= _EPS:
            continue
        nxt = out[i + 1] if i + 1 < len(out) and not out[i + 1][4] else None
        prv = out[i - 1] if i > 0 and not sg[4] else None
        for nb, floor in ((nxt, min_hold), (prv, min_hold), (nxt, 0.0), (prv, 0.0)):
            if nb is None or need <= _EPS:
                continue
            room = nb[1] - nb[0] - floor  # second pass: a neighbour may vanish
            take = min(need, max(room, 0.0))
            if nb is nxt:
                sg[1] += take
                nb[0] = sg[1]
            else:
                sg[0] -= take
                nb[1] = sg[0]
            need -= take
    out = _merge([sg for sg in out if sg[1] > sg[0] + _EPS or sg[4]])
    if len(out) > 1 and out[-1][1] - out[-1][0] < min_hold - _EPS and not out[-1][3] \
            and not out[-1][4] and not out[-2][3]:
        out[-2][1] = out[-1][1]  # a short tail joins the shape before it
        out.pop()
    return out


def timeline_phones(timeline: Timeline, speaker: str = "agent", *, retimed: bool = False,
                    base: str | None = None) -> list[Phone]:
    """All phones ``speaker`` was heard saying, time-ordered, on the session clock.

    ``retimed``: when the timeline holds the speaker's audio track (in memory, or a file
    relative to ``base``), the phones of utterances aligned from text (``source`` ``"text"``
    or ``"recognized"``) are refined on it (:func:`refine_phones`: where espeak-ng's speech
    says they sound, or re-timed on the phone model), as ``aligner visemes --text`` and the
    live stream do. An audio file that cannot be read is logged and skipped.
    """
    key = (speaker, retimed, base)
    if _last_phones is not None and _last_phones[0] is timeline and _last_phones[1] == key:
        return list(_last_phones[2])  # every viseme renderer of one timeline asks again
    track = timeline.track(speaker) if retimed else None
    pcm = None
    if track is not None:
        try:
            pcm = track.load(base)
        except AudioError as exc:  # the timeline's own phone times still animate
            logger.warning("visemes: not re-timed, %s", exc)
    out = []
    for u in timeline.speaker(speaker):
        phones = [p for p in u.phones if p.end > p.start]
        if pcm is not None and len(pcm) and u.source != "audio":
            phones = refine_phones(phones, u.words, pcm, track.sample_rate,
                                   pauses=pause_after(u.text, u.words),
                                   variants=pronunciation_variants(u.words, phones))
        out += phones
    out.sort(key=lambda p: p.start)
    _remember(timeline, key, out)
    return list(out)


# The last timeline_phones() answer: rendering several viseme formats of one timeline (as
# `aligner run` and `aligner render --to all` do) re-times its audio once, not once per format.
_last_phones: tuple[Timeline, tuple, list[Phone]] | None = None


def _remember(timeline: Timeline, key: tuple, phones: list[Phone]) -> None:
    global _last_phones
    _last_phones = (timeline, key, phones)


def _clears(timeline: Timeline) -> list[float]:
    return sorted(e.t for e in timeline.events if e.kind == "clear")


def timeline_cues(timeline: Timeline, vset: VisemeSet | str = "oculus", *,
                  motion: Motion = Motion(), speaker: str = "agent", retimed: bool = False,
                  base: str | None = None) -> list[Cue]:
    """Cues for one speaker of ``timeline``, from 0 to its duration, relaxed after each clear;
    ``retimed`` and ``base`` as for :func:`timeline_phones`."""
    phones = timeline_phones(timeline, speaker, retimed=retimed, base=base)
    end = max([timeline.duration] + [p.end for p in phones])
    return cues(phones, vset, motion=motion, end=end, clears=_clears(timeline))


def blendshape_frames(cue_list: Sequence[Cue], fps: float = 30.0, *, tween: float = 0.08,
                      end: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample ARKit blend-shape weights at ``fps`` from OVR (``oculus``) cues, tweened.

    Each shape change is a linear crossfade ``tween`` seconds wide (a box filter of the held
    shapes). Frames inside a lips-closed cue get the closed weights exactly, and every closure
    reaches at least one frame, so ``P B M`` always close.

    Args:
        cue_list: cues of the ``oculus`` set.
        fps: frames per second (30, 60...).
        tween: crossfade width in seconds (0: hard switches).
        end: last time to sample (default the last cue's end).

    Returns:
        ``(times, weights)``: times (n,) in seconds, weights (n, len(ARKIT_SHAPES)) in 0..1.

    Raises:
        ValueError: fps not positive, or cues of another set.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    if end is None:
        end = cue_list[-1].end if cue_list else 0.0
    n = int(np.floor(end * fps + _EPS)) + 1
    times = np.arange(n) / fps
    return times, blendshape_weights(cue_list, times, tween=tween)


def blendshape_weights(cue_list: Sequence[Cue], times: np.ndarray, *,
                       tween: float = 0.08) -> np.ndarray:
    """ARKit blend-shape weights of OVR (``oculus``) cues at ``times`` (sorted, evenly spaced
    frames), as :func:`blendshape_frames` samples them: a live stream samples the frames whose
    crossfade its final cues already cover.

    Returns:
        weights (len(times), len(ARKIT_SHAPES)) in 0..1; zeros (the rest) without cues.

    Raises:
        ValueError: cues of another set.
    """
    times = np.asarray(times, dtype=float)
    if not len(cue_list):
        return np.zeros((len(times), len(ARKIT_SHAPES)))
    try:
        values = np.array([ARKIT_WEIGHTS[c.viseme] for c in cue_list])
    except KeyError as exc:
        raise ValueError(f"blend shapes need oculus cues, got viseme {exc.args[0]!r}") from None
    bounds = np.array([cue_list[0].start] + [c.end for c in cue_list])
    if tween > 0:
        durations = np.diff(bounds)[:, None]
        cum = np.vstack([np.zeros(values.shape[1]), np.cumsum(durations * values, axis=0)])
        h = tween / 2

        def integral(t: np.ndarray) -> np.ndarray:
            return np.stack([np.interp(t, bounds, cum[:, j]) for j in range(values.shape[1])], 1)

        weights = (integral(times + h) - integral(times - h)) / tween
    else:
        idx = np.clip(np.searchsorted(bounds, times, side="right") - 1, 0, len(cue_list) - 1)
        weights = values[idx]
    if len(times):
        step = times[1] - times[0] if len(times) > 1 else 1.0
        for i, c in enumerate(cue_list):
            if c.closed or c.viseme == "PP":
                lo, hi = np.searchsorted(times, [c.start, c.end])
                if hi <= lo:  # no frame falls inside: the nearest one closes
                    lo = int(round(((c.start + c.end) / 2 - times[0]) / step))
                    if not -1 <= lo <= len(times):  # another stretch of frames holds it
                        continue
                    lo = min(max(lo, 0), len(times) - 1)
                    hi = lo + 1
                weights[lo:hi] = values[i]
    return np.clip(weights, 0.0, 1.0)


class VisemeStream:
    """Live viseme cues, fed phone by phone as chunks are aligned (sans-I/O).

    Call :meth:`feed` with newly aligned phones (on the playback clock) and the time up to which
    the phones are final; it returns the cues that can no longer change. Chunks are aligned when
    they arrive, before they play, so the cues reach the avatar ahead of the audio (and each
    starts ``lead`` early). :meth:`clear` relaxes the mouth at a ``clear``; :meth:`finish` ends.

    >>> from aligner.timeline import Phone
    >>> s = VisemeStream("oculus")
    >>> [c.viseme for c in s.feed([Phone("M", 0.0, 0.1), Phone("AA", 0.1, 0.3)], 0.3)]
    ['PP']
    >>> [c.viseme for c in s.finish(0.5)]
    ['aa', 'sil']
    """

    def __init__(self, vset: VisemeSet | str = "oculus", motion: Motion = Motion()) -> None:
        self.vset = _vset(vset)
        self.motion = motion
        self._t = 0.0  # everything before this is emitted
        self._origin = 0.0  # cues are computed from here (the start, or the last clear)
        self._phones: list[Phone] = []  # recent phones: context for the next cues
        self._last: Any = None  # the viseme emitted last

    def feed(self, phones: Iterable[Phone], final_until: float) -> list[Cue]:
        """Add aligned phones; return the cues that became final.

        Args:
            phones: new phones, in order, each after the ones fed before (refined on their
                audio first, if it is at hand: :func:`refine_phones`, which reads only the
                audio around them, so recent audio is enough).
            final_until: no phone will ever start before this time.

        Returns:
            The new cues, contiguous with the ones returned before.
        """
        phones = [p for p in phones if p.end > self._t]
        self._phones.extend(phones)
        # the last cue before final_until may still grow, merge or anticipate the next phone
        limit = final_until - self.motion.lead - self.motion.min_hold
        return self._emit(limit, None)

    def clear(self, t: float) -> list[Cue]:
        """A ``clear`` at ``t``: speech stops; returns the cues up to ``t`` and the rest shape.

        The rest cue starts exactly at ``t`` and has ``clear=True``: consumers drop any cue
        they had scheduled after ``t`` (cues run ahead of the audio, so some may be).
        """
        self._phones = [p for p in self._phones if p.start < t]
        out = self._emit(t, t, final=True) if t > self._t else []
        rest = Cue(t, t + self.motion.min_hold, self.vset.rest, clear=True)
        self._t = self._origin = t
        self._phones = []
        self._last = self.vset.rest
        return [*out, rest]

    def finish(self, end: float | None = None) -> list[Cue]:
        """All remaining cues, ending with the rest shape at ``end`` (default the last phone)."""
        stop = max([self._t] + [p.end for p in self._phones] + ([end] if end is not None else []))
        out = self._emit(stop, stop, final=True) if stop > self._t else []
        self._phones = []
        return out

    def _emit(self, limit: float, end: float | None, final: bool = False) -> list[Cue]:
        if not self._phones and not final:
            return []
        start = min([self._t] + [p.start for p in self._phones[:1]])
        got = cues(self._phones, self.vset, motion=self.motion, start=max(start, self._origin),
                   end=end)
        got = [c for c in got if c.end > self._t + _EPS]
        if not final:
            got = [c for c in got[:-1] if c.end <= limit + _EPS]
        out = []
        for c in got:
            if c.start < self._t:
                c = Cue(self._t, c.end, c.viseme, c.weight, c.closed, c.clear)
            if c.viseme != self._last:
                out.append(c)
                self._last = c.viseme
            self._t = c.end
        # keep a second of context: merges and holds look at the neighbours
        self._phones = [p for p in self._phones if p.end > self._t - 1.0]
        return out
