"""``aligner visemes AUDIO [--text TEXT] [--set SET]``: the viseme stream of a clip, JSON lines."""

from __future__ import annotations

import argparse

HELP = "viseme stream of an audio file (JSON lines {t, viseme, weight}), with or without text"
EXAMPLES = """examples:
  aligner visemes hello.wav --text "Hello, world!"
  aligner visemes call.mp3                       # audio only: words recognised from sound
  aligner visemes call.mp3 --audio-only acoustic # audio only, fast: a phone loop
  aligner visemes clip.wav --text-file clip.txt --set rhubarb --lead 0.05
  aligner visemes clip.wav --set azure --out clip.visemes.jsonl
  aligner visemes line7.wav --text-file line7.txt --voice-profile voices/narrator.json

Each line is {"t": seconds from the start of the audio, "viseme": name (id for azure),
"weight": 0..1}. Sets: oculus (default; OVR sil PP FF TH DD kk CH SS nn RR aa E ih oh ou),
azure (0-21), polly (sil p t S T f k i r s u @ a e E o O), rhubarb (A-H, X).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", help="any audio file PyAV can read (wav, mp3, ogg, ...), any rate")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--text", help="what the audio says (without it: audio-only recognition)")
    src.add_argument("--text-file", help="a UTF-8 file holding what the audio says")
    parser.add_argument("--set", default="oculus", choices=("oculus", "talkinghead", "azure", "polly", "rhubarb"),
                        help="viseme set (default oculus)")
    parser.add_argument("--lead", type=float, default=0.06,
                        help="coarticulation lead in seconds: shapes start this early (0.06)")
    parser.add_argument("--min-hold", type=float, default=0.04,
                        help="shortest shape in seconds; a shorter one is dropped and the "
                             "shape before it held (0.04)")
    parser.add_argument("--no-refine", action="store_true",
                        help="with text: keep the aligner's phone times (default: espeak-ng's "
                             "own phone times where the aligner warped its speech onto the "
                             "audio, and phones the aligner spread by a duration model "
                             "re-timed on the shipped phone model)")
    parser.add_argument("--voice-profile", metavar="FILE",
                        help="the voice's profile (created if missing, updated after the run): "
                             "the phones are timed, and without text the words recognised, on "
                             "the acoustic model adapted to the voice learned from its other "
                             "clips (from their text, or from the words heard in them)")
    parser.add_argument("--adapt", action="store_true",
                        help="adapt to the clip's own voice first (two passes; for a recording "
                             "of one voice with no profile yet)")
    parser.add_argument("--audio-only", default="words",
                        choices=("words", "acoustic", "model", "pocketsphinx"),
                        help="without text: the phones of the words recognised in the audio "
                             "(default; the most accurate, about 6x real time), the acoustic "
                             "model's phone loop (fast), the shipped phone model (espeak-like "
                             "voices) or pocketsphinx's own phone loop")
    parser.add_argument("--out", help="write the JSON lines to this file (atomically)")


def run(args: argparse.Namespace) -> int:
    from . import audio_id, blas_threads, voice_profile

    blas_threads(1)  # before numpy loads: a per-file run is fastest on one thread
    import json
    import sys
    import time
    from pathlib import Path

    from ..audio import load
    from ..errors import AlignmentError
    from ..timeline import write_atomic
    from ..visemes import Motion, cues, estimate_phones, text_phones

    try:
        motion = Motion(lead=args.lead, min_hold=args.min_hold)
    except ValueError as exc:
        raise AlignmentError(str(exc)) from exc
    text = args.text
    if args.text_file is not None:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AlignmentError(f"cannot read text file {args.text_file}: {exc}") from exc
    rate = 16000
    print(f"aligner visemes: decoding {args.audio}", file=sys.stderr)
    pcm = load(args.audio, rate)
    duration = len(pcm) / rate
    t0 = time.perf_counter()
    with voice_profile(args.voice_profile, "visemes", audio_id(pcm)) as profile:
        if text is not None and text.strip():
            print(f"aligner visemes: aligning {duration:.2f} s of audio with its text",
                  file=sys.stderr)
            phones = text_phones(pcm, rate, text, refine=not args.no_refine, voice=profile,
                                 adapt=args.adapt)
        else:
            print(f"aligner visemes: recognising {duration:.2f} s of audio (no text)",
                  file=sys.stderr)
            try:
                phones = estimate_phones(pcm, rate, method=args.audio_only, voice=profile,
                                         adapt=args.adapt)
            except ValueError as exc:
                raise AlignmentError(f"--voice-profile and --adapt need --audio-only words: "
                                     f"{exc}") from exc
    result = cues(phones, args.set, motion=motion, end=duration)
    lines = "".join(json.dumps(c.event()) + "\n" for c in result)
    print(f"aligner visemes: {len(result)} visemes in {time.perf_counter() - t0:.2f} s",
          file=sys.stderr)
    if args.out:
        write_atomic(args.out, lines)
        print(f"aligner visemes: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0
