"""``aligner record``: connect to an audio websocket (or the embedded emulator) and capture a call."""

from __future__ import annotations

import argparse
import sys

HELP = "record a call over the audio websocket into a capture directory"
EXAMPLES = """examples:
  aligner record --input samples/user1.wav --out out/capture      # embedded emulator
  aligner record --url http://127.0.0.1:8080 --call-id CALL --input hello.mp3 --out cap1
  aligner record --url 'wss://api.example.com/audio-websocket/CALL' --input mic --out cap2
  aligner record --url ws://127.0.0.1:8080 --call-id CALL --encoding mulaw --sample-rate 8000
  aligner record --input user.wav --at-start --out cap3       # the file from the first second

--input takes any audio file PyAV decodes (wav, mp3, ogg, m4a...), 'mic[:DEVICE]' (needs the
'mic' extra: sounddevice) or 'silence[:SECONDS]'. A file is the user answering: it plays once
the agent's greeting is over (or after --wait seconds without one), and the call ends once the
agent has answered and been quiet for --linger seconds. Ctrl-C ends the call; the capture stays
valid.
The server's close code and reason are printed; an error close exits with status 2.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="audio websocket URL, or server base URL with --call-id "
                        "(default: start the embedded emulator and register a call)")
    parser.add_argument("--call-id", help="call id from register-call (with a base --url)")
    parser.add_argument("--input", "-i", default=None,
                        help="user audio: FILE, mic[:DEVICE] or silence[:SECONDS] "
                             "(default: silence until the server ends the call)")
    parser.add_argument("--out", "-o", default="out/capture", help="capture directory to create")
    parser.add_argument("--encoding", choices=("s16le", "mulaw"), default="s16le",
                        help="the call's audio_encoding (default s16le)")
    parser.add_argument("--sample-rate", type=int, default=16000,
                        help="the call's sample rate, 8000-48000 (default 16000)")
    parser.add_argument("--protocol", choices=("web", "twilio"), default="web")
    parser.add_argument("--chunk-ms", type=int, default=20, help="user audio per frame, 20-250 ms")
    parser.add_argument("--no-update", action="store_true", help="enable_update=false")
    parser.add_argument("--no-alignment", action="store_true", help="enable_audio_alignment=false")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between pings")
    parser.add_argument("--linger", type=float, default=1.0,
                        help="after the input ends, close once the agent was quiet this long "
                             "(counted from the end of the input; default 1)")
    parser.add_argument("--at-start", action="store_true",
                        help="play an input file from the start of the call, over the greeting")
    parser.add_argument("--wait", type=float, default=8.0, metavar="S",
                        help="seconds an input file waits for the agent's greeting, and then "
                             "for its answer (default 8)")
    parser.add_argument("--max-duration", type=float, default=None, help="end the call after S s")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.add_argument("--json", action="store_true",
                        help="print every event live on stdout as JSON lines "
                             "(the same lines 'aligner replay --json' prints)")


def progress_printer(quiet: bool = False, as_json: bool = False):
    """A callback printing the call's notable events on stderr as they happen (and, with
    ``as_json``, every event as a JSON line on stdout)."""
    from ..wire.events import AlignedAudio, Clear, Metadata, Unknown, Update
    from .replay import json_line

    def show(stamped) -> None:
        if as_json:
            print(json_line(stamped), flush=True)
        ev = stamped.event
        line = None
        if isinstance(ev, AlignedAudio) and ev.text.strip():
            line = f"agent  {ev.text!r}"
        elif isinstance(ev, Clear):
            line = "clear  (user barged in)"
        elif isinstance(ev, Update) and ev.transcript and ev.transcript[-1].role == "user":
            line = f"user   {ev.transcript[-1].content!r}"
        elif isinstance(ev, Metadata):
            line = f"meta   {ev.metadata!r:.70}"
        elif isinstance(ev, Unknown):
            line = f"???    {ev.reason}"
        if line and not quiet:
            print(f"{stamped.t:7.2f}s {line}", file=sys.stderr, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..wire.client import audio_websocket_url, record, record_embedded
    from ..wire.source import FileSource, Turn, TurnSource, check_chunk_ms, open_source

    check_chunk_ms(args.chunk_ms)
    if not args.url:  # the embedded emulator's agent: its voice, or one line saying what is missing
        from ..emulator.config import EmulatorConfig
        from ..speech.voices import load

        load(EmulatorConfig().voice)
    source = open_source(args.input) if args.input else None
    if isinstance(source, FileSource) and not args.at_start:
        # the user answers: after the agent's greeting, then waits for the agent's answer
        source = TurnSource([Turn(source)], max_wait=args.wait)
    options = dict(encoding=args.encoding, sample_rate=args.sample_rate, protocol=args.protocol,
                   chunk_ms=args.chunk_ms, heartbeat=args.heartbeat, linger=args.linger,
                   max_duration=args.max_duration, on_event=progress_printer(args.quiet, args.json))
    if args.url:
        url = audio_websocket_url(args.url, args.call_id, enable_update=not args.no_update,
                                  enable_audio_alignment=not args.no_alignment)
        info = {"call_id": args.call_id or url.split("/audio-websocket/")[1].split("?")[0]}
        job = record(url, source, args.out, info=info, **options)
        print(f"recording {url} into {args.out}", file=sys.stderr)
    else:
        job = record_embedded(source, args.out, enable_update=not args.no_update,
                              enable_audio_alignment=not args.no_alignment, **options)
        print(f"recording a call with the embedded emulator into {args.out}", file=sys.stderr)
    try:
        result = asyncio.run(job)
    except KeyboardInterrupt:
        print(f"aligner record: stopped; capture closed in {args.out}", file=sys.stderr)
        return 0
    print(f"call ended ({result.closed_by} closed, code {result.close_code}"
          + (f", reason {result.close_reason!r}" if result.close_reason else "")
          + f"); {result.frames_in} frames in, {result.frames_out} out, "
          f"{result.malformed} malformed; capture: {result.capture}", file=sys.stderr)
    return 0
