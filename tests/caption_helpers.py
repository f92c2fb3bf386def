"""Timelines from real espeak-ng speech timings, for the caption tests and benchmark."""

from __future__ import annotations

import re

from aligner.speech.synthesis import synthesize
from aligner.timeline import Phone, Timeline, TimelineEvent, Utterance, Word

__all__ = ["LINES", "conversation", "heard_words", "spoken"]

_EDGE_PUNCT = re.compile(r"^\W+|\W+$")

# A support call: agent and user turns, long enough for multi-cue utterances.
LINES = [
    ("agent", "Hi, thanks for calling Northwind Outfitters. My name is Ava, and I can help with "
              "orders, returns, and anything about your account. What can I do for you today?"),
    ("user", "Hi Ava. I ordered a rain jacket last week and it still hasn't arrived."),
    ("agent", "I'm sorry to hear that. Let me look it up. Could you read me the order number? "
              "It starts with the letters N W and is printed at the top of your confirmation "
              "email, just under the date."),
    ("user", "Sure, it's N W four four seven one two."),
    ("agent", "Thank you. I found it: one rain jacket, size medium, in forest green. It left our "
              "warehouse on Monday, but the carrier marked it as delayed because of the storm in "
              "the north, so it will probably arrive on Thursday. Would you like me to send you "
              "the tracking link by text message, or would you rather"),
    ("user", "Text is fine."),
    ("agent", "Done. You should get it in a minute. Is there anything else I can help you with?"),
    ("user", "No, that's all. Thanks!"),
    ("agent", "You're welcome. Have a great day, and enjoy the jacket when it comes!"),
]


def spoken(speaker: str, text: str, at: float, *, rate: int = 175,
           cut: float | None = None) -> Utterance:
    """An utterance of ``text`` spoken by espeak-ng from ``at`` seconds.

    ``cut`` (seconds after ``at``) plays a ``clear`` there: later words are unplayed, the word
    being spoken ends at the clear.
    """
    s = synthesize(text, rate=rate)
    clear = at + cut if cut is not None else None
    timed = _every_token(text, [(w.char_start, w.char_end, w.start, w.end) for w in s.words])
    words = heard_words(text, timed, at, clear)
    end = clear if clear is not None else at + s.duration
    phones = tuple(Phone(p.phone, at + p.start, min(at + p.end, end), p.word_index)
                   for p in s.phones if at + p.start < end)
    return Utterance(speaker, at, end, text, interrupted=clear is not None, words=tuple(words),
                     phones=phones)


def heard_words(text: str, timed, at: float, clear: float | None) -> list[Word]:
    """The words of ``text`` from ``(char_start, char_end, start, end)`` spans spoken from ``at``
    (surrounding punctuation left out); a ``clear`` at ``clear`` leaves the later words unplayed
    (``start == end == clear``) and ends the word being spoken there."""
    words = []
    for char_start, char_end, w_start, w_end in timed:
        token = text[char_start:char_end]
        core = _EDGE_PUNCT.sub("", token) or token
        a = char_start + token.find(core)
        start, end, played = at + w_start, at + w_end, True
        if clear is not None and start >= clear:
            start = end = clear
            played = False
        elif clear is not None:
            end = min(end, clear)
        words.append(Word(core, start, end, a, a + len(core), played))
    return words


def _every_token(text: str, spoken_words: list[tuple[int, int, float, float]]):
    """espeak sometimes speaks two tokens as one word ("with the"): share out its time."""
    out = []
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    by_start = {a: (a, b, s, e) for a, b, s, e in spoken_words}
    for a, b in tokens:
        if a in by_start:
            out.append(list(by_start[a]))
        elif out and _EDGE_PUNCT.sub("", text[a:b]):
            prev = out[-1]
            mid = (prev[2] + prev[3]) / 2
            out.append([a, b, mid, prev[3]])
            prev[3] = mid
    return [tuple(x) for x in out]


def conversation(lines=LINES, *, repeat: int = 1, rate: int = 175, barge_in: bool = True,
                 turn_gap: float = 0.6) -> Timeline:
    """A multi-turn call; the agent's fifth line is cut by the user (a ``clear``) if ``barge_in``."""
    utterances, events = [], []
    t = 0.5
    for r in range(repeat):
        for i, (speaker, text) in enumerate(lines):
            cut = None
            if barge_in and i == 4:
                cut = 9.0 + r % 3  # seconds into the agent's long answer
            u = spoken(speaker, text, t, rate=rate, cut=cut)
            utterances.append(u)
            if cut is not None:
                events.append(TimelineEvent(u.end, "clear"))
                t = u.end - 0.4  # the user started talking just before the clear
            else:
                t = u.end + turn_gap
    return Timeline(utterances=tuple(utterances), events=tuple(events), duration=t + 1.0)
