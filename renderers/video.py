"""The ``mp4`` renderer: the call as a video with burned-in karaoke captions and a talking face.

H.264 (libx264 through PyAV, threaded) and AAC, constant frame rate, yuv420p, ``+faststart``.
Captions show one cue at a time; while both speakers talk (a barge-in), both cues show, each with
the line being spoken, the later one below. The audio is the call as heard: the user's audio as
sent plus the agent's as played (cleared audio is already absent from the timeline's agent
track), mixed and scaled down only if the sum would clip, or in stereo with the agent left and
the user right (``stereo=True``).

Efficiency is the design: the screen is a few regions (background, face, user indicator, caption
bands) whose look is a function of a small state (caption cues, words started, word sounding,
mouth shape, who speaks). Each region's patch is drawn once per state and converted to YUV once;
the state is only looked at when it can change, only changed regions are written into the one
``VideoFrame``, and otherwise that frame is handed to the encoder again. Frames and audio are
streamed and interleaved, so memory stays flat however long the call is; WAV tracks are
read block by block, not loaded.

Options (keyword arguments of :class:`VideoRenderer`; strings from the command line work):
``size`` (``"720p"``, ``"1080p"``, ``"vertical"`` or ``"WxH"``), ``fps`` (30), ``background``
(``"#rrggbb"`` or an image path), ``mouths`` (a Rhubarb-style mouth-shape folder, see
:mod:`renderers.avatar`), ``font`` (a font path), ``stereo`` (False), ``crf`` (23), ``preset``
(x264 preset, ``"ultrafast"``; ``"veryfast"`` gives files about half the size, 3x slower),
``x264_params`` (extra ``x264-params``), ``progress`` (a bar on stderr: ``"auto"``, the default,
when stderr is a terminal; True/False; or a callable ``(done_seconds, total_seconds)``),
``captions`` (a :class:`renderers.segment.CaptionRules`) or any of its fields by name, and
``mouth`` (``[(time, shape), ...]`` to drive the mouth instead of :mod:`aligner.visemes`).

>>> from aligner.timeline import Timeline
>>> VideoRenderer(size="vertical").frame_image(Timeline(duration=1.0), 0.5).size
(1080, 1920)
"""

from __future__ import annotations

import bisect
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from aligner.errors import RendererError
from aligner.progress import reporter
from aligner.timeline import Timeline, atomic_output

from . import Renderer
from .avatar import IDLE, Avatar, load_mouth_set
from .caption_draw import CaptionPainter, CaptionStyle
from .segment import RULE_OPTIONS, CaptionRules, caption_rules
from .video_audio import AudioMix

__all__ = ["SIZES", "VideoRenderer"]

log = logging.getLogger(__name__)

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "vertical": (1080, 1920)}

_GAP_BRIDGE = 0.35  # pauses between words shorter than this keep the speaker indicator on


@dataclass(frozen=True, slots=True)
class _CapWord:
    start: float
    end: float
    line: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class _Caption:
    start: float
    end: float
    speaker: str
    lines: tuple[str, ...]
    words: tuple[_CapWord, ...]


