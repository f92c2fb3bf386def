"""``aligner-rhubarb``: Rhubarb Lip Sync 1.14's command line, with the aligner's mouth shapes.

A drop-in for the ``rhubarb`` executable that animation tools run (the After Effects, Spine,
Vegas, Blender and Godot integrations): the same flags, the same outputs byte for byte in
layout (``-f tsv|xml|json|dat``, :mod:`renderers.rhubarb`), the same ``--machineReadable``
JSON lines on stderr (``start``, ``progress``, ``success``, ``failure``, ``log``), the same
``--logFile`` lines and exit codes (0, or 1 on any error). Only the cues are ours: with
``-d/--dialogFile`` the audio is aligned with its text (:func:`aligner.visemes.text_phones`),
without it phones are recognised from the sound (:func:`aligner.visemes.estimate_phones`): as
Rhubarb's own default recognizer does (``-r pocketSphinx``), from the words pocketsphinx
recognises with its English language model, aligned on the audio, or, as Rhubarb's faster
recognizer, by the small shipped phone model (``-r phonetic``: fast, the better on espeak-like
synthetic voices); ``--threads`` caps the threads of numpy's BLAS (default 1: a per-file run of
a few seconds of audio is fastest on one, where a BLAS spinning on every core costs CPU time
that batch jobs of several files need).

``--version`` says ``Rhubarb Lip Sync version 1.14.0-aligner.<version>``: the plugins check for
a 1.x version of at least 1.9. Inputs are any audio file FFmpeg reads (Rhubarb: WAV and Ogg);
the duration is that of the audio at 16 kHz, truncated to whole centiseconds.

Run: ``aligner-rhubarb -f json -d dialog.txt -o out.json in.wav`` (or
``python -m aligner.cli.rhubarb ...``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from . import blas_threads

__all__ = ["APP_NAME", "APP_VERSION", "main"]

APP_NAME = "Rhubarb Lip Sync"
#: Rhubarb's version with ours as a suffix: ``version 1.14.0-...`` passes the plugins' checks.
APP_VERSION = f"1.14.0-aligner.{__version__}"
LEVELS = ("Trace", "Debug", "Info", "Warn", "Error", "Fatal")
RECOGNIZERS = ("pocketSphinx", "phonetic")
FORMATS = ("dat", "tsv", "xml", "json")

# flag -> (option name, takes a value); in the order Rhubarb's usage lists them
_OPTIONS = {
    "-r": ("recognizer", True), "--recognizer": ("recognizer", True),
    "-f": ("exportFormat", True), "--exportFormat": ("exportFormat", True),
    "--datFrameRate": ("datFrameRate", True),
    "--datUsePrestonBlair": ("datUsePrestonBlair", False),
    "-d": ("dialogFile", True), "--dialogFile": ("dialogFile", True),
    "--extendedShapes": ("extendedShapes", True),
    "--threads": ("threads", True),
    "-q": ("quiet", False), "--quiet": ("quiet", False),
    "--machineReadable": ("machineReadable", False),
    "--consoleLevel": ("consoleLevel", True),
    "--logFile": ("logFile", True),
    "--logLevel": ("logLevel", True),
    "-o": ("output", True), "--output": ("output", True),
    "--version": ("version", False),
    "-h": ("help", False), "--help": ("help", False),
}
_SHORT_IDS = {"recognizer": "-r", "exportFormat": "-f", "dialogFile": "-d", "quiet": "-q",
              "output": "-o", "help": "-h"}


def _short_usage(prog: str) -> str:
    return (f"{prog}  [-r <pocketSphinx|phonetic>] [-f <dat|tsv|xml|json>] [--datFrameRate "
            "<number>] [--datUsePrestonBlair] [-d <string>] [--extendedShapes <string>] "
            "[--threads <number>] [-q] [--machineReadable] [--consoleLevel <Trace|Debug|Info|"
            "Warn|Error|Fatal>] [--logFile <string>] [--logLevel <Trace|Debug|Info|Warn|Error|"
            "Fatal>] [-o <string>] [--] [--version] [-h] <string>\n")


# Rhubarb's long usage table (two columns, 20 and 56 wide, each line padded to 78 when printed),
# with what this drop-in does.
_LONG_USAGE = """\
-r <pocketSphinx      Without a dialog file: pocketSphinx recognises words
  |phonetic>,           and aligns them (default), phonetic recognises
  --recognizer          phones (fast). A dialog file's text is aligned.
  <pocketSphinx
  |phonetic>
