"""The ``picture`` renderer: a call as a phonetician sees a sound in Praat, and a page that plays it.

For a person checking a call: for each speaker, the waveform and a spectrogram (0-8 kHz, dark
is loud, as Praat draws it), then the word, phone and (agent) viseme tiers as interval tiers
with their boundaries; red lines where a ``clear`` cut the agent off, the interrupted
utterance marked; words the listener never heard (cut by the clear) in grey after it; under
each word the aligner's confidence as a bar when the timeline has one (red 0 .. green 1).

Long calls stay readable: the picture is cut into **rows of** ``row_seconds`` (10 s, about
150 pixels a second at the default width), and **at most** ``rows_per_page`` (12) rows go in one
PNG; a longer call gets more PNGs (``call.png``, ``call.p2.png``, ...), each a page of at most
2 minutes, so no image grows past about 1600 x 4600 pixels however long the call.

Files: the PNG page(s), ``call.html`` (the pages with the call's audio: it plays, a playhead
follows it and the sounding word lights up; clicking a row plays from there) and
``call.picture.wav`` (the mono mix the page plays).

Options: ``width`` (1600 pixels), ``row_seconds`` (10), ``rows_per_page`` (12),
``viseme_set`` (``oculus``), ``spectrogram`` (true), ``retime`` (true: visemes from phones
refined on the audio, as the viseme renderers do), ``progress`` (a bar on stderr: ``"auto"``,
true/false, or a callable ``(rows_done, rows)``).

>>> from aligner.timeline import Timeline, Utterance, Word
>>> u = Utterance("agent", 0.5, 1.0, "Hi", words=(Word("Hi", 0.5, 1.0, 0, 2),))
>>> lay = Picture(width=1000, row_seconds=5).layout(Timeline(utterances=(u,), duration=12.0))
>>> len(lay.rows), lay.pages, [b.text for b in lay.words]
(3, 1, ['Hi'])
"""

from __future__ import annotations

import html
import io
import json
import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from aligner.errors import RendererError
from aligner.progress import enabled, reporter
from aligner.timeline import Timeline, Utterance, atomic_output, write_atomic

from . import Renderer
from .caption_draw import load_font

__all__ = ["Box", "Layout", "Picture", "Row"]

