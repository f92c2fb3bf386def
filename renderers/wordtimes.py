"""Word-timing exports: Praat TextGrid (word and phone tiers) and JSON ``segments[].words[]``.

Both carry the heard words with their exact times (TextGrid also the phones), for phoneticians,
animation tools and anything that reads Whisper-style word timestamps.

>>> from aligner.timeline import Timeline, Utterance, Word
>>> u = Utterance("agent", 0.0, 1.0, "Hi there.", words=(Word("Hi", 0.0, 0.3, 0, 2),
...                                                     Word("there", 0.3, 0.9, 3, 8)))
>>> doc = json.loads(WordsJSON().render_string(Timeline(utterances=(u,))))
>>> doc["segments"][0]["words"][1]
{'word': 'there.', 'start': 0.3, 'end': 0.9}
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from aligner.timeline import Timeline

from .segment import Cue
from .subtitles import CaptionRenderer

__all__ = ["TextGrid", "WordsJSON"]


class WordsJSON(CaptionRenderer):
    """``{"segments": [{"id", "speaker", "start", "end", "text", "interrupted", "words": [...]}]}``.

    One segment per caption cue; each word has ``word`` (as displayed, with its punctuation),
    ``start`` and ``end`` in seconds (millisecond precision, the word's own times).
    """

    name = "json"
    extensions = (".words.json",)
    description = "word timings as JSON: segments[].words[] with word/start/end"

    def format(self, cues: tuple[Cue, ...] | list[Cue]) -> str:
        segments = [{
            "id": i,
            "speaker": c.speaker,
            "start": round(c.start, 3),
            "end": round(c.end, 3),
            "text": " ".join(c.lines),
            "interrupted": c.interrupted,
            "words": [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                      for w in c.words],
        } for i, c in enumerate(cues)]
        return json.dumps({"segments": segments}, ensure_ascii=False, indent=1) + "\n"


class TextGrid(CaptionRenderer):
    """Praat TextGrid (long format, via praatio): ``<speaker> words`` and ``<speaker> phones``
    interval tiers per speaker; only what the listener heard, overlaps trimmed."""

    name = "textgrid"
    extensions = (".TextGrid",)
    description = "Praat TextGrid with word and phone tiers per speaker"

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        from praatio import textgrid

        tiers: dict[str, list[tuple[float, float, str]]] = {}
        for cue in self.cues(timeline):
            tier = tiers.setdefault(f"{cue.speaker} words", [])
            tier.extend((w.start, w.end, w.text) for w in cue.words)
        for u in timeline.utterances:
            heard = {i for i, w in enumerate(u.words) if w.played}
            tier = tiers.setdefault(f"{u.speaker} phones", [])
            tier.extend((p.start, min(p.end, u.end), p.phone) for p in u.phones
                        if p.start < u.end and (p.word_index in heard or p.word_index < 0))
        end = max([timeline.duration, 0.001] + [e for t in tiers.values() for _, e, _ in t])
        tg = textgrid.Textgrid(0.0, end)
        for name in sorted(tiers, key=lambda n: (n.split()[0], n.endswith("phones"))):
            entries = _disjoint(tiers[name])
            tg.addTier(textgrid.IntervalTier(name, entries, 0.0, end))
        fp.write(_textgrid_string(tg).encode("utf-8"))


def _disjoint(items: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Sorted, non-overlapping, non-empty intervals (a later one starts where the earlier ends)."""
    out: list[tuple[float, float, str]] = []
    for start, end, label in sorted(items):
        start, end = round(start, 6), round(end, 6)
        if out and start < out[-1][1]:
            start = out[-1][1]
        if end - start > 1e-6 and label.strip():
            out.append((start, end, label))
    return out


def _textgrid_string(tg) -> str:
    """The long-format text praatio's ``Textgrid.save`` would write (without touching a file)."""
    from praatio.data_classes.textgrid import _tgToDictionary
    from praatio.utilities import textgrid_io

    tg.validate("error")
    return textgrid_io.getTextgridAsStr(_tgToDictionary(tg), "long_textgrid", True,
                                        tg.minTimestamp, tg.maxTimestamp)
