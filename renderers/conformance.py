"""Check caption cues against the captioner's rules: violations per rule, with the offending cue.

Used by ``benchmarks/caption_conformance.py`` and the tests. The checks look only at the cues
(and, for word and interruption rules, at the timeline they came from), not at how
:func:`renderers.segment.segment` made them.

>>> from aligner.timeline import Timeline
>>> check(()) == {rule: [] for rule in RULES}
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aligner.timeline import Timeline

from .segment import GRID, CaptionRules, Cue

__all__ = ["RULES", "check"]

RULES = ("line_length", "lines", "min_duration", "max_duration", "reading_speed", "gap",
         "inside_word", "orphan", "speaker", "unheard", "interruption")
_EPS = 1.5e-3  # timestamps are written with millisecond precision


def check(cues: Sequence[Cue], rules: CaptionRules | None = None,
          timeline: Timeline | None = None) -> dict[str, list[str]]:
    """Every rule violation in ``cues``.

    Args:
        cues: cues in start order (from :func:`~renderers.segment.segment` or read from a file).
        rules: the rules to check against (defaults).
        timeline: the source timeline; enables the word, speaker and interruption checks.

    Returns:
        ``{rule: [description, ...]}`` for every rule in :data:`RULES` (empty lists: conforming).

    A cue's minimum duration and reading speed are excused where the audio does not allow more:
    a cue cut by a clear, or one hemmed in by its neighbours on both sides.
    """
    rules = rules or CaptionRules()
    out: dict[str, list[str]] = {rule: [] for rule in RULES}
    cues = sorted(cues, key=lambda c: c.start)
    for k, c in enumerate(cues):
        tag = f"cue {k + 1} @{c.start:.3f}s {c.text[:30]!r}"
        dur = c.end - c.start
        if len(c.lines) > rules.max_lines:
            out["lines"].append(f"{tag}: {len(c.lines)} lines")
        for line in c.lines:
            if len(line) > rules.max_chars_per_line:
                out["line_length"].append(f"{tag}: {len(line)} characters")
        if dur > rules.max_duration + _EPS:
            out["max_duration"].append(f"{tag}: {dur:.3f}s")
        hemmed = _hemmed(cues, k, rules)
        if dur < rules.min_duration - _EPS and not (c.interrupted or hemmed):
            out["min_duration"].append(f"{tag}: {dur:.3f}s")
        chars = sum(len(line) for line in c.lines)
        if dur <= 0 or (chars / dur > rules.max_cps + 0.05 and not (c.interrupted or hemmed)):
            out["reading_speed"].append(f"{tag}: {chars / dur if dur > 0 else float('inf'):.1f} cps")
        nxt = _next_blocking(cues, k, rules)
        if nxt is not None and nxt.start - c.end < rules.min_gap - _EPS:
            out["gap"].append(f"{tag}: {1000 * (nxt.start - c.end):.0f} ms before the next cue")
        words = [w.text for w in c.words]
        if len(words) >= 3 and any(len(line.split()) == 1 for line in c.lines):
            out["orphan"].append(f"{tag}: one-word line")
        if timeline is not None:
            _check_source(c, tag, timeline, rules, out)
    if timeline is not None:
        _check_orphan_cues(cues, timeline, out)
    return out


def _hemmed(cues: Sequence[Cue], k: int, rules: CaptionRules) -> bool:
    """True when neither neighbour leaves room to show cue ``k`` longer."""
    c = cues[k]
    nxt = _next_blocking(cues, k, rules)
    prv = next((p for p in reversed(cues[:k]) if _blocks(p, c, rules)), None)
    after = nxt is None or nxt.start - c.end <= rules.min_gap + _EPS
    before = prv is None or c.start - prv.end <= rules.min_gap + _EPS or \
        bool(c.words) and c.words[0].start - c.start >= rules.max_lead_in - _EPS
    full = c.end - c.start >= rules.max_duration - _EPS
    return full or (after and (before or nxt is None)) or (after and c.start <= _EPS)


def _blocks(a: Cue, b: Cue, rules: CaptionRules) -> bool:
    if a.speaker == b.speaker or not rules.allow_speaker_overlap or not b.words:
        return True
    speech_end = a.words[-1].end if a.words else a.end
    # a cut cue ends at its clear rounded down to the grid: the clear is up to GRID later
    return b.words[0].start >= (a.end + GRID if a.interrupted else speech_end) - rules.min_gap


def _next_blocking(cues: Sequence[Cue], k: int, rules: CaptionRules) -> Cue | None:
    return next((d for d in cues[k + 1:] if _blocks(cues[k], d, rules)), None)


def _check_source(c: Cue, tag: str, timeline: Timeline, rules: CaptionRules,
                  out: dict[str, list[str]]) -> None:
    if not 0 <= c.utterance < len(timeline.utterances):
        out["speaker"].append(f"{tag}: no utterance")
        return
    u = timeline.utterances[c.utterance]
    if u.speaker != c.speaker:
        out["speaker"].append(f"{tag}: {c.speaker!r} captions a {u.speaker!r} utterance")
    tokens = set(u.text.split())
    unheard = [w for w in u.words if not w.played]
    mark = rules.interruption_mark
    for line in c.lines:
        for token in line.split():
            bare = token[:-len(mark)] if mark and token.endswith(mark) else token
            ok = token in tokens or any(t.startswith(bare) for t in tokens)
            long_piece = any(len(t) > rules.max_chars_per_line and bare in t for t in tokens)
            if not (ok or long_piece):
                out["inside_word"].append(f"{tag}: {token!r} is not a whole word of the text")
    if unheard:
        clear = u.end
        if c.end > clear + _EPS:
            out["unheard"].append(f"{tag}: shown after the clear at {clear:.3f}s")
        for w in c.words:
            if w.start > clear + _EPS:
                out["unheard"].append(f"{tag}: {w.text!r} was never heard")
    if c.interrupted:
        silence = abs(c.end - c.start - rules.max_duration) <= GRID + _EPS and c.end < u.end
        # at the clear, on the cue times' grid: never after it, at most one step before
        at_clear = -GRID - _EPS <= c.end - u.end <= _EPS
        if not at_clear and not silence:  # a clear long after the last word
            out["interruption"].append(f"{tag}: ends {c.end:.3f}s, not at the clear {u.end:.3f}s")
        if not c.lines or not c.lines[-1].endswith(mark):
            out["interruption"].append(f"{tag}: no {mark!r} at the cut")


def _check_orphan_cues(cues: Sequence[Cue], timeline: Timeline, out: dict[str, list[str]]) -> None:
    """A one-word cue in an utterance of several heard words; and cut utterances' marks."""
    by_utt: dict[int, list[Cue]] = {}
    for c in cues:
        by_utt.setdefault(c.utterance, []).append(c)
    for i, cs in by_utt.items():
        if len(cs) > 1:
            for c in cs:
                if len(c.words) == 1 and not re.search(r"\W$", c.words[0].text[-1:] or "x"):
                    out["orphan"].append(f"one-word cue @{c.start:.3f}s {c.text!r}")
        u = timeline.utterances[i] if 0 <= i < len(timeline.utterances) else None
        if u is not None and u.interrupted and any(not w.played for w in u.words) and \
                not cs[-1].interrupted:
            out["interruption"].append(f"utterance {i}: its last cue is not marked as cut")
