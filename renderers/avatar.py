"""A simple 2D face whose mouth takes the Rhubarb A–H/X shapes, pre-rendered once per shape.

The mouth shapes follow Rhubarb Lip Sync's naming, so any mouth set made for Rhubarb works:

====  ============================================================
A     closed, lips pressed (P, B, M)
B     slightly open, teeth together (most consonants, EE)
C     open (EH, AE; the middle of many vowels)
D     wide open (AA)
E     slightly rounded (AO, ER)
F     puckered (UW, OW, W)
G     upper teeth on the lower lip (F, V)
H     tongue raised behind the upper teeth (long L)
X     idle: relaxed and closed, for pauses
====  ============================================================

A user-supplied set is a folder of images named after the shapes (``A.png`` … ``F.png``, and
optionally ``G``, ``H``, ``X``; ``.png``, ``.webp``, ``.jpg`` accepted). Missing extended shapes
fall back as Rhubarb does without ``--extendedShapes``: G→B, H→C, X→A.

Everything is drawn once, supersampled for smooth edges, and cached; the video renderer only
pastes the ready-made patches.

>>> av = Avatar(120)
>>> av.patch("D", speaking=True).size
(120, 120)
>>> av.patch("D", speaking=True) is av.patch("D", speaking=True)
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from aligner.errors import RendererError

__all__ = ["BASIC_SHAPES", "EXTENDED_FALLBACK", "IDLE", "MOUTH_SHAPES", "Avatar", "AvatarStyle",
           "load_mouth_set"]

log = logging.getLogger(__name__)

MOUTH_SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")
BASIC_SHAPES = ("A", "B", "C", "D", "E", "F")
IDLE = "X"
EXTENDED_FALLBACK = {"G": "B", "H": "C", "X": "A"}

_SS = 3  # supersampling factor for the one-off drawing
_IMAGE_SUFFIXES = (".png", ".webp", ".jpg", ".jpeg")

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class AvatarStyle:
    """Colours of the drawn face (RGB tuples)."""

    skin: RGB = (246, 200, 160)
    skin_shade: RGB = (226, 172, 132)
    outline: RGB = (92, 60, 45)
    hair: RGB = (70, 48, 38)
    eye: RGB = (40, 36, 48)
    cheek: RGB = (240, 150, 140)
    lip: RGB = (190, 84, 84)
    mouth: RGB = (80, 22, 34)
    teeth: RGB = (250, 250, 246)
    tongue: RGB = (226, 110, 120)
    ring: RGB = (90, 200, 140)  # speaker indicator around the face


def load_mouth_set(folder: str | Path) -> dict[str, Image.Image]:
    """Read a Rhubarb-style mouth set: ``{shape: RGBA image}`` for all nine shapes.

    Args:
        folder: a directory holding ``A.png`` … ``F.png`` (``G``, ``H``, ``X`` optional).

    Returns:
        One image per shape in :data:`MOUTH_SHAPES`; missing extended shapes reuse their fallback.

    Raises:
        RendererError: the folder does not exist, or a basic shape A–F is missing or unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RendererError(f"mouth set folder {str(folder)!r} does not exist")
    found: dict[str, Image.Image] = {}
    for shape in MOUTH_SHAPES:
        for suffix in _IMAGE_SUFFIXES:
            for name in (shape, shape.lower()):
                path = folder / f"{name}{suffix}"
                if path.is_file() and shape not in found:
                    try:
                        with Image.open(path) as im:
                            found[shape] = im.convert("RGBA")
                    except OSError as exc:
                        raise RendererError(f"mouth image {str(path)!r} is unreadable: {exc}") from exc
    missing = [s for s in BASIC_SHAPES if s not in found]
    if missing:
        raise RendererError(f"mouth set {str(folder)!r} lacks shapes {', '.join(missing)} "
                            f"(expected files like A.png … F.png)")
    for shape, fallback in EXTENDED_FALLBACK.items():
        found.setdefault(shape, found[fallback])
    return found


