"""Events per second the codec + capture sustain on one core, on a 10-minute call.

Generates a synthetic 10-minute web-protocol call at realistic frame sizes (user mic audio in
20 ms s16le frames at 16 kHz, agent alignment chunks of 150-400 ms with their text as base64
JSON, a transcript update per turn, a ping/pong every 5 s), then measures:

- record: :class:`aligner.wire.capture.CaptureWriter` writing every frame (flush per frame, fsync
  once a second of session time), as the live client does;
- replay: :func:`aligner.wire.capture.read` + ``Capture.events()`` decoding every frame through the
  protocol codec, as ``aligner replay`` and the timeline builder do.

Peer: the same call stored the other obvious way, binary frames as base64 inside the JSON lines
(one file), replayed through the same codec. Target: >= 100x real time.

    python benchmarks/client_throughput.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from aligner.wire import capture
from aligner.wire.events import AlignedAudio, TranscriptTurn, Update
from aligner.wire.protocol import (
    WebClientProtocol,
    decode_client_binary,
    decode_client_text,
    encode,
)

RATE = 16000
WORDS = ("hello", "thanks", "for", "calling", "the", "riverside", "bistro", "how", "can", "I",
         "help", "you", "today", "we", "have", "a", "table", "by", "the", "window", "at", "seven")


def synthetic_call(minutes: float, seed: int = 1) -> list[tuple[float, str, str | bytes]]:
    """Frames (t, direction, payload) of a call: the agent speaks about half the time."""
    rng = random.Random(seed)
    total = minutes * 60
    frames: list[tuple[float, str, str | bytes]] = []
    mic = bytes(640)  # 20 ms of s16le at 16 kHz
    t = 0.0
    while t < total:
        frames.append((round(t, 6), "out", mic))
        t += 0.02
    t, turns = 0.0, []
    while t < total:  # alternate agent speech (chunks) and user turns
        spoken = rng.uniform(3, 10)
        end = t + spoken
        text = []
        while t < end:
            ms = rng.randint(150, 400)
            words = " ".join(rng.choice(WORDS) for _ in range(max(1, ms // 250))) + " "
            text.append(words)
            chunk = AlignedAudio(rng.randbytes(RATE * 2 * ms // 1000), words)
            frames.append((round(t, 6), "in", encode(chunk)))
            t += ms / 1000 / 2  # sent at 2x real time
        turns.append(TranscriptTurn("agent", "".join(text)))
        turns.append(TranscriptTurn("user", "a user line"))
        frames.append((round(t, 6), "in", encode(Update(tuple(turns[-6:]), "user_turn"))))
        t = end + rng.uniform(2, 6)
    t = 0.0
    while t < total:
        frames += [(round(t, 6), "out", "ping"), (round(t + 0.001, 6), "in", "pong")]
        t += 5
    frames.sort(key=lambda f: f[0])
    return frames


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def bench_record(frames, path: Path) -> tuple[float, float]:
    start = _clock()
    with capture.CaptureWriter(path, {"audio_encoding": "s16le", "sample_rate": RATE,
                                      "protocol": "web"}) as w:
        for t, d, payload in frames:
            w.write(t, d, payload)
        w.write_close(frames[-1][0], 1000, "", "client")
    return _since(start)


def bench_replay(path: Path) -> tuple[tuple[float, float], int]:
    start = _clock()
    n = sum(1 for _ in capture.read(path).events())
    return _since(start), n


def bench_inline_peer(frames, path: Path):
    """Binary frames as base64 inside the lines of one JSONL file (flushed per frame, fsync'd
    once a second), replayed through the same codec."""
    start = _clock()
    synced = 0.0
    with open(path, "w", encoding="utf-8", buffering=1) as f:
        for t, d, payload in frames:
            if t - synced >= 1.0:  # same durability as the capture: fsync once a second
                getattr(os, "fdatasync", os.fsync)(f.fileno())
                synced = t
            if isinstance(payload, bytes):
                line = {"t": t, "d": d, "b64": base64.b64encode(payload).decode()}
            else:
                line = {"t": t, "d": d, "text": payload}
            f.write(json.dumps(line) + "\n")
            f.flush()
    write_s = _since(start)
    start = _clock()
    proto, n = WebClientProtocol(answer_pings=False), 0
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = json.loads(raw)
            payload = base64.b64decode(line["b64"]) if "b64" in line else line["text"]
            if line["d"] == "in":
                if isinstance(payload, bytes):
                    proto.receive_binary(payload)
                else:
                    proto.receive_text(payload)
                n += len(proto.events_received())
            else:
                (decode_client_binary if isinstance(payload, bytes) else decode_client_text)(payload)
                n += 1
    return write_s, _since(start), n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    print(f"generating a {args.minutes:g}-minute call...", file=sys.stderr)
    frames = synthetic_call(args.minutes)
    tmp = Path(tempfile.mkdtemp(prefix="aligner-bench-"))
    try:
        rec_s = bench_record(frames, tmp / "cap")
        size = sum(p.stat().st_size for p in (tmp / "cap").iterdir())
        rep_s, n = bench_replay(tmp / "cap")
        peer_w, peer_r, peer_n = bench_inline_peer(frames, tmp / "inline.jsonl")
        peer_size = (tmp / "inline.jsonl").stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"call: {seconds:.0f} s, {len(frames)} frames, {n} events; capture {size / 1e6:.1f} MB "
          f"(peer {peer_size / 1e6:.1f} MB)")
    print(f"{'':29}{'wall s':>8}{'x real time':>13}{'cpu s':>8}{'events/cpu-s':>14}"
          f"{'x real time/core':>18}")
    rows = [("record (this capture)", rec_s, len(frames)), ("replay (this capture)", rep_s, n),
            ("record (peer: base64 lines)", peer_w, len(frames)),
            ("replay (peer: base64 lines)", peer_r, peer_n)]
    for name, (wall, cpu), count in rows:
        print(f"{name:29}{wall:8.2f}{seconds / wall:12,.0f}x{cpu:8.2f}{count / cpu:14,.0f}"
              f"{seconds / cpu:17,.0f}x")
    worst = min(seconds / rec_s[1], seconds / rep_s[1])
    print(f"target: >= 100x real time on one core (cpu time) for record and replay -> "
          f"{'met' if worst >= 100 else 'NOT met'} ({worst:,.0f}x); wall time includes waiting "
          "for the disk (fdatasync once a second of call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
