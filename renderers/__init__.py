"""Renderers: turn a :class:`aligner.Timeline` into files (batch) or a stream of items (live).

Adding a renderer, in four steps:

1. Subclass :class:`Renderer`; set ``name``, ``extensions``, a one-line ``description`` and
   the ``options`` it takes (name -> type).
2. Implement :meth:`Renderer.render_to` (write one output file to an open binary file object) or,
   for multi-file outputs, override :meth:`Renderer.render` (write into a folder).
3. Optionally implement :meth:`Renderer.live` returning a :class:`LiveRenderer`.
4. Register it: built-ins are listed in ``BUILTIN`` below; third parties declare an entry point
   in the ``aligner.renderers`` group (``myname = "mypkg.module:MyRenderer"``), read lazily.

>>> sorted(available())[:2]                             # doctest: +SKIP
['ass', 'json']
>>> get("nope")
Traceback (most recent call last):
...
aligner.errors.RendererError: unknown renderer 'nope'; known: ...
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from aligner.errors import RendererError
from aligner.timeline import Timeline, write_atomic

__all__ = ["BUILTIN", "COMMON_OPTIONS", "ENTRY_POINT_GROUP", "LiveRenderer", "Renderer",
           "available", "check_options", "get"]

ENTRY_POINT_GROUP = "aligner.renderers"

# name -> "module:Class"; constant table, imported only when asked for.
BUILTIN: dict[str, str] = {
    "srt": "renderers.subtitles:SRT",
    "vtt": "renderers.subtitles:VTT",
    "vtt-karaoke": "renderers.subtitles:VTTKaraoke",
    "ass": "renderers.subtitles:ASS",
    "ttml": "renderers.subtitles:TTML",
    "textgrid": "renderers.wordtimes:TextGrid",
    "json": "renderers.wordtimes:WordsJSON",
    "visemes": "renderers.visemes:VisemeJsonl",
    "polly": "renderers.visemes:PollyMarks",
    "talkinghead": "renderers.frontends:TalkingHead",
    "elevenlabs": "renderers.frontends:ElevenLabs",
    "azure": "renderers.frontends:Azure",
    "rhubarb": "renderers.visemes:RhubarbJson",
    "rhubarb-tsv": "renderers.visemes:RhubarbTsv",
    "moho": "renderers.visemes:MohoDat",
    "blendshapes": "renderers.visemes:BlendshapesCsv",
    "blendshapes-json": "renderers.visemes:BlendshapesJson",
    "mp4": "renderers.video:VideoRenderer",
    "picture": "renderers.picture:Picture",
}


class LiveRenderer:
    """Incremental form of a renderer: fed the growing timeline, emits items once they are final.

    ``feed(timeline, final_until)`` is called whenever the timeline grows; everything before
    ``final_until`` (seconds, session clock) will not change any more. It returns the new output
    items (strings, dicts...) that became final. ``finish(timeline)`` returns the rest.
    """

    def feed(self, timeline: Timeline, final_until: float) -> Sequence[Any]:
        raise NotImplementedError

    def finish(self, timeline: Timeline) -> Sequence[Any]:
        return self.feed(timeline, float("inf"))


class Renderer:
    """Base class of every renderer. Options are keyword arguments of the constructor.

    ``options_spec`` names the options a renderer takes and their types; the constructor
    refuses any other (the error lists the valid ones) and converts strings, as the command
    line gives them, to the declared type (``bool``: 1/true/yes/on or 0/false/no/off), or
    says which option wanted what. ``object`` takes any value as it is. A renderer that leaves
    ``options_spec`` None takes any option as given (third-party renderers written before it).
    """

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    options_spec: ClassVar[Mapping[str, type] | None] = None

    def __init__(self, **options: Any) -> None:
        self.options = check_options(type(self), options)

    # --- layers: file object -> path -> string --------------------------------------------------
    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        """Write the output for ``timeline`` to the binary file object ``fp``.

        ``base`` is the folder that relative audio paths in the timeline are relative to.
        """
        raise NotImplementedError(f"renderer {self.name!r} writes folders; use render()")

    def render(self, timeline: Timeline, out_dir: str | Path, *, stem: str = "call",
               base: Path | None = None) -> list[Path]:
        """Write the output(s) into ``out_dir`` atomically and return their paths."""
        buf = io.BytesIO()
        self.render_to(timeline, buf, base=base)
        return [write_atomic(Path(out_dir) / f"{stem}{self.extensions[0]}", buf.getvalue())]

    def render_string(self, timeline: Timeline) -> str:
        """The output as text (text formats only)."""
        buf = io.BytesIO()
        self.render_to(timeline, buf)
        return buf.getvalue().decode("utf-8")

    def live(self) -> LiveRenderer | None:
        """A fresh :class:`LiveRenderer`, or None if this renderer only works in batch."""
        return None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


#: What every renderer takes: ``progress``, where the long ones report their work
#: (:func:`aligner.progress.reporter`: a bar on a terminal, True/False, or a callable).
COMMON_OPTIONS: dict[str, type] = {"progress": object}


def check_options(cls: type[Renderer], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for renderer ``cls``, each converted to the type its ``options_spec``
    declares.

    Raises:
        RendererError: an option it does not take (the message lists the valid ones), or a
            value that is not of the option's type (the message names both).

    >>> from renderers.subtitles import SRT
    >>> check_options(SRT, {"max_cps": "17", "allow_speaker_overlap": "no"})
    {'max_cps': 17.0, 'allow_speaker_overlap': False}
    >>> check_options(SRT, {"max_cp": "5"})
    Traceback (most recent call last):
    ...
    aligner.errors.RendererError: srt takes no option 'max_cp'; valid options: ...
    """
    if cls.options_spec is None:
        return dict(options)
    spec = {**COMMON_OPTIONS, **cls.options_spec}
    out = {}
    for key, value in options.items():
        if key not in spec:
            raise RendererError(f"{cls.name} takes no option {key!r}; valid options: "
                                f"{', '.join(sorted(spec))}")
        out[key] = _convert(cls.name, key, value, spec[key])
    return out


