"""Load benchmark of the emulator: N concurrent calls streaming real-time user speech on loopback.

The emulator runs in its own process (``aligner emulate --port 0``) as it would in production;
the N clients share this process. Each client: waits for the greeting to play out, says a line,
lets the agent start its long answer, barges in with a second line, waits for the next answer,
and hangs up. Audio is real espeak speech, streamed in 20 ms frames in real time.

Printed figures:
- calls completed (every expected agent response arrived with the right text) and lost frames
  (user frames sent minus frames the server counted);
- THE figure: delay from the end of a user utterance (the clip's last voiced 20 ms frame, as
  sent) to the first agent chunk of the answer, as the client sees it. It includes the silence
  the server waits for before it decides the turn is over: with smart endpointing a short
  pause (200 ms) when the words heard so far sound complete, else the whole hangover (600 ms);
- how many user turns ended on the quick path (short pause, sounded complete) and how many
  on the long one (whole hangover), from the server's counters;
- per pause, how long the recogniser took to say what it had heard so far (it decodes while
  the user speaks; when it falls behind, the turn cannot end on the quick path);
- the delay inside the server (end-of-turn decision -> first chunk sent);
- the baseline: one call alone, same measurement.

Two loaded runs: the worst case, all N callers speaking within the same 2 s (each call waits
for the greeting, so their utterances line up), and arrivals spread over ``--spread`` s (10),
as calls arrive in service; both report the peak number of calls open at once, which must be N
for the run to count. A live decode costs ~0.04 CPU s per second of speech, so N people
speaking at the same instant need ~N x 0.04 cores for recognition alone.

THE figure runs from the end of the speech in the clip, whichever silence the server waited for:
the quick/long counts say which wait it includes (the wait is not a constant, so no fixed
hangover is subtracted).

Usage: python benchmarks/emulator_load.py [--calls 50] [--rate 16000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time

import aiohttp
import numpy as np

from aligner import audio
from aligner.emulator.brain import load_dialogue
from aligner.emulator.config import DEFAULT_DIALOGUE
from aligner.speech.synthesis import synthesize

FRAME_S = 0.02
API_KEY = "bench-key"


class Client:
    """One call: streams mic audio in real time while reading the agent's frames."""

    def __init__(self, session, base, rate, lines, user_clips):
        self.session, self.base, self.rate = session, base, rate
        self.lines, self.user_clips = lines, user_clips
        self.chunks: list[tuple[float, str]] = []  # (arrival, text)
        self.clears: list[float] = []
        self.frames_sent = 0
        self.delays: list[float] = []
        self.error = ""
        self.call_id = ""
        self.opened = self.closed = float("nan")  # when the audio socket was open

    def text(self) -> str:
        return "".join(t for _, t in self.chunks)

    async def _read(self, ws) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "clear":
                    self.clears.append(time.monotonic())
                elif msg.data.startswith("{"):
                    data = json.loads(msg.data)
                    if isinstance(data.get("audio"), str):
                        self.chunks.append((time.monotonic(), data["text"]))

    async def run(self, start_delay: float) -> None:
        await asyncio.sleep(start_delay)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with self.session.post(f"{self.base}/register-call", headers=headers, json={
                "agent_id": "bench", "sample_rate": self.rate}) as r:
            self.call_id = (await r.json())["call_id"]
        ws_url = self.base.replace("http", "ws", 1)
        url = (f"{ws_url}/audio-websocket/{self.call_id}"
               "?enable_audio_alignment=true&enable_update=true")
        async with self.session.ws_connect(url) as ws:
            self.opened = time.monotonic()
            reader = asyncio.create_task(self._read(ws))
            self._next = time.monotonic()
            silence = np.zeros(int(self.rate * FRAME_S), np.int16)
            # greeting: wait for all of it, then for it to play out
            while self.text() != self.lines[0]:
                await self._send(ws, silence)
            await self._silence(ws, 4.7)
            await self._utterance(ws, self.user_clips[0], len(self.lines[0]))
            await self._silence(ws, 1.0)  # the long answer plays for a while...
            await self._utterance(ws, self.user_clips[1], len(self.text()))  # ...barge in
            await self._silence(ws, 1.0)
            await ws.close()
            await reader
            self.closed = time.monotonic()
        async with self.session.get(f"{self.base}/emulator/stats/{self.call_id}",
                                    headers=headers) as r:
            self.stats = await r.json()

    async def _send(self, ws, frame) -> None:
        await ws.send_bytes(audio.encode(frame, "s16le"))
        self.frames_sent += 1
        self._next += FRAME_S
        await asyncio.sleep(max(0.0, self._next - time.monotonic()))

    async def _silence(self, ws, seconds: float) -> None:
        frame = np.zeros(int(self.rate * FRAME_S), np.int16)
        for _ in range(round(seconds / FRAME_S)):
            await self._send(ws, frame)

    async def _utterance(self, ws, clip: np.ndarray, text_before: int) -> None:
        """Say ``clip``; then stream silence until the agent's next response starts."""
        n = int(self.rate * FRAME_S)
        last_frame = _last_voiced_frame(clip, n)
        ended = None
        for k in range(0, len(clip), n):
            await self._send(ws, clip[k:k + n])
            if k // n == last_frame:
                ended = time.monotonic()
        count = len(self.chunks) if text_before == len(self.text()) else 0
        frame = np.zeros(n, np.int16)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            new = [t for t, _ in self.chunks[count:] if t > ended]
            if new and len(self.text()) > text_before:
                self.delays.append(min(new) - ended)
                return
            await self._send(ws, frame)
        self.error = "no agent response within 5 s"


