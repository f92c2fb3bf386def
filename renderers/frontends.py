"""Timing formats that avatar front ends already read: TalkingHead, ElevenLabs, Azure Speech.

Each writes what a front end gets from the tool it was written for, so an integration fed by
that tool can be fed by a call's timeline instead (times on the session clock: the speaker's
audio track, ``agent.wav``, starts at 0):

- ``talkinghead`` (``call.talkinghead.json``): the audio object of TalkingHead's
  ``speakAudio`` (``met4citizen/TalkingHead``): ``words``, ``wtimes``, ``wdurations``,
  ``visemes``, ``vtimes``, ``vdurations``, times and durations in milliseconds, visemes named
  as TalkingHead's ``viseme_*`` morph targets (Oculus ``aa E I O U PP SS TH DD FF kk nn RR CH
  sil``; the ``talkinghead`` set of :mod:`aligner.visemes.sets`). Pauses carry no viseme
  (TalkingHead relaxes the mouth itself) and each viseme is timed when its sound starts:
  TalkingHead ramps every viseme in from two thirds of its duration before (``lead`` 0).
- ``elevenlabs`` (``call.elevenlabs.json``): ElevenLabs' character alignment (the
  ``alignment`` of its text-to-speech "with timestamps" answers):
  ``characters``, ``character_start_times_seconds``, ``character_end_times_seconds``; the
  heard characters of the speaker's utterances, spaces and punctuation included, one space
  between two utterances.
- ``azure`` (``call.azure.jsonl``): Azure Speech viseme events, one JSON object a line:
  ``{"AudioOffset":500000,"VisemeId":21}`` (``SpeechSynthesisVisemeEventArgs``: the offset in
  100-nanosecond ticks, the viseme id 0-21 of Azure's table); the first is viseme 0 at 0.
  Live.

>>> from aligner.timeline import Char, Phone, Timeline, Utterance, Word
>>> u = Utterance("agent", 0.1, 0.4, "Hi", words=(Word("Hi", 0.1, 0.4, 0, 2),),
...               chars=(Char("H", 0.1, 0.2), Char("i", 0.2, 0.4)),
...               phones=(Phone("HH", 0.1, 0.2, 0), Phone("AY", 0.2, 0.4, 0)))
>>> tl = Timeline(utterances=(u,), duration=0.6)
>>> doc = json.loads(TalkingHead().render_string(tl))
>>> doc["words"], doc["wtimes"], doc["wdurations"]
(['Hi'], [100], [300])
>>> json.loads(ElevenLabs().render_string(tl))["characters"]
['H', 'i']
>>> Azure().render_string(tl).splitlines()[1]
'{"AudioOffset":1000000,"VisemeId":12}'
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from aligner.speech.text import written
from aligner.timeline import Timeline, Utterance
from aligner.visemes import Cue, VisemeStream

from . import LiveRenderer, Renderer
from .visemes import _compact, _LiveVisemes, _VisemeRenderer

__all__ = ["Azure", "ElevenLabs", "TalkingHead", "azure_event", "heard_chars"]

#: Azure Speech audio offsets are in ticks of 100 ns.
TICKS_PER_SECOND = 10_000_000


class TalkingHead(_VisemeRenderer):
    """TalkingHead's ``speakAudio`` audio object (without ``audio``), as JSON.

    Options: ``speaker`` (``agent``), ``lead`` (0 s), ``min_hold``, ``retime`` as the other
    viseme renderers.
    """

    name = "talkinghead"
    extensions = (".talkinghead.json",)
    description = "TalkingHead speakAudio object: words/wtimes/wdurations, visemes/vtimes/vdurations (ms)"
    viseme_set = "talkinghead"
    default_lead = 0.0

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        doc: dict[str, list[Any]] = {k: [] for k in ("words", "wtimes", "wdurations", "visemes",
                                                      "vtimes", "vdurations")}
        for u in timeline.speaker(self._speaker()):
            for w in u.heard_words:
                a, b = _ms(w.start), _ms(w.end)
                doc["words"].append(written(u.text, w.char_start, w.char_end))
                doc["wtimes"].append(a)
                doc["wdurations"].append(b - a)
        rest = "sil"
        for c in self._cues(timeline, base=base):
            a, b = _ms(c.start), _ms(c.end)
            if c.viseme != rest and b > a:
                doc["visemes"].append(c.viseme)
                doc["vtimes"].append(a)
                doc["vdurations"].append(b - a)
        fp.write((json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8"))


class ElevenLabs(Renderer):
    """ElevenLabs-style character alignment of the speaker's heard characters, as JSON.

    Option ``speaker`` (``agent``).
    """

    name = "elevenlabs"
    options_spec = {"speaker": str}
    extensions = (".elevenlabs.json",)
    description = ("ElevenLabs character alignment: characters, character_start/end_times_seconds")

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        chars: list[str] = []
        starts: list[float] = []
        ends: list[float] = []
        for u in timeline.speaker(str(self.options.get("speaker", "agent"))):
            got = heard_chars(u)
            if not got:
                continue
            if chars and not chars[-1].isspace():  # utterances read as one text
                chars.append(" ")
                starts.append(ends[-1])
                ends.append(max(ends[-1], got[0][1]))
            for c, a, b in got:
                chars.append(c)
                starts.append(a)
                ends.append(b)
        doc = {"characters": chars,
               "character_start_times_seconds": [round(t, 3) for t in starts],
               "character_end_times_seconds": [round(t, 3) for t in ends]}
        fp.write((json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8"))


class Azure(_VisemeRenderer):
    """Azure Speech viseme events as JSON lines ``{"AudioOffset": ticks, "VisemeId": id}``.

    Options: ``speaker`` (``agent``), ``lead`` (0 s), ``min_hold``, ``retime``.
    """

    name = "azure"
    extensions = (".azure.jsonl",)
    description = "Azure Speech viseme events, JSON lines {AudioOffset (100 ns ticks), VisemeId}"
    viseme_set = "azure"
    default_lead = 0.0

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        for c in self._cues(timeline, base=base):
            fp.write((_compact(azure_event(c)) + "\n").encode("utf-8"))

    def live(self) -> LiveRenderer:
        return _LiveVisemes(VisemeStream("azure", self._motion()), self._speaker(), azure_event,
                            self._retimed())


def azure_event(cue: Cue) -> dict[str, int]:
    """The Azure viseme event of an ``azure``-set cue: ``{"AudioOffset", "VisemeId"}``."""
    return {"AudioOffset": round(cue.start * TICKS_PER_SECOND), "VisemeId": int(cue.viseme)}


def heard_chars(u: Utterance) -> list[tuple[str, float, float]]:
    """``(char, start, end)`` of the characters of ``u`` that were heard: all of them, or for
    an utterance a ``clear`` cut, those up to the end of its last heard word (times clipped to
    the utterance's end)."""
    if not u.chars:
        return []
    n = len(u.chars)
    if u.interrupted or any(not w.played for w in u.words):
        heard = u.heard_words
        n = heard[-1].char_end if heard else 0
    return [(c.char, min(c.start, u.end), min(max(c.end, c.start), u.end))
            for c in u.chars[:n]]


def _ms(t: float) -> int:
    return round(t * 1000)
