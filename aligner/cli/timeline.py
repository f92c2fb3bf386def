"""``aligner timeline CAPTURE``: build ``timeline.json`` (and its WAV tracks) from a capture."""

from __future__ import annotations

import argparse

HELP = "build timeline.json (+ agent.wav, user.wav) from a recorded call"
EXAMPLES = """examples:
  aligner timeline out/capture                      # writes out/capture/timeline.json
  aligner timeline out/capture --out out            # writes out/timeline.json, out/*.wav
  aligner timeline call/ --jitter-buffer 0.06 --utterance-gap 0.4 --backend fallback
  aligner timeline twilio-call/ --no-recognize      # text-less agent audio: phones, no words
  aligner timeline call/ --voice-profile voices/agent_42.json   # the agent's voice, learned
  aligner timeline call/ --adapt                    # two passes: learn the call's own voice

The schema of timeline.json is documented in docs/timeline.md.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="a capture directory (aligner record / aligner run)")
    parser.add_argument("--out", help="folder for timeline.json and the WAVs "
                                      "(default: the capture directory)")
    parser.add_argument("--jitter-buffer", type=float, default=0.0, metavar="S",
                        help="seconds the front end waits before playing a chunk (default 0)")
    parser.add_argument("--utterance-gap", type=float, default=None, metavar="S",
                        help="queue dry longer than this ends an agent utterance (default 0.5)")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "reference", "acoustic", "pocketsphinx", "fallback"),
                        help="alignment backend (default auto)")
    parser.add_argument("--voice-profile", metavar="FILE",
                        help="the agent voice's profile: used where it fits, updated with this "
                             "call and saved back (created if missing)")
    parser.add_argument("--adapt", action="store_true",
                        help="align the agent twice: first to learn the call's own voice")
    parser.add_argument("--no-align", action="store_true",
                        help="no word/char/phone timings: utterances, events and audio only")
    parser.add_argument("--no-recognize", action="store_true",
                        help="agent audio that came without text gets phones estimated from "
                             "the audio only, no words (fast; default: also words recognised "
                             "from the audio and aligned, marked source=recognized)")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..errors import CaptureError
    from ..session import DEFAULT_UTTERANCE_GAP, build_timeline, save_timeline
    from ..wire.capture import read

    if args.jitter_buffer < 0 or (args.utterance_gap is not None and args.utterance_gap < 0):
        raise CaptureError("--jitter-buffer and --utterance-gap must be >= 0")
    capture = read(args.capture)
    out = Path(args.out) if args.out else Path(args.capture)
    print(f"aligner timeline: {len(capture)} frames, {capture.duration:.1f} s of session",
          file=sys.stderr)

    def progress(t: float, total: float) -> None:
        print(f"aligner timeline: {t:6.1f} / {total:.1f} s", file=sys.stderr)

    from . import voice_profile

    call = capture.info.get("call_id")  # the id the service's profiles know the call by
    with voice_profile(args.voice_profile, "timeline", str(call) if call else None) as profile:
        timeline = build_timeline(
            capture, jitter_buffer=args.jitter_buffer,
            utterance_gap=(DEFAULT_UTTERANCE_GAP if args.utterance_gap is None
                           else args.utterance_gap),
            align=not args.no_align, recognize=not args.no_recognize, backend=args.backend,
            voice=profile, adapt=args.adapt, progress=progress)
    try:
        path = save_timeline(timeline, out)
    except OSError as exc:
        raise CaptureError(f"cannot write the timeline into {out}: {exc}") from exc
    heard = sum(len(u.heard_words) for u in timeline.utterances)
    print(f"aligner timeline: {len(timeline.utterances)} utterances, {heard} words heard, "
          f"{len(timeline.events)} events", file=sys.stderr)
    print(path)
    return 0
