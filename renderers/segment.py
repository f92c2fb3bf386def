"""Caption segmentation the way a professional captioner does it: a pure function, timeline → cues.

Rules (every one a field of :class:`CaptionRules`): at most 42 characters a line and 2 lines a
cue; a cue shows between 5/6 s and 7 s; reading speed at most 20 characters a second (cues are
merged, or extended into the following silence, when the audio allows); at least a 2-frame gap
(83 ms) between cues; breaks go at sentence ends, then clause ends and pauses, never inside a
word; no one-word orphan line or cue when avoidable; each cue belongs to one speaker. Only heard
(``played``) words are captioned; a cue cut by a ``clear`` ends at the clear and its sentence ends
with an em dash. A token longer than a whole line (a 300-character "word", a CJK sentence without
spaces) is the one thing broken inside: into line-sized pieces, with times shared out by length.
Cue times lie on a 10 ms grid (:data:`GRID`) that every caption format stores exactly, rounded
the way that keeps the rules (a cut cue ends at the clear or up to 10 ms before it).

>>> from aligner.timeline import Timeline, Utterance, Word
>>> text = "Hello there. How are you today?"
>>> spans = [(0, 5), (6, 11), (13, 16), (17, 20), (21, 24), (25, 30)]
>>> words = tuple(Word(text[a:b], 0.4 * i, 0.4 * i + 0.35, a, b) for i, (a, b) in enumerate(spans))
>>> tl = Timeline(utterances=(Utterance("agent", 0.0, 2.4, text, words=words),), duration=3.0)
>>> [(c.lines, round(c.start, 2), round(c.end, 2)) for c in segment(tl)]
[(('Hello there. How are you today?',), 0.0, 2.35)]
>>> narrow = CaptionRules(max_chars_per_line=20)
>>> [c.lines for c in segment(tl, narrow)]
[('Hello there.', 'How are you today?')]
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, fields
from typing import Any

from aligner.errors import RendererError
from aligner.timeline import Timeline, Utterance

__all__ = ["GRID", "RULE_OPTIONS", "CaptionRules", "Cue", "CueWord", "caption_rules", "segment"]

_SENTENCE_END = re.compile(r"[.!?…。！？‼⁇؟]['\"”’»)\]]*$")
_CLAUSE_END = re.compile(r"([,;:、，；：،]|[-–—])['\"”’»)\]]*$")
_WORDLESS = re.compile(r"^\W+$")
_TRAILING_PUNCT = re.compile(r"[\s,;:.!?…\-–—、，；：。！？]+$")
_CONJUNCTIONS = frozenset({"and", "but", "or", "so", "because", "which", "who", "that", "when",
                           "while", "if", "although", "though", "then"})
# words a line should not end on: they belong with what follows (articles, prepositions...)
_STICKY = frozenset({"a", "an", "the", "of", "to", "for", "at", "in", "on", "by", "with", "from",
                     "my", "your", "our", "their", "his", "her", "its", "this", "that", "these",
                     "those", "mr.", "mrs.", "ms.", "dr.", "i", "i'm", "we", "you", "is", "are",
                     "was", "be", "not", "no"})


@dataclass(frozen=True, slots=True)
class CaptionRules:
    """The captioner's rules; every one can be changed.

    Attributes:
        max_chars_per_line: line length limit (characters, not bytes).
        max_lines: lines per cue.
        min_duration: shortest cue (seconds); 5/6 s = 20 frames at 24 fps.
        max_duration: longest cue (seconds).
        max_cps: reading speed limit, characters (line breaks excluded) per second.
        min_gap: gap between consecutive cues (seconds); 2 frames at 24 fps.
        max_lead_in: how early (seconds) a short cue may appear before its first word.
        pause: a silence (seconds) between words that counts as a clause boundary.
        allow_speaker_overlap: cues of different speakers may overlap when the speech does
            (barge-in); otherwise the later cue waits for the earlier one.
        interruption_mark: what ends a sentence cut by a ``clear``.
    """

    max_chars_per_line: int = 42
    max_lines: int = 2
    min_duration: float = 5 / 6
    max_duration: float = 7.0
    max_cps: float = 20.0
    min_gap: float = 2 / 24
    max_lead_in: float = 0.5
    pause: float = 0.3
    allow_speaker_overlap: bool = True
    interruption_mark: str = "—"

    def __post_init__(self) -> None:
        if self.max_chars_per_line < 1 or self.max_lines < 1:
            raise ValueError("max_chars_per_line and max_lines must be at least 1")
        if not 0 < self.min_duration <= self.max_duration:
            raise ValueError("need 0 < min_duration <= max_duration")
        if self.max_cps <= 0 or self.min_gap < 0 or self.max_lead_in < 0:
            raise ValueError("max_cps must be positive, min_gap and max_lead_in not negative")


#: Cue times are multiples of this (seconds): the coarsest precision of the caption formats (ASS
#: stores centiseconds), so every format stores them exactly and keeps every rule they keep
#: (rounded when written, a cue 83.3 ms before the next one came out 80 ms before it in ASS).
GRID = 0.01

#: Each :class:`CaptionRules` field and its type: the caption renderers' options.
RULE_OPTIONS: dict[str, type] = {f.name: type(f.default) for f in fields(CaptionRules)}


def caption_rules(options: dict[str, Any]) -> CaptionRules:
    """The :class:`CaptionRules` with the fields given among ``options`` (already typed).

    Raises:
        RendererError: values the rules refuse (``max_lines=0``...).
    """
    try:
        return CaptionRules(**{k: v for k, v in options.items() if k in RULE_OPTIONS})
    except ValueError as exc:
        raise RendererError(f"caption options: {exc}") from None


@dataclass(frozen=True, slots=True)
class CueWord:
    """A word as displayed in a cue: ``cue.lines[line][offset:offset + len(text)] == text``.

    ``start``/``end`` are the word's times on the session clock (not clipped to the cue).
    """

    text: str
    start: float
    end: float
    line: int
    offset: int


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption: a speaker's lines shown from ``start`` to ``end`` (seconds, session clock).

    ``interrupted`` is True for the cue a ``clear`` cut: it ends at the clear, with the
    interruption mark. ``utterance`` is the index of its utterance in ``timeline.utterances``.
    """

    speaker: str
    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[CueWord, ...]
    interrupted: bool = False
    utterance: int = -1

    @property
    def text(self) -> str:
        """The lines joined with newlines."""
        return "\n".join(self.lines)

    @property
    def chars(self) -> int:
        """Characters for the reading-speed rule (line breaks not counted)."""
        return sum(len(line) for line in self.lines)


