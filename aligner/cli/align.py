"""``aligner align AUDIO --text TEXT``: word, character and phone times of one clip as JSON."""

from __future__ import annotations

import argparse

HELP = "align one audio clip with its text: prints JSON words, chars and phones"
EXAMPLES = """examples:
  aligner align hello.wav --text "Hello, world!"
  aligner align call.mp3 --text-file call.txt --out call.json
  aligner align clip.wav --text "It costs $42.50." --backend fallback --indent 2
  aligner align agent.wav --text-file agent.txt --voice-profile voices/agent_42.json
  aligner align interview.wav --text-file interview.txt --adapt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", help="any audio file PyAV can read (wav, mp3, ogg, ...), any rate")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="what the audio says")
    src.add_argument("--text-file", help="a UTF-8 file holding what the audio says")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "reference", "acoustic", "pocketsphinx", "fallback"),
                        help="timing backend (default auto: reference if espeak-ng is installed and "
                             "its speech warps closely onto the clip, else acoustic)")
    parser.add_argument("--voice-profile", metavar="FILE",
                        help="the voice's profile: used where it fits, updated with this clip and "
                             "saved back (created if missing)")
    parser.add_argument("--adapt", action="store_true",
                        help="adapt to the clip's own voice first (two passes; for a recording "
                             "of one voice)")
    parser.add_argument("--rate", type=int, default=16000,
                        help="decode the audio at this sample rate, 8000-48000 (default 16000)")
    parser.add_argument("--out", help="write the JSON to this file (atomically) instead of stdout")
    parser.add_argument("--indent", type=int, default=None, help="indent the JSON")
    parser.add_argument("--progress", choices=("auto", "yes", "no"), default="auto",
                        help="a progress bar on stderr (default auto: when it is a terminal)")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from ..audio import load
    from ..errors import AlignmentError
    from ..progress import reporter
    from ..speech.alignment import align, aligner_rate
    from ..timeline import write_atomic

    aligner_rate(args.rate)  # before decoding: a rate it cannot use is refused at once
    if args.text_file is not None:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AlignmentError(f"cannot read text file {args.text_file}: {exc}") from exc
    else:
        text = args.text
    print(f"aligner align: decoding {args.audio}", file=sys.stderr)
    pcm = load(args.audio, args.rate)
    print(f"aligner align: aligning {len(pcm) / args.rate:.2f} s of audio", file=sys.stderr)
    from . import audio_id, voice_profile

    with voice_profile(args.voice_profile, "align", audio_id(pcm)) as profile:
        result = align(pcm, args.rate, text, backend=args.backend, voice=profile,
                       adapt=args.adapt, progress=reporter("align", 1.0, args.progress, unit=None))
    if result.mismatch:
        print(f"aligner align: warning: the audio does not seem to say the text (confidence "
              f"{result.confidence:.2f}); check the text and the audio", file=sys.stderr)
    out = json.dumps(result.to_dict(), ensure_ascii=False, indent=args.indent)
    if args.out:
        write_atomic(args.out, out + "\n")
        print(f"aligner align: wrote {args.out} ({len(result.words)} words, "
              f"backend {result.backend})", file=sys.stderr)
    else:
        print(out)
    return 0