class Avatar:
    """A square face of ``size`` pixels; :meth:`patch` gives it with a mouth shape (cached).

    Args:
        size: side of the square face image in pixels.
        style: colours.
        mouths: optional user mouth set (see :func:`load_mouth_set`) drawn instead of ours.
    """

    def __init__(self, size: int, style: AvatarStyle = AvatarStyle(),
                 mouths: dict[str, Image.Image] | None = None) -> None:
        if size < 16:
            raise RendererError(f"avatar size {size} is too small (need >= 16 pixels)")
        self.size = size
        self.style = style
        self._mouths = mouths
        self._faces: dict[bool, Image.Image] = {}
        self._cache: dict[tuple[str, bool], Image.Image] = {}

    # mouth slot, in face coordinates (fractions of size)
    _MOUTH_BOX = (0.31, 0.60, 0.69, 0.82)

    def patch(self, shape: str, speaking: bool = False) -> Image.Image:
        """The face (RGBA, transparent corners) with mouth ``shape`` and the speaking ring on/off.

        Raises:
            RendererError: ``shape`` is not one of :data:`MOUTH_SHAPES`.
        """
        key = (shape, speaking)
        img = self._cache.get(key)
        if img is None:
            if shape not in MOUTH_SHAPES:
                raise RendererError(f"unknown mouth shape {shape!r}; known: {', '.join(MOUTH_SHAPES)}")
            img = self._face(speaking).copy()
            x0, y0, x1, y1 = (round(f * self.size) for f in self._MOUTH_BOX)
            mouth = self._mouth(shape, (x1 - x0, y1 - y0))
            img.alpha_composite(mouth, (x0, y0))
            self._cache[key] = img
        return img

    # --- drawing ---------------------------------------------------------------------------------
    def _face(self, speaking: bool) -> Image.Image:
        if speaking in self._faces:
            return self._faces[speaking]
        s = self.size * _SS
        st = self.style
        im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        ring = s // 40
        if speaking:
            d.ellipse((0, 0, s - 1, s - 1), fill=st.ring + (255,))
        pad = ring * 2
        head = (pad, pad + s // 40, s - pad, s - pad)
        d.ellipse(head, fill=st.outline + (255,))
        lw = max(s // 90, 1)
        inner = (head[0] + lw, head[1] + lw, head[2] - lw, head[3] - lw)
        d.ellipse(inner, fill=st.skin + (255,))
        # hair: a cap clipped to the head, with a rounded fringe line
        hair = Image.new("L", (s, s), 0)
        hd = ImageDraw.Draw(hair)
        hd.ellipse((head[0] - s // 10, head[1] - s // 5, head[2] + s // 10, head[1] + s * 0.42), fill=255)
        hd.ellipse((head[0] + s * 0.1, head[1] + s * 0.17, head[2] - s * 0.1, head[1] + s * 0.75), fill=0)
        hd.ellipse((head[0] + s * 0.3, head[1] + s * 0.12, head[2] - s * 0.05, head[1] + s * 0.5), fill=0)
        clip = Image.new("L", (s, s), 0)
        ImageDraw.Draw(clip).ellipse(inner, fill=255)
        from PIL import ImageChops

        im.paste(st.hair + (255,), (0, 0), ImageChops.multiply(hair, clip))
        # eyes, brows, cheeks
        for cx in (0.36, 0.64):
            x = cx * s
            ey = 0.47 * s
            rx, ry = s * 0.045, s * 0.06
            d.ellipse((x - rx * 1.7, ey - ry * 1.4, x + rx * 1.7, ey + ry * 1.4), fill=(255, 255, 255, 255))
            d.ellipse((x - rx, ey - ry, x + rx, ey + ry), fill=st.eye + (255,))
            d.ellipse((x - rx * 0.2, ey - ry * 0.7, x + rx * 0.35, ey - ry * 0.15),
                      fill=(255, 255, 255, 255))
            d.arc((x - rx * 2.2, ey - ry * 3.4, x + rx * 2.2, ey - ry * 1.2), 200, 340,
                  fill=st.hair + (255,), width=s // 60)
            chx = x + (-1 if cx < 0.5 else 1) * s * 0.05
            blush = Image.new("RGBA", (s, s), (0, 0, 0, 0))
            ImageDraw.Draw(blush).ellipse((chx - s * 0.06, 0.60 * s - s * 0.03, chx + s * 0.06,
                                           0.60 * s + s * 0.03), fill=st.cheek + (110,))
            im.alpha_composite(blush)
        # nose
        d.arc((0.46 * s, 0.48 * s, 0.54 * s, 0.57 * s), 20, 160, fill=st.outline + (255,), width=s // 90)
        face = im.resize((self.size, self.size), Image.Resampling.LANCZOS)
        self._faces[speaking] = face
        return face

    def _mouth(self, shape: str, box: tuple[int, int]) -> Image.Image:
        if self._mouths is not None:
            src = self._mouths[shape]
            scale = min(box[0] / src.width, box[1] / src.height)
            size = (max(1, round(src.width * scale)), max(1, round(src.height * scale)))
            out = Image.new("RGBA", box, (0, 0, 0, 0))
            out.alpha_composite(src.resize(size, Image.Resampling.LANCZOS),
                                ((box[0] - size[0]) // 2, (box[1] - size[1]) // 2))
            return out
        w, h = box[0] * _SS, box[1] * _SS
        im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        _draw_mouth(im, shape, self.style)
        return im.resize(box, Image.Resampling.LANCZOS)


def _draw_mouth(im: Image.Image, shape: str, st: AvatarStyle) -> None:
    """Draw one mouth shape centred on the RGBA image ``im``."""
    w, h = im.size
    d = ImageDraw.Draw(im)
    cx, cy = w / 2, h * 0.42
    lip = st.lip + (255,)
    lw = max(w // 28, 2)

    def opening(rw: float, rh: float, teeth_top: bool = True, tongue: bool = False,
                tongue_up: bool = False, teeth_bottom: bool = False) -> None:
        box = (cx - rw * w / 2, cy - rh * h / 2, cx + rw * w / 2, cy + rh * h / 2)
        d.ellipse((box[0] - lw, box[1] - lw, box[2] + lw, box[3] + lw), fill=lip)
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).ellipse(box, fill=255)
        inside = Image.new("RGBA", (w, h), st.mouth + (255,))
        di = ImageDraw.Draw(inside)
        bh = box[3] - box[1]
        if tongue:
            di.ellipse((cx - rw * w * 0.32, box[3] - bh * 0.45, cx + rw * w * 0.32, box[3] + bh * 0.3),
                       fill=st.tongue + (255,))
        if tongue_up:
            di.ellipse((cx - rw * w * 0.28, box[1] + bh * 0.08, cx + rw * w * 0.28, box[1] + bh * 0.75),
                       fill=st.tongue + (255,))
        if teeth_top:
            di.rectangle((box[0], box[1], box[2], box[1] + max(bh * 0.22, lw * 1.2)), fill=st.teeth + (255,))
        if teeth_bottom:
            di.rectangle((box[0], box[3] - max(bh * 0.2, lw), box[2], box[3]), fill=st.teeth + (255,))
        im.paste(inside, (0, 0), mask)

    if shape == "X":  # relaxed smile
        d.arc((cx - w * 0.3, cy - h * 0.45, cx + w * 0.3, cy + h * 0.22), 25, 155, fill=lip, width=lw * 2)
    elif shape == "A":  # lips pressed
        d.rounded_rectangle((cx - w * 0.3, cy - lw * 1.6, cx + w * 0.3, cy + lw * 1.6), radius=lw * 1.6,
                            fill=lip)
        d.line((cx - w * 0.28, cy, cx + w * 0.28, cy), fill=st.mouth + (255,), width=max(lw // 2, 1))
    elif shape == "B":
        opening(0.62, 0.28, teeth_top=True, teeth_bottom=True)
    elif shape == "C":
        opening(0.64, 0.5, tongue=True)
    elif shape == "D":
        opening(0.76, 0.86, tongue=True)
    elif shape == "E":
        opening(0.46, 0.5, teeth_top=False, tongue=True)
    elif shape == "F":
        d.ellipse((cx - w * 0.17 - lw * 1.5, cy - h * 0.2 - lw * 1.5, cx + w * 0.17 + lw * 1.5,
                   cy + h * 0.2 + lw * 1.5), fill=lip)
        d.ellipse((cx - w * 0.09, cy - h * 0.1, cx + w * 0.09, cy + h * 0.1), fill=st.mouth + (255,))
    elif shape == "G":
        opening(0.6, 0.34, teeth_top=True)
        d.rounded_rectangle((cx - w * 0.22, cy - h * 0.12, cx + w * 0.22, cy + h * 0.06), radius=lw,
                            fill=st.teeth + (255,))
    elif shape == "H":
        opening(0.6, 0.52, teeth_top=True, tongue_up=True)