def _convert(renderer: str, key: str, value: Any, kind: type) -> Any:
    if kind is object or (isinstance(value, kind) and not (
            kind in (int, float) and isinstance(value, bool))):
        return value
    try:
        if kind is bool and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if kind is float and isinstance(value, int | str) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, str):
            return int(value)
        if kind is str and isinstance(value, int | float):
            return str(value)
    except ValueError:
        pass
    want = {bool: "true or false", int: "a whole number", float: "a number",
            str: "a string"}.get(kind, kind.__name__)
    raise RendererError(f"option {key}={value!r} of {renderer} must be {want}")


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points  # read when asked: not every run needs it

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Every installed renderer: name -> one-line description (loads each class)."""
    out = {}
    for name in sorted(set(BUILTIN) | set(_entry_points())):
        try:
            out[name] = get(name).description
        except RendererError as exc:
            out[name] = f"(broken: {exc})"
    return out


def get(name: str) -> type[Renderer]:
    """The renderer class registered as ``name`` (built-in first, then entry points).

    Raises:
        RendererError: unknown name (the message lists the known ones), or a broken plugin.
    """
    try:
        if name in BUILTIN:
            module, _, attr = BUILTIN[name].partition(":")
            cls = getattr(importlib.import_module(module), attr)
        else:
            eps = _entry_points()
            if name not in eps:
                known = ", ".join(sorted(set(BUILTIN) | set(eps))) or "none"
                raise RendererError(f"unknown renderer {name!r}; known: {known}")
            cls = eps[name].load()
    except RendererError:
        raise
    except Exception as exc:  # a plugin that fails to import must not take the CLI down
        raise RendererError(f"renderer {name!r} failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Renderer)):
        raise RendererError(f"renderer {name!r} is not a Renderer subclass: {cls!r}")
    return cls
