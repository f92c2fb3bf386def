"""More than one instance on loopback: a real redis-server, a real S3-compatible server (moto),
``aligner serve --redis`` instances and ``aligner worker`` processes, calls from real front ends
to the emulator's spoken agent."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from cluster_helpers import (
    BUCKET,
    RECORDINGS,
    S3Server,
    free_port,
    start_instance,
    start_worker,
    wait_ready,
)
from service_helpers import GREETING, collect, running_service

from aligner.cli import main
from aligner.emulator import EmbeddedEmulator
from aligner.service.jobs import JobPolicy, RenderQueue
from aligner.service.store import open_store

_DONE = ("done", "failed")


async def _register(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.post(f"{base}/register-call", headers={"Authorization": "Bearer dev-key"},
                         json={"agent_id": "test", "audio_encoding": "s16le",
                               "sample_rate": 24000}) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def _call(http: aiohttp.ClientSession, base: str, seconds: float,
                call: dict | None = None) -> tuple[str, int]:
    """One front end for ``seconds``; returns the call id and the agent frames it got."""
    call = call or await _register(http, base)
    async with http.ws_connect(f"{base.replace('http', 'ws', 1)}/audio-websocket/"
                               f"{call['call_id']}") as ws:
        frames = await collect(ws, seconds)
    return call["call_id"], sum(1 for kind, _ in frames if kind == "bin")


async def _until_rendered(http: aiohttp.ClientSession, base: str, call_ids: list[str],
                          timeout: float) -> dict[str, dict]:
    """``/calls/{id}`` of every call once its render has ended (done or failed)."""
    deadline = time.monotonic() + timeout
    infos: dict[str, dict] = {}
    while time.monotonic() < deadline:
        for call_id in call_ids:
            if infos.get(call_id, {}).get("state") not in _DONE:
                async with http.get(f"{base}/calls/{call_id}", headers=RECORDINGS) as resp:
                    if resp.status == 200:
                        infos[call_id] = await resp.json()
        if all(infos.get(c, {}).get("state") in _DONE for c in call_ids):
            return infos
        await asyncio.sleep(0.5)
    states = {c: infos.get(c, {}).get("state") for c in call_ids}
    raise AssertionError(f"renders unfinished after {timeout} s: {states}")


async def test_two_instances_two_workers_twenty_calls(tmp_path, servers, procs):
    redis, s3 = servers
    store = f"s3://{BUCKET}/prod"
    async with EmbeddedEmulator(send_speed=4.0) as emu:
        a = start_instance(tmp_path, "A", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(a)
        b = start_instance(tmp_path, "B", redis.url, store, s3.endpoint, emu.base_url)
        procs.append(b)
        for name in ("W1", "W2"):
            procs.append(start_worker(tmp_path, name, redis.url, store, s3.endpoint))
        await wait_ready(a.base)
        async with aiohttp.ClientSession() as http:
            # an observer on B of a call held by A, there before the call starts
            watched = await _register(http, b.base)
            observer = await http.ws_connect(
                f"{b.base.replace('http', 'ws', 1)}/live/{watched['call_id']}",
                params={"token": watched["observer_token"]})
            results = await asyncio.gather(
                _call(http, a.base, 3.0, watched),
                *(_call(http, (a.base, b.base)[i % 2], 2.5) for i in range(19)))
            seen = [d for kind, d in await collect(observer, 10.0) if kind == "json"]
            kinds = [d["event_type"] for d in seen]
            assert kinds[0] == "call_started" and kinds[-1] == "call_ended", kinds
            words = {d["index"]: d["word"] for d in seen if d["event_type"] == "word"}
            assert [words[i] for i in sorted(words)] == GREETING.split()
            assert all(d.get("call_id", watched["call_id"]) == watched["call_id"] for d in seen)

            call_ids = [call_id for call_id, _ in results]
            assert len(set(call_ids)) == 20 and all(frames > 0 for _, frames in results)
            infos = await _until_rendered(http, b.base, call_ids, timeout=240)
            for info in infos.values():
                assert info["state"] == "done", info
                assert {"timeline.json", "call.vtt", "call.visemes.jsonl"} <= set(info["files"])
                assert info["instance"] in ("A", "B") and info["close_reason"] == "frontend_closed"
            assert {info["instance"] for info in infos.values()} == {"A", "B"}
            assert {info["worker"] for info in infos.values()} == {"W1", "W2"}
            listed_a = await (await http.get(f"{a.base}/calls", headers=RECORDINGS)).json()
            listed_b = await (await http.get(f"{b.base}/calls", headers=RECORDINGS)).json()
            assert listed_a == listed_b
            assert sorted(c["call_id"] for c in listed_a["calls"]) == sorted(call_ids)
            async with http.get(f"{a.base}/calls/{call_ids[1]}/files/call.vtt",
                                headers=RECORDINGS) as resp:
                assert resp.status == 200 and "Riverside" in await resp.text()
            async with http.get(f"{a.base}/calls/{call_ids[1]}/files/..%2Fcall.json",
                                headers=RECORDINGS) as resp:
                assert resp.status == 404
            async with http.get(f"{a.base}/calls/{call_ids[2]}/recording.wav",
                                headers=RECORDINGS) as resp:
                assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"
            stats = await (await http.get(f"{a.base}/stats")).json()
            assert stats["instance"] == "A" and stats["redis"] == "up"
            assert stats["jobs_done"] == 20 and stats["jobs_failed"] == 0
            assert stats["uploads_pending"] == 0 and stats["upload_lag_s"] == 0
    # what the store holds, read straight from the S3 server: each output written once
    versions = s3.versions("prod/")
    for call_id in call_ids:
        assert versions[f"prod/{call_id}/call.vtt"] == 1
    # the whole captures went up at the end of the calls, and their segments were removed
    assert not _current(s3, "prod/") & {k for k in versions if "/capture/segments/" in k}
    assert all(f"prod/{c}/capture/events.jsonl" in versions for c in call_ids)


def _current(s3: S3Server, prefix: str) -> set[str]:
    """Keys under ``prefix`` that exist now (deleted ones keep only their versions)."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", ())}


