"""``aligner emulate``: run the local Retell-compatible voice-agent server until interrupted."""

from __future__ import annotations

import argparse
import sys

HELP = "run the local Retell-compatible voice-agent server (register-call, audio websocket)"
EXAMPLES = """examples:
  aligner emulate                                 # http://127.0.0.1:8080, API key dev-key
  aligner emulate --port 0 --api-key secret       # any free port, printed at start-up
  aligner emulate --llm-url ws://127.0.0.1:9000/llm-websocket   # agent = your LLM server
  aligner emulate --voice hibari                  # the agent speaks with a neural voice
  aligner emulate --dialogue my_script.json --split-words --chunk-max-ms 250
  aligner emulate --alignment-event-type audio_alignment --alignment-text-key content
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free one; default %(default)s)")
    parser.add_argument("--api-key", default="dev-key", help="Bearer key of the HTTP API (default %(default)s)")
    parser.add_argument("--dialogue", help="scripted agent, JSON (default samples/dialogue.json)")
    parser.add_argument("--llm-url", help="agent LLM websocket server (protocol section 6) instead of the script")
    parser.add_argument("--voice", default="espeak",
                        help="the agent's voice: espeak (espeak-ng; espeak:VOICE for another "
                             "espeak-ng voice, e.g. espeak:en-us+f3) or hibari (a small neural "
                             "voice) (default %(default)s)")
    parser.add_argument("--words-per-minute", type=int, default=175,
                        help="speaking rate (175: hibari's own pace; default %(default)s)")
    parser.add_argument("--chunk-min-ms", type=int, default=150, help="shortest agent chunk (default %(default)s)")
    parser.add_argument("--chunk-max-ms", type=int, default=400, help="longest agent chunk (default %(default)s)")
    parser.add_argument("--split-words", action="store_true", help="let chunks cut inside words")
    parser.add_argument("--send-speed", type=float, default=2.0,
                        help="send agent audio this many times faster than real time (default %(default)s)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="random delay before each agent chunk")
    parser.add_argument("--end-of-turn-ms", type=int, default=600,
                        help="user silence that always ends the user's turn (default %(default)s)")
    parser.add_argument("--quick-end-of-turn-ms", type=int, default=200,
                        help="user silence that ends the turn at once if what was heard sounds "
                             "complete (smart endpointing; 0: off; default %(default)s)")
    parser.add_argument("--alignment-event-type", default="audio",
                        help="event_type of alignment chunks (default %(default)s)")
    parser.add_argument("--alignment-text-key", default="text",
                        help="key of the text in alignment chunks (default %(default)s)")
    parser.add_argument("--no-recognition", action="store_true", help="do not recognise user speech")
    parser.add_argument("--no-hints", action="store_true",
                        help="recognise with the general language model even if the dialogue has user_hints")


def run(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from ..emulator import EmbeddedEmulator, EmulatorConfig
    from ..errors import AlignerError
    from ..workers import one_blas_thread

    options = dict(
        api_key=args.api_key, llm_url=args.llm_url, voice=args.voice,
        words_per_minute=args.words_per_minute, chunk_min_ms=args.chunk_min_ms,
        chunk_max_ms=args.chunk_max_ms, split_words=args.split_words, send_speed=args.send_speed,
        jitter_ms=args.jitter_ms, end_of_turn_ms=args.end_of_turn_ms,
        quick_end_of_turn_ms=args.quick_end_of_turn_ms,
        alignment_event_type=args.alignment_event_type,
        alignment_text_key=args.alignment_text_key, recognition=not args.no_recognition,
        use_hints=not args.no_hints)
    if args.dialogue:
        options["dialogue"] = Path(args.dialogue)
    try:
        config = EmulatorConfig(**options)
    except ValueError as exc:
        raise AlignerError(str(exc)) from exc

    one_blas_thread()  # a server: its recognition workers have the cores

    async def serve() -> None:
        emulator = EmbeddedEmulator(config, host=args.host, port=args.port)
        try:
            await emulator.start()
        except OSError as exc:
            raise AlignerError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
        except ValueError as exc:  # a voice the synthesiser does not have
            raise AlignerError(str(exc)) from exc
        print(f"emulator listening on {emulator.base_url}  (API key: {config.api_key})\n"
              f"  POST {emulator.base_url}/register-call   GET {emulator.base_url}/get-call/ID\n"
              f"  audio websocket: {emulator.ws_url}/audio-websocket/CALL_ID\n"
              f"  agent: {config.llm_url or config.dialogue}\n"
              "press Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emulator.stop()

    asyncio.run(serve())
    return 0