-f <dat|tsv|xml       The export format.
  |json>,
  --exportFormat
  <dat|tsv|xml|json>
--datFrameRate        Only for dat exporter: the desired frame rate.
  <number>
--datUsePrestonBlair  Only for dat exporter: uses the Preston Blair mouth
                        shape names.
-d <string>,          A file containing the text of the dialog.
  --dialogFile
  <string>
--extendedShapes      All extended, optional shapes to use.
  <string>
--threads <number>    The maximum number of worker threads to use.
-q,  --quiet          Suppresses all output to stderr except for warnings and
                        error messages.
--machineReadable     Formats all output to stderr in a structured JSON
                        format.
--consoleLevel        The minimum log level that will be printed on the
  <Trace|Debug|Info     console (stderr)
  |Warn|Error|Fatal>
--logFile <string>    The log file path.
--logLevel <Trace     The minimum log level that will be written to the log
  |Debug|Info|Warn      file
  |Error|Fatal>
-o <string>,          The output file path.
  --output <string>
--,  --ignore_rest    Ignores the rest of the labeled arguments following this
                        flag.
--version             Displays version information and exits.
-h,  --help           Displays usage information and exits.
<string>              (required)  The input file. Any audio file FFmpeg reads
                        (WAVE, Ogg, MP3, ...).
"""


class _UsageError(Exception):
    """A command line Rhubarb's parser rejects: ``arg_id`` and what is wrong."""

    def __init__(self, arg_id: str, error: str) -> None:
        super().__init__(error)
        self.arg_id = arg_id
        self.error = error


class _Exit(Exception):  # noqa: N818 - control flow: --help and --version are done
    pass


def _arg_id(name: str) -> str:
    short = _SHORT_IDS.get(name)
    return f"Argument: {short} (--{name})" if short else f"Argument: (--{name})"


def _enum(value: str, names: tuple[str, ...], type_name: str) -> str:
    for n in names:
        if n.lower() == value.lower():
            return n
    raise ValueError(f"{value} is not a valid {type_name} value.")


def _parse(argv: list[str], prog: str, out: TextIO) -> dict[str, Any]:
    """Rhubarb's (TCLAP's) command-line rules: values after a space, ``--`` ends the flags,
    single-letter switches combine (``-qh``), a flag given twice is an error, ``--help`` and
    ``--version`` act when they are reached."""
    opts: dict[str, Any] = {}
    positional: list[str] = []
    i, rest = 0, False
    while i < len(argv):
        arg = argv[i]
        i += 1
        if rest or not arg.startswith("-") or arg == "-":
            if positional:
                raise _UsageError(f"Argument: {arg}", "Couldn't find match for argument")
            positional.append(arg)
            continue
        if arg in ("--", "--ignore_rest"):
            rest = True
            continue
        flags = [arg] if arg in _OPTIONS or arg.startswith("--") else [f"-{c}" for c in arg[1:]]
        for flag in flags:
            if flag not in _OPTIONS or (len(flags) > 1 and _OPTIONS[flag][1]):
                raise _UsageError(f"Argument: {arg}", "Couldn't find match for argument")
            name, takes_value = _OPTIONS[flag]
            if name in opts:
                raise _UsageError(_arg_id(name), "Argument already set!")
            if name == "help":
                table = "".join(f"{line:<78}\n" for line in _LONG_USAGE.splitlines())
                out.write(f"\nShort usage:\n{_short_usage(prog)}\nLong usage:\n\n{table}\n")
                raise _Exit
            if name == "version":
                out.write(f"\n{APP_NAME} version {APP_VERSION}\n\n")
                raise _Exit
            if not takes_value:
                opts[name] = True
                continue
            if i >= len(argv):
                raise _UsageError(_arg_id(name), "Missing a value for this argument!")
            opts[name] = _value(name, argv[i])
            i += 1
    if not positional:
        raise _UsageError(" ", "Required argument missing: inputFile")
    opts["inputFile"] = positional[0]
    return opts