class VideoRenderer(Renderer):
    """Renders a :class:`~aligner.timeline.Timeline` as an MP4 (see the module docstring)."""

    name = "mp4"
    extensions = (".mp4",)
    description = "MP4 video (H.264/AAC): karaoke captions, a talking face, the call's audio"
    options_spec = {**RULE_OPTIONS, "size": object, "fps": int, "background": object,
                    "mouths": object, "font": object, "stereo": bool, "crf": int,
                    "preset": str, "x264_params": str, "progress": object,
                    "captions": CaptionRules, "mouth": object}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        options = self.options
        self.width, self.height = _parse_size(options.get("size", "720p"))
        self.fps = options.get("fps", 30)
        if not 1 <= self.fps <= 120:
            raise RendererError(f"fps must be within 1-120, got {self.fps}")
        self.crf = options.get("crf", 23)
        self.preset = options.get("preset", "ultrafast")
        self.stereo = options.get("stereo", False)
        self.rules = {k: v for k, v in options.items() if k in RULE_OPTIONS}

    # --- Renderer layers -------------------------------------------------------------------------
    def render(self, timeline: Timeline, out_dir: str | Path, *, stem: str = "call",
               base: Path | None = None) -> list[Path]:
        """Write ``<stem>.mp4`` into ``out_dir`` (a temp file renamed into place when complete)."""
        final = Path(out_dir) / f"{stem}.mp4"
        with atomic_output(final, suffix=".mp4") as tmp:
            self._encode(timeline, str(tmp), base)
        return [final]

    def render_to(self, timeline: Timeline, fp: Any, *, base: Path | None = None) -> None:
        """Write the MP4 to the binary file object ``fp`` (encoded to a temp file, then copied)."""
        with tempfile.TemporaryDirectory(prefix="aligner-mp4-") as d:
            path = Path(d) / "call.mp4"
            self._encode(timeline, str(path), base)
            with open(path, "rb") as src:
                shutil.copyfileobj(src, fp)

    def frame_image(self, timeline: Timeline, t: float) -> Image.Image:
        """The frame shown at time ``t`` as an RGB image (thumbnails, docs, checks)."""
        scene = _Scene(self, timeline)
        return scene.image(scene.state(t))

    # --- encoding ----------------------------------------------------------------------------------
    def _encode(self, timeline: Timeline, path: str, base: Path | None) -> None:
        import av

        for codec in ("libx264", "aac"):
            if codec not in av.codecs_available:
                raise RendererError(f"this PyAV build lacks the {codec} encoder")
        started = time.perf_counter()
        scene = _Scene(self, timeline)
        mix = AudioMix(timeline, base, self.stereo)
        n_frames = max(1, round(timeline.duration * self.fps))
        total = n_frames / self.fps
        report = reporter("mp4", total, self.options.get("progress"))
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = out.add_stream("libx264", rate=self.fps)
            vs.width, vs.height, vs.pix_fmt = self.width, self.height, "yuv420p"
            vs.codec_context.thread_count = 0  # x264 picks its thread count
            cc = vs.codec_context  # BT.709, limited range: what _to_yuv produces
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
            vs.options = {"preset": self.preset, "crf": str(self.crf)}
            if self.options.get("x264_params"):
                vs.options = {**vs.options, "x264-params": str(self.options["x264_params"])}
            aus = out.add_stream("aac", rate=mix.rate, layout="stereo" if self.stereo else "mono")
            aus.bit_rate = 96000 if self.stereo else 64000
            aus.options = {"aac_coder": "fast"}  # 5x less CPU than twoloop on speech; fine at 64k
            tb = Fraction(1, self.fps)
            audio_pos = 0
            step = self.fps  # interleave one second of audio per second of video
            frame = None
            key = None
            until = -1.0
            for i in range(n_frames):
                t = i / self.fps
                if t >= until:  # something may change now: look, and redraw only if it did
                    state, until = scene.state_until(t)
                    if state != key:
                        frame = scene.frame(state)
                        key = state
                frame.pts = i
                frame.time_base = tb
                out.mux(vs.encode(frame))
                if (i + 1) % step == 0 or i + 1 == n_frames:
                    upto = round((i + 1) / self.fps * mix.rate) if i + 1 < n_frames else None
                    audio_pos = self._write_audio(out, aus, mix, audio_pos, upto, total)
                    report((i + 1) / self.fps)
            out.mux(vs.encode(None))
            out.mux(aus.encode(None))
        log.info("rendered %.1f s of video in %.1f s (%d redraws)", total,
                 time.perf_counter() - started, scene.redraws)

    def _write_audio(self, out: Any, stream: Any, mix: AudioMix, pos: int, upto: int | None,
                     total: float) -> int:
        import av

        end = round(total * mix.rate) if upto is None else upto
        while pos < end:
            stop = min(end, pos + mix.rate)
            block = mix.read(pos, stop)
            layout = "stereo" if self.stereo else "mono"
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = mix.rate
            frame.pts = pos
            frame.time_base = Fraction(1, mix.rate)
            out.mux(stream.encode(frame))
            pos = stop
        return pos


