"""The ``aligner`` command line: one entry point, one module per sub-command.

Each sub-command module in this package defines ``HELP`` (one line), ``EXAMPLES`` (text shown
at the end of ``--help``), ``add_arguments(parser)`` and ``run(args) -> int``. Modules import
heavy dependencies inside ``run`` so ``aligner --help`` stays fast. Library errors
(:class:`aligner.errors.AlignerError`) become one line on stderr and exit code 2; a reader of
stdout that goes away (``| head``) ends the command quietly with status 141, as for Unix tools.
:mod:`.demo` holds the demo call that ``aligner run`` makes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys

from ..errors import AlignerError
from ..logs import setup

__all__ = ["audio_id", "blas_threads", "main", "voice_profile"]

# sub-command -> module in this package (constant table)
COMMANDS = {
    "run": "run",
    "emulate": "emulate",
    "record": "record",
    "replay": "replay",
    "align": "align",
    "timeline": "timeline",
    "render": "render",
    "renderers": "renderers",
    "visemes": "visemes",
    "serve": "serve",
    "worker": "worker",
}


def blas_threads(n: int = 1) -> None:
    """Cap numpy's BLAS at ``n`` threads, unless the environment already says; call it before
    numpy loads. A per-file command on a few seconds of audio runs fastest on one thread: a BLAS
    spinning on every core costs CPU time (0.25 s instead of 0.15 s for a 3 s clip) that other
    jobs on the machine need, and nothing is faster for it."""
    if "numpy" in sys.modules:  # too late for this process: leave the environment alone
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


@contextlib.contextmanager
def voice_profile(path: str | None, command: str, source: str | None = None):
    """The voice profile a ``--voice-profile FILE`` option names, for the ``with`` block that
    aligns (a new one if the file does not exist yet; None without the option). What it learns
    there is added to the file when the block ends, under the file's lock (runs at once all
    count), unless the profile learned from ``source`` (the audio's or the call's id) already:
    the same recording aligned again uses the profile and teaches it nothing more.

    Raises:
        AlignmentError: the file is there but is not a voice profile, or cannot be written.
    """
    if not path:
        yield None
        return
    from ..errors import AlignmentError
    from ..speech.adaptation import VoiceProfile, merge_file

    try:
        profile = VoiceProfile.load(path)
    except (OSError, ValueError) as exc:
        raise AlignmentError(f"cannot read voice profile {path}: {exc}") from exc
    before, clips = profile.stats, profile.clips
    yield profile
    try:
        stored, added = merge_file(path, profile.learned_since(before),
                                   max(profile.clips - clips, 1), source)
    except (OSError, ValueError) as exc:
        raise AlignmentError(f"cannot write voice profile {path}: {exc}") from exc
    said = "" if added or source not in stored.sources else "; it learned from this audio already"
    print(f"aligner {command}: voice profile {path} ({stored.frames / 100:.0f} s of speech "
          f"learned{said})", file=sys.stderr)


def audio_id(pcm) -> str:
    """What names a recording among a voice profile's sources: a digest of its samples."""
    import hashlib

    return "audio:" + hashlib.sha256(pcm.tobytes()).hexdigest()[:32]


def _parser(modules: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aligner",
        description="Word, character, phone and viseme timelines for voice-agent audio websockets.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in modules.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           epilog=getattr(module, "EXAMPLES", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    modules = {}
    for name, mod in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise
    parser = _parser(modules)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    setup((logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)])
    try:
        code = int(modules[args.command].run(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except AlignerError as exc:
        print(f"aligner {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aligner {args.command}: interrupted", file=sys.stderr)
        return 130


#: The exit status of a Unix tool whose reader went away (killed by SIGPIPE: 128 + 13).
EXIT_PIPE = 141


def _reader_gone() -> int:
    """stdout's reader closed it (``aligner replay ... | head``): stop quietly as Unix tools do.
    What is still buffered goes nowhere, so that Python's exit flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE
