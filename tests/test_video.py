"""The ``mp4`` renderer: real espeak speech in, the MP4 decoded back with PyAV and checked."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from video_helpers import RATE, call

import renderers
from aligner.errors import RendererError
from aligner.timeline import AudioTrack, Timeline, TimelineEvent, Utterance, Word
from aligner.visemes import timeline_cues
from renderers.avatar import MOUTH_SHAPES, Avatar, load_mouth_set
from renderers.video import VideoRenderer, _Scene
from renderers.video_audio import AudioMix

FPS = 30

LINES = [
    ("agent", "Hello! Thanks for calling Northwind. How can I help you today?", None),
    ("user", "My jacket never arrived.", None),
    ("agent", "I am sorry to hear that. Let me check the tracking number for you right now.", 1.7),
    ("user", "Wait, stop.", None),
]


@pytest.fixture(scope="module")
def tl() -> Timeline:
    return call(LINES)


@pytest.fixture(scope="module")
def video(tl: Timeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test call rendered once with the default options (720p30)."""
    return _render(tl, tmp_path_factory.mktemp("video"))


def _decode(path: Path) -> list[np.ndarray]:
    """All frames' luma planes."""
    with av.open(str(path)) as c:
        return [f.to_ndarray()[: f.height] for f in c.decode(video=0)]


def _band(frame: np.ndarray) -> np.ndarray:
    """The caption band: the bottom quarter of the frame."""
    return frame[frame.shape[0] * 3 // 4:].astype(np.int16)


def _render(timeline: Timeline, out: Path, **options) -> Path:
    (path,) = VideoRenderer(**options).render(timeline, out)
    return path


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_registered() -> None:
    assert renderers.get("mp4") is VideoRenderer
    assert VideoRenderer.extensions == (".mp4",)


def test_mp4_streams_duration_and_captions_on_time(tl: Timeline, video: Path, tmp_path: Path) -> None:
    path = video
    blank = _render(replace(tl, utterances=()), tmp_path / "blank")
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart: the index comes first"
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (v.width, v.height, v.average_rate) == (1280, 720, FPS)
        assert a.codec_context.name == "aac" and a.sample_rate == RATE
        assert abs(float(v.duration * v.time_base) - tl.duration) <= 1 / FPS
        assert abs(float(a.duration * a.time_base) - tl.duration) <= 0.05
        decoded = list(c.decode(video=0))
        frames = [f.to_ndarray()[:720] for f in decoded]
        c.seek(0)
        pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    assert abs(len(frames) - tl.duration * FPS) <= 1
    # constant frame rate: every frame lasts exactly 1/30 s
    times = [f.time for f in decoded]
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-4)
    # the call's audio is there: speech where the words are, silence before the first one
    first = tl.utterances[0]
    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(pcm[int(a * RATE):int(b * RATE)].astype(np.float64) ** 2)))
    assert rms(first.start, first.end) > 20 * max(rms(0.05, first.start - 0.1), 1e-4)
    bframes = _decode(blank)
    words = [w for u in tl.utterances for w in u.heard_words]
    assert len(words) > 20
    for w in words:
        k = min(math.ceil(w.start * FPS - 1e-6), len(frames) - 1)
        # the caption holding the word is on screen at its start (blank video: no caption)
        assert _diff(_band(frames[k]), _band(bframes[k])) > 2.0, (w.word, w.start)
    # each word's start changes the caption band (karaoke highlight) within one frame
    changed = 0
    for w in words:
        k = math.ceil(w.start * FPS - 1e-6)
        if 0 < k < len(frames) - 1 and w.end - w.start > 2 / FPS:
            before = _band(frames[k - 1])
            if max(_diff(_band(frames[k]), before), _diff(_band(frames[k + 1]), before)) > 0.05:
                changed += 1
    assert changed >= 0.9 * sum(1 for w in words if w.end - w.start > 2 / FPS)
    # after the call the band is empty again
    assert _diff(_band(frames[-1]), _band(bframes[-1])) < 0.5


def _swap_cleared_words(tl: Timeline) -> Timeline:
    """The same call with different text in place of the words a clear cut (never heard)."""
    out = []
    for u in tl.utterances:
        if not u.interrupted:
            out.append(u)
            continue
        heard = u.heard_words
        cut = heard[-1].char_end
        unheard = [w for w in u.words if not w.played]
        fake = ["zebra", "quantum", "xylophone", "parliament", "kaleidoscope", "wombat"]
        text = u.text[:cut]
        words = list(heard)
        for i, w in enumerate(unheard):
            token = fake[i % len(fake)]
            text += " "
            words.append(Word(token, w.start, w.end, len(text), len(text) + len(token), False))
            text += token
        out.append(replace(u, text=text + ".", words=tuple(words)))
    return replace(tl, utterances=tuple(out))


