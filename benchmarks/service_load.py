"""Load on ``aligner serve``: N concurrent proxied calls on loopback against the emulator.

Starts ``aligner emulate`` and ``aligner serve --upstream`` as separate processes, then runs N
front ends at once (20 ms mic frames of silence in real time, agent audio as binary frames) for
the agent's greeting. Prints completed calls, dropped frames (agent frames the proxy received
from the upstream, per its captures, that the front end did not get), the proxy's added latency
(upstream frame received -> front-end frame sent, measured inside the proxy), the proxy's peak
RSS, and the same calls connected straight to the emulator as the baseline (time to first agent
audio, frames). A second, smaller phase runs calls with word/viseme events for reference: its
added latency includes the time a chunk's audio is held for its alignment (by design, while the
page still has earlier audio to play), and its playback delay is the part of that hold that
delayed what the page plays (the page's queue had run dry).

How latency is measured: inside the service process (the 100 front ends run in this process, the
emulator and the service each in their own, so the front ends' scheduling noise is not in the
figure), from the moment a frame's bytes were read from the upstream socket (not when the relay
task got round to it: a busy event loop's wait counts) to the moment the front-end frame was
handed to its socket. All processes share the machine's CPUs; the service's event-loop lag
is printed alongside. Each phase starts after a few seconds of quiet, so the emulator is not still
ending the previous phase's calls.

The plain relay runs twice: every call starting in the same instant (the worst case: all N
handshakes, upstream connections and recordings open at once, and every greeting's frames arrive
in that same burst), and call starts spread evenly over ``--spread`` (5) s, as calls arrive in
service; each counts only if all N calls were open at the same moment (printed).

Targets (plain relay): N/N completed, 0 dropped, p99 added latency <= 20 ms, RSS < 1 GB.

    python benchmarks/service_load.py                 # 100 calls + 20 lip-sync calls
    python benchmarks/service_load.py --calls 10 --lipsync-calls 0 --seconds 4   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from processes import cpu_pressure, rss_mb, start, stop, wait_ready

from aligner.wire import capture
from aligner.wire.events import AgentAudio, AlignedAudio

_SETTLE = 3.0  # s of quiet before each phase: the emulator finishes the previous phase's calls


async def _one_call(http: aiohttp.ClientSession, base: str, api_key: str, seconds: float,
                    query: str, mic_ms: int, delay: float = 0.0) -> dict:
    await asyncio.sleep(delay)
    async with http.post(f"{base}/register-call", headers={"Authorization": f"Bearer {api_key}"},
                         json={"agent_id": "bench", "audio_encoding": "s16le",
                               "sample_rate": 24000}) as resp:
        call = await resp.json()
    ws_url = f"{base.replace('http', 'ws', 1)}/audio-websocket/{call['call_id']}?{query}"
    out = {"call_id": call["call_id"], "frames": 0, "bytes": 0, "events": 0, "first": None,
           "ok": False, "code": None, "closing_at": None}
    frame = b"\x00\x00" * (24 * mic_ms)  # silence at 24 kHz
    t0 = time.monotonic()
    async with http.ws_connect(ws_url, max_msg_size=0) as ws:
        out["connect"] = time.monotonic() - t0
        out["opened"] = time.monotonic()
        async def mic() -> None:
            n = 0
            while not ws.closed:
                await ws.send_bytes(frame)
                n += 1
                await asyncio.sleep(max(0.0, t0 + n * mic_ms / 1000 - time.monotonic()))

        sender = asyncio.create_task(mic())
        try:
            while (left := t0 + seconds - time.monotonic()) > 0:
                try:
                    msg = await asyncio.wait_for(ws.receive(), left)
                except TimeoutError:
                    break
                if msg.type is aiohttp.WSMsgType.BINARY:
                    out["frames"] += 1
                    out["bytes"] += len(msg.data)
                    if out["first"] is None:
                        out["first"] = time.monotonic() - t0
                elif msg.type is aiohttp.WSMsgType.TEXT:
                    out["events"] += msg.data.startswith('{"event_type":"')
                else:
                    break
            out["ok"] = not ws.closed
            out["closing_at"] = time.monotonic() - t0
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await ws.close()
        out["code"] = ws.close_code
        out["closed"] = time.monotonic()
    return out


async def _phase(base: str, api_key: str, calls: int, seconds: float, query: str,
                 mic_ms: int = 100, spread: float = 0.0) -> list[dict]:
    """``calls`` calls whose starts are spread evenly over ``spread`` seconds."""
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        return await asyncio.gather(*(_one_call(http, base, api_key, seconds, query, mic_ms,
                                                spread * i / calls) for i in range(calls)))


def _peak(results: list[dict]) -> int:
    """Most front-end sockets open at the same moment."""
    marks = sorted([(r["opened"], 1) for r in results if "opened" in r]
                   + [(r["closed"], -1) for r in results if "closed" in r])
    peak = level = 0
    for _, step in marks:
        level += step
        peak = max(peak, level)
    return peak


def _upstream_frames(recordings: Path, call_id: str, before: float) -> int:
    """Agent frames the proxy got from the upstream ``before`` s into the call (session clock:
    0 = the front end's socket opened): all of them must have reached the front end."""
    cap = capture.read(recordings / call_id / "capture")
    return sum(1 for s in cap.events() if s.direction == "in" and s.t < before
               and isinstance(s.event, AlignedAudio | AgentAudio))


def _setup(recordings: Path, results: list[dict]) -> str:
    """Median / max of the proxy's own call-setup timings (``call.json``: front-end request ->
    its socket open; from there -> upstream connected, -> first agent audio sent)."""
    timings = [json.loads((recordings / r["call_id"] / "call.json").read_text()).get("timings",
                                                                                       {})
               for r in results]
    parts = []
    for name in ("frontend_accept_ms", "upstream_connect_ms", "first_agent_audio_ms"):
        values = [t[name] for t in timings if name in t]
        if values:
            parts.append(f"{name.removesuffix('_ms').replace('_', ' ')} median "
                         f"{statistics.median(values):.0f} / max {max(values):.0f} ms")
    return ", ".join(parts)


def _summary(results: list[dict]) -> str:
    firsts = [r["first"] for r in results if r["first"] is not None]
    med = statistics.median(firsts) * 1000 if firsts else float("nan")
    connect = statistics.median(r["connect"] for r in results) * 1000
    return (f"completed {sum(r['ok'] for r in results)}/{len(results)} ({_peak(results)} open at "
            f"once), agent frames "
            f"{sum(r['frames'] for r in results)}, median time to first agent audio {med:.0f} ms "
            f"(websocket open {connect:.0f} ms)")


async def _plain_phase(args, label: str, spread: float, svc, svc_url: str, emu_url: str,
                       recordings: Path) -> bool:
    """One plain-relay measurement: the same calls straight to the emulator (baseline), then
    through the service; prints the figures and returns whether the targets were met."""
    async with aiohttp.ClientSession() as http:
        await http.post(f"{svc_url}/stats/reset")
    await asyncio.sleep(_SETTLE)
    baseline = await _phase(emu_url, "dev-key", args.calls, args.seconds, "", args.mic_ms, spread)
    await asyncio.sleep(_SETTLE)
    async with aiohttp.ClientSession() as http:
        await http.post(f"{svc_url}/stats/reset")
    t0 = time.monotonic()
    proxied = await _phase(svc_url, "dev-key", args.calls, args.seconds, "", args.mic_ms, spread)
    wall = time.monotonic() - t0
    await asyncio.sleep(2.0)  # let the service close captures
    async with aiohttp.ClientSession() as http:
        stats = await (await http.get(f"{svc_url}/stats")).json()
    dropped = 0
    for r in proxied:  # frames in flight when the front end hung up are not drops
        dropped += max(0, _upstream_frames(recordings, r["call_id"],
                                           r["closing_at"] - 0.2) - r["frames"])
    rss, rss_all = rss_mb(svc.pid, "VmHWM")
    fresh = stats["latency_samples"]
    print(f"\n== plain relay: {args.calls} concurrent proxied calls, {label} ({wall:.1f} s) ==")
    print(f"proxied : {_summary(proxied)}")
    print(f"baseline: {_summary(baseline)}  (same calls straight to the emulator)")
    print(f"dropped frames         : {dropped}   (rate-limited mic frames: "
          f"{stats['frames_rate_limited']})")
    print(f"added latency p50 / p99: {stats['p50_ms']:.2f} / {stats['p99_ms']:.2f} ms  "
          f"(max {stats['max_ms']:.2f} ms, {fresh} frames; event-loop lag p99 "
          f"{stats['loop_lag_p99_ms']:.2f} / max {stats['loop_lag_max_ms']:.0f} ms)")
    print(f"  after each call's first agent audio: p50 / p99 {stats['in_call_p50_ms']:.2f} / "
          f"{stats['in_call_p99_ms']:.2f} ms  (the rest arrived while calls were being set up)")
    print(f"call setup in the proxy : {_setup(recordings, proxied)}")
    print(f"peak RSS of the service: {rss:.0f} MB (with its worker processes: {rss_all:.0f} MB)")
    print(f"machine: {cpu_pressure()}")
    ok = (sum(r["ok"] for r in proxied) == args.calls and dropped == 0
          and _peak(proxied) == args.calls and stats["p99_ms"] <= 20.0 and rss_all < 1024)
    print(f"targets (N/N, N open at once, 0 dropped, p99 <= 20 ms, RSS < 1 GB): "
          f"{'MET' if ok else 'MISSED'}")
    print(json.dumps({"calls": args.calls, "spread_s": spread,
                      "completed": sum(r["ok"] for r in proxied), "dropped": dropped,
                      "p99_ms": stats["p99_ms"], "rss_mb": round(rss_all)}), file=sys.stderr)
    return ok


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--lipsync-calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each call")
    ap.add_argument("--spread", type=float, default=5.0,
                    help="second plain-relay run: call starts spread evenly over this many "
                         "seconds (shorter than --seconds, so all calls are open at once)")
    ap.add_argument("--mic-ms", type=int, default=100,
                    help="mic audio per front-end frame, 20-250 ms (default 100)")
    args = ap.parse_args()
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="service_load_"))
    emu, emu_url = await start([py, "-m", "aligner", "emulate", "--port", "0", "--no-recognition"])
    svc = None
    try:
        svc, svc_url = await start([py, "-m", "aligner", "serve", "--port", "0", "--upstream",
                                     emu_url, "--api-key", "dev-key", "--recordings",
                                     str(work / "rec"), "--idle-timeout", "60"])
        print(f"service_load: {args.calls} calls x {args.seconds:.0f} s, mic frames of "
              f"{args.mic_ms} ms, emulator {emu_url}, service {svc_url}", file=sys.stderr)
        await wait_ready(svc_url)
        await _phase(svc_url, "dev-key", 2, 3.0, "")  # warm the emulator's speech
        async with aiohttp.ClientSession() as http:
            await http.post(f"{svc_url}/stats/reset")

        for label, spread in (("all starting in the same instant (worst case)", 0.0),
                              (f"starts spread over {args.spread:g} s", args.spread)):
            await _plain_phase(args, label, spread, svc, svc_url, emu_url, work / "rec")
        if args.lipsync_calls:
            svc.terminate()
            svc.wait(30)
            svc, svc_url = await start([py, "-m", "aligner", "serve", "--port", "0",
                                         "--upstream", emu_url, "--recordings",
                                         str(work / "rec2"), "--align-workers", "2"])
            await wait_ready(svc_url)
            lip = await _phase(svc_url, "dev-key", args.lipsync_calls, args.seconds,
                               "enable_words=true&enable_visemes=true", args.mic_ms)
            async with aiohttp.ClientSession() as http:
                stats = await (await http.get(f"{svc_url}/stats")).json()
            print(f"\n== lip-sync: {args.lipsync_calls} concurrent calls with word+viseme "
                  "events ==")
            print(f"proxied : {_summary(lip)}, events {sum(r['events'] for r in lip)}, "
                  f"late chunks {stats['late_chunks']}")
            print(f"added latency p50 / p99: {stats['p50_ms']:.2f} / {stats['p99_ms']:.2f} ms  "
                  "(a chunk's audio waits for its alignment while the page has audio queued)")
            print(f"playback delay p50 / p99: {stats['playback_delay_p50_ms']:.2f} / "
                  f"{stats['playback_delay_p99_ms']:.2f} ms  (max "
                  f"{stats['playback_delay_max_ms']:.2f} ms: how much the waits delayed what the "
                  "page plays; 2 align worker processes)")
            print("peak RSS of the service: {:.0f} MB (with workers: {:.0f} MB)".format(
                *rss_mb(svc.pid, "VmHWM")))
            print(f"machine: {cpu_pressure()}")
        return 0
    finally:
        stop(svc, emu)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
