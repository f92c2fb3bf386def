"""Viseme renderers: mouth-shape streams for avatars and exports for animation tools.

- ``visemes`` (``call.visemes.jsonl``): ``{"t": s, "viseme": ..., "weight": ...}`` per shape
  change; option ``set``: oculus (default), azure, polly, rhubarb. Live.
- ``polly`` (``call.polly.jsonl``): Amazon Polly speech marks ``{"time":ms,"type":
  "sentence"|"word"|"viseme",...}``. Live (viseme marks).
- ``rhubarb`` (``call.rhubarb.json``): Rhubarb Lip Sync JSON (``metadata``, ``mouthCues``).
- ``rhubarb-tsv`` (``call.rhubarb.tsv``): Rhubarb Lip Sync TSV (``start<TAB>shape``).
- ``moho`` (``call.dat``): Moho/Papagayo switch data (``MohoSwitch1``, 1-based frames, 24 fps).
  These three are laid out as Rhubarb 1.14 writes them (:mod:`renderers.rhubarb`); option
  ``extended_shapes``: the optional shapes G, H, X the character has (default ``GHX``).
- ``blendshapes`` (``call.blendshapes.csv``) and ``blendshapes-json``
  (``call.blendshapes.json``): ARKit blend-shape weights per frame (option ``fps``, 30).

Common options (constructor keywords): ``speaker`` (default ``"agent"``), ``lead`` and
``min_hold`` (seconds, see :class:`aligner.visemes.Motion`), ``retime`` (default true: when the
timeline holds the speaker's audio, phones aligned from text are refined on it as ``aligner
visemes --text`` does, :func:`aligner.visemes.refine_phones`: where espeak-ng's speech says they
sound, or re-timed with the shipped phone model; live too, when the fed timeline has the
audio).

>>> from aligner.timeline import Phone, Timeline, Utterance
>>> u = Utterance("agent", 0.1, 0.4, "ma", phones=(Phone("M", 0.1, 0.2), Phone("AA", 0.2, 0.4)))
>>> print(RhubarbTsv().render_string(Timeline(utterances=(u,), duration=0.6)), end="")
... # doctest: +NORMALIZE_WHITESPACE
0.00	X
0.04	A
0.14	D
0.40	X
0.60	X
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from aligner.timeline import Phone, Timeline
from aligner.visemes import (
    Cue,
    Motion,
    VisemeStream,
    blendshape_frames,
    pause_after,
    refine_phones,
    timeline_cues,
)
from aligner.visemes.motion import _clears as _timeline_clears

from . import LiveRenderer, Renderer, rhubarb

__all__ = [
    "BlendshapesCsv",
    "BlendshapesJson",
    "MohoDat",
    "PollyMarks",
    "RhubarbJson",
    "RhubarbTsv",
    "VisemeJsonl",
]

_EPS = 1e-9


class _VisemeRenderer(Renderer):
    viseme_set = "oculus"
    #: the default ``lead``: formats that mimic a speech engine's events (Polly, Azure,
    #: TalkingHead) time a shape when its sound starts, as those engines do; 0.06 elsewhere.
    default_lead = 0.06
    options_spec = {"lead": float, "min_hold": float, "speaker": str, "retime": bool}

    def _motion(self) -> Motion:
        return Motion(lead=self.options.get("lead", self.default_lead),
                      min_hold=self.options.get("min_hold", 0.04))

    def _speaker(self) -> str:
        return self.options.get("speaker", "agent")

    def _retimed(self) -> bool:
        return self.options.get("retime", True)

    def _cues(self, timeline: Timeline, vset: str | None = None,
              base: Path | None = None) -> list[Cue]:
        return timeline_cues(timeline, vset or self.viseme_set, motion=self._motion(),
                             speaker=self._speaker(), retimed=self._retimed(),
                             base=str(base) if base is not None else None)


class VisemeJsonl(_VisemeRenderer):
    """JSON lines ``{"t": s, "viseme": ..., "weight": ...}``, one per shape change.

    A line with ``"clear": true`` is the rest shape at a ``clear``: a player drops every event it
    had scheduled after that time. Option ``set``: oculus (default), azure, polly, rhubarb.
    """

    name = "visemes"
    extensions = (".visemes.jsonl",)
    options_spec = {**_VisemeRenderer.options_spec, "set": str}
    description = "viseme stream, JSON lines {t, viseme, weight} (oculus/azure/polly/rhubarb)"

    def _set(self) -> str:
        return str(self.options.get("set", "oculus"))

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        for c in self._cues(timeline, self._set(), base):
            fp.write((json.dumps(c.event()) + "\n").encode("utf-8"))

    def live(self) -> LiveRenderer:
        return _LiveVisemes(VisemeStream(self._set(), self._motion()), self._speaker(),
                            lambda c: c.event(), self._retimed())


class PollyMarks(_VisemeRenderer):
    """Amazon Polly speech marks (JSON lines): sentence, word and viseme marks.

    The shape Polly documents ("Speech mark output", "Speech marks without SSML example"):
    one compact JSON object a line, ``{"time":0,"type":"sentence","start":0,"end":23,
    "value":"Mary had a little lamb."}``, ``{"time":6,"type":"word","start":0,"end":4,
    "value":"Mary"}``, ``{"time":6,"type":"viseme","value":"p"}``; ``time`` in integer
    milliseconds from the start of the audio (the session clock here), ``start``/``end`` UTF-8
    byte offsets into the input text (the utterance's text), sentence before word before
    viseme at the same time. A viseme mark is when its sound starts, as Polly's are (``lead``
    0 unless given). Only what was heard: words a ``clear`` cut off have no mark, and a
    sentence has one when its first word was heard.
    """

    name = "polly"
    extensions = (".polly.jsonl",)
    description = "Amazon Polly speech marks (sentence, word, viseme), JSON lines"
    viseme_set = "polly"
    default_lead = 0.0

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        cues = self._cues(timeline, base=base)
        while cues and cues[0].viseme == "sil":  # Polly's marks start with the first sound
            cues = cues[1:]
        marks = [_polly_viseme(c) for c in cues]
        for u in timeline.speaker(self._speaker()):
            heard = u.heard_words
            for a, b in _sentences(u.text):
                first = next((w for w in heard if a <= w.char_start < b), None)
                if first is not None:
                    marks.append(_polly_text(u.text, "sentence", a, b, first.start))
            marks += [_polly_text(u.text, "word", w.char_start, w.char_end, w.start)
                      for w in heard]
        order = {"sentence": 0, "word": 1, "viseme": 2}
        marks.sort(key=lambda m: (m["time"], order[m["type"]]))
        for m in marks:
            fp.write((_compact(m) + "\n").encode("utf-8"))

    def live(self) -> LiveRenderer:
        return _LiveVisemes(VisemeStream("polly", self._motion()), self._speaker(), _polly_viseme,
                            self._retimed(), lead_in=False)


def _polly_viseme(c: Cue) -> dict[str, Any]:
    return {"time": round(c.start * 1000), "type": "viseme", "value": c.viseme}


def _polly_text(text: str, kind: str, a: int, b: int, t: float) -> dict[str, Any]:
    """A word or sentence mark of ``text[a:b]``: its offsets in UTF-8 bytes, as Polly's."""
    start = len(text[:a].encode("utf-8"))
    return {"time": round(t * 1000), "type": kind, "start": start,
            "end": start + len(text[a:b].encode("utf-8")), "value": text[a:b]}


