"""The transcript as the user has heard it: what the emulator's ``update`` events show.

The call record (:class:`aligner.emulator.calls.Turn`) holds everything said; an update shows
it as it reached the user's ears, which is what Retell's SDK documents ("the transcript ...
in an incremental way"):

- an agent turn grows word by word as its words start to play on the client's playback clock,
  and shows its whole text (punctuation included) once its last chunk has played; a turn cut by
  a barge-in shows what was played;
- a user turn shows the words recognised so far, then the final words;
- the list is append-only, in the order things were said: nothing is shown after a user
  utterance that is still being recognised and has no words yet, so its entry never appears
  in front of entries a client already has.

Sans-I/O: times are call seconds given by the caller.

>>> from aligner.emulator.calls import Turn
>>> hello = SpokenTurn(Turn("agent", "Hello, there.", [("Hello", 0.0, 0.4), ("there", 0.5, 0.9)]),
...                    spans=[(0, 5), (7, 12)], play_end=1.0, complete=True)
>>> [heard_transcript([hello], t)[0]["content"] for t in (0.1, 0.6, 1.0)]
['Hello', 'Hello, there', 'Hello, there.']
>>> next_change([hello], 0.6)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .calls import Turn

__all__ = ["SpokenTurn", "heard_transcript", "next_change"]


@dataclass(slots=True, eq=False)
class SpokenTurn:
    """A turn being said and how far it has been heard.

    Attributes:
        turn: the call record's turn (its ``words`` are agent words with their play times).
        response_id: the agent response it speaks (agent turns).
        spans: agent turns: ``(char_start, char_end)`` of each word in ``turn.content``.
        play_end: agent turns: call time when its audio sent so far has played.
        complete: agent turns: every chunk of the response was sent (or it was cut); user
            turns: recognition has finished.
    """

    turn: Turn
    response_id: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)
    play_end: float = 0.0
    complete: bool = False

    def heard(self, now: float) -> str:
        """The part of the turn's text the user has heard at ``now``."""
        turn = self.turn
        if turn.role == "user" or (self.complete and now >= self.play_end):
            return turn.content
        started = sum(1 for _, start, _ in turn.words if start <= now)
        return turn.content[:self.spans[started - 1][1]] if started else ""


def heard_transcript(turns: list[SpokenTurn], now: float) -> list[dict]:
    """The ``transcript`` of an update at ``now``: ``[{"role", "content"}]``, in order."""
    out = []
    for spoken in turns:
        if spoken.turn.role == "user" and not spoken.turn.content and not spoken.complete:
            break  # words still to come: what follows must not show before them
        content = spoken.heard(now)
        if content:
            out.append({"role": spoken.turn.role, "content": content})
    return out


def next_change(turns: list[SpokenTurn], now: float) -> float | None:
    """The next call time after ``now`` at which the heard transcript grows by itself (a word
    starts playing, a turn's audio ends), or None."""
    times = []
    for spoken in turns:
        if spoken.turn.role != "agent":
            continue
        times += [start for _, start, _ in spoken.turn.words if start > now]
        if spoken.complete and spoken.play_end > now:
            times.append(spoken.play_end)
    return min(times, default=None)