async def test_a_job_that_keeps_failing_ends_failed_with_its_error(tmp_path, servers, procs):
    redis, s3 = servers
    store_url = f"s3://{BUCKET}/broken"
    store = open_store(store_url, s3.endpoint)
    store.put("call_broken/call.json", json.dumps({"call_id": "call_broken",
                                                   "state": "queued"}).encode())
    store.put("call_broken/capture/capture.json", b'{"format": "aligner-capture", "version": 99}')
    procs.append(start_worker(tmp_path, "W1", redis.url, store_url, s3.endpoint))
    queue = RenderQueue(redis.url, JobPolicy(attempts=3, retry_delay=0.2, max_backoff=1.0))
    try:
        key = await queue.enqueue(store_url, "call_broken", ["vtt"])
        deadline = time.monotonic() + 60
        while (await queue.statuses([key]))[0] not in ("failed", "aborted"):
            assert time.monotonic() < deadline, await queue.statuses([key])
            await asyncio.sleep(0.2)
        depth = await queue.depth()
    finally:
        await queue.close()
    record = json.loads(store.get("call_broken/render.json"))
    assert record["state"] == "failed" and record["attempts"] == 3, record
    assert "version 99" in record["errors"]["worker"], record
    assert depth["jobs_failed"] == 1 and depth["jobs_done"] == 0


