"""Faults of a cluster on loopback, with real servers and processes: a worker killed mid-render,
an instance killed mid-call, Redis stopped and restarted mid-call, the store away mid-call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
from cluster_helpers import (
    BUCKET,
    RECORDINGS,
    S3Server,
    start_instance,
    start_worker,
    wait_ready,
)
from test_cluster import _register, _until_rendered

from aligner.emulator import EmbeddedEmulator
from aligner.service.store import open_store
from aligner.service.uploads import fetch_capture
from aligner.wire.capture import read
from aligner.wire.events import AgentAudio, AlignedAudio


def _ws(base: str) -> str:
    return base.replace("http", "ws", 1)


async def _record(http: aiohttp.ClientSession, base: str, call_id: str) -> dict | None:
    async with http.get(f"{base}/calls/{call_id}", headers=RECORDINGS) as resp:
        return await resp.json() if resp.status == 200 else None


async def test_a_worker_killed_mid_render_its_job_runs_again_elsewhere_outputs_once(
        tmp_path, servers, procs):
    redis, s3 = servers
    store = f"s3://{BUCKET}/w"
    async with EmbeddedEmulator(send_speed=4.0) as emu:
        a = start_instance(tmp_path, "A", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(a)
        w1 = start_worker(tmp_path, "W1", redis.url, store, s3.endpoint)
        procs.append(w1)
        async with aiohttp.ClientSession() as http:
            call = await _register(http, a.base)
            call_id = call["call_id"]
            async with http.ws_connect(f"{_ws(a.base)}/audio-websocket/{call_id}") as ws:
                await asyncio.sleep(2.5)
            deadline = time.monotonic() + 60
            while ((await _record(http, a.base, call_id)) or {}).get("state") != "rendering":
                assert time.monotonic() < deadline, await _record(http, a.base, call_id)
                await asyncio.sleep(0.05)
            w1.kill9()  # mid-render: no cleanup, its render process exits with it
            assert (await _record(http, a.base, call_id))["state"] == "rendering"
            procs.append(start_worker(tmp_path, "W2", redis.url, store, s3.endpoint))
            info = (await _until_rendered(http, a.base, [call_id], timeout=90))[call_id]
    assert info["state"] == "done" and info["worker"] == "W2" and info["attempts"] == 2, info
    assert "call.vtt" in info["files"] and ws.closed
    versions = s3.versions(f"w/{call_id}/")
    outputs = {k: n for k, n in versions.items() if k.rsplit("/", 1)[1] in info["outputs"]}
    assert outputs and all(n == 1 for n in outputs.values()), versions  # written once
    assert "Riverside" in open_store(store, s3.endpoint).get(f"{call_id}/call.vtt").decode()


async def test_a_job_a_sweep_aborts_to_run_again_has_not_ended(tmp_path):
    """A sweep aborts a job it took for lost and queues it again: the worker that was running
    it acknowledges the abort by finishing it (seen when a sweep raced a retry on a loaded
    machine), but the job has not ended, so its call is not recorded failed; an aborted job
    with no attempt left has ended."""
    from cluster_helpers import RedisServer
    from saq import Job
    from saq.job import Status

    from aligner.service.jobs import QUEUE, _finishing_queue, connect

    redis = RedisServer(tmp_path).start()
    try:
        queue = _finishing_queue()(connect(redis.url), name=QUEUE)
        ended = []

        async def finished(job, status):
            ended.append((job.attempts, str(getattr(status, "value", status))))

        queue.finished = finished
        for attempts in (2, 4):
            job = Job("render", kwargs={"call_id": "call_x"}, retries=4, attempts=attempts,
                      queue=queue, key=f"render:{attempts}")
            await queue.enqueue(job)
            await queue.finish(job, Status.ABORTED, error="worker lost (no heartbeat)")
        await queue.disconnect()
    finally:
        redis.stop()
    assert ended == [(4, "aborted")]


async def test_an_instance_killed_mid_call_its_call_ends_and_what_reached_the_store_renders(
        tmp_path, servers, procs):
    redis, s3 = servers
    store = f"s3://{BUCKET}/i"
    async with EmbeddedEmulator(send_speed=1.0, time_scale=0.5) as emu:  # a ~10 s greeting
        a = start_instance(tmp_path, "A", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(a)
        b = start_instance(tmp_path, "B", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(b)
        procs.append(start_worker(tmp_path, "W1", redis.url, store, s3.endpoint))
        async with aiohttp.ClientSession() as http:
            call = await _register(http, b.base)
            call_id = call["call_id"]
            ws = await http.ws_connect(f"{_ws(a.base)}/audio-websocket/{call_id}")
            frames = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 4.0:  # segments of the first seconds reach the store
                msg = await ws.receive()
                frames += msg.type is aiohttp.WSMsgType.BINARY
            a.kill9()
            killed = time.monotonic()
            msg = await asyncio.wait_for(ws.receive(), 10)
            while msg.type is aiohttp.WSMsgType.BINARY:  # what was in flight
                msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR)  # the front end sees its socket drop
            while ((await _record(http, b.base, call_id)) or {}).get("state") == "recording":
                assert time.monotonic() - killed < 30, "not marked ended within 30 s"
                await asyncio.sleep(0.5)
            ended = await _record(http, b.base, call_id)
            assert ended["close_reason"] == "instance_lost" and ended["lost_instance"] == "A"
            info = (await _until_rendered(http, b.base, [call_id], timeout=90))[call_id]
            listed = await (await http.get(f"{b.base}/calls", headers=RECORDINGS)).json()
            stats = await (await http.get(f"{b.base}/stats")).json()
    assert info["state"] == "done" and "call.vtt" in info["files"], info
    assert [c["call_id"] for c in listed["calls"]] == [call_id]
    assert stats["calls_recovered"] == 1
    vtt = open_store(store, s3.endpoint).get(f"{call_id}/call.vtt").decode()
    assert "Hello" in vtt  # the first seconds of the greeting, as far as they reached the store
    capture = read(fetch_capture(open_store(store, s3.endpoint), call_id, tmp_path / "got"))
    sent = sum(isinstance(s.event, AlignedAudio | AgentAudio) for s in capture.events())
    assert sent >= frames * 0.6  # at most ~2 s of a call lost: the segments of 4 s of it


async def test_redis_stopped_mid_call_the_relay_goes_on_and_observers_resume(
        tmp_path, servers, procs):
    redis, s3 = servers
    store = f"s3://{BUCKET}/r"
    async with EmbeddedEmulator(send_speed=1.0, time_scale=0.4) as emu:  # a ~13 s greeting
        a = start_instance(tmp_path, "A", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(a)
        b = start_instance(tmp_path, "B", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(b)
        procs.append(start_worker(tmp_path, "W1", redis.url, store, s3.endpoint))
        await wait_ready(a.base)
        async with aiohttp.ClientSession() as http:
            call = await _register(http, a.base)
            call_id = call["call_id"]
            observer = await http.ws_connect(f"{_ws(b.base)}/live/{call_id}",
                                             params={"token": call["observer_token"]})
            ws = await http.ws_connect(f"{_ws(a.base)}/audio-websocket/{call_id}")
            got: list[tuple[float, int]] = []  # (arrival, bytes) of every agent frame
            seen: list[tuple[float, dict]] = []

            async def front_end() -> None:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        got.append((time.monotonic(), len(msg.data)))

            async def watch() -> None:
                async for msg in observer:
                    seen.append((time.monotonic(), json.loads(msg.data)))

            tasks = [asyncio.create_task(front_end()), asyncio.create_task(watch())]
            await asyncio.sleep(1.5)
            redis.stop()
            stopped = time.monotonic()
            await asyncio.sleep(5.0)
            redis.start()  # same port, empty
            restarted = time.monotonic()
            await asyncio.sleep(8.0)
            stats_down = await (await http.get(f"{a.base}/stats")).json()
            await ws.close()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
            info = (await _until_rendered(http, b.base, [call_id], timeout=90))[call_id]
    during = [t for t, _ in got if stopped < t < restarted]
    assert len(during) >= 5, "the relay stopped while Redis was away"
    capture = read(fetch_capture(open_store(store, s3.endpoint), call_id, tmp_path / "got"))
    upstream = sum(isinstance(s.event, AlignedAudio | AgentAudio) for s in capture.events())
    assert upstream == len(got) == info["counts"]["agent_frames"]  # 0 dropped frames
    words_before = [e for t, e in seen if t < stopped and e["event_type"] == "word"]
    words_after = [e for t, e in seen if t > restarted + 0.5 and e["event_type"] == "word"]
    assert words_before and words_after, [(round(t - stopped, 1), e["event_type"], e.get("index"))
                                          for t, e in seen][-25:]
    assert stats_down["observer_events_lost"] > 0 and stats_down["redis"] == "up"
    assert info["state"] == "done" and "call.vtt" in info["files"]


async def test_store_away_mid_call_the_capture_waits_on_disk_then_goes_up(
        tmp_path, servers, procs):
    redis, s3 = servers
    store = f"s3://{BUCKET}/s"
    async with EmbeddedEmulator(send_speed=1.0, time_scale=0.5) as emu:  # a ~10 s greeting
        a = start_instance(tmp_path, "A", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(a)
        async with aiohttp.ClientSession() as http:
            call = await _register(http, a.base)
            call_id = call["call_id"]
            async with http.ws_connect(f"{_ws(a.base)}/audio-websocket/{call_id}") as ws:
                await asyncio.sleep(1.5)
                s3.stop()
                frames = 0
                t0 = time.monotonic()
                while (left := t0 + 2.5 - time.monotonic()) > 0:
                    with contextlib.suppress(TimeoutError):
                        msg = await asyncio.wait_for(ws.receive(), left)
                        assert msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
                        frames += msg.type is aiohttp.WSMsgType.BINARY
                assert frames > 0 and not ws.closed  # the call goes on without its store
            await asyncio.sleep(3.0)
            stats = await (await http.get(f"{a.base}/stats")).json()
            assert stats["uploads_pending"] == 1 and stats["upload_lag_s"] > 2.0, stats
            assert (tmp_path / "spool-A" / call_id / "capture").is_dir()
            restarted = S3Server(tmp_path)
            restarted.port, restarted.endpoint = s3.port, s3.endpoint
            s3.proc = restarted.start(versioned=False).proc  # stopped by the fixture
            procs.append(start_worker(tmp_path, "W1", redis.url, store, s3.endpoint))
            info = (await _until_rendered(http, a.base, [call_id], timeout=90))[call_id]
            stats = await (await http.get(f"{a.base}/stats")).json()
    assert info["state"] == "done" and "call.vtt" in info["files"]
    assert stats["uploads_pending"] == 0 and stats["upload_failures"] > 0
    assert not (tmp_path / "spool-A" / call_id).exists()
    capture = read(fetch_capture(open_store(store, s3.endpoint), call_id, tmp_path / "got"))
    assert capture.close is not None and capture.close.reason == "frontend_closed"
