"""Caption drawing with Pillow: shipped font, outline and shadow, karaoke highlight, speaker colour.

The font is DejaVu Sans, shipped in ``renderers/data/fonts`` (Bitstream Vera licence, see
``DejaVu-LICENSE.txt``), so output never depends on the machine. It covers Latin, Greek,
Cyrillic, Hebrew and Arabic; Pillow's libraqm layout shapes and orders right-to-left text. For
CJK, DejaVu has no glyphs: lines holding CJK characters are drawn with a CJK font found on the
machine (Noto/Source Han Sans CJK, WenQuanYi, Droid Sans Fallback, ...) or the ``font`` option;
without one they render as boxes.

>>> p = CaptionPainter(640, 360)
>>> im = p.paint(("Hello there",), "agent", ((0, 0, 5), (0, 6, 11)), done=1, active=True)
>>> im.size == (640, p.band_height), im.mode
(True, 'RGBA')
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from aligner.errors import RendererError

__all__ = ["FONT_DIR", "CaptionPainter", "CaptionStyle", "find_cjk_font", "has_cjk", "load_font"]

FONT_DIR = Path(__file__).parent / "data" / "fonts"
_REGULAR = FONT_DIR / "DejaVuSans.ttf"
_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

RGB = tuple[int, int, int]

# CJK font files commonly installed on Linux, macOS and Windows, best first.
_CJK_NAMES = (
    "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "NotoSansCJKjp-Regular.otf",
    "SourceHanSans-Regular.ttc", "SourceHanSansSC-Regular.otf", "wqy-microhei.ttc",
    "wqy-zenhei.ttc", "DroidSansFallbackFull.ttf", "DroidSansFallback.ttf", "ipag.ttf",
    "NanumGothic.ttf", "PingFang.ttc", "Hiragino Sans GB.ttc", "msyh.ttc", "msgothic.ttc",
)
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
              "/System/Library/Fonts", "/Library/Fonts", "C:/Windows/Fonts")


@dataclass(frozen=True, slots=True)
class CaptionStyle:
    """How captions look. ``size`` 0 means 1/18 of the frame's smaller side.

    Colours are RGB; ``speakers`` maps a speaker to the colour of its name tag.
    """

    size: int = 0
    font: str | None = None  # a .ttf/.otf/.ttc path to use instead of the shipped DejaVu Sans
    spoken: RGB = (255, 255, 255)
    upcoming: RGB = (196, 200, 212)
    highlight: RGB = (255, 214, 64)
    outline: RGB = (12, 12, 16)
    shadow: RGB = (0, 0, 0)
    speakers: tuple[tuple[str, RGB], ...] = (("agent", (96, 208, 150)), ("user", (110, 170, 255)))
    names: tuple[tuple[str, str], ...] = (("agent", "Agent"), ("user", "User"))
    max_lines: int = 2
    margin: float = 0.05  # bottom safe area, a fraction of the frame height

    def speaker_colour(self, speaker: str) -> RGB:
        return dict(self.speakers).get(speaker, (230, 230, 230))

    def speaker_name(self, speaker: str) -> str:
        return dict(self.names).get(speaker, speaker.title())


def has_cjk(text: str) -> bool:
    """True if ``text`` holds a Chinese, Japanese or Korean character.

    >>> has_cjk("hello"), has_cjk("你好")
    (False, True)
    """
    return any(_is_cjk(ord(c)) for c in text)


def _is_cjk(cp: int) -> bool:
    return (0x2E80 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF or 0xF900 <= cp <= 0xFAFF
            or 0xFF00 <= cp <= 0xFFEF or 0x20000 <= cp <= 0x2FA1F)


def _is_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """The path of a CJK-capable font on this machine, or None (searched once, then cached)."""
    rank = {n.lower(): i for i, n in enumerate(_CJK_NAMES)}
    best: tuple[int, str] | None = None
    for root in map(os.path.expanduser, _FONT_DIRS):
        for dirpath, _dirs, files in os.walk(root):  # a missing folder yields nothing
            for f in files:
                r = rank.get(f.lower())
                if r is not None and (best is None or r < best[0]):
                    best = (r, os.path.join(dirpath, f))
    return best[1] if best else None


@functools.lru_cache(maxsize=32)
def load_font(size: int, bold: bool = False, path: str | None = None) -> ImageFont.FreeTypeFont:
    """A TrueType font: ``path`` if given, else the shipped DejaVu Sans (bold or regular).

    Raises:
        RendererError: ``path`` cannot be read as a font.
    """
    src = path or str(_BOLD if bold else _REGULAR)
    try:
        return ImageFont.truetype(src, size, layout_engine=ImageFont.Layout.RAQM
                                  if _has_raqm() else ImageFont.Layout.BASIC)
    except OSError as exc:
        raise RendererError(f"cannot load font {src!r}: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _has_raqm() -> bool:
    from PIL import features

    return bool(features.check("raqm"))


class CaptionPainter:
    """Draws caption bands (RGBA, transparent around the text) for a frame of ``width`` x ``height``.

    The band sits above the bottom safe area (``style.margin``, 5 % of the height); :attr:`band_height` is its height and
    :attr:`band_top` its top row in the frame.
    """

    def __init__(self, width: int, height: int, style: CaptionStyle = CaptionStyle()) -> None:
        self.width, self.height, self.style = width, height, style
        self.size = style.size or max(12, round(min(width, height) / 18))
        self.font = load_font(self.size, True, style.font)
        self.tag_font = load_font(max(10, round(self.size * 0.6)), True, None)
        self.outline = max(1, round(self.size / 11))
        self.shadow = max(1, round(self.size / 14))
        self.line_height = round(self.size * 1.3)
        self.tag_height = round(self.size * 0.9)
        self.margin = max(4, round(height * style.margin))
        self.band_height = self.tag_height + style.max_lines * self.line_height + self.outline * 2 + self.shadow
        self.band_top = height - self.margin - self.band_height
        self.side = max(8, round(width * 0.05))
        self._cached: tuple | None = None
        self._spoken: tuple | None = None  # (caption key, words drawn as spoken, image)

    def fits(self, line: str) -> bool:
        """True if ``line`` fits within the band's width (inside the side margins)."""
        return self._font_for(line).getlength(line) <= self.width - 2 * self.side

    def _font_for(self, line: str) -> ImageFont.FreeTypeFont:
        if self.style.font is None and has_cjk(line):
            cjk = find_cjk_font()
            if cjk is not None:
                return load_font(self.size, False, cjk)
        return self.font

    def _base(self, lines: tuple[str, ...], speaker: str) -> tuple[Image.Image, list]:
        """A copy of the band with the name tag and every line outlined in the upcoming colour,
        plus each line's (font, x, y, rtl); the drawing is cached for the last caption."""
        key = (lines, speaker)
        if self._cached is None or self._cached[0] != key:
            st = self.style
            band = Image.new("RGBA", (self.width, self.band_height), (0, 0, 0, 0))
            d = ImageDraw.Draw(band)
            name, colour = st.speaker_name(speaker), st.speaker_colour(speaker)
            tw = self.tag_font.getlength(name)
            y0 = (st.max_lines - len(lines)) * self.line_height
            tx = self.width / 2 - tw / 2
            pad = self.tag_height * 0.3
            d.rounded_rectangle((tx - pad, y0, tx + tw + pad, y0 + self.tag_height * 0.85),
                                radius=self.tag_height * 0.4, fill=colour + (235,))
            d.text((self.width / 2, y0 + self.tag_height * 0.42), name, font=self.tag_font,
                   fill=(16, 18, 24, 255), anchor="mm")
            placed = []
            for li, line in enumerate(lines):
                font = self._fitting_font(line)
                y = y0 + self.tag_height + li * self.line_height
                x = (self.width - font.getlength(line)) / 2
                d.text((x + self.shadow, y + self.shadow), line, font=font, fill=st.shadow + (170,),
                       stroke_width=self.outline, stroke_fill=st.shadow + (170,))
                d.text((x, y), line, font=font, fill=st.upcoming + (255,),
                       stroke_width=self.outline, stroke_fill=st.outline + (255,))
                placed.append((font, x, y, _is_rtl(line)))
            self._cached = (key, band, placed)
        return self._cached[1].copy(), self._cached[2]

    def _fitting_font(self, line: str) -> ImageFont.FreeTypeFont:
        """The font for ``line``, shrunk if the line would not fit between the side margins."""
        font = self._font_for(line)
        avail = self.width - 2 * self.side
        width = font.getlength(line)
        if width <= avail:
            return font
        return load_font(max(8, int(self.size * avail / width)), False, font.path)

    def paint(self, lines: Sequence[str], speaker: str, words: Sequence[tuple[int, int, int]],
              done: int, active: bool) -> Image.Image:
        """Draw a caption band.

        Args:
            lines: the caption's lines (at most ``style.max_lines`` are drawn, the last ones).
            speaker: whose words these are (name tag text and colour).
            words: per word ``(line_index, char_start, char_end)`` in ``lines``.
            done: how many words have started (they are drawn as spoken).
            active: True while word ``done - 1`` is sounding (drawn highlighted).

        Returns:
            An RGBA image ``width`` x :attr:`band_height`.
        """
        st = self.style
        first_line = max(0, len(lines) - st.max_lines)
        lines = tuple(lines)[first_line:]
        words = tuple(words)
        spoken = done - 1 if active and done > 0 else done
        # Karaoke states follow each other, so the spoken words are drawn incrementally onto a
        # kept image (one or two words a state instead of all of them).
        key = (lines, speaker, words)
        if self._spoken is None or self._spoken[0] != key or self._spoken[1] > spoken:
            self._spoken = (key, 0, self._base(lines, speaker)[0])
        _, n, img = self._spoken
        placed = self._cached[2]
        d = ImageDraw.Draw(img)
        for i in range(n, spoken):
            self._draw_word(d, lines, placed, words[i], first_line, st.spoken)
        self._spoken = (key, max(n, spoken), img)
        band = img.copy()
        if spoken < done:
            self._draw_word(ImageDraw.Draw(band), lines, placed, words[done - 1], first_line,
                            st.highlight)
        return band

    @staticmethod
    def _draw_word(d: ImageDraw.ImageDraw, lines: tuple[str, ...], placed: list,
                   word: tuple[int, int, int], first_line: int, fill: tuple[int, int, int]) -> None:
        li, cs, ce = word
        li -= first_line
        if not 0 <= li < len(placed):
            return
        font, x, y, rtl = placed[li]
        line = lines[li]
        if rtl:  # bidi reorders glyphs: offsets are not linear, so colour the line whole
            d.text((x, y), line, font=font, fill=fill + (255,))
        else:
            d.text((x + font.getlength(line[:cs]), y), line[cs:ce], font=font, fill=fill + (255,))
