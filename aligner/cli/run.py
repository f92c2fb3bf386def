"""``aligner run``: the demo call — emulator, scripted user with a barge-in, every output."""

from __future__ import annotations

import argparse
import sys

HELP = "run the demo call (embedded emulator + scripted user) and build every output"
EXAMPLES = """examples:
  aligner run                       # outputs in ./out/ (capture, timeline, subtitles, visemes...)
  aligner run --out /tmp/demo       # somewhere else
  aligner run --to srt,vtt          # only these renderers
  aligner run --quiet               # no live event lines
  aligner run --voice espeak        # the agent speaks with espeak-ng instead of hibari

The user's side is user1.wav, user2_bargein.wav (played ~1.5 s into the agent's long offer: a
barge-in) and user3.wav, shipped with the package (aligner/data/samples; samples/ in a checkout),
so it runs from any folder. Finishes in well under a minute.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", default="out", help="output folder (default ./out)")
    parser.add_argument("--to", default=None,
                        help="comma-separated renderer names (default: aligner.cli.demo.RENDERERS, "
                             "i.e. every available renderer)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no live event lines")
    parser.add_argument("--voice", default=None,
                        help="the agent's voice: hibari (default: a small neural voice; espeak-ng "
                             "if hibari-tts is not installed) or espeak (espeak:VOICE for another "
                             "espeak-ng voice)")


def run(args: argparse.Namespace) -> int:
    from ..errors import AlignerError
    from ..speech.voices import check
    from .demo import RENDERERS, run_demo
    from .record import progress_printer

    names = tuple(n.strip() for n in args.to.split(",") if n.strip()) if args.to else RENDERERS
    try:
        voice = check(args.voice) if args.voice else None
    except ValueError as exc:
        raise AlignerError(str(exc)) from exc
    result = run_demo(args.out, renderers=names, on_event=progress_printer(args.quiet),
                      voice=voice)
    print(f"\nDone: the call took {result.call_seconds:.1f} s. Outputs in {result.out_dir}/:")
    for step, paths in result.outputs.items():
        print(f"  {step:18} {', '.join(str(p) for p in paths)}")
    for step, why in result.failures.items():
        print(f"  {step:18} FAILED: {why}")
    if result.failures:
        print(f"{len(result.failures)} step(s) failed; the others completed.", file=sys.stderr)
    return 1 if result.failures else 0
