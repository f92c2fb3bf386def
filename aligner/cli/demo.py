"""The demo call behind ``aligner run``: emulator, a scripted user with a barge-in, every output.

It starts the embedded emulator (the agent speaks with :data:`VOICE`, a neural voice), plays the
user's side from :data:`SAMPLES` (three short lines; the second one barges into the agent's long
offer), records the call into ``OUT/capture/``, then builds what exists: ``OUT/timeline.json``
(with ``agent.wav``/``user.wav``), one file per renderer in ``OUT/``, and ``OUT/transcript.txt``.
A failing step is reported and skipped; the others still run.

Example::

    result = run_demo("out")
    print(result.outputs, result.failures)
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["RENDERERS", "SAMPLES", "USER_TURNS", "VOICE", "DemoResult", "run_demo",
           "transcript_lines"]

#: The demo's inputs, shipped as package data (``aligner/data/samples``: the emulator's
#: ``dialogue.json`` and the user clips), so an installed ``aligner run`` works from any folder.
#: A checkout's ``samples/`` links to the same files.
SAMPLES = Path(str(files("aligner").joinpath("data", "samples")))

#: Renderers the demo runs, by name; None runs every one ``renderers.available()`` lists.
RENDERERS: tuple[str, ...] | None = None

#: The agent's voice (:mod:`aligner.speech.voices`): hibari, a neural voice like the ones agents
#: speak with; espeak-ng when ``hibari-tts`` is not installed.
VOICE = "hibari"

#: The user's side: (clip in SAMPLES, barge-in delay in seconds or None for a normal turn).
USER_TURNS: tuple[tuple[str, float | None], ...] = (
    ("user1.wav", None),
    ("user2_bargein.wav", 1.5),  # ~1.5 s into the agent's long offer
    ("user3.wav", None),
)


@dataclass
class DemoResult:
    """Where everything went: ``outputs`` maps each step to its files, ``failures`` to why."""

    out_dir: Path
    capture: Path | None = None
    timeline: Path | None = None
    transcript: Path | None = None
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    call_seconds: float = 0.0


def _say(message: str) -> None:
    print(f"[aligner run] {message}", file=sys.stderr, flush=True)


def run_demo(out_dir: str | Path = "out", *, renderers: tuple[str, ...] | None = RENDERERS,
             samples: str | Path = SAMPLES, progress: Callable[[str], None] = _say,
             on_event: Callable[[Any], None] | None = None,
             emulator_options: dict[str, Any] | None = None, sample_rate: int = 16000,
             voice: str | None = None) -> DemoResult:
    """Run the demo call and build every output.

    Args:
        out_dir: where everything goes (``capture/`` inside is replaced if it holds a capture).
        renderers: renderer names to run (None: every available one).
        samples: folder holding the user clips of :data:`USER_TURNS`.
        progress: called with one line of progress at a time.
        on_event: called with every :class:`~aligner.wire.events.Stamped` event of the call.
        emulator_options: :class:`aligner.emulator.EmulatorConfig` fields.
        sample_rate: the call's sample rate (s16le).
        voice: the agent's voice (:data:`aligner.speech.voices.VOICES`); None: :data:`VOICE`, or
            espeak-ng if that one is not installed.

    Returns:
        A :class:`DemoResult`.

    Raises:
        AudioError: a user clip is missing.
        MissingBackendError: the voice asked for is not installed.
        ServerClosed: the emulator ended the call with an error.
    """
    from ..wire.client import record_embedded
    from ..wire.source import FileSource, Turn, TurnSource

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)
    cap_dir = out / "capture"
    if (cap_dir / "capture.json").exists():
        shutil.rmtree(cap_dir)
    turns = [Turn(FileSource(Path(samples) / name), barge_in=delay) for name, delay in USER_TURNS]
    voice = _load_voice(voice, progress)
    progress(f"starting the embedded emulator (voice {voice}); the call takes about 30 s")
    started = time.monotonic()
    call = asyncio.run(record_embedded(TurnSource(turns), cap_dir, on_event=on_event,
                                       emulator_options={"voice": voice,
                                                         **(emulator_options or {})},
                                       sample_rate=sample_rate))
    result.call_seconds = time.monotonic() - started
    result.capture = call.capture
    result.outputs["capture"] = [cap_dir]
    progress(f"call recorded in {result.call_seconds:.1f} s ({call.frames_in} frames in, "
             f"{call.frames_out} out): {cap_dir}")
    timeline = _build_timeline(cap_dir, out, result, progress)
    if timeline is not None:
        _render(timeline, out, renderers, result, progress)
    _transcript(timeline, cap_dir, out, result, progress)
    return result


def _load_voice(voice: str | None, progress: Callable[[str], None]) -> str:
    """Load the agent's voice before the call (its first line is not kept waiting)."""
    from ..errors import AlignerError, MissingBackendError
    from ..speech.voices import load

    try:
        load(voice or VOICE)
    except ValueError as exc:  # an espeak-ng voice espeak-ng does not have
        raise AlignerError(str(exc)) from exc
    except MissingBackendError as exc:
        if voice is not None:
            raise
        load("espeak")  # without it too (no speech extra), that is the one line said
        progress(f"{exc}; the agent speaks with espeak-ng instead")
        voice = "espeak"
    return voice or VOICE