def _value(name: str, raw: str) -> Any:
    if name in ("threads", "datFrameRate"):
        try:
            return int(raw) if name == "threads" else float(raw)
        except ValueError:
            raise _UsageError(_arg_id(name),
                              f"Couldn't read argument value from string '{raw}'") from None
    if name == "exportFormat":
        return _enum(raw, FORMATS, "ExportFormat")
    if name == "recognizer":
        return _enum(raw, RECOGNIZERS, "RecognizerType")
    if name in ("consoleLevel", "logLevel"):
        return _enum(raw, LEVELS, "Level")
    return raw


# --- logging: Rhubarb's entries and sinks --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Entry:
    """A log entry; ``kind`` marks Rhubarb's semantic entries (start, progress, success,
    failure), whose sinks print them their own way."""

    level: str
    message: str
    kind: str = "log"
    data: dict[str, Any] = field(default_factory=dict)

    def at_least(self, level: str) -> bool:
        return LEVELS.index(self.level) >= LEVELS.index(level)


def _start(path: str) -> _Entry:
    return _Entry("Info", f"Application startup. Input file: {path}.", "start", {"file": path})


def _progress(value: float) -> _Entry:
    return _Entry("Trace", f"Progress: {int(value * 100)}%", "progress", {"value": value})


def _success() -> _Entry:
    return _Entry("Info", "Application terminating normally.", "success")


def _failure(reason: str) -> _Entry:
    return _Entry("Fatal", f"Application terminating with error: {reason}", "failure",
                  {"reason": reason})


def _text(s: str) -> str:
    """A JSON string body as Rhubarb escapes it (non-ASCII as ``\\uXXXX``, like ``json``)."""
    return json.dumps(s)[1:-1]


class _ProgressBar:
    """Rhubarb's console progress bar (``[###-----]  15% |``), redrawn with backspaces."""

    def __init__(self, stream: TextIO, progress: float = 0.0) -> None:
        self._stream, self._progress, self._shown, self._spin = stream, progress, "", 0
        self._draw(True)

    def report(self, progress: float) -> None:
        self._progress = min(max(progress, 0.0), 1.0)
        self._draw(True)

    def close(self) -> None:
        self._draw(False)

    def _draw(self, spinner: bool) -> None:
        blocks = int(self._progress * 20)
        text = "[{}{}] {:3d}% {}".format("#" * blocks, "-" * (20 - blocks),
                                         int(self._progress * 100 + 1e-4),
                                         "|/-\\"[self._spin % 4] if spinner else "")
        self._spin += spinner
        common = 0
        while common < min(len(text), len(self._shown)) and text[common] == self._shown[common]:
            common += 1
        out = "\b" * (len(self._shown) - common) + text[common:]
        if len(self._shown) > len(text):
            over = len(self._shown) - len(text)
            out += " " * over + "\b" * over
        self._stream.write(out)
        self._stream.flush()
        self._shown = text


