"""Rhubarb Lip Sync 1.14's export formats, byte for byte: TSV, XML, JSON and Moho DAT.

Rhubarb animates on a 10 ms grid, from 0 to the audio's length truncated to whole centiseconds,
with every instant covered by one shape and no two neighbours alike. :func:`animation` puts our
cues on that grid (and into the shape set that ``--extendedShapes`` allows: a missing ``G``
becomes ``A``, ``H`` becomes ``C``, ``X`` becomes ``A``, as Rhubarb's ``getBasicShape`` maps
them); the writers then lay it out as Rhubarb's exporters do (``rhubarb/src/exporters``):

- ``tsv``: ``start<TAB>shape`` per cue, then the end with the closed mouth (``X``, or ``A``);
- ``xml``: Boost property-tree XML, two-space indent; ``json``: its hand-made layout, one cue
  per line (``soundFile`` escaped as Rhubarb does: every non-ASCII character as ``\\uXXXX``);
- ``dat``: ``MohoSwitch1``, then ``frame shape`` with 1-based frames (``1 + int(fps * t)``), a
  shape dropped when it falls on the frame of the one before, and the closed mouth at the end.

The recorded outputs of the real Rhubarb under ``tests/data/rhubarb`` are the reference.

>>> from aligner.visemes import Cue
>>> shapes = shape_set("X")                    # a character without G and H
>>> anim = animation([Cue(0.0, 0.104, "X"), Cue(0.104, 0.3, "G"), Cue(0.3, 0.5, "X")], 0.47,
...                  shapes)
>>> anim
[(0, 10, 'X'), (10, 30, 'A'), (30, 47, 'X')]
>>> print(to_tsv(anim, 47, shapes), end="")  # doctest: +NORMALIZE_WHITESPACE
0.00 X
0.10 A
0.30 X
0.47 X
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

from aligner.visemes import Cue

__all__ = [
    "BASIC_SHAPES",
    "EXTENDED_SHAPES",
    "FORMATS",
    "PRESTON_BLAIR",
    "animation",
    "centiseconds",
    "closed_mouth",
    "shape_set",
    "to_dat",
    "to_json",
    "to_tsv",
    "to_xml",
    "truncated",
]

#: Export formats, as ``-f`` names them.
FORMATS = ("dat", "tsv", "xml", "json")
BASIC_SHAPES = "ABCDEF"
EXTENDED_SHAPES = "GHX"
#: An extended shape outside the target set -> the basic shape standing in for it.
_BASIC = {"G": "A", "H": "C", "X": "A"}
#: Rhubarb's shape letters -> Preston Blair names (``--datUsePrestonBlair``, Papagayo's mouths).
PRESTON_BLAIR = {"A": "MBP", "B": "etc", "C": "E", "D": "AI", "E": "O", "F": "U", "G": "FV",
                 "H": "L", "X": "rest"}

_XML_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&apos;"))
Animation = list[tuple[int, int, str]]  # (start cs, end cs, shape), contiguous from 0


def shape_set(extended: str = EXTENDED_SHAPES) -> frozenset[str]:
    """The six basic shapes plus the ``extended`` ones (``--extendedShapes``, any case).

    Raises:
        ValueError: a letter that names no shape (Rhubarb's message).

    >>> "".join(sorted(shape_set("gx")))
    'ABCDEFGX'
    """
    out = set(BASIC_SHAPES)
    for ch in extended:
        if ch.upper() not in BASIC_SHAPES + EXTENDED_SHAPES:
            raise ValueError(f"{ch} is not a valid Shape value.")
        out.add(ch.upper())
    return frozenset(out)


def centiseconds(seconds: float) -> int:
    """``seconds`` to the nearest centisecond (halves up)."""
    return math.floor(seconds * 100 + 0.5)


def truncated(seconds: float) -> int:
    """A duration in whole centiseconds, truncated as Rhubarb truncates the audio's length."""
    return math.floor(seconds * 100 + 1e-6)


def closed_mouth(shapes: Iterable[str] = EXTENDED_SHAPES + BASIC_SHAPES) -> str:
    """The shape Rhubarb ends on: ``X``, or ``A`` when ``X`` is not in the set."""
    return "X" if "X" in set(shapes) else "A"


def animation(cues: Sequence[Cue], end: float, shapes: Iterable[str] = "ABCDEFGHX") -> Animation:
    """``cues`` (shapes A-H, X) on Rhubarb's grid: ``[(start_cs, end_cs, shape)]`` from 0 to
    ``end`` (seconds, truncated to centiseconds), boundaries rounded to the nearest centisecond,
    shapes outside ``shapes`` replaced by their basic shape, equal neighbours joined; time no
    cue covers is the closed mouth. Empty when ``end`` is under 10 ms."""
    allowed = set(shapes)
    stop = truncated(end)
    out: Animation = []
    for c in cues:
        a, b = max(centiseconds(c.start), out[-1][1] if out else 0), min(centiseconds(c.end), stop)
        if b <= a:
            continue
        shape = c.viseme if c.viseme in allowed else _BASIC.get(c.viseme, c.viseme)
        if out and out[-1][1] < a:  # a gap: closed mouth
            out.append((out[-1][1], a, closed_mouth(allowed)))
        elif not out and a > 0:
            out.append((0, a, closed_mouth(allowed)))
        out.append((a, b, shape))
    if (out[-1][1] if out else 0) < stop:
        out.append((out[-1][1] if out else 0, stop, closed_mouth(allowed)))
    joined: Animation = []
    for a, b, s in out:
        if joined and joined[-1][2] == s:
            joined[-1] = (joined[-1][0], b, s)
        else:
            joined.append((a, b, s))
    return joined


def _cs(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def _cues_or_dummy(anim: Animation, shapes: Iterable[str]) -> Animation:
    """Rhubarb's ``dummyShapeIfEmpty``: an empty animation is one zero-length closed mouth."""
    return anim or [(0, 0, closed_mouth(shapes))]


def to_tsv(anim: Animation, end_cs: int, shapes: Iterable[str] = "ABCDEFGHX") -> str:
    """Rhubarb's TSV: ``start<TAB>shape`` lines, then ``end<TAB>`` the closed mouth."""
    lines = [f"{_cs(a)}\t{s}\n" for a, _b, s in anim]
    return "".join(lines) + f"{_cs(end_cs)}\t{closed_mouth(shapes)}\n"


def to_json(anim: Animation, sound_file: str, end_cs: int,
         shapes: Iterable[str] = "ABCDEFGHX") -> str:
    """Rhubarb's JSON: ``metadata`` (``soundFile``, ``duration``) and ``mouthCues``."""
    rows = ",\n".join(f'    {{ "start": {_cs(a)}, "end": {_cs(b)}, "value": "{s}" }}'
                      for a, b, s in _cues_or_dummy(anim, shapes))
    return ('{\n  "metadata": {\n'
            f'    "soundFile": {json.dumps(sound_file)},\n'
            f'    "duration": {_cs(end_cs)}\n'
            '  },\n  "mouthCues": [\n'
            f'{rows}\n  ]\n}}\n')


def to_xml(anim: Animation, sound_file: str, end_cs: int,
        shapes: Iterable[str] = "ABCDEFGHX") -> str:
    """Rhubarb's XML (``rhubarbResult``: ``metadata``, ``mouthCues``/``mouthCue``), as Boost's
    property tree writes it: two-space indent, ``& < > " '`` escaped in text."""
    path = sound_file
    for ch, entity in _XML_ENTITIES:
        path = path.replace(ch, entity)
    rows = "".join(f'    <mouthCue start="{_cs(a)}" end="{_cs(b)}">{s}</mouthCue>\n'
                   for a, b, s in _cues_or_dummy(anim, shapes))
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rhubarbResult>\n  <metadata>\n'
            f'    <soundFile>{path}</soundFile>\n    <duration>{_cs(end_cs)}</duration>\n'
            f'  </metadata>\n  <mouthCues>\n{rows}  </mouthCues>\n</rhubarbResult>\n')


def to_dat(anim: Animation, end_cs: int, shapes: Iterable[str] = "ABCDEFGHX", *,
        fps: float = 24.0, preston_blair: bool = False) -> str:
    """Moho switch data as Rhubarb writes it (``-f dat``, ``--datFrameRate``,
    ``--datUsePrestonBlair``; Rhubarb itself takes 24-100 fps).

    Raises:
        ValueError: ``fps`` not positive.
    """
    if not fps > 0:
        raise ValueError(f"frame rate must be positive, not {fps}")

    def name(shape: str) -> str:
        return PRESTON_BLAIR[shape] if preston_blair else shape

    def frame(cs: int) -> int:
        return 1 + int(fps * (cs / 100))

    lines = ["MohoSwitch1\n"]
    last = 0
    for a, _b, s in anim:
        n = frame(a)
        if n == last:
            continue
        lines.append(f"{n} {name(s)}\n")
        last = n
    n = frame(end_cs)
    if n == last:
        n += 1
    lines.append(f"{n} {name(closed_mouth(shapes))}\n")
    return "".join(lines)