def test_cleared_words_never_appear(tl: Timeline, video: Path, tmp_path: Path) -> None:
    cut = next(u for u in tl.utterances if u.interrupted)
    assert any(not w.played for w in cut.words) and any(w.played for w in cut.words)
    a = _decode(video)
    b = _decode(_render(_swap_cleared_words(tl), tmp_path / "b"))
    assert len(a) == len(b)
    # whatever the unheard words are, not one pixel of the captions depends on them
    worst = max(float(np.abs(_band(x) - _band(y)).max()) for x, y in zip(a, b, strict=True))
    assert worst <= 2, worst


def _mouth_box(img: np.ndarray, r: VideoRenderer, tl: Timeline) -> np.ndarray:
    """The mouth's slot in the face, in frame pixels."""
    scene = _Scene(r, tl)
    fx, fy = scene.face_xy
    size = scene.avatar.size
    x0, y0, x1, y1 = (round(f * size) for f in Avatar._MOUTH_BOX)
    return img[fy + y0:fy + y1, fx + x0:fx + x1].astype(np.int16)


def test_mouth_follows_the_viseme_stream(tl: Timeline, video: Path) -> None:
    r = VideoRenderer()
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert MOUTH_SHAPES == ("A", "B", "C", "D", "E", "F", "G", "H", "X")
    cues = [cu for cu in timeline_cues(tl, "rhubarb") if cu.end - cu.start >= 3 / FPS]
    # reference mouths: what the renderer means to draw at a time inside each shape
    refs = {}
    for cu in cues:
        if cu.viseme not in refs:
            refs[cu.viseme] = _mouth_box(np.asarray(r.frame_image(tl, (cu.start + cu.end) / 2)), r, tl)
    assert len(refs) >= 4, refs.keys()
    hits = total = 0
    for cu in cues:
        k = round((cu.start + cu.end) / 2 * FPS)
        got = _mouth_box(frames[k], r, tl)
        best = min(refs, key=lambda s: np.abs(got - refs[s]).mean())
        hits += best == cu.viseme
        total += 1
    assert hits >= 0.9 * total, (hits, total)
    # idle before anyone speaks, relaxed again after the end
    idle = _mouth_box(np.asarray(r.frame_image(tl, 0.0)), r, tl)
    assert _diff(_mouth_box(frames[0], r, tl), idle) < 4
    assert _diff(_mouth_box(frames[-1], r, tl), idle) < 4
    assert max(_diff(idle, ref) for ref in refs.values()) > 10


def test_vertical_stereo_one_speaker_per_side(tmp_path: Path) -> None:
    tl = call([("agent", "Good morning.", None), ("user", "Hi there.", None)], gap=0.3)
    path = _render(tl, tmp_path, size="vertical", stereo=True)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (1080, 1920)
        assert c.streams.audio[0].codec_context.channels == 2
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    agent, user = tl.utterances
    def rms(ch: int, u: Utterance) -> float:
        seg = pcm[ch, int((u.start + 0.05) * RATE):int((u.end - 0.05) * RATE)]
        return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
    assert rms(0, agent) > 10 * rms(1, agent)
    assert rms(1, user) > 10 * rms(0, user)


def test_mix_scales_instead_of_clipping() -> None:
    loud = (np.sin(np.arange(RATE) / 5) * 30000).astype(np.int16)
    from aligner.timeline import AudioTrack

    tl = Timeline(audio=(AudioTrack("agent", RATE, samples=loud),
                         AudioTrack("user", RATE, samples=loud)), duration=1.0)
    mix = AudioMix(tl, None, stereo=False)
    out = mix.read(0, RATE).astype(np.int32)
    assert mix.gain < 1.0
    assert int(np.abs(out).max()) <= 32767
    total = 2 * loud.astype(np.int64)
    expected = np.round(total * 32767 / np.abs(total).max())
    assert np.abs(out - expected).max() <= 1  # the sum scaled as a whole, not flattened at the top


