"""Soak of ``aligner serve``: calls starting and ending continuously for minutes, on loopback.

Starts ``aligner emulate`` (no speech recognition: the user only sends silence) and ``aligner
serve --upstream`` with renderers (``--render``, default ``vtt,visemes``) as separate processes,
then keeps ``--calls`` (20) calls going for ``--minutes`` (10): each front end registers a call,
sends mic silence in real time (100 ms frames), takes the agent's greeting, and hangs up once
the agent has been quiet for a second, after a random 4-12 s; then its slot starts the next
call. Every ``--lipsync-every`` th call (4) asks for word and viseme events. Observers join
random live calls (``/live`` with the call's observer token) and leave after a few seconds.
Every finished call's recording is rendered by the service's worker.

Printed every ``--every`` seconds: calls active and completed, the service's RSS (its process,
and with its worker processes) and open file descriptors (same), render queue. At the end,
after the last calls and renders have finished: calls completed and failed, agent frames
dropped (frames the service received from the upstream, per its captures, that the front end
never got; all calls hang up only once the agent has been quiet for a second), observer events,
recordings by state (stuck: still recording, queued or rendering once everything is over),
render refusals, and how RSS and open files moved while calls ran (from the first sample after a quarter of
the run to the last one with calls going) and between the idle service before the first call
and after the last render.

Targets: every call completed, 0 frames dropped, 0 recordings stuck, RSS and open files flat
(no growth beyond the noise of the calls in flight: 10% / 20 descriptors; idle after as
before, to 20 descriptors).

    python benchmarks/soak.py                   # 10 minutes
    python benchmarks/soak.py --minutes 3       # shorter
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from processes import cpu_pressure, open_files, rss_mb, start, stop, wait_ready

from aligner.wire import capture
from aligner.wire.events import AgentAudio, AlignedAudio

KEY = "soak-key"
RATE = 16000
MIC_MS = 100
QUIET = 1.0  # s without agent audio after which a front end hangs up (past its minimum length)


class Soak:
    """The run's state and counters."""

    def __init__(self, base: str, args: argparse.Namespace) -> None:
        self.base, self.args = base, args
        self.live: dict[str, str] = {}  # call id -> observer token, for calls in progress
        self.results: list[dict] = []
        self.observer_events = 0
        self.observers_joined = 0
        self.started = 0
        self.stop_at = 0.0

    async def call(self, http: aiohttp.ClientSession, lipsync: bool) -> dict:
        """One call, from register-call to hang-up."""
        async with http.post(f"{self.base}/register-call", headers={"Authorization":
                                                                    f"Bearer {KEY}"},
                             json={"agent_id": "soak", "audio_encoding": "s16le",
                                   "sample_rate": RATE}) as resp:
            call = await resp.json()
        cid = call["call_id"]
        query = "?enable_words=true&enable_visemes=true" if lipsync else ""
        out = {"call_id": cid, "frames": 0, "events": 0, "ok": False, "lipsync": lipsync}
        frame = bytes(2 * RATE * MIC_MS // 1000)
        least = random.uniform(4.0, 12.0)
        t0 = time.monotonic()
        async with http.ws_connect(f"{self.base.replace('http', 'ws', 1)}/audio-websocket/{cid}"
                                   + query, max_msg_size=0) as ws:
            self.live[cid] = call["observer_token"]
            last = time.monotonic()

            async def mic() -> None:
                n = 0
                while not ws.closed:
                    await ws.send_bytes(frame)
                    n += 1
                    await asyncio.sleep(max(0.0, t0 + n * MIC_MS / 1000 - time.monotonic()))

            sender = asyncio.create_task(mic())
            try:
                while True:
                    now = time.monotonic()
                    if now - t0 >= least and now - last >= QUIET:
                        out["ok"] = not ws.closed
                        break
                    try:
                        msg = await asyncio.wait_for(ws.receive(), QUIET / 4)
                    except TimeoutError:
                        continue
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        out["frames"] += 1
                        last = time.monotonic()
                    elif msg.type is aiohttp.WSMsgType.TEXT:
                        out["events"] += msg.data.startswith('{"event_type":"')
                    else:
                        out["code"] = ws.close_code
                        break
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                self.live.pop(cid, None)
            out["closing_at"] = time.monotonic() - t0
        return out

    async def slot(self, http: aiohttp.ClientSession) -> None:
        """Calls one after another until the run's end."""
        while time.monotonic() < self.stop_at:
            self.started += 1
            lipsync = self.started % self.args.lipsync_every == 0
            try:
                self.results.append(await self.call(http, lipsync))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.results.append({"ok": False, "error": repr(exc), "lipsync": lipsync})

    async def observers(self, http: aiohttp.ClientSession) -> None:
        """Observers join random live calls and leave after a few seconds."""
        while time.monotonic() < self.stop_at:
            await asyncio.sleep(random.uniform(0.2, 1.0))
            if not self.live:
                continue
            cid, token = random.choice(list(self.live.items()))
            asyncio.create_task(self.observe(http, cid, token))

    async def observe(self, http: aiohttp.ClientSession, cid: str, token: str) -> None:
        self.observers_joined += 1
        url = f"{self.base.replace('http', 'ws', 1)}/live/{cid}?token={token}"
        try:
            async with http.ws_connect(url) as ws:
                stay = time.monotonic() + random.uniform(1.0, 5.0)
                while (left := stay - time.monotonic()) > 0:
                    try:
                        msg = await asyncio.wait_for(ws.receive(), left)
                    except TimeoutError:
                        break
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        break
                    self.observer_events += 1
        except (aiohttp.ClientError, OSError):
            pass


async def _calls(http: aiohttp.ClientSession, base: str) -> list[dict]:
    async with http.get(f"{base}/calls", headers={"Authorization": f"Bearer {KEY}"}) as resp:
        return (await resp.json())["calls"]


async def _stats(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(f"{base}/stats") as resp:
        return await resp.json()


async def _sampler(soak: Soak, svc: subprocess.Popen, samples: list[dict], every: float,
                   http: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    while True:
        rss, rss_all = rss_mb(svc.pid)
        fds, fds_all = open_files(svc.pid)
        stats = await _stats(http, soak.base)
        sample = {"t": time.monotonic() - t0, "active": stats["calls_active"],
                  "completed": sum(r["ok"] for r in soak.results), "rss": rss,
                  "rss_all": rss_all, "fds": fds, "fds_all": fds_all,
                  "rendered": stats["recordings_rendered"]}
        samples.append(sample)
        print(f"{sample['t']:7.0f} s  calls active {sample['active']:3d}, completed "
              f"{sample['completed']:5d}  RSS {rss:6.0f} MB (with workers {rss_all:6.0f})  "
              f"open files {fds:4d} (with workers {fds_all:4d})  rendered {sample['rendered']}",
              flush=True)
        await asyncio.sleep(every)


def _dropped(recordings: Path, results: list[dict]) -> int:
    """Agent frames the service got from the upstream, before the front end began to hang up,
    that the front end did not get."""
    dropped = 0
    for r in results:
        if "closing_at" not in r:
            continue
        cap = capture.read(recordings / r["call_id"] / "capture")
        got = sum(1 for s in cap.events() if s.direction == "in" and s.t < r["closing_at"] - 0.2
                  and isinstance(s.event, AlignedAudio | AgentAudio))
        dropped += max(0, got - r["frames"])
    return dropped


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    ap.add_argument("--calls", type=int, default=20, help="calls at a time (default 20)")
    ap.add_argument("--lipsync-every", type=int, default=4,
                    help="every N-th call asks for word and viseme events (default 4)")
    ap.add_argument("--render", default="vtt,visemes", help="renderers run on every call")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = ap.parse_args()
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="soak_"))
    recordings = work / "rec"
    emu, emu_url = await start([py, "-m", "aligner", "emulate", "--port", "0", "--api-key", KEY,
                                "--no-recognition"])
    svc = None
    try:
        svc, base = await start([py, "-m", "aligner", "serve", "--port", "0", "--upstream",
                                 emu_url, "--api-key", KEY, "--recordings", str(recordings),
                                 "--render", args.render, "--render-workers", "1",
                                 "--align-workers", "1"])
        await wait_ready(base)
        print(f"soak: {args.calls} calls at a time for {args.minutes:g} min (every "
              f"{args.lipsync_every}th with word/viseme events), renders {args.render}; "
              f"service {base}, emulator {emu_url}", flush=True)
        soak = Soak(base, args)
        soak.stop_at = time.monotonic() + 60 * args.minutes
        samples: list[dict] = []
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as http:
            sampler = asyncio.create_task(_sampler(soak, svc, samples, args.every, http))
            watcher = asyncio.create_task(soak.observers(http))
            await asyncio.gather(*(soak.slot(http) for _ in range(args.calls)))
            watcher.cancel()
            drain_until = time.monotonic() + 300  # the renders left: bounded
            while time.monotonic() < drain_until:
                states = Counter(c["state"] for c in await _calls(http, base))
                if not states.keys() & {"recording", "queued", "rendering"}:
                    break
                await asyncio.sleep(1.0)
            sampler.cancel()
            await asyncio.gather(sampler, watcher, return_exceptions=True)
            rss, rss_all = rss_mb(svc.pid)
            fds, fds_all = open_files(svc.pid)
            samples.append({"t": time.monotonic() - soak.stop_at + 60 * args.minutes,
                            "rss": rss, "rss_all": rss_all, "fds": fds,
                            "fds_all": fds_all})
            states = Counter(c["state"] for c in await _calls(http, base))
            stats = await _stats(http, base)
        results = soak.results
        done = [r for r in results if r["ok"]]
        dropped = _dropped(recordings, done)
        stuck = sum(states[s] for s in ("recording", "queued", "rendering"))
        idle, after = samples[0], samples[-1]  # before the first call, after the last render
        running = [s for s in samples[1:-1] if s.get("active", 0) >= args.calls // 2]
        warm = next((s for s in running if s["t"] >= 15 * args.minutes), running[0])
        last = running[-1]
        print(f"\n== soak: {args.minutes:g} min, {args.calls} calls at a time ==")
        print(f"calls completed        : {len(done)} of {len(results)} "
              f"({sum(r['lipsync'] for r in done)} with word/viseme events); failed: "
              f"{len(results) - len(done)}")
        print(f"agent frames dropped   : {dropped} (of {sum(r['frames'] for r in done)} "
              f"delivered); word/viseme events {sum(r['events'] for r in done)}, late chunks "
              f"{stats['late_chunks']}")
        print(f"observers              : {soak.observers_joined} joined and left, "
              f"{soak.observer_events} events (dropped for slow observers: "
              f"{stats['observers_dropped']})")
        print(f"recordings             : {dict(states)}; stuck {stuck}; render refusals "
              f"{stats['recordings_refused']}; rendered {stats['recordings_rendered']}")
        print(f"service RSS, calls on  : {warm['rss']:.0f} -> {last['rss']:.0f} MB (with workers "
              f"{warm['rss_all']:.0f} -> {last['rss_all']:.0f} MB), {warm['t']:.0f} s -> "
              f"{last['t']:.0f} s")
        print(f"open files, calls on   : {warm['fds']} -> {last['fds']} (with workers "
              f"{warm['fds_all']} -> {last['fds_all']})")
        print(f"idle before and after  : RSS {idle['rss']:.0f} -> {after['rss']:.0f} MB (with "
              f"workers {idle['rss_all']:.0f} -> {after['rss_all']:.0f}), open files "
              f"{idle['fds']} -> {after['fds']} (with workers {idle['fds_all']} -> "
              f"{after['fds_all']})")
        print(f"machine: {cpu_pressure()}")
        flat = (last["rss_all"] <= 1.1 * warm["rss_all"] and last["fds_all"] <= warm["fds_all"]
                + 20 and after["fds_all"] <= idle["fds_all"] + 20)
        ok = len(done) == len(results) and dropped == 0 and stuck == 0 and flat
        print(f"targets (every call completed, 0 dropped, 0 stuck, RSS and open files flat): "
              f"{'MET' if ok else 'MISSED'}")
        print(json.dumps({"minutes": args.minutes, "calls": len(results), "completed": len(done),
                          "dropped": dropped, "stuck": stuck,
                          "rss_mb": [round(warm["rss_all"]), round(last["rss_all"])],
                          "fds": [warm["fds_all"], last["fds_all"]]}), file=sys.stderr)
        return 0 if ok else 1
    finally:
        stop(svc, emu)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