# --- what is on screen ---------------------------------------------------------------------------
class _Scene:
    """Layout, pre-drawn layers and the state → pixels cache of one render."""

    def __init__(self, r: VideoRenderer, timeline: Timeline) -> None:
        self.w, self.h = r.width, r.height
        opts = r.options
        portrait = self.h > self.w
        # vertical videos keep captions clear of the controls phone apps lay over the bottom
        self.style = CaptionStyle(font=opts.get("font"), max_lines=int(r.rules.get("max_lines", 2)),
                                  margin=0.12 if portrait else 0.05)
        self.painter = CaptionPainter(self.w, self.h, self.style)
        self.background = _background(opts.get("background"), (self.w, self.h))
        mouths = opts.get("mouths")
        face = _even(round((self.w if portrait else self.h) * (0.5 if portrait else 0.56)))
        self.avatar = Avatar(face, mouths=load_mouth_set(mouths) if mouths else None)
        fy = self.h * (0.2 if portrait else 0.07)
        self.face_xy = (_even((self.w - face) / 2), _even(fy))
        self.chip_size = (_even(self.painter.size * 3.6), _even(self.painter.size * 1.2))
        self.chip_xy = (_even(self.w * 0.04), _even(self.h * 0.05))
        self.band_xy = (0, _even(self.painter.band_top, up=False))
        self.captions = _captions(timeline, opts, self.painter)
        self.cap_starts = [c.start for c in self.captions]
        self.max_cap = max((c.end - c.start for c in self.captions), default=0.0)
        self.mouth_t, self.mouth_v = _mouth_steps(timeline, opts)
        self.agent_on = _speaking(timeline, "agent")
        self.user_on = _speaking(timeline, "user")
        times = {0.0, *self.mouth_t, *self.agent_on[0], *self.agent_on[1], *self.user_on[0],
                 *self.user_on[1]}
        for c in self.captions:
            times.update((c.start, c.end), *((w.start, w.end) for w in c.words))
        self.changes = sorted(times)
        self.redraws = 0
        self._patches: dict[tuple, tuple[np.ndarray, ...]] = {}
        base = _to_yuv(np.asarray(self.background))
        self._base_planes = _split(base, self.h, self.w)
        self._shown: dict[str, tuple] = {}  # region name -> the patch key written there
        # background under each patch (RGBA), by (region name, box); band ones last one caption
        self._regions: dict[tuple, Image.Image] = {}
        self._reformatter: Any = None
        self._frame: Any = None  # the VideoFrame being assembled, and views of its planes
        self._out: tuple[np.ndarray, ...] = ()
        self._bands: tuple = ()  # the caption views whose band patches are on screen
        self._band_boxes: list[tuple[int, int, int, int]] = []  # where they were written
        # the upper band (two speakers at once) sits one tag and one line above the lower
        self.band2_dy = _even(self.painter.tag_height + self.painter.line_height)

    # state = (bands, mouth shape, agent on, user on); bands: per caption shown, from the
    # bottom band up, (caption index, line shown or None for all, words started, word sounding)
    def state_until(self, t: float) -> tuple[tuple, float]:
        """The state at ``t`` and the time until which it holds (the next possible change)."""
        k = bisect.bisect_right(self.changes, t)
        return self.state(t), (self.changes[k] if k < len(self.changes) else float("inf"))

    def state(self, t: float) -> tuple:
        """What is on screen at ``t``: (bands, mouth shape, agent speaking, user speaking).

        One caption shows whole in the bottom band. While two show at once (both speakers
        talk: a barge-in), each shows its line being spoken, the later caption at the bottom
        and the earlier one in the band above it."""
        shown = self._captions_at(t)
        bands = []
        for ci in shown:
            ws = self.captions[ci].words
            done = bisect.bisect_right([w.start for w in ws], t)
            active = done > 0 and t < ws[done - 1].end
            line = (ws[done - 1].line if done else 0) if len(shown) > 1 else None
            bands.append((ci, line, done, active))
        k = bisect.bisect_right(self.mouth_t, t) - 1
        shape = self.mouth_v[k] if k >= 0 else IDLE
        return (tuple(bands), shape, _inside(self.agent_on, t), _inside(self.user_on, t))

    def _captions_at(self, t: float) -> list[int]:
        """The captions showing at ``t``: the latest-started one, and the one before it if that
        still shows (two at most), latest first."""
        out = []
        j = bisect.bisect_right(self.cap_starts, t) - 1
        while j >= 0 and self.cap_starts[j] >= t - self.max_cap and len(out) < 2:
            if t < self.captions[j].end:
                out.append(j)
            j -= 1
        return out

    def image(self, state: tuple) -> Image.Image:
        """The whole frame for ``state`` as RGB (slow path; the encoder uses :meth:`yuv`)."""
        img = self.background.copy()
        for (x, y), layer in self._layers(state):
            img.paste(layer, (x, y), layer)
        return img

    def _layers(self, state: tuple) -> Iterator[tuple[tuple[int, int], Image.Image]]:
        bands, shape, agent, user = state
        yield self.face_xy, self.avatar.patch(shape, agent)
        yield self.chip_xy, _chip(self.chip_size, user, self.style)
        for slot, band in enumerate(bands):
            yield (0, self.band_xy[1] - slot * self.band2_dy), self._band_layer(*band)

    def frame(self, state: tuple) -> Any:
        """The ``VideoFrame`` (yuv420p) for ``state``, assembled from cached YUV patches.

        There is one frame, updated in place: only the regions are rewritten. Encoders copy a
        frame's pixels when it is encoded (x264 does), so it can be reused for every frame.
        """
        self.redraws += 1
        bands, shape, agent, user = state
        if self._frame is None:
            import av

            self._frame = av.VideoFrame(self.w, self.h, "yuv420p")
            self._out = tuple(
                np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
                for p in self._frame.planes)
            for dst, src in zip(self._out, self._base_planes, strict=True):
                dst[:] = src
        out = self._out
        self._put(out, ("face", shape, agent), self.face_xy, lambda: self.avatar.patch(shape, agent))
        self._put(out, ("chip", user), self.chip_xy, lambda: _chip(self.chip_size, user, self.style))
        views = tuple(band[:2] for band in bands)
        if views != self._bands:  # other captions (or none): back to the bare background first
            self._patches = {k: v for k, v in self._patches.items() if k[0][:4] != "band"}
            self._regions = {k: v for k, v in self._regions.items() if k[0][:4] != "band"}
            for x0, y0, x1, y1 in self._band_boxes:
                for dst, src in zip(out, self._base_planes, strict=True):
                    k = 1 if dst.shape[0] == self.h else 2
                    dst[y0 // k:y1 // k, x0 // k:x1 // k] = src[y0 // k:y1 // k, x0 // k:x1 // k]
            for slot in range(2):
                self._shown.pop(f"band{slot}", None)
            self._bands, self._band_boxes = views, []
            for slot, band in enumerate(bands):
                box = self._band_layer(band[0], band[1], 0, False).getbbox() or (0, 0, 2, 2)
                top = self.band_xy[1] - slot * self.band2_dy
                self._band_boxes.append((_even(box[0], up=False), top + _even(box[1], up=False),
                                         _even(box[2]), top + _even(box[3])))
        for slot, (band, box) in enumerate(zip(bands, self._band_boxes, strict=True)):
            top = self.band_xy[1] - slot * self.band2_dy
            x0, y0, x1, y1 = box
            self._put(out, (f"band{slot}", *band), (x0, y0),
                      lambda band=band, x0=x0, y0=y0 - top, x1=x1, y1=y1 - top:
                      self._band_layer(*band).crop((x0, y0, x1, y1)))
        return self._frame

    def _band_layer(self, ci: int, line: int | None, done: int, active: bool) -> Image.Image:
        """Caption ``ci`` painted in a band: whole, or only its line ``line`` (its words'
        progress counted on that line)."""
        c = self.captions[ci]
        words = [(w.line, w.offset, w.offset + w.length) for w in c.words]
        if line is None:
            return self.painter.paint(c.lines, c.speaker, words, done, active)
        on = [k for k, w in enumerate(words) if w[0] == line]
        first = on[0] if on else 0
        return self.painter.paint((c.lines[line],), c.speaker,
                                  [(0, *words[k][1:]) for k in on],
                                  min(max(done - first, 0), len(on)),
                                  active and first < done <= first + len(on))

    def _to_yuv(self, rgb: np.ndarray) -> np.ndarray:
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        return _to_yuv(rgb, self._reformatter)

    def _put(self, out: tuple[np.ndarray, ...], key: tuple, xy: tuple[int, int],
             draw: Callable[[], Image.Image]) -> None:
        """Write the patch ``key`` (drawn by ``draw`` the first time) at ``xy`` into planes ``out``."""
        x, y = xy
        if self._shown.get(key[0]) == (key, xy):
            return  # already on screen
        self._shown[key[0]] = (key, xy)
        planes = self._patches.get(key)
        if planes is None:
            layer = draw()
            pw = min(_even(layer.width), self.w - x)
            ph = min(_even(layer.height), self.h - y)
            box = (x, y, x + pw, y + ph)
            if (key[0], box) not in self._regions:
                self._regions[key[0], box] = self.background.crop(box).convert("RGBA")
            region = self._regions[key[0], box].copy()
            region.alpha_composite(layer if layer.size == (pw, ph) else layer.crop((0, 0, pw, ph)))
            planes = _split(self._to_yuv(np.asarray(region)), ph, pw)
            self._patches[key] = planes
        py, pu, pv = planes
        ph, pw = py.shape
        fy, u, v = out
        fy[y:y + ph, x:x + pw] = py
        u[y // 2:(y + ph) // 2, x // 2:(x + pw) // 2] = pu
        v[y // 2:(y + ph) // 2, x // 2:(x + pw) // 2] = pv


def _to_yuv(rgb: np.ndarray, reformatter: Any = None) -> np.ndarray:
    """RGB or RGBA (h, w, 3|4), even sides → one BT.709 yuv420p array of ``h * 3 // 2`` rows
    (Y, then U, then V). A kept ``VideoReformatter`` reuses its swscale context."""
    import av
    from av.video.reformatter import VideoReformatter

    fmt = "rgba" if rgb.shape[2] == 4 else "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
    out = (reformatter or VideoReformatter()).reformat(frame, format="yuv420p",
                                                       dst_colorspace="ITU709")
    return out.to_ndarray()


def _split(arr: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U, V planes of a yuv420p array as PyAV lays it out (planes back to back)."""
    flat = arr.reshape(-1)
    n, q = h * w, (h // 2) * (w // 2)
    return (flat[:n].reshape(h, w), flat[n:n + q].reshape(h // 2, w // 2),
            flat[n + q:n + 2 * q].reshape(h // 2, w // 2))


def _even(v: float, up: bool = True) -> int:
    n = round(v)
    return n + (n % 2) if up else n - (n % 2)


def _inside(intervals: tuple[list[float], list[float]], t: float) -> bool:
    starts, ends = intervals
    k = bisect.bisect_right(starts, t) - 1
    return k >= 0 and t < ends[k]


def _speaking(timeline: Timeline, speaker: str) -> tuple[list[float], list[float]]:
    """Merged intervals where ``speaker`` is heard speaking (short pauses bridged)."""
    spans = sorted((w.start, w.end) for u in timeline.speaker(speaker) for w in u.heard_words
                   if w.end > w.start)
    starts: list[float] = []
    ends: list[float] = []
    for s, e in spans:
        if starts and s - ends[-1] <= _GAP_BRIDGE:
            ends[-1] = max(ends[-1], e)
        else:
            starts.append(s)
            ends.append(e)
    return starts, ends


def _mouth_steps(timeline: Timeline, opts: dict) -> tuple[list[float], list[str]]:
    """(times, shapes) step function of the agent's mouth, Rhubarb shapes, X when idle."""
    given = opts.get("mouth")
    if given is not None:  # [(time, shape), ...] supplied by the caller
        pairs = sorted(given)
    else:
        from aligner.visemes import timeline_cues

        pairs = [(c.start, str(c.viseme)) for c in timeline_cues(timeline, "rhubarb")]
    return [t for t, _ in pairs], [s for _, s in pairs]


def _captions(timeline: Timeline, opts: dict, painter: CaptionPainter) -> list[_Caption]:
    """Caption cues from the subtitle segmentation, with per-line character limits that fit."""
    from .segment import segment

    rules = opts.get("captions")
    if rules is None:
        avail = painter.width - 2 * painter.side
        fields = {"max_chars_per_line": max(12, min(42, int(avail / (painter.size * 0.68)))),
                  "max_lines": painter.style.max_lines}
        rules = caption_rules({**fields, **{k: v for k, v in opts.items() if k in RULE_OPTIONS}})
    # A burned-in caption is never late for its first word: the subtitle gap rule may start a cue
    # a few frames after its speech; here the cue shows from that word's start at the latest.
    out = [_Caption(min([c.start] + [w.start for w in c.words[:1]]), c.end, c.speaker, c.lines,
                    tuple(_CapWord(w.start, w.end, w.line, w.offset, len(w.text)) for w in c.words))
           for c in segment(timeline, rules)]
    out.sort(key=lambda c: c.start)
    return out


def _flag(value: Any) -> bool:
    """An option as a bool: command-line strings ``1/true/yes/on`` are true."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _parse_size(size: Any) -> tuple[int, int]:
    if isinstance(size, tuple):
        w, h = size
    elif size in SIZES:
        w, h = SIZES[size]
    else:
        try:
            w, h = (int(v) for v in str(size).lower().split("x"))
        except ValueError:
            raise RendererError(f"bad video size {size!r}; use {', '.join(SIZES)} or WxH") from None
    if not (64 <= w <= 7680 and 64 <= h <= 7680) or w % 4 or h % 4:
        raise RendererError(f"video size {w}x{h} must be 64-7680 pixels a side, multiples of 4")
    return w, h


def _background(spec: Any, size: tuple[int, int]) -> Image.Image:
    """The static background: a colour, an image (scaled to cover) or the default gradient."""
    w, h = size
    if spec is None:
        top, bottom = np.array([36, 42, 66]), np.array([14, 16, 28])
        ramp = np.linspace(0, 1, h)[:, None]
        col = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
        return Image.fromarray(np.repeat(col[:, None, :], w, axis=1), "RGB")
    spec = str(spec)
    if spec.startswith("#") or not Path(spec).exists():
        try:
            from PIL import ImageColor

            return Image.new("RGB", size, ImageColor.getrgb(spec))
        except ValueError:
            raise RendererError(f"background {spec!r} is neither a colour nor an image file") from None
    try:
        with Image.open(spec) as im:
            im = im.convert("RGB")
    except OSError as exc:
        raise RendererError(f"cannot read background image {spec!r}: {exc}") from exc
    scale = max(w / im.width, h / im.height)
    im = im.resize((max(w, round(im.width * scale)), max(h, round(im.height * scale))),
                   Image.Resampling.LANCZOS)
    x, y = (im.width - w) // 2, (im.height - h) // 2
    return im.crop((x, y, x + w, y + h))


def _chip(size: tuple[int, int], on: bool, style: CaptionStyle) -> Image.Image:
    """The user's speaking indicator: a pill with a microphone, lit while the user speaks."""
    from .caption_draw import load_font

    w, h = size
    ss = 3
    im = Image.new("RGBA", (w * ss, h * ss), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    colour = style.speaker_colour("user") if on else (70, 76, 96)
    d.rounded_rectangle((0, 0, w * ss - 1, h * ss - 1), radius=h * ss // 2, fill=colour + (230,))
    ink = (16, 18, 24, 255) if on else (150, 156, 176, 255)
    mx, my, r = h * ss * 0.55, h * ss * 0.5, h * ss * 0.14
    d.rounded_rectangle((mx - r, my - r * 2.2, mx + r, my + r * 0.6), radius=r, fill=ink)
    d.arc((mx - r * 1.7, my - r * 1.8, mx + r * 1.7, my + r * 1.4), 0, 180, fill=ink, width=ss * 2)
    d.line((mx, my + r * 1.4, mx, my + r * 2.4), fill=ink, width=ss * 2)
    font = load_font(round(h * ss * 0.5), True, None)
    d.text((h * ss * 1.05, my), style.speaker_name("user"), font=font, fill=ink, anchor="lm")
    return im.resize(size, Image.Resampling.LANCZOS)