def test_user_mouth_set_and_background(tl: Timeline, tmp_path: Path) -> None:
    colours = {s: (40 + 20 * i, 200 - 15 * i, (70 * i) % 256) for i, s in enumerate("ABCDEF")}
    for s, col in colours.items():
        Image.new("RGBA", (60, 40), col + (255,)).save(tmp_path / f"{s}.png")
    mouths = load_mouth_set(tmp_path)
    assert mouths["X"] is mouths["A"] and mouths["G"] is mouths["B"]  # Rhubarb's fallbacks
    r = VideoRenderer(mouths=str(tmp_path), background="#203040")
    cue = next(cu for cu in timeline_cues(tl, "rhubarb") if cu.viseme in colours
               and cu.end - cu.start > 0.05)
    img = np.asarray(r.frame_image(tl, (cue.start + cue.end) / 2))
    box = _mouth_box(img, r, tl).reshape(-1, 3)
    want = np.array(colours[cue.viseme])
    assert np.mean(np.abs(box - want).sum(1) < 12) > 0.4
    assert tuple(img[2, 640]) == (32, 48, 64)
    (tmp_path / "C.png").unlink()
    with pytest.raises(RendererError, match="lacks shapes C"):
        load_mouth_set(tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"size": "huge"}, "bad video size"),
    ({"size": "1279x720"}, "multiples of 4"),
    ({"fps": 0}, "fps"),
])
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(RendererError, match=message):
        VideoRenderer(**options)


def test_unicode_captions_draw(tmp_path: Path) -> None:
    text = "Café crème, naïve façade — שלום עולם"
    words = tuple(Word(m, 0.2 + 0.3 * i, 0.45 + 0.3 * i, text.index(m), text.index(m) + len(m))
                  for i, m in enumerate(["Café", "crème", "naïve", "façade", "שלום", "עולם"]))
    tl = Timeline(utterances=(Utterance("agent", 0.2, 2.0, text, words=words),), duration=2.5)
    r = VideoRenderer(size="640x360")
    shown = np.asarray(r.frame_image(tl, 1.0)).astype(np.int16)
    empty = np.asarray(r.frame_image(tl, 2.4)).astype(np.int16)
    assert _diff(_band(shown), _band(empty)) > 2.0


def test_render_to_file_object_and_progress(tmp_path: Path) -> None:
    tl = call([("agent", "One two three.", None)])
    seen = []
    with open(tmp_path / "x.mp4", "wb") as fp:
        VideoRenderer(size="640x360", progress=lambda done, total: seen.append((done, total))
                      ).render_to(tl, fp)
    with av.open(str(tmp_path / "x.mp4")) as c:
        assert c.streams.video[0].width == 640
    assert seen and seen[-1][0] == pytest.approx(seen[-1][1]) and seen == sorted(seen)


