"""``aligner replay``: feed a capture back through the codec and print its events."""

from __future__ import annotations

import argparse
import sys

HELP = "replay a capture through the protocol codec and print its events"
EXAMPLES = """examples:
  aligner replay out/capture                 # one line per event: time, direction, event
  aligner replay out/capture --json          # JSON lines (audio as byte counts)
  aligner replay out/capture --realtime      # paced on the session clock, as it happened
  aligner replay out/capture --summary       # counts only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="a capture directory (from aligner record / run)")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--summary", action="store_true", help="print counts per event type")
    parser.add_argument("--realtime", action="store_true", help="pace on the session clock")
    parser.add_argument("--no-audio", action="store_true",
                        help="leave out audio frames (agent audio without text, mic audio)")


def describe(event) -> dict:
    """A JSON-ready summary of an event: its type and fields, bytes as their length."""
    import dataclasses

    out = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, bytes | bytearray):
            out[f.name + "_bytes"] = len(value)
        elif dataclasses.is_dataclass(value) or (isinstance(value, tuple) and value
                                                 and dataclasses.is_dataclass(value[0])):
            out[f.name] = ([dataclasses.asdict(v) for v in value] if isinstance(value, tuple)
                           else dataclasses.asdict(value))
        else:
            out[f.name] = value
    return out


def json_line(stamped) -> str:
    """One event as the JSON line ``aligner replay --json`` prints."""
    import json

    return json.dumps({"t": stamped.t, "direction": stamped.direction,
                       **describe(stamped.event)}, default=str, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    import collections
    import time

    from ..wire import capture
    from ..wire.events import AgentAudio, MicAudio

    cap = capture.read(args.capture)
    counts: collections.Counter = collections.Counter()
    start = time.monotonic()
    for st in cap.events():
        counts[f"{st.direction} {type(st.event).__name__}"] += 1
        if args.summary or (args.no_audio and isinstance(st.event, AgentAudio | MicAudio)):
            continue
        if args.realtime:
            time.sleep(max(0.0, st.t - (time.monotonic() - start)))
        if args.json:
            print(json_line(st))
        else:
            d = describe(st.event)
            kind = d.pop("type")
            fields = " ".join(f"{k}={v!r:.80}" for k, v in d.items())
            print(f"{st.t:9.3f} {st.direction:3} {kind} {fields}")
    if args.summary:
        for key, n in sorted(counts.items()):
            print(f"{n:7d} {key}")
    info = cap.info
    close = cap.close
    print(f"{sum(counts.values())} events, {cap.duration:.2f} s, call {info.get('call_id')}, "
          f"{info.get('audio_encoding')} @ {info.get('sample_rate')} Hz; "
          + (f"closed by {close.by} with {close.code} {close.reason!r}" if close
             else "no close recorded (recorder stopped abruptly)")
          + (f"; {cap.skipped} unreadable line(s) skipped" if cap.skipped else ""),
          file=sys.stderr)
    return 0