def _compact(obj: Any) -> str:
    """JSON without spaces and with non-ASCII kept, as speech engines write their marks."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``: up to ``.``, ``!`` or ``?`` (and closing
    quotes or brackets) before whitespace or the end, surrounding whitespace left out.

    >>> t = "Hi there. How are you?  Fine"
    >>> [t[a:b] for a, b in _sentences(t)]
    ['Hi there.', 'How are you?', 'Fine']
    """
    spans = []
    for m in re.finditer(r"\S.*?(?:[.!?]+[\"')\]»”’]*(?=\s|$)|$)", text, re.S):
        if m.end() > m.start():
            spans.append((m.start(), m.end()))
    return spans


class _RhubarbRenderer(_VisemeRenderer):
    """Rhubarb Lip Sync's exports (:mod:`renderers.rhubarb`); option ``extended_shapes``: the
    optional shapes the character has, as ``--extendedShapes`` (default ``GHX``)."""

    viseme_set = "rhubarb"
    options_spec = {**_VisemeRenderer.options_spec, "extended_shapes": str}

    def _animation(self, timeline: Timeline, base: Path | None):
        shapes = rhubarb.shape_set(str(self.options.get("extended_shapes", "GHX")))
        cues = self._cues(timeline, base=base)
        end = cues[-1].end if cues else timeline.duration
        return rhubarb.animation(cues, end, shapes), rhubarb.truncated(end), shapes