class _NiceSink:
    """Rhubarb's default console output: a headline, a progress bar, ``Done.``, and entries of
    at least ``level`` as ``[Level] message``."""

    def __init__(self, level: str, stream: TextIO) -> None:
        self.level, self.stream = level, stream
        self._bar: _ProgressBar | None = None
        self._progress = 0.0

    def receive(self, e: _Entry) -> None:
        if e.kind == "start":
            self.stream.write(f"Generating lip sync data for {e.data['file']}.\n")
            self.stream.write("Progress: ")
            self._bar = _ProgressBar(self.stream)
        elif e.kind == "progress":
            self._progress = e.data["value"]
            if self._bar is not None:
                self._bar.report(self._progress)
        elif e.kind == "success":
            self._interrupt()
            self.stream.write("Done.\n")
        elif e.at_least(self.level):
            busy = self._bar is not None
            if busy:
                self._interrupt()
            self.stream.write(f"[{e.level}] {e.message}\n")
            if busy:
                self.stream.write("Progress (cont'd): ")
                self._bar = _ProgressBar(self.stream, self._progress)
        self.stream.flush()

    def _interrupt(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.stream.write("\n")


class _QuietSink:
    """``-q``: only entries of at least ``level``, the first one after a line of context."""

    def __init__(self, level: str, stream: TextIO) -> None:
        self.level, self.stream = level, stream
        self._file: str | None = None
        self._quiet = True

    def receive(self, e: _Entry) -> None:
        if e.kind == "start":
            self._file = e.data["file"]
        if not e.at_least(self.level):
            return
        if self._quiet:
            where = f" processing file {self._file}" if self._file is not None else ""
            self.stream.write(f"{APP_NAME} {APP_VERSION}{where}:\n")
            self._quiet = False
        self.stream.write(f"[{e.level}] {e.message}\n")
        self.stream.flush()


class _MachineSink:
    """``--machineReadable``: one JSON object per line, as Rhubarb's plugins parse them."""

    def __init__(self, level: str, stream: TextIO) -> None:
        self.level, self.stream = level, stream
        self._percent = -1

    def receive(self, e: _Entry) -> None:
        log = f'"log": {{ "level": "{e.level}", "message": "{_text(e.message)}" }}'
        if e.kind == "start":
            line = f'{{ "type": "start", "file": "{_text(e.data["file"])}", {log} }}'
        elif e.kind == "progress":
            percent = int(e.data["value"] * 100)
            if percent <= self._percent:
                return
            self._percent = percent
            line = f'{{ "type": "progress", "value": {e.data["value"]:.2f}, {log} }}'
        elif e.kind == "success":
            line = f'{{ "type": "success", {log} }}'
        elif e.kind == "failure":
            line = f'{{ "type": "failure", "reason": "{_text(e.data["reason"])}", {log} }}'
        elif e.at_least(self.level):
            line = f'{{ "type": "log", {log} }}'
        else:
            return
        self.stream.write(line + "\n")
        self.stream.flush()


class _FileSink:
    """``--logFile``: ``[date time] thread [Level] message`` lines of at least ``level``,
    each flushed as it is written."""

    def __init__(self, path: str, level: str) -> None:
        self.level = level
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the run

    def receive(self, e: _Entry) -> None:
        if e.at_least(self.level):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._file.write(f"[{stamp}] 1 [{e.level}] {e.message}\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class _Log:
    def __init__(self, *sinks: Any) -> None:
        self.sinks = list(sinks)

    def __call__(self, entry: _Entry) -> None:
        for s in self.sinks:
            s.receive(entry)

    def info(self, message: str) -> None:
        self(_Entry("Info", message))

    def debug(self, message: str) -> None:
        self(_Entry("Debug", message))

    def timed(self, kind: str, start: float, end: float, value: str) -> None:
        """Rhubarb's timed debug lines (``##shape[0.04-0.20]: D``), read by its Vegas script."""
        self.debug(f"##{kind}[{start:.2f}-{end:.2f}]: {value}")


# --- the run -------------------------------------------------------------------------------------

class _Failure(Exception):
    """The run failed; the message is the failure entry's reason."""


def _animate(opts: dict[str, Any], shapes: frozenset[str], log: _Log,
             progress: Callable[[float], None]):
    """Decode, align or recognise, and animate: ``(animation, end in cs)``."""
    from renderers.rhubarb import animation

    from ..audio import load
    from ..errors import AlignerError
    from ..visemes import Motion, cues, estimate_phones, text_phones

    path = opts["inputFile"]
    text = None
    if "dialogFile" in opts:
        dialog = Path(opts["dialogFile"])
        if not dialog.is_file():
            raise _Failure(f"File {dialog} does not exist.")
        try:
            text = dialog.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _Failure(f"Error reading file {dialog}: {exc}") from exc
    try:
        pcm = load(path, 16000)
    except AlignerError as exc:
        raise _Failure(f"Could not open sound file {path}.\n{exc}") from exc
    progress(0.0)
    seconds = len(pcm) / 16000
    try:
        if text is not None and text.strip():
            phones = text_phones(pcm, 16000, text)
        else:
            method = "model" if str(opts.get("recognizer", "")).lower() == "phonetic" \
                else "words"
            phones = estimate_phones(pcm, 16000, method=method)
    except AlignerError as exc:
        raise _Failure(str(exc)) from exc
    progress(0.9)
    for p in phones:
        log.timed("phone", p.start, p.end, p.phone)
    anim = animation(cues(phones, "rhubarb", motion=Motion(), end=seconds), seconds, shapes)
    for a, b, s in anim:
        log.timed("shape", a / 100, b / 100, s)
    progress(1.0)
    return anim, 100 * len(pcm) // 16000


def _run(opts: dict[str, Any], argv: list[str], log: _Log) -> None:
    from renderers.rhubarb import shape_set, to_dat, to_json, to_tsv, to_xml

    if opts.get("threads", 1) < 1:
        raise _Failure("Thread count must be 1 or higher.")
    try:
        shapes = shape_set(opts.get("extendedShapes", "GHX"))
    except ValueError as exc:
        raise _Failure(str(exc)) from exc
    fmt = opts.get("exportFormat", "tsv")
    fps = opts.get("datFrameRate", 24.0)
    if fmt == "dat" and not 24.0 <= fps <= 100.0:
        raise _Failure("Frame rate must be between 24 and 100 fps.")
    path = opts["inputFile"]
    log(_start(path))
    log.debug("Command line: " + " ".join(f'"{a}"' for a in argv))
    try:
        log.info("Starting animation.")
        anim, end = _animate(opts, shapes, log, lambda p: log(_progress(p)))
        log.info("Done animating.")
        sound = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        log.info("Starting export.")
        if fmt == "dat":
            text = to_dat(anim, end, shapes, fps=fps, preston_blair=opts.get("datUsePrestonBlair",
                                                                         False))
        elif fmt == "tsv":
            text = to_tsv(anim, end, shapes)
        elif fmt == "xml":
            text = to_xml(anim, sound, end, shapes)
        else:
            text = to_json(anim, sound, end, shapes)
        if "output" in opts:
            from ..timeline import write_atomic

            try:
                if not Path(opts["output"]).absolute().parent.is_dir():
                    raise FileNotFoundError(f"no folder {Path(opts['output']).parent}")
                write_atomic(opts["output"], text)
            except OSError as exc:
                raise _Failure(f"Cannot write {opts['output']}: {exc}") from exc
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        log.info("Done exporting.")
    except _Failure as exc:
        raise _Failure(f"Error processing file {path}.\n{exc}") from exc
    log(_success())


def main(argv: list[str] | None = None) -> int:
    """Run Rhubarb Lip Sync's command line; returns the exit code (0, or 1 on any error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "aligner-rhubarb"
    if prog.endswith(".py") or prog in ("-c", "-m"):
        prog = "aligner-rhubarb"
    log = _Log(_NiceSink("Error", sys.stderr))
    try:
        opts = _parse(argv, prog, sys.stdout)
    except _Exit:
        sys.stdout.flush()
        return 0
    except _UsageError as exc:
        sys.stderr.write(f"Invalid command-line arguments. {exc.arg_id}\n{exc.error}\n\n"
                         f"Short usage:\n{_short_usage(prog)}\nFor complete usage and help, "
                         f"type `{prog} --help`\n\n")
        log(_failure("Invalid command line."))
        return 1
    except ValueError as exc:
        log(_failure(str(exc)))
        return 1
    if opts.get("threads", 1) >= 1:
        blas_threads(opts.get("threads", 1))
    console = opts.get("consoleLevel", "Error")
    if opts.get("quiet"):
        log.sinks = [_QuietSink(console, sys.stderr)]
    elif opts.get("machineReadable"):
        log.sinks = [_MachineSink(console, sys.stderr)]
    else:
        log.sinks = [_NiceSink(console, sys.stderr)]
    file_sink = None
    try:
        if "logFile" in opts:
            try:
                file_sink = _FileSink(opts["logFile"], opts.get("logLevel", "Debug"))
            except OSError as exc:
                raise _Failure(f"Cannot open log file {opts['logFile']}: {exc}") from exc
            log.sinks.append(file_sink)
        _run(opts, [sys.argv[0] if sys.argv else prog, *argv], log)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return 0
    except BrokenPipeError:  # '... | head': stop quietly, as Unix tools do
        from . import _reader_gone

        return _reader_gone()
    except _Failure as exc:
        log(_failure(str(exc)))
        return 1
    except KeyboardInterrupt:
        log(_failure("Interrupted."))
        return 1
    finally:
        if file_sink is not None:
            file_sink.close()


if __name__ == "__main__":
    raise SystemExit(main())
