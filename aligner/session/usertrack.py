"""The user side of a session: mic audio as sent, voice activity, and user turns from updates.

Pure and clock-free. :class:`UserAudio` places mic frames on the session clock when they were
sent; :class:`UserTurns` follows the ``update`` transcripts and turns each user turn into an
:class:`~aligner.timeline.Utterance`: with the update's own ``words`` when it carries them, else
aligned (:func:`aligner.align`) on the span of user audio that the turn transcribes.

Finding that span: the user audio is cut into voiced *islands*: 20 ms frames louder than
``threshold_db`` dBFS and 12 dB above the noise floor (tracked over past frames: it follows every
dip at once and rises at most 3 dB/s), pauses shorter than ``merge_gap`` joined. An island
belongs to the first user turn whose transcript was still changing when the island began (an ASR
cannot transcribe speech before it is spoken) and that appeared at most ``lookback`` seconds
after the island ended; islands no update has covered yet are *pending* (the user is talking).

>>> import numpy as np
>>> a = UserAudio(16000)
>>> a.add(1.0, np.full(8000, 3000, np.int16))
>>> a.add(1.5, np.zeros(8000, np.int16))
>>> a.islands()
[(1.0, 1.5)]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..timeline import Char, Phone, Utterance, Word
from ..wire.events import TranscriptTurn

__all__ = ["UserAudio", "UserTurn", "UserTurns"]

logger = logging.getLogger(__name__)

_FRAME = 0.02  # seconds per voice-activity frame
_FLOOR_RISE = 10 ** (3 / 20 * _FRAME)  # the noise floor rises 3 dB per second at most
_FLOOR_MARGIN = 10 ** (12 / 20)  # voiced: 12 dB above the floor
_STALL_WINDOW = 2.0  # seconds after a pause in sending in which a burst can still close it


class UserAudio:
    """Mic audio on the session clock, sample 0 = time 0, silence where nothing was sent.

    A frame sent within ``join_tolerance`` seconds of the previous frame's end continues it
    (timestamps jitter; real-time senders should not leave clicks of silence); a later frame is
    placed at its send time, after silence; an early one right after the previous (never
    overlapping). When frames then come faster than real time (a sender catching up after a
    stall: the mic kept recording while nothing was sent), the stretch since the pause moves
    back into the silence, so the audio keeps its real timing instead of drifting late.

    Args:
        sample_rate: the call's rate (Hz).
        join_tolerance: see above (seconds).
        threshold_db: frame RMS (dBFS) above which a frame may be voiced (if also 12 dB above
            the noise floor).
        merge_gap: voiced frames closer than this (seconds) form one island.
    """

    def __init__(self, sample_rate: int, *, join_tolerance: float = 0.05,
                 threshold_db: float = -40.0, merge_gap: float = 0.5) -> None:
        self.sample_rate = sample_rate
        self.join_tolerance = join_tolerance
        self.merge_gap = merge_gap
        self._threshold = 32768.0 * 10 ** (threshold_db / 20)
        self._frame = max(1, round(_FRAME * sample_rate))
        self._merge = max(1, round(merge_gap / _FRAME))  # frames
        self._data = np.zeros(0, np.int16)
        self._len = 0
        self._run_start = 0  # sample where the frames since the last pause in sending begin
        self._gap = 0  # samples of silence inserted at that pause
        self._voiced: list[bool] = []  # per complete frame below _len
        self._floors: list[float] = []  # noise floor (RMS) after each frame
        self._runs: list[list[int]] = []  # voiced islands as [first frame, last frame + 1]

    @property
    def end(self) -> float:
        """Session time where the audio sent so far ends."""
        return self._len / self.sample_rate

    @property
    def settled(self) -> float:
        """Session time before which the audio will not move any more (a burst may still pull
        the frames since the last pause back into its silence)."""
        if self._gap and self._len - self._run_start <= _STALL_WINDOW * self.sample_rate:
            return (self._run_start - self._gap) / self.sample_rate
        return math.inf

    def add(self, t: float, samples: np.ndarray) -> None:
        """Place a frame sent at ``t``."""
        if len(samples) == 0:
            return
        sent = max(0, round(t * self.sample_rate))
        tol = self.join_tolerance * self.sample_rate
        at = self._len
        if sent - at > tol:  # a pause in sending: silence until now
            self._gap, self._run_start, at = sent - at, sent, sent
        need = at + len(samples)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data), 1 << 16), np.int16)
            grown[:self._len] = self._data[:self._len]
            self._data = grown
        self._data[at:need] = samples
        self._len = need
        late = at - sent
        if (late > 0 and self._gap
                and self._len - self._run_start <= _STALL_WINDOW * self.sample_rate):
            self._close_gap(min(late, self._gap))
        self._update_voicing()

    def _close_gap(self, k: int) -> None:
        """Move the frames since the last pause ``k`` samples back into its silence."""
        a = self._run_start
        self._data[a - k:self._len - k] = self._data[a:self._len].copy()
        self._data[self._len - k:self._len] = 0
        self._len -= k
        self._run_start -= k
        self._gap -= k
        frame = (a - k) // self._frame  # voicing from here on is stale
        del self._voiced[frame:], self._floors[frame:]
        while self._runs and self._runs[-1][0] >= frame:
            self._runs.pop()
        if self._runs and self._runs[-1][1] > frame:
            first = self._runs[-1][0]
            self._runs[-1][1] = first + 1 + max(i for i, v in enumerate(self._voiced[first:frame])
                                                if v)

    def _update_voicing(self) -> None:
        done, n = len(self._voiced), self._len // self._frame
        if n <= done:
            return
        x = self._data[done * self._frame:n * self._frame].astype(np.float64)
        x = x.reshape(-1, self._frame)
        rms = np.sqrt((x * x).mean(axis=1))
        floor = self._floors[-1] if self._floors else None
        for i, r in enumerate(rms.tolist(), done):
            floor = max(1.0, r if floor is None else min(r, floor * _FLOOR_RISE))
            voiced = r > self._threshold and r > floor * _FLOOR_MARGIN
            self._voiced.append(voiced)
            self._floors.append(floor)
            if not voiced:
                continue
            if self._runs and i - self._runs[-1][1] < self._merge:
                self._runs[-1][1] = i + 1
            else:
                self._runs.append([i, i + 1])

    def samples(self) -> np.ndarray:
        """The track so far (int16, a copy)."""
        return self._data[:self._len].copy()

    def span(self, start: float, end: float) -> np.ndarray:
        """Samples between two session times."""
        a = max(0, round(start * self.sample_rate))
        b = min(self._len, round(end * self.sample_rate))
        return self._data[a:max(a, b)].copy()

    def islands(self) -> list[tuple[float, float]]:
        """Voiced stretches ``(start, end)`` in seconds, in order (kept up to date as frames
        arrive, so live use stays linear)."""
        fs = self._frame / self.sample_rate
        return [(a * fs, b * fs) for a, b in self._runs]


@dataclass(slots=True)
class UserTurn:
    """A user turn of the transcript: ``index``-th user turn, when it appeared and last changed."""

    index: int
    content: str
    words: tuple = ()
    first_seen: float = 0.0
    last_changed: float = 0.0
    followed: bool = False  # a later turn exists in the transcript: this one is final


Aligner = Callable[[np.ndarray, int, str], Any]


class UserTurns:
    """User turns from the latest ``update`` transcript, and their utterances.

    Args:
        audio: the user's :class:`UserAudio`.
        align: ``align(pcm, sample_rate, text)`` for turns without words, or None (no timings:
            the utterance then only has its span).
        lookback: an island may end at most this long before its turn first appeared (seconds).
    """

    def __init__(self, audio: UserAudio, align: Aligner | None, *, lookback: float = 5.0) -> None:
        self.audio = audio
        self.lookback = lookback
        self.turns: list[UserTurn] = []
        self.seen_update = False
        self._align = align
        self._cache: dict[Any, Utterance] = {}

    def update(self, t: float, transcript: tuple[TranscriptTurn, ...]) -> None:
        """A transcript update at ``t`` (the whole conversation so far)."""
        self.seen_update = True
        users = [(i, turn) for i, turn in enumerate(transcript) if turn.role == "user"]
        for k, (i, turn) in enumerate(users):
            followed = i < len(transcript) - 1
            if k < len(self.turns):
                old = self.turns[k]
                if (old.content, old.words) != (turn.content, turn.words):
                    old.content, old.words, old.last_changed = turn.content, turn.words, t
                old.followed = followed
            else:
                self.turns.append(UserTurn(k, turn.content, turn.words, t, t, followed))

    def spans(self) -> tuple[list[tuple[float, float] | None], list[tuple[float, float]]]:
        """Each turn's audio span (or None), and the voiced islands no update covers yet."""
        islands = self.audio.islands()
        spans: list[list[float] | None] = [None] * len(self.turns)
        pending = []
        k = 0
        for a, b in islands:
            while k < len(self.turns) and self.turns[k].last_changed + 0.1 < a:
                k += 1
            if k == len(self.turns):
                pending.append((a, b))
                continue
            if b < self.turns[k].first_seen - self.lookback:
                continue  # long before the turn appeared: not its speech (a cough, noise)
            if spans[k] is None:
                spans[k] = [a, b]
            else:
                spans[k][1] = b
        return [tuple(s) if s else None for s in spans], pending

    def final_until(self, now: float, finished: bool = False) -> float:
        """Session time before which the user utterances will not change.

        Held at the start of speech no update covers yet and of the last user turn (its
        transcript may still change), but for ``lookback`` seconds at most: speech nobody
        transcribed by then is not going to be, and a turn unchanged that long is taken as final.
        Also held where the audio may still move (:attr:`UserAudio.settled`).
        """
        if finished or not self.seen_update:
            return math.inf
        spans, pending = self.spans()
        out = min([a for a, b in pending if b > now - self.lookback] + [self.audio.settled])
        prev_end = 0.0
        for turn, span in zip(self.turns, spans, strict=True):
            s, e = span if span else self._fallback(turn, prev_end)
            if turn.words:
                s = min(s, min(float(w.start) for w in turn.words))
            prev_end = max(prev_end, e)
            if not turn.followed and now - turn.last_changed <= self.lookback:
                out = min(out, s)
        return out

    def utterances(self, finished: bool = False) -> list[Utterance]:
        """One utterance per non-empty user turn, on the session clock.

        While the last turn may still change (live, not ``finished``), it is aligned again only
        when its text changes, not on every new frame of its audio.
        """
        spans, _ = self.spans()
        out = []
        prev_end = 0.0
        cache, self._cache = self._cache, {}  # keep only what the current turns use
        for turn, span in zip(self.turns, spans, strict=True):
            if not turn.content.strip():
                continue
            if turn.words:
                key: tuple = (turn.content, turn.words)
                u = cache.get(key) or self._from_words(turn)
            else:
                s, e = span if span else self._fallback(turn, prev_end)
                final = finished or turn.followed
                key = (turn.content, s, e) if final else (turn.content, turn.index)
                u = cache.get(key) or self._aligned(turn.content, s, e)
            self._cache[key] = u
            prev_end = max(prev_end, u.end)
            out.append(u)
        return out

    def _fallback(self, turn: UserTurn, prev_end: float) -> tuple[float, float]:
        """No voiced audio found: assume the turn ended when it first appeared."""
        length = max(0.3, 0.07 * len(turn.content))
        end = max(turn.first_seen, prev_end)
        return max(prev_end, end - length), end

    def _aligned(self, text: str, start: float, end: float) -> Utterance:
        words: tuple[Word, ...] = ()
        chars: tuple[Char, ...] = ()
        phones: tuple[Phone, ...] = ()
        if self._align is not None:
            try:
                al = self._align(self.audio.span(start, end), self.audio.sample_rate, text)
            except Exception:
                logger.exception("could not align user turn %r", text[:60])
            else:
                words = tuple(Word(w.word, _r(w.start + start), _r(w.end + start), w.char_start,
                                   w.char_end, w.played, confidence=w.confidence)
                              for w in al.words)
                chars = tuple(Char(c.char, _r(c.start + start), _r(c.end + start))
                              for c in al.chars)
                phones = tuple(Phone(p.phone, _r(p.start + start), _r(p.end + start), p.word_index)
                               for p in al.phones)
        return Utterance("user", _r(start), _r(end), text, False, words, chars, phones)

    def _from_words(self, turn: UserTurn) -> Utterance:
        """The update's own word times; char offsets found in order in the content."""
        from ..speech.text import tokenize

        text = turn.content
        tokens = tokenize(text)
        given = sorted(turn.words, key=lambda w: w.start)
        words = []
        if len(tokens) == len(given):
            spans = [(tk.char_start, tk.char_end) for tk in tokens]
        else:
            spans, cursor, low = [], 0, text.lower()
            for w in given:
                needle = w.word.strip().lower()
                i = low.find(needle, cursor) if needle else -1
                if i < 0:
                    spans.append((cursor, cursor))  # not in the content: keep its time anyway
                    continue
                spans.append((i, i + len(needle)))
                cursor = i + len(needle)
        last = 0.0
        for w, (a, b) in zip(given, spans, strict=True):
            s = max(float(w.start), last)
            e = max(float(w.end), s)
            last = e
            words.append(Word(text[a:b] or w.word, _r(s), _r(e), a, b))
        chars = _chars_from_words(text, words)
        start = words[0].start if words else turn.first_seen
        end = words[-1].end if words else turn.first_seen
        return Utterance("user", start, end, text, False, tuple(words), chars)


def _chars_from_words(text: str, words: list[Word]) -> tuple[Char, ...]:
    """Spread each word's time over its characters; characters between words take the gap."""
    if not words:
        return ()
    times = np.empty(len(text) + 1)
    knots_x = [0.0]
    knots_t = [words[0].start]
    for w in words:
        knots_x += [w.char_start, w.char_end]
        knots_t += [w.start, w.end]
    knots_x.append(float(len(text)))
    knots_t.append(words[-1].end)
    times[:] = np.interp(np.arange(len(text) + 1), knots_x, knots_t)
    times = np.maximum.accumulate(times)
    return tuple(Char(ch, _r(times[i]), _r(times[i + 1])) for i, ch in enumerate(text))


def _r(x: float) -> float:
    return round(float(x), 6)