async def test_backfill_queues_recorded_calls_with_a_progress_bar(tmp_path, servers, procs):
    """Recorded calls of a neural-voiced agent rendered by a worker that keeps the agents' voice
    profiles in Redis: every call's timeline adds to its agent's profile."""
    from aligner.service.profiles import RedisProfiles

    redis, s3 = servers
    async with running_service(tmp_path, emulator={"send_speed": 4.0, "voice": "hibari"}) as svc:
        for _ in range(2):
            call = await svc.register()
            async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/"
                                           f"{call['call_id']}") as ws:
                await collect(ws, 2.0)
    recordings = tmp_path / "recordings"
    store_url = f"s3://{BUCKET}/backlog"
    procs.append(start_worker(tmp_path, "W1", redis.url, store_url, s3.endpoint,
                              ("--voice-profiles", redis.url)))
    done = subprocess.run([sys.executable, "-m", "aligner", "render", "--queue", redis.url,
                           str(recordings), "--store", store_url, "--store-endpoint",
                           s3.endpoint, "--to", "vtt,srt", "--progress", "yes"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "2 render jobs queued (2 captures uploaded)" in done.stderr
    assert "rendered [" in done.stderr and "100%" in done.stderr, done.stderr
    assert "2.0/2.0 jobs" in done.stderr and "2 of 2 rendered" in done.stderr
    store = open_store(store_url, s3.endpoint)
    calls = store.folders()
    assert sorted(calls) == sorted(p.name for p in recordings.iterdir() if p.is_dir())
    for call_id in calls:
        assert "Riverside" in store.get(f"{call_id}/call.vtt").decode()
        assert json.loads(store.get(f"{call_id}/render.json"))["state"] == "done"
    # the same calls again, from the store: rendered already, nothing written twice
    again = subprocess.run([sys.executable, "-m", "aligner", "render", "--queue", redis.url,
                            store_url, "--store-endpoint", s3.endpoint, "--to", "vtt"],
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "2 render jobs queued (0 captures uploaded)" in again.stderr
    assert all(n == 1 for k, n in s3.versions("backlog/").items() if k.endswith(".vtt"))
    profile = RedisProfiles(redis.url).load("test")  # the agent's: two calls, rendered once
    assert profile.clips == 2 and profile.frames > 100, (profile.clips, profile.frames)


def test_cluster_options_are_checked(capsys, tmp_path):
    a_file = tmp_path / "a-file"  # no folder of voice profiles can be made inside it
    a_file.write_text("")
    for argv, needle in ((["serve", "--redis", "redis://127.0.0.1:1/0"], "needs --secret"),
                         (["serve", "--redis", "http://x", "--secret", "s"], "redis:// URL"),
                         (["serve", "--store", "s3://calls/x"], "needs --redis"),
                         (["worker", "--redis", "redis://127.0.0.1:1/0", "--store",
                           tmp_path.as_uri(), "--concurrency", "0"], ">= 1"),
                         (["render", "a", "b", "--to", "vtt"], "several only with --queue"),
                         (["render", str(tmp_path), "--queue", "redis://127.0.0.1:1/0",
                           "--to", "vtt"], "no capture, recording or folder"),
                         (["serve", "--voice-profiles", str(a_file / "voices"), "--port",
                           "0"], "cannot use the folder"),
                         (["worker", "--redis", "redis://127.0.0.1:1/0", "--store",
                           tmp_path.as_uri(), "--voice-profiles", str(a_file / "voices")],
                          "cannot use the folder")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    assert "--concurrency" in capsys.readouterr().out


async def test_a_swept_job_goes_back_on_the_queue_when_waiting_for_its_abort_fails(servers):
    # a sweep takes a dead worker's job off the queue's lists, waits for the abort on pub/sub,
    # then queues it again; a wait that fails otherwise than by timing out (its subscription
    # never connected, as on a loaded machine) must not leave the job on no list
    from saq.job import Status
    from saq.queue.redis import PubSubMultiplexer

    from aligner.service.jobs import _finishing_queue, connect

    redis, _ = servers
    queue = _finishing_queue()(connect(redis.url), name="sweep-test")
    away = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    queue._pubsub = PubSubMultiplexer(away.pubsub(), prefix="saq:job:sweep-test")
    await queue.enqueue("render", key="k", heartbeat=1, retries=3)
    job = await queue.dequeue()  # a worker takes it...
    job.attempts += 1
    await job.update(status=Status.ACTIVE)
    await asyncio.sleep(1.5)  # ...and dies: its heartbeat goes stale
    swept = await queue.sweep(lock=1, abort=0.5)
    assert swept == [job.id]
    again = await queue.job("k")
    assert again.status == Status.QUEUED and await queue.count("incomplete") == 1
    await away.aclose()
    await queue.redis.aclose()