def _build_timeline(cap_dir: Path, out: Path, result: DemoResult,
                    progress: Callable[[str], None]):
    try:
        from ..session import build_timeline
    except ImportError as exc:
        result.failures["timeline"] = f"aligner.session is not available: {exc}"
        progress(f"timeline: skipped ({result.failures['timeline']})")
        return None
    progress("aligning the call (timeline.json)")
    try:
        timeline = build_timeline(cap_dir, audio_dir=out)
        result.timeline = timeline.save(out / "timeline.json")
    except Exception as exc:  # one failing step must not take the demo down
        result.failures["timeline"] = f"{type(exc).__name__}: {exc}"
        progress(f"timeline: FAILED ({result.failures['timeline']})")
        return None
    result.outputs["timeline"] = [result.timeline]
    return timeline


def _render(timeline, out: Path, names, result: DemoResult,
            progress: Callable[[str], None]) -> None:
    import renderers

    names = list(renderers.available()) if names is None else list(names)
    for name in names:
        t0 = time.monotonic()
        try:
            paths = renderers.get(name)().render(timeline, out, stem="call", base=out)
        except Exception as exc:  # report which renderer failed and why, keep going
            result.failures[name] = f"{type(exc).__name__}: {exc}"
            progress(f"render {name}: FAILED ({result.failures[name]})")
            continue
        result.outputs[name] = list(paths)
        progress(f"render {name}: {', '.join(str(p) for p in paths)} "
                 f"({time.monotonic() - t0:.1f} s)")


def transcript_lines(timeline=None, capture=None) -> list[str]:
    """The call as text, one line per utterance: ``[start - end] speaker: words heard``.

    From the timeline when there is one (only the words the listener heard; an interrupted
    utterance ends with ``—`` and ``[interrupted]``), else from the last transcript update the
    server sent in the capture.
    """
    lines = []
    if timeline is not None:
        for u in timeline.utterances:
            heard = u.heard_words
            text = u.text[:heard[-1].char_end] if (u.interrupted and heard) else u.text
            if u.interrupted:
                text = (text + " — [interrupted]") if heard else "[interrupted before a word]"
            lines.append(f"[{u.start:7.2f} - {u.end:7.2f}] {u.speaker}: {text.strip()}")
        return lines
    if capture is not None:
        from ..wire.events import Update

        last = None
        for st in capture.events():
            if isinstance(st.event, Update):
                last = st.event
        for turn in last.transcript if last else ():
            lines.append(f"{turn.role}: {turn.content}")
    return lines


def _transcript(timeline, cap_dir: Path, out: Path, result: DemoResult,
                progress: Callable[[str], None]) -> None:
    from ..timeline import write_atomic
    from ..wire.capture import read

    try:
        lines = transcript_lines(timeline, None if timeline is not None else read(cap_dir))
        path = write_atomic(out / "transcript.txt", "\n".join(lines) + "\n")
    except Exception as exc:
        result.failures["transcript"] = f"{type(exc).__name__}: {exc}"
        progress(f"transcript: FAILED ({result.failures['transcript']})")
        return
    result.transcript = path
    result.outputs["transcript"] = [path]
    progress(f"transcript: {path}")