class RhubarbJson(_RhubarbRenderer):
    """Rhubarb Lip Sync JSON export, as its plugins (After Effects, Spine, Godot, Blender) read.

    ``{"metadata": {"soundFile": ..., "duration": ...}, "mouthCues": [{"start", "end",
    "value"}]}`` with shapes A-H and X, laid out as Rhubarb writes it. ``soundFile`` is the
    speaker's audio track path (option ``sound_file`` overrides).
    """

    name = "rhubarb"
    extensions = (".rhubarb.json",)
    description = "Rhubarb Lip Sync JSON (mouthCues A-H, X)"
    options_spec = {**_RhubarbRenderer.options_spec, "sound_file": str}

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        track = timeline.track(self._speaker())
        sound = self.options.get("sound_file", (track.path if track and track.path else ""))
        anim, end, shapes = self._animation(timeline, base)
        fp.write(rhubarb.to_json(anim, str(sound), end, shapes).encode("utf-8"))


class RhubarbTsv(_RhubarbRenderer):
    """Rhubarb Lip Sync TSV export: ``start<TAB>shape`` per cue, then the end time with ``X``."""

    name = "rhubarb-tsv"
    extensions = (".rhubarb.tsv",)
    description = "Rhubarb Lip Sync TSV (start, shape)"

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        anim, end, shapes = self._animation(timeline, base)
        fp.write(rhubarb.to_tsv(anim, end, shapes).encode("utf-8"))


class MohoDat(_RhubarbRenderer):
    """Moho / Papagayo switch data as Rhubarb writes it: ``MohoSwitch1`` then ``frame shape``
    lines, 1-based frames, the closed mouth at the end.

    Options: ``fps`` (default 24), ``names``: ``"rhubarb"`` (A-H, X, like Rhubarb's export) or
    ``"preston-blair"`` (MBP, etc, E, AI, O, U, FV, L, rest, as Papagayo's mouths name them).
    """

    name = "moho"
    extensions = (".dat",)
    description = "Moho/Papagayo switch data (.dat, 24 fps)"
    options_spec = {**_RhubarbRenderer.options_spec, "fps": float, "names": str}

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        fps = self.options.get("fps", 24.0)
        names = self.options.get("names", "rhubarb")
        if names not in ("rhubarb", "preston-blair"):
            raise ValueError(f"unknown names {names!r}; expected rhubarb or preston-blair")
        anim, end, shapes = self._animation(timeline, base)
        text = rhubarb.to_dat(anim, end, shapes, fps=fps, preston_blair=names == "preston-blair")
        fp.write(text.encode("utf-8"))


class _Blendshapes(_VisemeRenderer):
    options_spec = {**_VisemeRenderer.options_spec, "fps": float, "tween": float}

    def _frames(self, timeline: Timeline, base: Path | None = None):
        from aligner.visemes.sets import ARKIT_SHAPES

        fps = self.options.get("fps", 30.0)
        tween = self.options.get("tween", 0.08)
        cues = self._cues(timeline, "oculus", base)
        times, weights = blendshape_frames(cues, fps, tween=tween,
                                           end=max(timeline.duration, cues[-1].end if cues else 0))
        return fps, ARKIT_SHAPES, times, weights