@dataclass(slots=True)
class _Unit:
    text: str
    start: float
    end: float


@dataclass(slots=True)
class _Draft:
    speaker: str
    units: list[_Unit]
    lines: list[list[_Unit]]
    start: float
    end: float
    natural_end: float  # when its speech ends: last word end, or the clear
    fixed_end: bool  # cut by a clear: ends exactly there
    utterance: int


def segment(timeline: Timeline, rules: CaptionRules | None = None) -> tuple[Cue, ...]:
    """Cut the heard words of ``timeline`` into caption cues.

    Args:
        timeline: the session timeline; only ``played`` words are used.
        rules: the captioning rules (default :class:`CaptionRules`).

    Returns:
        The cues in order of start time.
    """
    rules = rules or CaptionRules()
    order = sorted(range(len(timeline.utterances)), key=lambda i: timeline.utterances[i].start)
    units_of = {i: _units(timeline.utterances[i], rules) for i in order}
    starts = [(units_of[i][0].start, i) for i in order if units_of[i]]
    drafts: list[_Draft] = []
    for i in order:
        units = units_of[i]
        if not units:
            continue
        u = timeline.utterances[i]
        cut = _was_cut(u)
        later = [s for s, j in starts if s > units[0].start and j != i]
        horizon = min(later, default=math.inf)
        drafts.extend(_cut_utterance(i, u.speaker, units, cut, u.end, horizon, rules))
    drafts.sort(key=lambda d: (d.start, d.utterance))
    _time(drafts, rules)
    return tuple(_freeze(d) for d in drafts)


# --- words → display units ---------------------------------------------------------------------
def _was_cut(u: Utterance) -> bool:
    """True when a clear cut speech short (not just trailing silence)."""
    heard = u.heard_words
    if not u.interrupted or not heard:
        return False
    return len(heard) < len(u.words) or heard[-1].end >= u.end - 1e-3