def test_progress_bar_on_stderr(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    tl = call([("agent", "Yes.", None)])
    VideoRenderer(size="320x180", progress=True).render(tl, tmp_path)
    err = capfd.readouterr().err
    assert "mp4 [" in err and "100%" in err and err.endswith("\n")


def test_font_option_is_used() -> None:
    text = "Fonts matter"
    words = (Word("Fonts", 0.1, 0.5, 0, 5), Word("matter", 0.5, 0.9, 6, 12))
    tl = Timeline(utterances=(Utterance("agent", 0.1, 0.9, text, words=words),), duration=1.0)
    from renderers.caption_draw import FONT_DIR

    bold = np.asarray(VideoRenderer(size="640x360").frame_image(tl, 0.3)).astype(np.int16)
    regular = np.asarray(VideoRenderer(size="640x360", font=str(FONT_DIR / "DejaVuSans.ttf"))
                         .frame_image(tl, 0.3)).astype(np.int16)
    assert _diff(_band(bold), _band(regular)) > 0.5
    with pytest.raises(RendererError, match="cannot load font"):
        VideoRenderer(size="640x360", font="/nonexistent.ttf").frame_image(tl, 0.3)


def test_wav_tracks_are_read_block_by_block(tl: Timeline, tmp_path: Path) -> None:
    import wave

    from aligner.timeline import AudioTrack

    tracks = []
    for t in tl.audio:
        with wave.open(str(tmp_path / f"{t.speaker}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(t.sample_rate)
            w.writeframes(t.samples.astype("<i2").tobytes())
        tracks.append(AudioTrack(t.speaker, t.sample_rate, f"{t.speaker}.wav"))
    on_disk = AudioMix(replace(tl, audio=tuple(tracks)), tmp_path, stereo=False)
    in_memory = AudioMix(tl, None, stereo=False)
    assert not isinstance(on_disk.tracks["agent"], np.ndarray)  # not loaded whole
    n = len(tl.audio[0].samples)
    for start in (0, RATE // 3, n - 1000):
        assert np.array_equal(on_disk.read(start, start + RATE), in_memory.read(start, start + RATE))


def _shifted(u: Utterance, dt: float) -> Utterance:
    return replace(u, start=u.start + dt, end=u.end + dt,
                   words=tuple(replace(w, start=w.start + dt, end=w.end + dt) for w in u.words),
                   phones=tuple(replace(p, start=p.start + dt, end=p.end + dt) for p in u.phones))


def test_caches_stay_bounded_however_long_the_call(tl: Timeline) -> None:
    """Memory stays flat: what the renderer keeps does not grow with the call's length."""
    def kept(repeat: int) -> tuple[int, int]:
        long = replace(tl, utterances=tuple(_shifted(u, k * tl.duration) for k in range(repeat)
                                            for u in tl.utterances),
                       events=(), audio=(), duration=tl.duration * repeat)
        scene = _Scene(VideoRenderer(size="640x360"), long)
        most = 0
        for i in range(round(long.duration * FPS)):
            scene.frame(scene.state(i / FPS))
            most = max(most, len(scene._patches) + len(scene._regions))
        return most, len(scene.captions)

    short, long = kept(1), kept(4)
    assert long[1] >= 4 * short[1] - 1
    assert long[0] <= short[0] + 4, (short, long)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_mp4_gets_the_permissions_every_other_output_gets(tmp_path: Path, umask: int) -> None:
    # call.mp4 came out 0600 (mkstemp) while the other outputs follow the umask
    tl = Timeline(utterances=(Utterance("agent", 0.1, 0.5, "Hi", words=(Word("Hi", 0.1, 0.5, 0, 2),)),),
                  duration=0.6, audio=(AudioTrack("agent", 16000, samples=np.zeros(9600, np.int16)),))
    old = os.umask(umask)
    try:
        (mp4,) = VideoRenderer(size="320x180").render(tl, tmp_path)
        (srt,) = renderers.get("srt")().render(tl, tmp_path)
        pictures = renderers.get("picture")().render(tl, tmp_path)  # its WAV was 0644 always
        saved = tl.save(tmp_path / "timeline.json")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (mp4, srt, *pictures, saved)}
    assert set(modes.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in modes.items()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def _tags(img: np.ndarray, colour: tuple[int, int, int], below: int) -> int:
    """Pixels of a speaker's name-tag colour below row ``below`` (the captions' area)."""
    area = img[below:].astype(np.int16)
    return int((np.abs(area - np.array(colour)).sum(axis=2) < 60).sum())


def test_both_speakers_captions_show_while_both_speak(tmp_path: Path) -> None:
    from renderers.caption_draw import CaptionStyle

    agent_text = "Of course. We have a table by the window at seven."
    user_text = "The window table, please."
    a = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+", agent_text)]
    u = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+", user_text)]
    clear = 2.0  # the agent is cut here; the user started talking over it at 1.7
    agent_words = tuple(Word(w, 0.2 + 0.22 * k, 0.4 + 0.22 * k, s, e) if 0.2 + 0.22 * k < clear
                        else Word(w, clear, clear, s, e, played=False)
                        for k, (w, s, e) in enumerate(a))
    user_words = tuple(Word(w, 1.7 + 0.3 * k, 1.95 + 0.3 * k, s, e)
                       for k, (w, s, e) in enumerate(u))
    tl = Timeline(utterances=(
        Utterance("agent", 0.2, clear, agent_text, interrupted=True, words=agent_words),
        Utterance("user", 1.7, 2.9, user_text, words=user_words)),
        events=(TimelineEvent(clear, "clear"),), duration=3.5)
    agent, user = dict(CaptionStyle().speakers)["agent"], dict(CaptionStyle().speakers)["user"]
    r = VideoRenderer(size="640x360")
    scene = _Scene(r, tl)
    below = scene.face_xy[1] + scene.avatar.size  # under the face (its ring is the agent's colour)
    both = np.asarray(r.frame_image(tl, 1.85))
    # the user's caption took the agent's place while the agent's word was still sounding
    assert _tags(both, agent, below) > 50 and _tags(both, user, below) > 50
    assert _tags(np.asarray(r.frame_image(tl, 1.5)), user, below) == 0
    assert _tags(np.asarray(r.frame_image(tl, 2.5)), agent, below) == 0
    # the encoder's frames (assembled from patches) show the same, and nothing is left behind
    with av.open(str(_render(tl, tmp_path, size="640x360"))) as c:
        frames = {k: f.to_ndarray(format="rgb24") for k, f in enumerate(c.decode(video=0))}
    for t in (1.5, 1.85, 2.5):
        k = round(t * FPS)
        want = np.asarray(r.frame_image(tl, k / FPS)).astype(np.int16)
        assert np.abs(frames[k].astype(np.int16) - want).mean() < 3.0, t
    assert _tags(frames[round(1.85 * FPS)], agent, below) > 50
    assert _tags(frames[round(2.5 * FPS)], agent, below) == 0
