"""Caption conformance: violations per captioning rule (target: zero), ours against a naive peer.

Usage::

    python benchmarks/caption_conformance.py                  # generated long calls (see below)
    python benchmarks/caption_conformance.py out/timeline.json out/capture out/call.srt

Inputs: ``timeline.json`` files, capture directories (``aligner record``/``aligner run``; built
with :func:`aligner.session.build_timeline`), or subtitle files (``.srt``/``.vtt``, checked for
the rules a file alone shows). With no arguments it checks two generated long conversations:
a multi-turn support call with barge-ins timed by espeak-ng itself, and the same agent speech
recorded as a capture (alignment frames in 0.4 s chunks with a ``clear``) and rebuilt through
the capture reader, the session model and the forced aligner.

The peer is the naive captioner most tools implement: fill 42-character lines greedily, two
lines a cue, shown exactly while the words are spoken.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from aligner.timeline import Timeline  # noqa: E402
from renderers.conformance import RULES, check  # noqa: E402
from renderers.segment import CaptionRules, Cue, CueWord, segment  # noqa: E402


def naive(timeline: Timeline, width: int = 42, lines: int = 2) -> tuple[Cue, ...]:
    """The peer: greedy line filling, cue = words' span, no reading-speed or gap handling."""
    cues = []
    for ui, u in enumerate(timeline.utterances):
        rows: list[list] = [[]]
        for w in u.heard_words:
            row = rows[-1]
            if row and len(" ".join(x.word for x in row + [w])) > width:
                if len(rows) == lines:
                    cues.append(_cue(u.speaker, ui, rows))
                    rows = [[]]
                else:
                    rows.append([])
            rows[-1].append(w)
        if rows[0]:
            cues.append(_cue(u.speaker, ui, rows))
    return tuple(sorted(cues, key=lambda c: c.start))


def _cue(speaker: str, ui: int, rows: list[list]) -> Cue:
    rows = [r for r in rows if r]
    words = tuple(CueWord(w.word, w.start, w.end, li, 0) for li, r in enumerate(rows) for w in r)
    return Cue(speaker, rows[0][0].start, max(w.end for r in rows for w in r),
               tuple(" ".join(w.word for w in r) for r in rows), words, False, ui)


def long_call(minutes: float) -> Timeline:
    """A support call of about ``minutes`` minutes, espeak-ng timings, a barge-in per round."""
    from caption_helpers import LINES, conversation

    one = conversation(LINES)
    return conversation(LINES, repeat=max(1, round(minutes * 60 / one.duration)))


def captured_call(rounds: int) -> Timeline:
    """The agent's lines sent as alignment frames into a capture, rebuilt by the session model."""
    from caption_helpers import LINES

    from aligner.audio import resample
    from aligner.session import build_timeline
    from aligner.speech.synthesis import SAMPLE_RATE, synthesize
    from aligner.wire.capture import CaptureWriter

    rate, chunk = 16000, 0.4
    folder = Path(tempfile.mkdtemp(prefix="caption-bench-"))
    agent = [text for speaker, text in LINES if speaker == "agent"]
    with CaptureWriter(folder, {"audio_encoding": "s16le", "sample_rate": rate,
                                "enable_audio_alignment": True}) as w:
        t = 0.5
        for r in range(rounds):
            for k, text in enumerate(agent):
                s = synthesize(text)
                pcm = resample(s.samples, SAMPLE_RATE, rate)
                step = int(chunk * rate)
                pieces = range(0, len(pcm), step)
                for n, a in enumerate(pieces):
                    lo, hi = a / rate, (a + step) / rate
                    said = [text[x.char_start:x.char_end] for x in s.words if lo <= x.start < hi]
                    frame = {"event_type": "audio", "text": " ".join(said) + " " * bool(said),
                             "audio": base64.b64encode(pcm[a:a + step].tobytes()).decode()}
                    w.write(t + n * 0.05, "in", json.dumps(frame))  # faster than real time
                played = len(pcm) / rate
                if k == 2 and r % 2 == 0:  # the user barges in 60% into this answer
                    w.write(t + 0.6 * played, "in", "clear")
                    played = 0.6 * played
                t += played + 1.2
    return build_timeline(folder)


def _report(label: str, timeline: Timeline | None, cues, peer=None, seconds: float = 0.0) -> int:
    report = check(cues, CaptionRules(), timeline)
    total = sum(len(v) for v in report.values())
    peer_report = check(peer, CaptionRules(), timeline) if peer is not None else None
    print(f"\n== {label}: {len(cues)} cues" + (f", segmented in {seconds * 1000:.0f} ms"
                                              if seconds else ""))
    print(f"{'rule':<15}{'ours':>6}" + (f"{'naive peer':>12}" if peer is not None else ""))
    for rule in RULES:
        line = f"{rule:<15}{len(report[rule]):>6}"
        if peer_report is not None:
            line += f"{len(peer_report[rule]):>12}"
        print(line)
    print(f"{'TOTAL':<15}{total:>6}" + (f"{sum(len(v) for v in peer_report.values()):>12}"
                                        if peer_report is not None else ""))
    for rule in RULES:
        for v in report[rule][:3]:
            print(f"  {rule}: {v}")
    return total


def _from_file(path: Path) -> tuple[str, Timeline | None, tuple[Cue, ...]]:
    if path.is_dir():
        from aligner.session import build_timeline

        return f"capture {path}", build_timeline(path), ()
    if path.suffix.lower() in (".srt", ".vtt", ".ass", ".ttml"):
        from renderers.subtitles import load_subtitles

        cues = tuple(Cue(ev.name or "?", ev.start / 1000, ev.end / 1000,
                         tuple(ev.plaintext.split("\n")), ()) for ev in load_subtitles(path))
        return f"subtitles {path}", None, cues
    return f"timeline {path}", Timeline.load(path), ()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path,
                        help="timeline.json, capture directories or .srt/.vtt files")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="length of the generated espeak call (default 10)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of agent lines in the generated capture (default 3)")
    args = parser.parse_args(argv)
    jobs = []
    if args.inputs:
        for p in args.inputs:
            jobs.append(lambda p=p: _from_file(p))
    else:
        jobs.append(lambda: (f"espeak call, {args.minutes:g} min", long_call(args.minutes), ()))
        jobs.append(lambda: (f"capture -> session -> aligner, {args.rounds} rounds",
                             captured_call(args.rounds), ()))
    total = 0
    for job in jobs:
        started = time.perf_counter()
        try:
            label, timeline, cues = job()
        except Exception as exc:  # a broken input must not hide the other results
            print(f"\n== input failed: {exc!r}")
            total += 1
            continue
        built = time.perf_counter() - started
        if timeline is not None:
            t0 = time.perf_counter()
            cues = segment(timeline)
            seg = time.perf_counter() - t0
            words = sum(len(u.heard_words) for u in timeline.utterances)
            print(f"\n{label}: {len(timeline.utterances)} utterances, {words} heard words, "
                  f"{timeline.duration / 60:.1f} min (built in {built:.1f} s)")
            total += _report(label, timeline, cues, naive(timeline), seg)
        else:
            total += _report(label, None, cues)
    print(f"\nviolations in total: {total} (target 0)")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