def _units(u: Utterance, rules: CaptionRules) -> list[_Unit]:
    """Heard words as display units: a whitespace token with its punctuation, its time span."""
    heard = u.heard_words
    if not heard:
        return []
    text = u.text
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    token_starts = [a for a, _ in tokens]
    groups: list[tuple[int, list]] = []  # (token index or -1, words)
    for w in heard:
        ok = 0 <= w.char_start < w.char_end <= len(text) and tokens
        ti = bisect.bisect_right(token_starts, w.char_start) - 1 if ok else -1
        if ti >= 0 and groups and groups[-1][0] == ti:
            groups[-1][1].append(w)
        else:
            groups.append((ti, [w]))
    units: list[_Unit] = []
    prev_ti = -1
    for gi, (ti, ws) in enumerate(groups):
        if ti < 0:
            label = " ".join(w.word for w in ws).strip()
        else:
            a, b = tokens[ti]
            partial = any(not w.played and a <= w.char_start < b for w in u.words)
            label = text[a:ws[-1].char_end] if partial else text[a:b]
            # tokens without a timed word between two heard ones (punctuation, a word the
            # aligner skipped) ride along with the earlier one: no text is lost
            between = [text[x:y] for x, y in tokens[prev_ti + 1:ti]] if prev_ti >= 0 else []
            if between and units:
                units[-1].text += " " + " ".join(between)
            elif gi == 0 and ti > 0:
                lead = [text[x:y] for x, y in tokens[:ti] if _WORDLESS.match(text[x:y])]
                label = " ".join(lead[-1:] + [label])
            prev_ti = ti
        if not label:
            continue
        start, end = min(w.start for w in ws), max(w.end for w in ws)
        units.append(_Unit(label, start, end))
    if units and prev_ti >= 0 and len(heard) == len(u.words):  # trailing ")", "👍", "..."
        units[-1].text = " ".join([units[-1].text] + [text[x:y] for x, y in tokens[prev_ti + 1:]])
    if units and _was_cut(u):
        stem = _TRAILING_PUNCT.sub("", units[-1].text) or units[-1].text
        units[-1].text = stem + rules.interruption_mark
    return _split_long(units, rules.max_chars_per_line)


def _split_long(units: list[_Unit], width: int) -> list[_Unit]:
    """Break units wider than a line into line-sized pieces, times shared out by length."""
    out: list[_Unit] = []
    for x in units:
        if len(x.text) <= width:
            out.append(x)
            continue
        n = len(x.text)
        for a in range(0, n, width):
            b = min(n, a + width)
            out.append(_Unit(x.text[a:b], x.start + (x.end - x.start) * a / n,
                             x.start + (x.end - x.start) * b / n))
    return out


# --- breaking: dynamic programming over unit boundaries ----------------------------------------
def _break_cost(units: list[_Unit], k: int, rules: CaptionRules) -> float:
    """Cost of a break after unit ``k`` (0: sentence end ... 4: mid-phrase)."""
    if k >= len(units) - 1:
        return 0.0
    text = units[k].text
    if _SENTENCE_END.search(text):
        return 0.0
    cost = 4.0
    following = units[k + 1].text
    if _CLAUSE_END.search(text):
        cost = 1.0
    elif following.lower().strip("\"'“‘(") in _CONJUNCTIONS:
        cost = 2.0
    elif text.lower() in _STICKY or (text[:1].isupper() and following[:1].isupper()):
        cost = 5.5  # keeps "the | house" and "Riverside | Bistro" together
    if units[k + 1].start - units[k].end >= rules.pause:
        cost = min(cost, 1.0)
    return cost


def _dangling(brk: list[float], last_end: list[int], a: int, b: int) -> float:
    """Penalty for units a..b-1 ending mid-phrase one or two words after a sentence end.

    ``last_end[k]`` is the last index <= k where a sentence ends (-1 if none).
    """
    if brk[b - 1] == 0.0 or b < 2:
        return 0.0
    return 3.0 if last_end[b - 2] >= max(a, b - 3) else 0.0