def _last_voiced_frame(clip: np.ndarray, n: int) -> int:
    """Index of the clip's last 20 ms frame above -45 dBFS (the VAD's speech level): the end
    of the utterance."""
    frames = clip[: len(clip) // n * n].astype(np.float64).reshape(-1, n)
    levels = 10 * np.log10(np.mean(frames ** 2, axis=1) / 32768.0 ** 2 + 1e-12)
    return int(np.flatnonzero(levels > -45)[-1])


async def _run_calls(base: str, n: int, rate: int, lines, clips,
                     spread: float = 2.0) -> list[Client]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        clients = [Client(session, base, rate, lines, clips) for _ in range(n)]
        spread = spread if n > 1 else 0.0
        results = await asyncio.gather(*[c.run(spread * i / max(n, 1)) for i, c in
                                         enumerate(clients)], return_exceptions=True)
    for client, result in zip(clients, results, strict=True):
        if isinstance(result, BaseException):
            client.error = repr(result)
    return clients


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def _peak_concurrency(clients: list[Client]) -> int:
    """Most audio sockets open at the same moment."""
    marks = sorted([(c.opened, 1) for c in clients if c.opened == c.opened]
                   + [(c.closed, -1) for c in clients if c.closed == c.closed])
    peak = level = 0
    for _, step in marks:
        level += step
        peak = max(peak, level)
    return peak


def _report(label: str, clients: list[Client], lines) -> dict:
    completed = 0
    for c in clients:
        text = c.text()  # greeting, the start of line 1 (cut by the barge-in), then line 2
        completed += bool(not c.error and text.startswith(lines[0] + lines[1][:10]) and c.clears
                          and lines[2][:20] in text)
    lost = sum(c.frames_sent - c.stats.get("frames_received", 0)
               for c in clients if hasattr(c, "stats"))
    delays = [d for c in clients for d in c.delays]
    server = [d for c in clients if hasattr(c, "stats") for d in c.stats["turn_delays"]]
    ends = [e for c in clients if hasattr(c, "stats") for e in c.stats["turn_ends"]]
    waits = [w for c in clients if hasattr(c, "stats") for w in c.stats["hypothesis_waits"]]
    peak = _peak_concurrency(clients)
    print(f"{label}: calls completed {completed}/{len(clients)}, lost frames {lost}, "
          f"barge-ins (clear received) {sum(bool(c.clears) for c in clients)}, "
          f"peak concurrent calls {peak}")
    print(f"  utterance end -> first agent chunk, raw:             p50 {_pct(delays, 50):6.0f} ms"
          f"   p99 {_pct(delays, 99):6.0f} ms   (n={len(delays)})")
    print(f"  user turns ended on the quick path (short pause, sounded complete): "
          f"{ends.count('quick')}, on the long path (whole hangover): {ends.count('long')}")
    print(f"  pause -> words heard so far, from the recogniser:     p50 {_pct(waits, 50):6.0f} ms"
          f"   p99 {_pct(waits, 99):6.0f} ms   (n={len(waits)})")
    print(f"  inside the server (turn decided -> chunk sent):       p50 {_pct(server, 50):6.0f} ms"
          f"   p99 {_pct(server, 99):6.0f} ms")
    for c in clients:
        if c.error:
            print(f"  error in {c.call_id}: {c.error}")
    return {"completed": completed, "lost": lost, "p99": _pct(delays, 99), "peak": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--spread", type=float, default=10.0,
                        help="second run: call arrivals spread over this many seconds (short "
                             "enough that every call is still open when the last one starts)")
    parser.add_argument("--url", help="use this running emulator (e.g. under a profiler) with "
                        f"API key {API_KEY!r} instead of starting one")
    parser.add_argument("--no-recognition", action="store_true",
                        help="emulator without pocketsphinx (isolates its cost)")
    args = parser.parse_args()

    dialogue = load_dialogue(DEFAULT_DIALOGUE)
    lines = [line["text"] for line in dialogue["lines"]]
    clips = [audio.resample(synthesize(t).samples, 22050, args.rate)
             for t in dialogue["user_hints"][:2]]
    if args.url:
        return _measure(args.url, args, lines, clips)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "aligner", "emulate", "--port", "0",
                               "--api-key", API_KEY]
                              + (["--no-recognition"] if args.no_recognition else []),
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = None
        for line in server.stderr:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                base = m.group(1)
                break
        threading.Thread(target=server.stderr.read, daemon=True).start()  # keep draining
        if base is None:
            print("emulator did not start", file=sys.stderr)
            return 1
        return _measure(base, args, lines, clips)
    finally:
        server.terminate()
        server.wait(10)


def _measure(base: str, args, lines, clips) -> int:
    print(f"emulator at {base}; {args.calls} calls, s16le {args.rate} Hz, 20 ms frames, "
          f"real time; target: {args.calls}/{args.calls} complete, 0 lost, p99 < 300 ms")
    baseline = asyncio.run(_run_calls(base, 1, args.rate, lines, clips))
    _report("baseline, 1 call alone", baseline, lines)
    for label, spread in ((f"{args.calls} concurrent calls, all speaking within 2 s "
                           "(worst case)", 2.0),
                          (f"{args.calls} concurrent calls, arrivals spread over "
                           f"{args.spread:g} s", args.spread)):
        loaded = asyncio.run(_run_calls(base, args.calls, args.rate, lines, clips, spread))
        r = _report(label, loaded, lines)
        ok = (r["completed"] == args.calls and r["lost"] == 0 and r["p99"] < 300
              and r["peak"] == args.calls)
        print(f"  target {'met' if ok else 'NOT met'}: {r['completed']}/{args.calls} complete, "
              f"{r['lost']} lost, p99 {r['p99']:.0f} ms from the end of the user's speech, "
              f"{r['peak']} calls open at once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
