"""Benchmark the ``mp4`` renderer against ffmpeg burning the same captions (libass).

Builds a conversation of real espeak-ng speech (about 3 minutes, agent and user, barge-ins),
saves it as ``timeline.json`` + WAV tracks, then for 720p30 and 1080p30:

- renders it with :class:`renderers.video.VideoRenderer` (captions, talking face, audio) in a
  child process, measuring wall time, CPU time and peak memory (max RSS);
- writes the same captions as ASS with our ``ass`` renderer and times Debian's ffmpeg burning
  them onto a blank video of the same size (``-vf ass=...``), once with the same x264 preset
  and CRF as ours (like for like) and once with ffmpeg's defaults (preset medium, "plain").

Prints speed as a multiple of real time, peak memory and the ratios ffmpeg time / our time.
Targets (2-core machine): ratio >= 1.0, >= 6x real time at 720p, >= 2.5x at 1080p, < 400 MB.

Usage::

    python benchmarks/render_video.py                 # the full run (3-minute call)
    python benchmarks/render_video.py --minutes 0.5   # a quick one
    python benchmarks/render_video.py --frame docs/frame.png   # also write a README frame
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from caption_helpers import LINES as _CALL  # noqa: E402  (the tests' support call)

LINES = _CALL[:-1]  # without the closing pleasantry: the benchmark repeats these turns
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
PRESET, CRF = "ultrafast", 23


def build(folder: Path, minutes: float) -> Path:
    """Write ``timeline.json`` and the two WAV tracks of a ``minutes``-long call into ``folder``."""
    from dataclasses import replace

    from video_helpers import call

    from aligner.timeline import AudioTrack

    turns = []
    while len(turns) < 400:
        for i, (speaker, text) in enumerate(LINES):
            turns.append((speaker, text, 9.0 if i == 4 else None))
    # grow the call until it is long enough (synthesis is cached per distinct line by espeak)
    n = 4
    while True:
        tl = call(turns[:n])
        if tl.duration >= minutes * 60 or n >= len(turns):
            break
        n = max(n + 1, int(n * minutes * 60 / tl.duration) + 1)
    tracks = []
    for t in tl.audio:
        name = f"{t.speaker}.wav"
        with wave.open(str(folder / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(t.sample_rate)
            w.writeframes(t.samples.astype("<i2").tobytes())
        tracks.append(AudioTrack(t.speaker, t.sample_rate, name))
    tl = replace(tl, audio=tuple(tracks))
    return tl.save(folder / "timeline.json")


def child(timeline: str, size: str, out: str) -> None:
    """Render in this (child) process and print JSON figures."""
    from aligner.timeline import Timeline
    from renderers.video import VideoRenderer

    tl = Timeline.load(timeline)
    c0, t0 = time.process_time(), time.perf_counter()
    VideoRenderer(size=size, preset=PRESET, crf=CRF, progress=False).render(
        tl, out, stem=size, base=Path(timeline).parent)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak_mb, "duration": tl.duration}))


def run_ours(timeline: Path, size: str, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(timeline), size, str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ffmpeg(ass: Path, size: tuple[int, int], duration: float, out: Path,
               like_for_like: bool) -> dict:
    w, h = size
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
           f"color=c=black:s={w}x{h}:r=30:d={duration:.3f}", "-vf", f"ass={ass}",
           "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if like_for_like:
        cmd += ["-preset", PRESET, "-crf", str(CRF)]
    cmd.append(str(out))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"ffmpeg failed (status {status}): {' '.join(cmd)}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def ensure_ffmpeg() -> None:
    if shutil.which("ffmpeg"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's ffmpeg (apt-get install -y ffmpeg) ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "ffmpeg"], check=True,
                       stdout=subprocess.DEVNULL)
        return
    raise SystemExit("ffmpeg is missing: install Debian's ffmpeg (apt-get install ffmpeg) and rerun")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="call length (default 3)")
    ap.add_argument("--sizes", default="720p,1080p", help="comma separated: 720p,1080p")
    ap.add_argument("--frame", metavar="PNG", help="also write one frame of the call as PNG")
    ap.add_argument("--no-ffmpeg", action="store_true", help="time only our renderer")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if not args.no_ffmpeg:
        ensure_ffmpeg()
    import renderers
    from aligner.timeline import Timeline

    with tempfile.TemporaryDirectory(prefix="bench-video-") as d:
        folder = Path(d)
        print(f"building a {args.minutes:g}-minute call from espeak-ng speech ...", file=sys.stderr)
        path = build(folder, args.minutes)
        tl = Timeline.load(path)
        (ass,) = renderers.get("ass")().render(tl, folder, stem="call")
        if args.frame:
            from renderers.video import VideoRenderer

            cut = next(u for u in tl.utterances if u.speaker == "agent" and len(u.words) > 12)
            w = cut.words[9]
            VideoRenderer().frame_image(tl, (w.start + w.end) / 2).save(args.frame)
            print(f"wrote {args.frame}", file=sys.stderr)
        print(f"call: {tl.duration:.1f} s, {len(tl.utterances)} turns, "
              f"{sum(len(u.heard_words) for u in tl.utterances)} heard words; x264 preset "
              f"{PRESET} crf {CRF}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(f"{'size':6} {'who':28} {'wall s':>7} {'x real':>7} {'cpu s':>7} {'peak MB':>8}")
        for size in args.sizes.split(","):
            ours = run_ours(path, size, folder)
            rows = [("ours: captions+face+audio", ours)]
            if args.no_ffmpeg:
                r = ours
                print(f"{size:6} {rows[0][0]:28} {r['wall']:7.2f} {tl.duration / r['wall']:7.2f} "
                      f"{r['cpu']:7.2f} {r['peak_mb']:8.1f}")
                continue
            ffl = run_ffmpeg(ass, SIZES[size], tl.duration, folder / f"ff-{size}.mp4", True)
            ffp = run_ffmpeg(ass, SIZES[size], tl.duration, folder / f"ffp-{size}.mp4", False)
            rows += [(f"ffmpeg -vf ass ({PRESET})", ffl), ("ffmpeg -vf ass (plain)", ffp)]
            for who, r in rows:
                print(f"{size:6} {who:28} {r['wall']:7.2f} {tl.duration / r['wall']:7.2f} "
                      f"{r['cpu']:7.2f} {r['peak_mb']:8.1f}")
            print(f"{size:6} ratio ffmpeg/ours, wall: like-for-like {ffl['wall'] / ours['wall']:.2f}, "
                  f"plain {ffp['wall'] / ours['wall']:.2f};  cpu: like-for-like "
                  f"{ffl['cpu'] / ours['cpu']:.2f}, plain {ffp['cpu'] / ours['cpu']:.2f}")


if __name__ == "__main__":
    main()
