"""Cluster on one machine: N calls over 2 instances + 2 render workers (Redis, an S3-compatible
store) against the same N calls on one instance without Redis, in one run.

Starts a real ``redis-server``, moto's S3-compatible server and ``aligner emulate`` on loopback,
then two phases with the same front ends (20 ms-paced mic silence, agent audio as binary frames,
calls starting over ``--spread`` s, each ``--seconds`` long), every call rendered with ``--render``:

- one instance: ``aligner serve --render R --render-workers 2`` (recordings in a folder, renders
  in its own 2 worker processes);
- one instance with Redis: ``aligner serve --redis --store s3://`` alone, the same calls: what
  Redis and the uploads cost one instance (the peer of the first phase);
- cluster: that instance and a second one (calls alternate between them) and ``aligner
  worker`` twice, all on the same 2 cores.

Printed side by side: completed calls, dropped frames (agent frames the instance got from the
upstream, per its capture, that the front end did not get), the relay's added latency p50/p99
(measured inside each instance, as ``benchmarks/service_load.py`` does), call end -> outputs in
the store p50/p99, render-queue throughput (calls rendered per minute from the first call end to
the last output), CPU seconds per render, and the cluster's upload figures. On 2 cores the total
cannot grow: the figures show that nothing is lost and what Redis and the store cost.

    python benchmarks/cluster.py                     # 100 calls, S3 store (moto)
    python benchmarks/cluster.py --store file        # the store a folder: no S3 server's CPU
    python benchmarks/cluster.py --calls 10 --seconds 6   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from processes import cpu_pressure, start
from service_load import _one_call as service_call
from service_load import _peak

from aligner.service.store import open_store
from aligner.service.uploads import fetch_capture
from aligner.wire import capture
from aligner.wire.events import AgentAudio, AlignedAudio

# the tests' server helpers (redis-server, moto, CLI processes): one copy for both
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cluster_helpers import (  # noqa: E402
    BUCKET,
    S3_ENV,
    RedisServer,
    S3Server,
    start_instance,
    start_worker,
    wait_ready,
)


async def _one_call(http: aiohttp.ClientSession, base: str, seconds: float, delay: float,
                    mic_ms: int = 20) -> dict:
    """One call of ``service_load``'s kind on instance ``base``, noting the instance and when
    it ended (wall clock, for the time its outputs took to reach the store)."""
    out = await service_call(http, base, "dev-key", seconds, "", mic_ms, delay)
    return {**out, "base": base, "ended_wall": time.time()}


async def _calls(bases: list[str], n: int, seconds: float, spread: float) -> list[dict]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        return await asyncio.gather(*(_one_call(http, bases[i % len(bases)], seconds,
                                                spread * i / n) for i in range(n)))


async def _stats(bases: list[str], reset: bool = False) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        out = []
        for base in bases:
            if reset:
                await http.post(f"{base}/stats/reset")
            out.append(await (await http.get(f"{base}/stats")).json())
        return out


def _dropped(results: list[dict], captures: dict[str, capture.Capture]) -> int:
    """Agent frames an instance got from the upstream up to 0.2 s before the front end hung up
    that the front end never received (frames in flight at the hang-up are not drops)."""
    dropped = 0
    for r in results:
        cap = captures[r["call_id"]]
        got = sum(1 for s in cap.events() if s.direction == "in" and s.t < r["closing_at"] - 0.2
                  and isinstance(s.event, AlignedAudio | AgentAudio))
        dropped += max(0, got - r["frames"])
    return dropped


async def _backlog(redis_url: str, store, call_ids: list[str]) -> float:
    """Queue a render of every call at once (a renderer they lack, so none is skipped) and
    return the rate the workers drained it at, in calls per minute."""
    from aligner.service.backfill import wait
    from aligner.service.jobs import RenderQueue

    queue = RenderQueue(redis_url)
    try:
        t0 = time.monotonic()
        keys = [await queue.enqueue(store.url, cid, ["srt"]) for cid in call_ids]
        await wait(queue, keys, lambda done, failed: None, poll=0.2)
        return 60 * len(keys) / (time.monotonic() - t0)
    finally:
        await queue.close()


def _pcts(values: list[float]) -> str:
    if not values:
        return "n/a"
    data = sorted(values)
    p50, p99 = data[len(data) // 2], data[min(len(data) - 1, int(0.99 * len(data)))]
    return f"{p50:.2f} / {p99:.2f} s"


async def _until_rendered(read_records, n: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = await asyncio.to_thread(read_records)
        if sum(r.get("state") in ("done", "failed") for r in records) >= n \
                or time.monotonic() > deadline:
            return records
        await asyncio.sleep(2.0)


def _report(label: str, results: list[dict], dropped: int, stats: list[dict],
            records: list[dict], wall: float) -> dict:
    done = [r for r in records if r.get("state") == "done"]
    lags = [r["_output_at"] - r["ended"] for r in done]
    first_end = min((r["ended"] for r in records), default=0)
    last_out = max((r["_output_at"] for r in done), default=first_end)
    rate = 60 * len(done) / (last_out - first_end) if last_out > first_end else 0.0
    cpu = [r["render_seconds"] for r in done if r.get("render_seconds")]
    fig = {"completed": sum(r["ok"] for r in results), "calls": len(results),
           "open_at_once": _peak(results), "dropped": dropped,
           "p50_ms": [s["p50_ms"] for s in stats], "p99_ms": [s["p99_ms"] for s in stats],
           "rendered": len(done), "failed": sum(r.get("state") == "failed" for r in records),
           "output_lag": _pcts(lags), "per_minute": round(rate, 1),
           "render_s": round(statistics.mean(cpu), 2) if cpu else None}
    latency = ", ".join(f"{a:.2f} / {b:.2f} ms" for a, b in zip(fig["p50_ms"], fig["p99_ms"],
                                                                 strict=True))
    print(f"\n== {label} ({wall:.0f} s of calls) ==")
    print(f"completed calls          : {fig['completed']}/{fig['calls']} "
          f"({fig['open_at_once']} open at once)")
    print(f"dropped frames           : {dropped}")
    print(f"relay added latency      : p50 / p99 {latency}  (per instance)")
    print(f"call end -> outputs      : p50 / p99 {fig['output_lag']}  "
          f"({fig['rendered']} rendered, {fig['failed']} failed)")
    print(f"render throughput        : {fig['per_minute']} calls/min "
          f"(mean render {fig['render_s']} s per call)")
    return fig


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each call")
    ap.add_argument("--spread", type=float, default=5.0, help="call starts spread over S s")
    ap.add_argument("--render", default="vtt,visemes",
                    help="renderers of every call (default vtt,visemes)")
    ap.add_argument("--store", choices=("s3", "file"), default="s3",
                    help="the cluster's store: moto's S3 server on this machine (default), or a "
                         "folder (file://): no S3 server sharing the cores")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cluster_bench_"))
    os.environ.update(S3_ENV)
    redis, s3 = RedisServer(work).start(), S3Server(work).start(versioned=False)
    py = sys.executable
    emu, emu_url = await start([py, "-m", "aligner", "emulate", "--port", "0",
                                 "--no-recognition"])
    procs = []
    try:
        # one instance, no Redis: recordings in a folder, renders in its 2 processes
        single, single_url = await start([py, "-m", "aligner", "serve", "--port", "0",
                                           "--upstream", emu_url, "--recordings",
                                           str(work / "rec"), "--render", args.render,
                                           "--render-workers", "2", "--align-workers", "1",
                                           "--idle-timeout", "60"])
        procs.append(single)
        await wait_ready(single_url)
        await _calls([single_url], 2, 3.0, 0.0)  # warm the emulator's speech
        await asyncio.sleep(5)
        await _stats([single_url], reset=True)
        t0 = time.monotonic()
        results = await _calls([single_url], args.calls, args.seconds, args.spread)
        wall = time.monotonic() - t0
        stats = await _stats([single_url])
        rec = work / "rec"
        ids = {r["call_id"] for r in results}

        def local_records() -> list[dict]:
            out = []
            for cid in ids:
                try:
                    data = json.loads((rec / cid / "call.json").read_text())
                    data["_output_at"] = (rec / cid / "call.json").stat().st_mtime
                except (OSError, ValueError):
                    continue
                out.append(data)
            return out

        records = await _until_rendered(local_records, args.calls, 900)
        captures = {cid: capture.read(rec / cid / "capture") for cid in ids}
        single_fig = _report("one instance, no Redis (renders in 2 local processes)", results,
                             _dropped(results, captures), stats, records, wall)
        single.terminate()
        single.wait(120)
        procs.remove(single)

        # the cluster: 2 instances + 2 workers, Redis and the S3 store
        store = f"s3://{BUCKET}/bench" if args.store == "s3" else (work / "store").as_uri()
        a = start_instance(work, "A", redis.url, store, s3.endpoint, emu_url, args.render)
        b = start_instance(work, "B", redis.url, store, s3.endpoint, emu_url, args.render)
        procs += [a, b]
        procs += [start_worker(work, f"W{i}", redis.url, store, s3.endpoint) for i in (1, 2)]
        await wait_ready(a.base)
        await wait_ready(b.base)
        await asyncio.sleep(5)
        # the same calls on instance A alone: what Redis and the uploads cost one instance
        await _stats([a.base], reset=True)
        alone = await _calls([a.base], args.calls, args.seconds, args.spread)
        alone_stats = (await _stats([a.base]))[0]
        print(f"\n== one instance with Redis + {store.split(':')[0]} store, {args.calls} calls ==")
        print(f"completed calls          : {sum(r['ok'] for r in alone)}/{args.calls}")
        print(f"relay added latency      : p50 / p99 {alone_stats['p50_ms']:.2f} / "
              f"{alone_stats['p99_ms']:.2f} ms (event-loop lag p99 "
              f"{alone_stats['loop_lag_p99_ms']:.2f} ms)")
        await asyncio.sleep(args.seconds)  # its renders out of the way
        await _stats([a.base, b.base], reset=True)
        t0 = time.monotonic()
        results = await _calls([a.base, b.base], args.calls, args.seconds, args.spread)
        wall = time.monotonic() - t0
        stats = await _stats([a.base, b.base])
        objects = open_store(store, s3.endpoint)
        ids = {r["call_id"] for r in results}

        def stored_records() -> list[dict]:
            from aligner.service.stored import call_record

            out = []
            for cid in ids:
                data = call_record(objects, cid, files=False)
                if data is not None:
                    data["_output_at"] = data.get("rendered", 0)
                    out.append(data)
            return out

        records = await _until_rendered(stored_records, args.calls, 900)
        captures = {cid: capture.read(fetch_capture(objects, cid, work / "fetched" / cid))
                    for cid in ids}
        after = await _stats([a.base, b.base])
        cluster_fig = _report(f"cluster: 2 instances + 2 workers, Redis + {store.split(':')[0]} "
                              "store",
                              results, _dropped(results, captures), stats, records, wall)
        drain = await _backlog(redis.url, objects, sorted(ids))
        print(f"queue throughput         : a backlog of {len(ids)} jobs queued at once drained "
              f"at {drain:.1f} calls/min by the 2 workers (renderer srt; backfill)")
        cluster_fig["backlog_per_minute"] = round(drain, 1)
        print(f"uploads                  : {sum(s['segments_uploaded'] for s in after)} "
              f"segments, {sum(s['upload_failures'] for s in after)} failures, lag now "
              f"{max(s['upload_lag_s'] for s in after)} s; jobs done "
              f"{after[0]['jobs_done']}, failed {after[0]['jobs_failed']}")
        print(f"one instance with Redis beside one without: p99 {alone_stats['p99_ms']:.2f} "
              f"against {single_fig['p99_ms'][0]:.2f} ms "
              f"({alone_stats['p99_ms'] - single_fig['p99_ms'][0]:+.2f} ms; target <= 2 ms)")
        added = max(cluster_fig["p99_ms"]) - single_fig["p99_ms"][0]
        print(f"2 instances + 2 workers on the same cores: {added:+.2f} ms at p99; lost: "
              f"{cluster_fig['dropped']} frames, "
              f"{args.calls - cluster_fig['rendered']} renders")
        print(f"machine: {cpu_pressure()}")
        print(json.dumps({"single": single_fig, "cluster": cluster_fig}), file=sys.stderr)
        return 0
    finally:
        for proc in procs:
            if hasattr(proc, "stop"):
                proc.stop()
            elif proc.poll() is None:
                proc.terminate()
                proc.wait(60)
        emu.terminate()
        emu.wait(60)
        redis.stop()
        s3.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