def _layout(units: list[_Unit], brk: list[float], last_end: list[int], prefix: list[int],
            i: int, j: int, rules: CaptionRules) -> tuple[float, list[list[_Unit]]] | None:
    """Best split of units[i:j] into at most ``max_lines`` lines, or None if they cannot fit.

    ``prefix[k]`` is the length of units[:k] plus one space after each.
    """
    width = rules.max_chars_per_line

    def span(a: int, b: int) -> int:  # characters of units a..b-1 (relative) joined by spaces
        return prefix[i + b] - prefix[i + a] - 1

    n = j - i
    if span(0, n) <= width:
        return 0.0, [units[i:j]]
    total = span(0, n)
    found: list[tuple[float, list[int]]] = []
    for count in range(2, rules.max_lines + 1):
        if total > count * (width + 1) - 1:
            continue  # cannot fit in this many lines
        ideal = total / count  # balanced lines read best
        # layer[b]: (cost, cuts) laying out units 0..b-1 in the lines so far
        layer: dict[int, tuple[float, list[int]]] = {0: (0.0, [])}
        for row in range(count):
            nxt: dict[int, tuple[float, list[int]]] = {}
            for a, (cost, cuts) in layer.items():
                # the lines left after this one must be able to hold the rest
                rest = (count - row - 1) * (width + 1)
                for b in range(a + 1, n + 1) if row < count - 1 else (n,):
                    if span(a, b) > width:
                        break
                    if total - span(0, b) - 1 > rest:
                        continue
                    c = (cost + (brk[i + a - 1] if a else 0.0)
                         + _dangling(brk, last_end, i + a, i + b)
                         + 3.0 * abs(span(a, b) - ideal) / width)
                    if b - a == 1 and n > 2:
                        c += 5.0  # one-word orphan line
                    if b not in nxt or c < nxt[b][0]:
                        nxt[b] = (c, cuts + [a])
            layer = nxt
        if n in layer:
            found.append(layer[n])
    if not found:
        return None
    cost, cuts = min(found, key=lambda x: x[0])
    cuts = cuts + [n]
    return cost, [units[i + cuts[k]:i + cuts[k + 1]] for k in range(len(cuts) - 1)]


def _cut_utterance(index: int, speaker: str, units: list[_Unit], cut: bool, clear: float,
                   horizon: float, rules: CaptionRules) -> list[_Draft]:
    n = len(units)
    brk = [_break_cost(units, k, rules) for k in range(n)]
    last_end, prefix = [], [0]
    for k in range(n):
        last_end.append(k if brk[k] == 0.0 else (last_end[-1] if k else -1))
        prefix.append(prefix[-1] + len(units[k].text) + 1)
    best: list[tuple[float, int, list[list[_Unit]]] | None] = [None] * (n + 1)
    best[0] = (0.0, 0, [])
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if best[i] is None:
                continue
            if j - i > 1 and _speech_end(units, i, j, n, cut, clear, rules) \
                    - units[i].start > rules.max_duration:
                break
            laid = _layout(units, brk, last_end, prefix, i, j, rules)
            if laid is None:
                if j - i > 1:
                    break
                laid = (0.0, [units[i:j]])  # cannot happen after _split_long; kept for safety
            cost = best[i][0] + laid[0] + 1.5 * brk[j - 1] + 1.0 + _dangling(brk, last_end, i, j)
            if j - i <= 2 and brk[j - 1] == 0.0 and i > 0 and brk[i - 1] > 1.0:
                cost += 3.0  # a sentence's last word or two alone after a mid-phrase cut            # the time this cue could be shown: up to the next cue, within max_duration
            if j < n:
                room = units[j].start - rules.min_gap
            else:
                room = _speech_end(units, i, j, n, cut, clear, rules) if cut else \
                    horizon - rules.min_gap
            shown = min(room, units[i].start + rules.max_duration) - units[i].start
            shown = max(shown, units[j - 1].end - units[i].start, 1e-3)
            chars = sum(len(x.text) for x in units[i:j]) + (j - i) - len(laid[1])
            # hard rules: only broken when no other cut keeps them
            if shown < rules.min_duration:
                cost += 10.0 + 10.0 * (rules.min_duration - shown) / rules.min_duration
            if chars / shown > rules.max_cps:
                cost += 10.0 + min(20.0, 20.0 * (chars / shown / rules.max_cps - 1.0))
            if j - i == 1 and n > 1:
                cost += 3.0  # one-word orphan cue
            if best[j] is None or cost < best[j][0]:
                best[j] = (cost, i, laid[1])
    drafts = []
    j = n
    while j > 0:
        entry = best[j]
        assert entry is not None
        _, i, lines = entry
        last = j == n
        natural = _speech_end(units, i, j, n, cut, clear, rules)
        drafts.append(_Draft(speaker, units[i:j], lines, units[i].start, natural, natural,
                             last and cut, index))
        j = i
    drafts.reverse()
    return drafts