class BlendshapesCsv(_Blendshapes):
    """ARKit blend-shape weights per frame: ``frame,time,jawOpen,...`` (option ``fps``: 30)."""

    name = "blendshapes"
    extensions = (".blendshapes.csv",)
    description = "ARKit blend-shape weights per frame, CSV (fps option, default 30)"

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        _fps, names, times, weights = self._frames(timeline, base)
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["frame", "time", *names])
        for i, (t, row) in enumerate(zip(times, weights, strict=True)):
            w.writerow([i, f"{t:.4f}", *(f"{x:.3f}" for x in row)])
        fp.write(text.getvalue().encode("utf-8"))


class BlendshapesJson(_Blendshapes):
    """ARKit blend-shape weights per frame as JSON ``{"fps", "names", "frames": [[...], ...]}``."""

    name = "blendshapes-json"
    extensions = (".blendshapes.json",)
    description = "ARKit blend-shape weights per frame, JSON (fps option, default 30)"

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        fps, names, _times, weights = self._frames(timeline, base)
        doc = {"fps": fps, "names": list(names),
               "frames": [[round(float(x), 3) for x in row] for row in weights]}
        fp.write(json.dumps(doc, separators=(",", ":")).encode("utf-8"))


class _LiveVisemes(LiveRenderer):
    """Feeds the growing timeline's phones and clears to a :class:`VisemeStream`.

    When the fed timeline holds the speaker's audio track in memory (``session.timeline()``),
    phones aligned from text are refined on it (:func:`aligner.visemes.refine_phones`) as the
    batch renderers do; a timeline without audio (``session.timeline(audio=False)``) is used as is.
    """

    def __init__(self, stream: VisemeStream, speaker: str, item, retimed: bool = True,
                 lead_in: bool = True) -> None:
        self._stream = stream
        self._speaker = speaker
        self._item = item
        self._retimed = retimed
        self._lead_in = lead_in  # False: no rest shape before the first sound (Polly's marks)
        self._seen = 0.0  # phones ending at or before this were fed
        self._last_clear = -1.0
        self._before: tuple[float, Phone] | None = None  # (its utterance's start, last phone fed)

    def _new(self, timeline: Timeline, final_until: float) -> list[Phone]:
        """The phones final since the last call, refined on the audio if the timeline has it.

        What was fed is tracked on the timeline's own phone times: refining may move a chunk's
        last phone (a pause it ends with may vanish), which must not be fed again next time.
        """
        track = timeline.track(self._speaker) if self._retimed else None
        pcm = track.samples if track is not None else None
        new: list[Phone] = []
        seen = self._seen
        for u in timeline.speaker(self._speaker):
            got = [p for p in u.phones if p.end > self._seen + _EPS
                   and p.end <= final_until + _EPS and p.end > p.start]
            seen = max([seen] + [p.end for p in got])
            if got and pcm is not None and len(pcm) and u.source != "audio":
                before = self._before[1] if self._before and self._before[0] == u.start else None
                got = refine_phones(got, u.words, pcm, track.sample_rate,
                                    pauses=pause_after(u.text, u.words), before=before)
            if got:
                self._before = (u.start, got[-1])
            new += got
        self._seen = seen
        return sorted(new, key=lambda p: p.start)

    def feed(self, timeline: Timeline, final_until: float) -> list[Any]:
        new = self._new(timeline, final_until)
        out: list[Cue] = []
        for c in _timeline_clears(timeline):
            if self._last_clear < c <= final_until:
                out += self._stream.feed([p for p in new if p.start < c], c)
                out += self._stream.clear(c)
                new = [p for p in new if p.start >= c]
                self._last_clear = c
                self._seen = max(self._seen, c)
        out += self._stream.feed(new, final_until)
        if not self._lead_in:
            while out and out[0].viseme == self._stream.vset.rest:
                out = out[1:]
            self._lead_in = bool(out)
        return [self._item(c) for c in out]

    def finish(self, timeline: Timeline) -> list[Any]:
        items = self.feed(timeline, float("inf"))
        return items + [self._item(c) for c in self._stream.finish(timeline.duration)]