LEFT = 118  # the lane labels' margin
RIGHT = 12
HEADER = 46
AXIS = 18
GAP = 8
#: lanes of each speaker, top to bottom, with their heights in pixels
LANES = {"wave": 46, "spectrogram": 76, "words": 26, "phones": 18, "visemes": 18}
SPEAKERS = ("agent", "user")
COLOURS = {"agent": (28, 130, 78), "user": (40, 100, 190)}
INK, DIM, GRID = (20, 20, 24), (150, 150, 158), (214, 214, 220)
CLEAR = (212, 38, 38)
TOP_HZ = 8000.0
DYNAMIC_DB = 55.0  # the spectrogram's range below its loudest cell in a row (Praat: 50 dB)


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a page: ``t0``..``t1`` seconds, drawn ``y0``..``y1`` (pixels of its page)."""

    page: int
    t0: float
    t1: float
    y0: int
    y1: int


@dataclass(frozen=True, slots=True)
class Box:
    """Where an interval (a word...) is drawn: page, row index, pixel box, its times."""

    page: int
    row: int
    x0: float
    y0: int
    x1: float
    y1: int
    start: float
    end: float
    text: str
    speaker: str
    played: bool = True
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """The geometry of a call's picture: rows, pages, lanes and every word's box."""

    width: int
    row_seconds: float
    rows_per_page: int
    lanes: tuple[tuple[str, str, int, int], ...]  # (speaker, lane, top, bottom) within a row
    row_height: int
    rows: tuple[Row, ...]
    pages: int
    words: tuple[Box, ...]

    def x(self, t: float, row: Row) -> float:
        """The x pixel of time ``t`` in ``row``."""
        return LEFT + (t - row.t0) / self.row_seconds * (self.width - LEFT - RIGHT)

    def lane(self, speaker: str, name: str, row: Row) -> tuple[int, int] | None:
        """The top and bottom pixel of a speaker's lane in ``row``, or None if it is not drawn."""
        for sp, ln, top, bottom in self.lanes:
            if sp == speaker and ln == name:
                return row.y0 + top, row.y0 + bottom
        return None

    def page_height(self, page: int) -> int:
        """Pixel height of page ``page`` (1-based)."""
        n = sum(1 for r in self.rows if r.page == page)
        return HEADER + n * self.row_height + GAP

    def row_of(self, t: float) -> int:
        """The index of the row holding time ``t``."""
        return min(len(self.rows) - 1, max(0, int(t // self.row_seconds)))


class Picture(Renderer):
    """The call as PNG page(s) with waveform, spectrogram, tiers and events, and an HTML player."""

    name = "picture"
    extensions = (".png", ".html", ".picture.wav")
    description = "picture of the timeline: waveform, spectrogram, word/phone/viseme tiers (PNG + HTML)"
    options_spec = {"width": int, "row_seconds": float, "rows_per_page": int, "viseme_set": str,
                    "spectrogram": bool, "retime": bool}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        try:
            self.width = int(options.get("width", 1600))
            self.row_seconds = float(options.get("row_seconds", 10.0))
            self.rows_per_page = int(options.get("rows_per_page", 12))
        except (TypeError, ValueError) as exc:
            raise RendererError(f"picture: bad option: {exc}") from None
        if self.width < 400 or self.row_seconds <= 0 or self.rows_per_page < 1:
            raise RendererError("picture: width must be >= 400, row_seconds > 0, "
                                "rows_per_page >= 1")
        self.viseme_set = str(options.get("viseme_set", "oculus"))
        self.spectrogram = enabled(options.get("spectrogram", True))
        self.retime = enabled(options.get("retime", True))

    # --- geometry --------------------------------------------------------------------------------
    def layout(self, timeline: Timeline) -> Layout:
        """Rows, pages, lanes and word boxes of ``timeline``'s picture (nothing is drawn)."""
        speakers = [s for s in SPEAKERS
                    if timeline.speaker(s) or timeline.track(s) is not None]
        lanes, y = [], AXIS
        for s in speakers:
            for name, h in LANES.items():
                if name == "visemes" and s != "agent":
                    continue
                lanes.append((s, name, y, y + h))
                y += h
            y += GAP
        row_height = y + 4
        end = max([timeline.duration] + [u.end for u in timeline.utterances] + [0.001])
        n = max(1, math.ceil(end / self.row_seconds - 1e-9))
        rows = []
        for i in range(n):
            page, k = i // self.rows_per_page + 1, i % self.rows_per_page
            y0 = HEADER + k * row_height
            rows.append(Row(page, i * self.row_seconds, (i + 1) * self.row_seconds, y0,
                            y0 + row_height))
        lay = Layout(self.width, self.row_seconds, self.rows_per_page, tuple(lanes), row_height,
                     tuple(rows), rows[-1].page, ())
        words = []
        for u in timeline.utterances:
            if (u.speaker, "words") not in {(s, n) for s, n, _, _ in lanes}:
                continue
            for w in u.heard_words:
                words += _boxes(lay, u.speaker, w.start, max(w.end, w.start), w.word, u,
                                confidence=w.confidence)
        return Layout(lay.width, lay.row_seconds, lay.rows_per_page, lay.lanes, lay.row_height,
                      lay.rows, lay.pages, tuple(words))

    # --- files -----------------------------------------------------------------------------------
    def render(self, timeline: Timeline, out_dir: str | Path, *, stem: str = "call",
               base: Path | None = None) -> list[Path]:
        """Write the PNG page(s), ``<stem>.html`` and ``<stem>.picture.wav``; return their paths."""
        out = Path(out_dir)
        lay = self.layout(timeline)
        pages = self.draw(timeline, lay, base)
        paths = []
        for k, im in enumerate(pages, 1):
            buf = io.BytesIO()
            im.save(buf, "PNG", optimize=False)
            paths.append(write_atomic(out / _page_name(stem, k), buf.getvalue()))
        audio = out / f"{stem}.picture.wav"
        _write_mix(timeline, base, audio)
        page = _html(timeline, lay, stem, [p.name for p in paths], audio.name)
        paths.append(write_atomic(out / f"{stem}.html", page))
        paths.append(audio)
        return paths

    def render_to(self, timeline: Timeline, fp: io.BufferedIOBase, *, base: Path | None = None) -> None:
        """The first PNG page only (the whole picture: :meth:`render`)."""
        lay = self.layout(timeline)
        self.draw(timeline, lay, base, pages=1)[0].save(fp, "PNG")

    # --- drawing ---------------------------------------------------------------------------------
    def draw(self, timeline: Timeline, lay: Layout, base: Path | None = None,
             pages: int | None = None) -> list[Image.Image]:
        """The PNG pages as images (the first ``pages`` of them)."""
        from aligner.visemes import timeline_cues

        from .video_audio import AudioMix

        count = lay.pages if pages is None else min(pages, lay.pages)
        rows = [r for r in lay.rows if r.page <= count]
        report = reporter("picture", len(rows), self.options.get("progress"), unit="rows",
                          speed=None)
        mix = AudioMix(timeline, base, stereo=False) if timeline.audio else None
        cues = []
        if any(ln == "visemes" for _, ln, _, _ in lay.lanes):
            report(0, "visemes (phones refined on the audio)")
            cues = timeline_cues(timeline, self.viseme_set, retimed=self.retime,
                                 base=str(base) if base is not None else None)
        fonts = {k: load_font(size, bold) for k, (size, bold) in
                 {"title": (17, True), "label": (11, False), "word": (12, False),
                  "small": (10, False)}.items()}
        images = []
        for page in range(1, count + 1):
            im = Image.new("RGB", (lay.width, lay.page_height(page)), (255, 255, 255))
            d = ImageDraw.Draw(im)
            page_rows = [r for r in rows if r.page == page]
            _header(d, timeline, lay, page, page_rows, fonts)
            for r in page_rows:
                self._row(im, d, timeline, lay, r, mix, cues, fonts)
                report(lay.rows.index(r) + 1)
            images.append(im)
        return images

    def _row(self, im: Image.Image, d: ImageDraw.ImageDraw, timeline: Timeline, lay: Layout,
             r: Row, mix: Any, cues: list, fonts: dict) -> None:
        x0, x1 = LEFT, lay.width - RIGHT
        # the time axis: a tick a second, a label every two
        d.line((x0, r.y0 + AXIS - 2, x1, r.y0 + AXIS - 2), fill=GRID)
        for s in range(int(math.ceil(r.t0)), int(math.ceil(r.t1))):
            x = lay.x(s, r)
            d.line((x, r.y0 + AXIS - 6, x, r.y0 + AXIS - 2), fill=DIM)
            if s % 2 == 0 or lay.row_seconds <= 6:
                d.text((x + 2, r.y0 + 1), _clock(s), font=fonts["small"], fill=DIM)
        for speaker, name, top, bottom in lay.lanes:
            y0, y1 = r.y0 + top, r.y0 + bottom
            label = {"wave": f"{speaker}", "spectrogram": f"0-{TOP_HZ / 1000:g} kHz"}.get(name,
                                                                                      name)
            d.text((8, y0 + 2), label, font=fonts["label" if name != "wave" else "word"],
                   fill=COLOURS[speaker] if name == "wave" else DIM)
            if name in ("words", "phones", "visemes"):
                d.rectangle((x0, y0, x1, y1 - 1), fill=(247, 247, 250), outline=GRID)
            if name == "wave" and mix is not None:
                _wave(im, lay, r, y0, y1, mix.speaker(speaker, *_samples(r, mix.rate)),
                      COLOURS[speaker])
            elif name == "spectrogram" and mix is not None and self.spectrogram:
                _spectrogram(im, lay, r, y0, y1, mix.speaker(speaker, *_samples(r, mix.rate)),
                             mix.rate)
            elif name == "spectrogram" or name == "wave":
                d.rectangle((x0, y0, x1, y1 - 1), outline=GRID)
        for u in timeline.utterances:
            if u.end < r.t0 or u.start > r.t1:
                continue
            words = lay.lane(u.speaker, "words", r)
            if words is not None:
                self._words(d, lay, r, u, words, fonts)
            phones = lay.lane(u.speaker, "phones", r)
            if phones is not None:
                for p in u.phones:
                    end = min(p.end, u.end)
                    if p.phone != "sil" and end > max(p.start, r.t0) and p.start < r.t1:
                        _interval(d, lay, r, phones, p.start, end, p.phone, fonts["small"],
                                  COLOURS[u.speaker])
        visemes = lay.lane("agent", "visemes", r)
        if visemes is not None:
            rest = {"oculus": "sil", "talkinghead": "sil", "polly": "sil", "azure": 0,
                    "rhubarb": "X"}.get(self.viseme_set)
            for c in cues:
                if c.viseme != rest and c.end > r.t0 and c.start < r.t1:
                    _interval(d, lay, r, visemes, c.start, c.end, str(c.viseme), fonts["small"],
                              (120, 70, 160))
        for e in timeline.events:
            if e.kind == "clear" and r.t0 <= e.t < r.t1:
                x = lay.x(e.t, r)
                d.line((x, r.y0 + AXIS, x, r.y1 - 4), fill=CLEAR, width=2)
                cut = [u.speaker for u in timeline.utterances
                       if u.interrupted and abs(u.end - e.t) < 1e-6]
                label = f"clear: {' and '.join(cut)} interrupted" if cut else "clear"
                d.text((x + 4, r.y0 + AXIS + 1), label, font=fonts["small"], fill=CLEAR)

    def _words(self, d: ImageDraw.ImageDraw, lay: Layout, r: Row, u: Utterance,
               lane: tuple[int, int], fonts: dict) -> None:
        colour = COLOURS[u.speaker]
        for w in u.heard_words:
            if w.end > r.t0 and w.start < r.t1:
                _interval(d, lay, r, lane, w.start, max(w.end, w.start), w.word, fonts["word"],
                          colour, confidence=w.confidence)
        if not u.interrupted or not (r.t0 <= u.end < r.t1):
            return
        # the utterance was cut here: the words never heard follow in grey, untimed
        y0, y1 = lane
        x = lay.x(u.end, r) + 4
        limit = lay.width - RIGHT
        later = [v.start for v in u.words if v.played and v.start > u.end]
        if later:
            limit = min(limit, lay.x(later[0], r))
        for w in (v for v in u.words if not v.played):
            width = d.textlength(w.word, font=fonts["word"]) + 8
            if x + width > limit:
                break
            d.rectangle((x, y0 + 2, x + width, y1 - 3), outline=DIM)
            d.text((x + 4, (y0 + y1) / 2), w.word, font=fonts["word"], fill=DIM, anchor="lm")
            x += width + 3


# --- pieces ---------------------------------------------------------------------------------------

def _page_name(stem: str, page: int) -> str:
    return f"{stem}.png" if page == 1 else f"{stem}.p{page}.png"


def _clock(s: float) -> str:
    return f"{int(s) // 60}:{int(s) % 60:02d}"


def _samples(r: Row, rate: int) -> tuple[int, int]:
    return round(r.t0 * rate), round(r.t1 * rate)


def _boxes(lay: Layout, speaker: str, start: float, end: float, text: str, u: Utterance,
           confidence: float | None = None) -> list[Box]:
    """The box of an interval in each row it spans (a word across a row edge has two)."""
    out = []
    for i in range(lay.row_of(start), lay.row_of(max(start, end - 1e-9)) + 1):
        r = lay.rows[i]
        lane = lay.lane(speaker, "words", r)
        a, b = max(start, r.t0), min(end, r.t1)
        out.append(Box(r.page, i, lay.x(a, r), lane[0], lay.x(b, r), lane[1], start, end, text,
                       speaker, True, confidence))
    return out


def _interval(d: ImageDraw.ImageDraw, lay: Layout, r: Row, lane: tuple[int, int], start: float,
              end: float, text: str, font: Any, colour: tuple[int, int, int],
              confidence: float | None = None) -> None:
    """A tier interval: a tinted box between two boundary lines, its label centred (cut to fit),
    and the confidence bar along its bottom when given."""
    y0, y1 = lane
    a, b = lay.x(max(start, r.t0), r), lay.x(min(end, r.t1), r)
    tint = tuple(int(255 - (255 - c) * 0.16) for c in colour)
    d.rectangle((a, y0 + 1, b, y1 - 2), fill=tint)
    for x in (a, b):
        d.line((x, y0, x, y1 - 1), fill=colour)
    label = _fit(d, text, font, b - a - 4)
    if label:
        d.text(((a + b) / 2, (y0 + y1) / 2 - 1), label, font=font, fill=INK, anchor="mm")
    if confidence is not None:
        c = min(1.0, max(0.0, float(confidence)))
        ramp = (round(220 * (1 - c) + 40 * c), round(60 + 150 * c), 50)
        length = (b - a - 2) * c
        if length > 0:  # a word narrower than its two boundary lines has no room for a bar
            d.rectangle((a + 1, y1 - 5, a + 1 + length, y1 - 2), fill=ramp)


def _fit(d: ImageDraw.ImageDraw, text: str, font: Any, room: float) -> str:
    if d.textlength(text, font=font) <= room:
        return text
    while len(text) > 1 and d.textlength(text + "…", font=font) > room:
        text = text[:-1]
    return text + "…" if len(text) > 1 else ""


def _columns(pcm: np.ndarray, n: int) -> np.ndarray:
    """``pcm`` cut into ``n`` columns of (nearly) equal samples, as index bounds (n + 1,)."""
    return np.linspace(0, len(pcm), n + 1).astype(int)


def _wave(im: Image.Image, lay: Layout, r: Row, y0: int, y1: int, pcm: np.ndarray,
          colour: tuple[int, int, int]) -> None:
    """Min/max of each pixel column as a vertical stroke (the waveform at any zoom)."""
    x0, x1 = LEFT, lay.width - RIGHT
    n = x1 - x0
    if not len(pcm) or n <= 0:
        return
    edges = _columns(pcm, n)
    pad = np.concatenate([pcm, pcm[-1:]]).astype(np.int32)
    starts = np.minimum(edges[:-1], len(pcm) - 1)
    hi = np.maximum.reduceat(pad, starts)
    lo = np.minimum.reduceat(pad, starts)
    mid, half = (y0 + y1) / 2, (y1 - y0 - 4) / 2
    top = np.round(mid - hi / 32768 * half).astype(int)
    bottom = np.round(mid - lo / 32768 * half).astype(int)
    arr = np.asarray(im)  # read-only view; draw into a copy of the lane and paste it back
    lane = arr[y0:y1, x0:x1].copy()
    lane[int(mid) - y0, :] = (200, 200, 206)
    ys = np.arange(y0, y1)[:, None]
    ink = (ys >= top[None, :]) & (ys <= bottom[None, :])
    lane[ink] = colour
    im.paste(Image.fromarray(lane), (x0, y0))


def _spectrogram(im: Image.Image, lay: Layout, r: Row, y0: int, y1: int, pcm: np.ndarray,
                 rate: int) -> None:
    """A wide-band spectrogram (5 ms-ish Gaussian-like Hann window, 0-8 kHz), dark = loud."""
    x0, x1 = LEFT, lay.width - RIGHT
    n, h = x1 - x0, y1 - y0
    if not len(pcm) or n <= 0:
        return
    win = max(64, int(rate * 0.008))
    nfft = 1 << int(math.ceil(math.log2(win)))
    centres = ((np.arange(n) + 0.5) * len(pcm) / n).astype(int)
    x = np.concatenate([np.zeros(win), pcm.astype(np.float64) / 32768, np.zeros(win)])
    idx = centres[:, None] + np.arange(win)[None, :] + win // 2
    frames = x[idx] * np.hanning(win)[None, :]
    power = np.abs(np.fft.rfft(frames, nfft, axis=1)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1 / rate)
    top = min(TOP_HZ, rate / 2)
    wanted = np.linspace(top, 0, h)  # image rows, high frequencies first
    cols = np.stack([np.interp(wanted, freqs, p) for p in power], axis=1)
    db = 10 * np.log10(cols + 1e-12)
    ref = max(db.max(), -45.0)  # a quiet row is not blown up to full black
    level = np.clip((db - (ref - DYNAMIC_DB)) / DYNAMIC_DB, 0, 1)
    grey = (255 * (1 - level) ** 1.4).astype(np.uint8)  # Praat's grey: white quiet, black loud
    im.paste(Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2)), (x0, y0))


def _header(d: ImageDraw.ImageDraw, timeline: Timeline, lay: Layout, page: int, rows: list[Row],
            fonts: dict) -> None:
    call = dict(timeline.metadata).get("call_id", "call")
    span = f"{_clock(rows[0].t0)}-{_clock(min(rows[-1].t1, max(timeline.duration, 0)))}"
    d.text((LEFT, 8), f"{call}   page {page}/{lay.pages}   {span}   "
                      f"({lay.row_seconds:g} s a row)", font=fonts["title"], fill=INK)
    d.text((LEFT, 28), "red line: clear   grey words: never heard (cut by the clear)   "
                       "bar under a word: aligner confidence (red 0 .. green 1)",
           font=fonts["label"], fill=DIM)


def _write_mix(timeline: Timeline, base: Path | None, path: Path) -> None:
    """The call's mono mix as a 16-bit WAV, block by block, written atomically."""
    from .video_audio import AudioMix

    mix = AudioMix(timeline, base, stereo=False)
    total = round(timeline.duration * mix.rate)
    with atomic_output(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(mix.rate)
        for s in range(0, total, mix.rate * 10):
            w.writeframes(mix.read(s, min(total, s + mix.rate * 10)).astype("<i2").tobytes())


def _html(timeline: Timeline, lay: Layout, stem: str, pngs: list[str], audio: str) -> str:
    """The player page: the PNG pages with a playhead and word boxes that light up."""
    data = {
        "width": lay.width, "heights": [lay.page_height(p) for p in range(1, lay.pages + 1)],
        "rows": [{"page": r.page, "t0": r.t0, "t1": r.t1, "y0": r.y0, "y1": r.y1,
                  "x0": LEFT, "x1": lay.width - RIGHT} for r in lay.rows],
        "words": [{"page": b.page, "x0": round(b.x0, 1), "x1": round(b.x1, 1), "y0": b.y0,
                   "y1": b.y1, "start": round(b.start, 4), "end": round(b.end, 4),
                   "text": b.text, "speaker": b.speaker} for b in lay.words],
    }
    title = html.escape(str(dict(timeline.metadata).get("call_id", stem)))
    pages = "\n".join(
        f'<div class="page" data-page="{k}"><img src="{html.escape(name)}" alt="page {k}">'
        f'<div class="playhead"></div></div>' for k, name in enumerate(pngs, 1))
    return _PAGE.format(title=title, audio=html.escape(audio), pages=pages,
                        data=json.dumps(data).replace("</", "<\\/"))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - timeline</title>
<style>
body {{ margin: 0; font: 14px system-ui, sans-serif; background: #eceef2; color: #16181d; }}
header {{ position: sticky; top: 0; z-index: 2; display: flex; gap: 16px; align-items: center;
          padding: 8px 16px; background: #fff; border-bottom: 1px solid #ccd; }}
header h1 {{ font-size: 16px; margin: 0; }} #now {{ font: 600 15px ui-monospace, monospace; }}
.page {{ position: relative; margin: 12px auto; max-width: 100%; width: fit-content;
         box-shadow: 0 1px 4px #0002; background: #fff; }}
.page img {{ display: block; max-width: 100%; height: auto; }}
.word {{ position: absolute; box-sizing: border-box; border-radius: 3px; cursor: pointer; }}
.word.sounding {{ background: rgba(255, 196, 0, 0.45); outline: 2px solid #e0a000; }}
.playhead {{ position: absolute; width: 2px; background: #e0a000; display: none;
             pointer-events: none; }}
</style></head>
<body>
<header><h1>{title}</h1><audio id="audio" controls preload="auto" src="{audio}"></audio>
<span id="now">&nbsp;</span></header>
{pages}
<script>
const DATA = {data};
const audio = document.getElementById("audio");
const pct = (v, of) => (100 * v / of) + "%";
const pages = [...document.querySelectorAll(".page")];
const boxes = DATA.words.map((w) => {{
  const el = document.createElement("div");
  el.className = "word"; el.title = w.text;
  const h = DATA.heights[w.page - 1];
  Object.assign(el.style, {{ left: pct(w.x0, DATA.width), width: pct(w.x1 - w.x0, DATA.width),
                            top: pct(w.y0, h), height: pct(w.y1 - w.y0, h) }});
  el.onclick = (e) => {{ e.stopPropagation(); audio.currentTime = w.start; audio.play(); }};
  pages[w.page - 1].append(el);
  return {{ el, w }};
}});
pages.forEach((p, k) => p.addEventListener("click", (e) => {{   // play from the clicked time
  const r = p.getBoundingClientRect(), h = DATA.heights[k];
  const x = (e.clientX - r.left) / r.width * DATA.width, y = (e.clientY - r.top) / r.height * h;
  const row = DATA.rows.find((o) => o.page === k + 1 && o.y0 <= y && y < o.y1);
  if (!row) return;
  audio.currentTime = Math.max(0, row.t0 + (x - row.x0) / (row.x1 - row.x0) * (row.t1 - row.t0));
  audio.play();
}}));
window.picture = {{ log: [], sounding: [] }};
let lit = [], lastRow = -1;
function follow() {{
  requestAnimationFrame(follow);
  const t = audio.currentTime;
  document.getElementById("now").textContent = t.toFixed(2) + " s";
  const now = boxes.filter((b) => b.w.start <= t && t < b.w.end);
  if (now.length !== lit.length || now.some((b, i) => b !== lit[i])) {{
    for (const b of lit) b.el.classList.remove("sounding");
    for (const b of now) {{
      b.el.classList.add("sounding");
      if (!lit.includes(b)) window.picture.log.push({{ t, text: b.w.text, speaker: b.w.speaker,
                                                      start: b.w.start, end: b.w.end }});
    }}
    lit = now;
    window.picture.sounding = now.map((b) => b.w.text);
  }}
  const i = DATA.rows.findIndex((r) => r.t0 <= t && t < r.t1);
  for (const p of pages) p.querySelector(".playhead").style.display = "none";
  if (i < 0 || (audio.paused && t === 0)) return;
  const r = DATA.rows[i], h = DATA.heights[r.page - 1], head = pages[r.page - 1].querySelector(".playhead");
  Object.assign(head.style, {{ display: "block", top: pct(r.y0, h), height: pct(r.y1 - r.y0, h),
    left: pct(r.x0 + (t - r.t0) / (r.t1 - r.t0) * (r.x1 - r.x0), DATA.width) }});
  if (i !== lastRow && !audio.paused) head.scrollIntoView({{ block: "nearest" }});
  lastRow = i;
}}
requestAnimationFrame(follow);
</script>
</body></html>
"""
