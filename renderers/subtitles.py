"""Subtitle renderers: SRT, WebVTT (with voice tags; a karaoke variant), ASS karaoke and TTML.

All of them caption the cues of :func:`renderers.segment.segment` (options are
:class:`~renderers.segment.CaptionRules` fields, e.g. ``SRT(max_cps=17)``). pysubs2 writes SRT
and ASS; WebVTT and TTML are written here because pysubs2 leaves gaps there: it writes
zero-length WebVTT cues (invalid), drops voice tags and karaoke timing in SRT/VTT, and has no
IMSC1 profile. Our cues are never zero-length and every file is UTF-8 without a BOM;
:func:`load_subtitles` reads files back through pysubs2, tolerating a BOM it would misread.

>>> from aligner.timeline import Timeline, Utterance, Word
>>> u = Utterance("agent", 0.0, 1.0, "Hi there.", words=(Word("Hi", 0.0, 0.3, 0, 2),
...                                                     Word("there", 0.3, 0.9, 3, 8)))
>>> print(VTTKaraoke().render_string(Timeline(utterances=(u,))).rstrip())
WEBVTT
<BLANKLINE>
STYLE
::cue(:future) {
  color: #a0a0a0;
}
<BLANKLINE>
1
00:00:00.000 --> 00:00:00.900
<v Agent>Hi <00:00:00.300>there.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pysubs2

from aligner.errors import RendererError
from aligner.timeline import Timeline

from . import LiveRenderer, Renderer
from .segment import RULE_OPTIONS, Cue, caption_rules, segment

__all__ = ["ASS", "SRT", "TTML", "VTT", "CaptionRenderer", "VTTKaraoke", "load_subtitles",
           "speaker_label"]

# characters ASS/SRT would read as override tags or escapes, swapped for look-alikes
_TAG_SAFE = str.maketrans({"{": "｛", "}": "｝", "\\": "⧵"})
_SRT_SAFE = str.maketrans({"{": "｛", "}": "｝", "\\": "⧵", "<": "‹", ">": "›"})  # + HTML tags
_INLINE_TS = re.compile(r"<\d+:\d\d:\d\d\.\d{3}>")
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# ASS speaker colours (primary = sung/filled, secondary = not yet sung)
_ASS_COLOURS = [(255, 255, 255), (255, 230, 90), (120, 220, 255), (170, 255, 150), (255, 160, 200)]


def speaker_label(speaker: str) -> str:
    """The display name of a speaker: ``"agent"`` → ``"Agent"``."""
    label = " ".join(speaker.replace(">", " ").split()) or "Speaker"
    return label[:1].upper() + label[1:]


def load_subtitles(path: str | Path) -> pysubs2.SSAFile:
    """Read a subtitle file with pysubs2, stripping a UTF-8 byte-order mark first.

    pysubs2 misreads a WebVTT file that starts with a BOM, so this decodes with ``utf-8-sig``;
    it also takes any text line holding exactly two timestamps for a timing line, so inline
    karaoke timestamps (``<00:00:01.250>``) are removed from cue text first.
    """
    text = Path(path).read_text(encoding="utf-8-sig")
    fmt = {".vtt": "vtt", ".srt": "srt", ".ass": "ass", ".ssa": "ass", ".ttml": "ttml"}.get(
        Path(path).suffix.lower())
    if fmt == "vtt":
        text = "\n".join(line if "-->" in line else _INLINE_TS.sub("", line)
                         for line in text.split("\n"))
    return pysubs2.SSAFile.from_string(text, format_=fmt)


class CaptionRenderer(Renderer):
    """Base of the cue-based renderers: options are :class:`CaptionRules` fields."""

    options_spec = RULE_OPTIONS

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.rules = caption_rules(self.options)

    def cues(self, timeline: Timeline) -> tuple[Cue, ...]:
        """The cues this renderer captions."""
        return segment(timeline, self.rules)

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        fp.write(self.format(self.cues(timeline)).encode("utf-8"))

    def format(self, cues: Sequence[Cue]) -> str:
        """The whole file for ``cues``."""
        return self.header() + "".join(self.block(c, i + 1) for i, c in enumerate(cues))

    def header(self) -> str:
        """Text before the first cue."""
        return ""

    def block(self, cue: Cue, number: int) -> str:
        """One cue as text (block formats only)."""
        raise NotImplementedError

    def live(self) -> LiveRenderer | None:
        return _LiveCues(self) if type(self).block is not CaptionRenderer.block else None


class _LiveCues(LiveRenderer):
    """Emits cue blocks (the header first) once nothing later can change them: at the latest
    ``max_duration + min_gap + max_lead_in`` seconds after the cue starts."""

    def __init__(self, renderer: CaptionRenderer) -> None:
        self.renderer = renderer
        self.sent = 0
        self.started = False

    def feed(self, timeline: Timeline, final_until: float) -> Sequence[str]:
        rules = self.renderer.rules
        out = []
        for cue in self.renderer.cues(timeline)[self.sent:]:
            u = timeline.utterances[cue.utterance]
            # its utterance must be over, and no later speech can still move its cut or its end
            # (a cue lasts at most max_duration; a later one may appear max_lead_in early)
            settled = cue.start + rules.max_duration + rules.min_gap + rules.max_lead_in
            if u.end > final_until or settled > final_until:
                break
            self.sent += 1
            out.append(self.renderer.block(cue, self.sent))
        if not self.started and (out or final_until == float("inf")):
            self.started = True
            out.insert(0, self.renderer.header())
        return [x for x in out if x]


# --- SRT -------------------------------------------------------------------------------------
class SRT(CaptionRenderer):
    """SubRip through pysubs2; braces and angle brackets (read as tags) become look-alikes."""

    name = "srt"
    extensions = (".srt",)
    description = "SubRip subtitles (.srt), professional caption segmentation"

    def format(self, cues: Sequence[Cue]) -> str:
        subs = pysubs2.SSAFile()
        for cue in cues:
            start, end = _ms(cue.start), _ms(cue.end)
            text = r"\N".join(line.translate(_SRT_SAFE) for line in cue.lines)
            subs.append(pysubs2.SSAEvent(start=start, end=max(end, start + 1), text=text))
        return subs.to_string("srt") if cues else ""

    def block(self, cue: Cue, number: int) -> str:
        return f"{number}\n{_clock(cue.start, ',')} --> {_clock(max(cue.end, cue.start + 1e-3), ',')}\n" \
               + "\n".join(line.translate(_SRT_SAFE) for line in cue.lines) + "\n\n"


# --- WebVTT ----------------------------------------------------------------------------------
class VTT(CaptionRenderer):
    """WebVTT with a ``<v Speaker>`` voice tag per cue."""

    name = "vtt"
    extensions = (".vtt",)
    description = "WebVTT captions with <v> speaker voice tags"
    karaoke = False

    def header(self) -> str:
        return "WEBVTT\n\n"

    def block(self, cue: Cue, number: int) -> str:
        end = max(cue.end, cue.start + 1e-3)  # zero-length cues are invalid WebVTT
        text = "\n".join(self._line(cue, li) for li in range(len(cue.lines)))
        return (f"{number}\n{_clock(cue.start, '.')} --> {_clock(end, '.')}\n"
                f"<v {speaker_label(cue.speaker).translate(_XML_ESCAPES)}>{text}\n\n")

    def _line(self, cue: Cue, li: int) -> str:
        if not self.karaoke:
            return cue.lines[li].translate(_XML_ESCAPES)
        parts, last = [], round(cue.start, 3)
        for w in cue.words:
            if w.line != li:
                continue
            t = round(w.start, 3)
            # inline timestamps must lie strictly inside the cue and increase
            stamp = f"<{_clock(t, '.')}>" if last < t < round(cue.end, 3) else ""
            last = max(last, t)
            parts.append(stamp + w.text.translate(_XML_ESCAPES))
        return " ".join(parts)


class VTTKaraoke(VTT):
    """WebVTT with inline word timestamps (``<00:00:01.250>``) for word-by-word highlighting."""

    name = "vtt-karaoke"
    extensions = (".karaoke.vtt",)
    description = "WebVTT with inline word timestamps for word-by-word highlighting"
    karaoke = True

    def header(self) -> str:
        # words not yet spoken are dimmed by players that support the :future pseudo-class
        return "WEBVTT\n\nSTYLE\n::cue(:future) {\n  color: #a0a0a0;\n}\n\n"


# --- ASS -------------------------------------------------------------------------------------
class ASS(CaptionRenderer):
    """Advanced SubStation Alpha through pysubs2: a style per speaker and ``\\kf`` karaoke tags.

    Option ``karaoke``: ``"kf"`` (default, smooth fill), ``"k"`` (word jumps) or ``"none"``.
    """

    name = "ass"
    extensions = (".ass",)
    description = "ASS subtitles, a style per speaker, \\kf karaoke word timing"
    options_spec = {**RULE_OPTIONS, "karaoke": str}
    KARAOKE = ("kf", "k", "none")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.get("karaoke", "kf") not in self.KARAOKE:
            raise RendererError(f"option karaoke={self.options['karaoke']!r} of ass must be "
                                f"one of {', '.join(self.KARAOKE)}")

    def format(self, cues: Sequence[Cue]) -> str:
        tag = str(self.options.get("karaoke", "kf"))
        subs = pysubs2.SSAFile()
        subs.info.update({"PlayResX": "1920", "PlayResY": "1080", "WrapStyle": "2",
                          "Title": "aligner captions"})
        styles: dict[str, str] = {}
        for cue in cues:
            if cue.speaker not in styles:
                name = speaker_label(cue.speaker).replace(",", " ")
                r, g, b = _ASS_COLOURS[len(styles) % len(_ASS_COLOURS)]
                subs.styles[name] = pysubs2.SSAStyle(
                    fontname="Arial", fontsize=64, primarycolor=pysubs2.Color(r, g, b),
                    secondarycolor=pysubs2.Color(150, 150, 150), outline=3, shadow=1,
                    marginv=60, alignment=pysubs2.Alignment.BOTTOM_CENTER)
                styles[cue.speaker] = name
            start = 10 * round(cue.start * 100)
            end = max(10 * round(cue.end * 100), start + 10)
            text = self._karaoke(cue, start // 10, end // 10, tag) if tag in ("k", "kf") else \
                r"\N".join(line.translate(_TAG_SAFE) for line in cue.lines)
            subs.append(pysubs2.SSAEvent(start=start, end=end, text=text,
                                         style=styles[cue.speaker], name=styles[cue.speaker]))
        if "Default" in subs.styles and styles:
            del subs.styles["Default"]
        return subs.to_string("ass")

    @staticmethod
    def _karaoke(cue: Cue, start_cs: int, end_cs: int, tag: str) -> str:
        """``{\\kfN}word`` per word; N in centiseconds, counted from the rounded cue start."""
        marks = []
        last = start_cs
        for w in cue.words:
            last = min(max(round(w.start * 100), last), end_cs)
            marks.append(last)
        out = [f"{{\\{tag}{marks[0] - start_cs}}}"] if marks and marks[0] > start_cs else []
        for k, w in enumerate(cue.words):
            until = marks[k + 1] if k + 1 < len(marks) else end_cs
            if k and w.line != cue.words[k - 1].line:
                out.append(r"\N")
            elif k:
                out.append(" ")
            out.append(f"{{\\{tag}{until - marks[k]}}}{w.text.translate(_TAG_SAFE)}")
        return "".join(out)


# --- TTML ------------------------------------------------------------------------------------
_TT = "http://www.w3.org/ns/ttml"
_NS = {"tts": _TT + "#styling", "ttp": _TT + "#parameter", "ttm": _TT + "#metadata",
       "xml": "http://www.w3.org/XML/1998/namespace"}


class TTML(CaptionRenderer):
    """TTML in the IMSC1 text profile: one ``<p>`` per cue, ``ttm:agent`` per speaker.

    Option ``lang`` sets ``xml:lang`` (default ``"en"``). Cue level only: TTML spans with times
    hide text outside them, which is not how captions are read.
    """

    name = "ttml"
    extensions = (".ttml",)
    description = "TTML captions, IMSC1 text profile (broadcast and streaming delivery)"
    options_spec = {**RULE_OPTIONS, "lang": str}

    def format(self, cues: Sequence[Cue]) -> str:
        for prefix, uri in _NS.items():
            if prefix != "xml":
                ET.register_namespace(prefix, uri)
        ET.register_namespace("", _TT)
        q = _qualify
        tt = ET.Element(q("tt"), {q("ttp:profile"): "http://www.w3.org/ns/ttml/profile/imsc1/text",
                                  q("ttp:timeBase"): "media", q("ttp:cellResolution"): "32 15",
                                  q("xml:lang"): str(self.options.get("lang", "en"))})
        head = ET.SubElement(tt, q("head"))
        meta = ET.SubElement(head, q("metadata"))
        styling = ET.SubElement(head, q("styling"))
        layout = ET.SubElement(head, q("layout"))
        ET.SubElement(layout, q("region"), {
            q("xml:id"): "bottom", q("tts:origin"): "10% 10%", q("tts:extent"): "80% 80%",
            q("tts:displayAlign"): "after", q("tts:textAlign"): "center"})
        body = ET.SubElement(tt, q("body"), {"region": "bottom"})
        div = ET.SubElement(body, q("div"))
        speakers: dict[str, str] = {}
        for cue in cues:
            if cue.speaker not in speakers:
                ident = f"speaker{len(speakers) + 1}"
                agent = ET.SubElement(meta, q("ttm:agent"), {q("xml:id"): ident, "type": "person"})
                ET.SubElement(agent, q("ttm:name"), {"type": "full"}).text = speaker_label(cue.speaker)
                r, g, b = _ASS_COLOURS[len(speakers) % len(_ASS_COLOURS)]
                ET.SubElement(styling, q("style"), {
                    q("xml:id"): f"s_{ident}", q("tts:color"): f"#{r:02x}{g:02x}{b:02x}",
                    q("tts:backgroundColor"): "#000000c0", q("tts:fontSize"): "100%"})
                speakers[cue.speaker] = ident
            ident = speakers[cue.speaker]
            p = ET.SubElement(div, q("p"), {
                "begin": _clock(cue.start, "."), "end": _clock(max(cue.end, cue.start + 1e-3), "."),
                "style": f"s_{ident}", q("ttm:agent"): ident})
            p.text = cue.lines[0] if cue.lines else ""
            for line in cue.lines[1:]:
                ET.SubElement(p, q("br")).tail = line
        ET.indent(tt, space=" ")
        return ET.tostring(tt, encoding="unicode", xml_declaration=True) + "\n"


def _qualify(name: str) -> str:
    prefix, _, local = name.rpartition(":")
    return f"{{{_NS[prefix] if prefix else _TT}}}{local}"


# --- times -----------------------------------------------------------------------------------
def _ms(t: float) -> int:
    return max(0, round(t * 1000))


def _clock(t: float, sep: str) -> str:
    """``HH:MM:SS.mmm`` (hours grow past 99 as needed)."""
    ms = _ms(t)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
