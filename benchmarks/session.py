"""Session/timeline throughput: how fast a call's events become a timeline, batch and live.

Builds a synthetic conversation of ``--minutes`` (real espeak-ng speech: the agent's answers in
alignment chunks of three words arriving twice as fast as they play, the user's turns as 20 ms
mic frames in real time, an ``update`` after each user turn, a barge-in ``clear`` every third
answer) and feeds it to :class:`aligner.session.Session`:

- baseline: scheduling, clears, user audio and events only (``align=False``);
- batch with each alignment backend (``fallback``, ``auto``);
- live: the same plus ``timeline(audio=False)`` and ``final_until`` after every event, as a live
  renderer would poll them.

Prints seconds and multiples of real time (call duration / processing time, one core), after
an untimed warm-up that loads the pronouncing dictionary and models.

    python benchmarks/session.py --minutes 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from aligner.audio import encode, resample
from aligner.session import Session
from aligner.speech.synthesis import synthesize
from aligner.wire.events import AlignedAudio, Clear, MicAudio, Stamped, TranscriptTurn, Update

SR = 16000
AGENT = ("Sure, I can book a table for four people at seven tonight. "
         "Would you like a window seat, or somewhere quieter at the back?")
USER = "Actually make it five people please."


def conversation(minutes: float) -> list[Stamped]:
    """The events of a call of about ``minutes``, in time order."""
    a = synthesize(AGENT)
    pcm = resample(a.samples, a.sample_rate, SR)
    u = synthesize(USER, voice="en-us+f3")
    mic = resample(u.samples, u.sample_rate, SR)
    cuts = [0] + [round(a.words[i].start * SR) for i in range(3, len(a.words), 3)] + [len(pcm)]
    texts = [0] + [a.words[i].char_start for i in range(3, len(a.words), 3)] + [len(AGENT)]
    events: list[Stamped] = []
    turns: list[TranscriptTurn] = []
    t, answer = 0.2, 0
    while t < minutes * 60:
        arrival, played = t, len(pcm) / SR
        for k in range(len(cuts) - 1):
            chunk = encode(pcm[cuts[k]:cuts[k + 1]], "s16le")
            events.append(Stamped(arrival, "in", AlignedAudio(chunk, AGENT[texts[k]:texts[k + 1]])))
            arrival += (cuts[k + 1] - cuts[k]) / SR / 2
        answer += 1
        if answer % 3 == 0:  # barge-in half way through
            played /= 2
            events.append(Stamped(t + played, "in", Clear()))
        turns.append(TranscriptTurn("agent", AGENT))
        t += played + 0.6
        frames = np.concatenate([mic, np.zeros(SR // 2, np.int16)])
        for i in range(0, len(frames), SR // 50):
            events.append(Stamped(t + i / SR, "out", MicAudio(encode(frames[i:i + SR // 50],
                                                                     "s16le"))))
        t += len(frames) / SR
        turns.append(TranscriptTurn("user", USER))
        events.append(Stamped(t, "in", Update(tuple(turns), "agent_turn")))
        t += 0.3
    events.sort(key=lambda s: s.t)
    return events


def run(events: list[Stamped], live: bool, **options) -> tuple[float, int, float]:
    session = Session(SR, **options)
    start = time.perf_counter()
    for stamped in events:
        session.receive(stamped)
        if live:
            session.timeline(audio=False)
            _ = session.final_until
    timeline = session.finish()
    seconds = time.perf_counter() - start
    return seconds, sum(len(u.heard_words) for u in timeline.utterances), timeline.duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="call length (default 2)")
    args = parser.parse_args()
    events = conversation(args.minutes)
    for backend in ("fallback", "auto"):  # load dictionaries and models once, untimed
        run(events[:40], False, backend=backend)
    print(f"{len(events)} events, {events[-1].t:.0f} s of call")
    print(f"{'system':32} {'seconds':>8} {'x real time':>12} {'words heard':>12}")
    for name, live, options in (
        ("baseline: no alignment", False, {"align": False}),
        ("batch, fallback backend", False, {"backend": "fallback"}),
        ("batch, auto backend", False, {"backend": "auto"}),
        ("live (poll per event), auto", True, {"backend": "auto"}),
    ):
        seconds, words, duration = run(events, live, **options)
        print(f"{name:32} {seconds:8.2f} {duration / seconds:12.1f} {words:12d}")


if __name__ == "__main__":
    main()