def _speech_end(units: list[_Unit], i: int, j: int, n: int, cut: bool, clear: float,
                rules: CaptionRules) -> float:
    """When the cue of units[i:j] stops being spoken: the clear for the cut one (unless a long
    silence came before the clear: then max_duration after it starts), else its last word."""
    if j == n and cut:
        return min(clear, max(units[j - 1].end, units[i].start + rules.max_duration))
    return units[j - 1].end


# --- timing: minimum duration, reading speed, gaps ----------------------------------------------
def _up(t: float) -> float:
    """``t`` rounded up to :data:`GRID`."""
    return round(math.ceil(t / GRID - 1e-6) * GRID, 6)


def _down(t: float) -> float:
    """``t`` rounded down to :data:`GRID`."""
    return round(math.floor(t / GRID + 1e-6) * GRID, 6)


def _time(drafts: list[_Draft], rules: CaptionRules) -> None:
    """Set each draft's display end (and lead-in start) in time order, on :data:`GRID`.

    Each time is rounded the way that keeps the rules: a start down (a cue never shows after
    its first word), a speech end up, a clear down (never shown after it); the gap, the
    shortest duration and the reading time are rounded up, so that they hold on the grid."""
    gap, shortest = _up(rules.min_gap), _up(rules.min_duration)
    for d in drafts:
        d.start = _down(d.start)
    for k, d in enumerate(drafts):
        nxt = _next_blocking(drafts, k, rules)
        limit = nxt.start - gap if nxt is not None else math.inf
        chars = sum(len(x.text) for x in d.units) + len(d.units) - len(d.lines)
        reading = _up(chars / rules.max_cps)
        if d.fixed_end:
            d.end = max(_down(d.natural_end), d.start + GRID)
        else:
            natural = _up(d.natural_end)
            want = max(natural, d.start + shortest, d.start + reading)
            want = min(want, max(_down(d.start + rules.max_duration), natural))
            floor = d.units[-1].start + min(0.1, (d.units[-1].end - d.units[-1].start) / 2)
            d.end = min(want, limit)
            if d.end < floor:  # the next cue must wait for this one's last word
                d.end = max(natural, d.start + GRID)
                if nxt is not None:
                    nxt.start = d.end + gap
        d.end = max(d.end, d.start + GRID)
        if nxt is not None and nxt.start < d.end + gap - 1e-9:  # e.g. speech starting at a clear
            # a cue cut by a clear still ends there: the gap gives way if speech is that short
            nxt.start = min(d.end + gap, _down(nxt.natural_end) - GRID) if nxt.fixed_end \
                else d.end + gap
        need = max(shortest, reading)
        if d.end - d.start < need - 1e-9:  # too short or too fast to read: appear a little early
            prev = _prev_blocking(drafts, k, rules)
            earliest = max(_up(d.start - rules.max_lead_in), prev.end + gap if prev else 0.0,
                           0.0, _up(d.end - rules.max_duration))
            d.start = max(min(d.start, d.end - need), earliest)
    drafts.sort(key=lambda d: (d.start, d.utterance))


def _blocks(a: _Draft, b: _Draft, rules: CaptionRules) -> bool:
    """Whether ``b`` (starting after ``a``) must keep its distance from ``a``."""
    if a.speaker == b.speaker or not rules.allow_speaker_overlap:
        return True
    # other speaker: apart unless their speech really overlaps (by more than the gap)
    return b.units[0].start >= a.natural_end - rules.min_gap


def _next_blocking(drafts: list[_Draft], k: int, rules: CaptionRules) -> _Draft | None:
    return next((d for d in drafts[k + 1:] if _blocks(drafts[k], d, rules)), None)


def _prev_blocking(drafts: list[_Draft], k: int, rules: CaptionRules) -> _Draft | None:
    return next((d for d in reversed(drafts[:k]) if _blocks(d, drafts[k], rules)), None)


def _freeze(d: _Draft) -> Cue:
    lines: list[str] = []
    words: list[CueWord] = []
    for li, line in enumerate(d.lines):
        offset = 0
        for x in line:
            words.append(CueWord(x.text, x.start, x.end, li, offset))
            offset += len(x.text) + 1
        lines.append(" ".join(x.text for x in line))
    return Cue(d.speaker, round(d.start, 6), round(d.end, 6), tuple(lines), tuple(words),
               d.fixed_end, d.utterance)

