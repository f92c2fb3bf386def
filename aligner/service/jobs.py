"""Render jobs on a Redis-backed queue: one per finished call, run by ``aligner worker`` anywhere.

The queue is SAQ's (Simple Async Queue; why SAQ: ``docs/service.md``). What it guarantees here:

- **at least once**: a job stays in Redis until a worker has finished it;
- **retries with back-off**: a job that fails is tried up to ``JobPolicy.attempts`` times, the
  delays doubling from ``retry_delay`` up to ``max_backoff`` seconds;
- **a dead worker's job runs again**: a running job touches its heartbeat every
  ``heartbeat / 3`` s; any live worker sweeps (every ``sweep`` s) the jobs whose heartbeat is
  older than ``heartbeat`` s and puts them back on the queue;
- **failed, with its error**: after the last attempt the job ends ``failed`` and its error is
  written to the call's ``render.json``.

Outputs are written once per call: a job renders while holding the call's render lock (a Redis
lock renewed with the heartbeat), skips a call whose ``render.json`` already says ``done`` for
its renderers, and writes each output only if the store does not hold it yet.

>>> job_key("file:///recordings", "call_1").endswith(":call_1")
True
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AlignerError
from ..logs import fields
from .profiles import open_profiles
from .recordings import render_call, valid_call_id
from .store import ObjectStore, StoreError, open_store
from .stored import RENDER, update_record
from .uploads import fetch_capture

__all__ = ["JobPolicy", "RenderQueue", "RenderWorker", "connect", "job_key"]

log = logging.getLogger(__name__)

QUEUE = "aligner-render"
DONE_COUNT = "aligner:jobs:done"
FAILED_COUNT = "aligner:jobs:failed"
_LOCK = "aligner:render-lock:"


@dataclass(frozen=True, slots=True)
class JobPolicy:
    """How render jobs are retried and watched.

    Attributes:
        attempts: tries of a job before it ends failed.
        retry_delay: seconds before the first retry (doubling after each).
        max_backoff: the longest delay between tries.
        heartbeat: seconds a running job may go without a heartbeat before it runs again.
        sweep: seconds between a worker's sweeps for such jobs.
        timeout: seconds a job may run at all.
    """

    attempts: int = 4
    retry_delay: float = 2.0
    max_backoff: float = 60.0
    heartbeat: int = 10
    sweep: int = 5
    timeout: int = 3600


def connect(url: str):
    """A ``redis.asyncio`` client for ``url`` that fails fast when Redis is away (the callers
    retry on their own schedule)."""
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        raise AlignerError("--redis needs the cluster extra: pip install 'aligner[cluster]'") \
            from exc
    return aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                             health_check_interval=10)


def job_key(store_url: str, call_id: str) -> str:
    """The queue key of ``call_id``'s render job in the store at ``store_url`` (one job per call
    at a time: queueing it again while it waits or runs does nothing)."""
    return f"render:{hashlib.sha1(store_url.encode()).hexdigest()[:10]}:{call_id}"


def _saq():
    try:
        from saq.queue.redis import RedisQueue
    except ImportError as exc:
        raise AlignerError("render queues need the cluster extra: "
                           "pip install 'aligner[cluster]'") from exc
    return RedisQueue


class RenderQueue:
    """Queues render jobs and reads their state (the service's and the backfill's side).

    Args:
        redis_url: ``redis://HOST:PORT/DB``.
        policy: retries and heartbeats of the jobs queued.
    """

    def __init__(self, redis_url: str, policy: JobPolicy = JobPolicy()) -> None:
        self.redis = connect(redis_url)
        self.policy = policy
        self.queue = _saq()(self.redis, name=QUEUE)

    async def enqueue(self, store_url: str, call_id: str, renderers: list[str] | tuple) -> str:
        """Queue the render of ``call_id`` (in the store at ``store_url``); returns the job key.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable (nothing queued).
        """
        p = self.policy
        key = job_key(store_url, call_id)
        await self.queue.enqueue("render", key=key, store=store_url, call_id=call_id,
                                 renderers=list(renderers), retries=p.attempts,
                                 retry_delay=p.retry_delay, retry_backoff=p.max_backoff,
                                 heartbeat=p.heartbeat, timeout=p.timeout, ttl=7 * 86400)
        return key

    async def statuses(self, keys: list[str]) -> list[str | None]:
        """Each job's status (``queued``, ``active``, ``complete``, ``failed``, ``aborted``...)
        or None when Redis has no such job."""
        jobs = await self.queue.jobs(keys)
        return [None if job is None else str(job.status.value) for job in jobs]

    async def depth(self) -> dict[str, int]:
        """Jobs waiting and running now, and done and failed so far (all workers)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(self.queue.namespace("queued")).llen(self.queue.namespace("active"))
        pipe.zcard(self.queue.namespace("incomplete"))
        pipe.get(DONE_COUNT).get(FAILED_COUNT)
        queued, active, incomplete, done, failed = await pipe.execute()
        return {"jobs_queued": int(incomplete) - int(active), "jobs_ready": int(queued),
                "jobs_running": int(active), "jobs_done": int(done or 0),
                "jobs_failed": int(failed or 0)}

    async def close(self) -> None:
        await self.redis.aclose()


class RenderWorker:
    """Runs render jobs: fetches the capture, renders in worker processes, uploads the outputs.

    Args:
        redis_url: ``redis://HOST:PORT/DB``.
        stores: URLs of the stores this worker may read and write (a job naming another store
            fails).
        concurrency: render jobs at once (one worker process each).
        endpoint: the S3 endpoint URL (``--store-endpoint``).
        policy: its ``sweep`` (a job's retries and heartbeat are the queueing side's).
        worker_id: this worker's name in logs and ``render.json``.
        voice_profiles: where the agents' voice profiles are (a folder or a Redis URL: see
            :func:`aligner.service.recordings.render_call`); None: timelines unadapted.
    """

    def __init__(self, redis_url: str, stores: list[str], concurrency: int = 1,
                 endpoint: str | None = None, policy: JobPolicy = JobPolicy(),
                 worker_id: str | None = None, shutdown_timeout: float = 60.0,
                 voice_profiles: str | None = None) -> None:
        if voice_profiles:  # a bad location, or Redis without its client: now, not per job
            open_profiles(voice_profiles)
        self.redis = connect(redis_url)
        self.voice_profiles = voice_profiles
        self.policy = policy
        self.concurrency = max(1, concurrency)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.stores: dict[str, ObjectStore] = {}
        for url in stores:
            store = open_store(url, endpoint)
            self.stores[store.url] = store
        self.endpoint = endpoint
        self.shutdown_timeout = shutdown_timeout
        self._pool = None
        self.queue = _finishing_queue()(self.redis, name=QUEUE,
                                        swept_error_message="worker lost (no heartbeat)")
        self.queue.finished = self._finished

    async def run(self) -> None:
        """Render jobs until SIGINT or SIGTERM (running renders get ``shutdown_timeout`` s)."""
        from saq import Worker

        from ..workers import process_pool

        self._pool = process_pool(self.concurrency)
        worker = Worker(self.queue, functions=[("render", self.render)], id=self.id,
                        concurrency=self.concurrency, timers={"sweep": self.policy.sweep},
                        shutdown_grace_period_s=int(self.shutdown_timeout))
        log.info("worker %s: %d at once, stores %s", self.id, self.concurrency,
                 ", ".join(self.stores))
        try:
            await worker.start()
        finally:
            await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
            await self.redis.aclose()

    def _store(self, url: str) -> ObjectStore:
        key = open_store(url, self.endpoint).url if url not in self.stores else url
        if key not in self.stores:
            raise AlignerError(f"this worker does not serve the store {url} "
                               f"(aligner worker --store {url})")
        return self.stores[key]

    async def render(self, ctx: dict[str, Any], *, store: str, call_id: str,
                     renderers: list[str]) -> dict[str, Any]:
        """The job: render ``call_id`` in ``store`` with ``renderers`` (at most once at a time)."""
        job = ctx["job"]
        if not valid_call_id(call_id):
            raise AlignerError(f"invalid call id {call_id[:80]!r}")
        objects = self._store(store)
        heartbeat = job.heartbeat or self.policy.heartbeat  # the queueing side's choice
        lock = self.redis.lock(_LOCK + job_key(objects.url, call_id), timeout=2 * heartbeat,
                               sleep=0.5)
        beat = asyncio.create_task(self._beat(job, lock, heartbeat / 3))
        try:
            await lock.acquire()  # another worker renders this call: wait (the beat goes on)
            return await self._render(objects, call_id, renderers, job.attempts)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            with contextlib.suppress(Exception):
                await lock.release()

    async def _beat(self, job, lock, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await job.update()
                if await lock.owned():
                    await lock.reacquire()
            except Exception as exc:  # Redis away: the render goes on; it may run again later
                log.warning("render job heartbeat failed", extra=fields(
                    call_id=(job.kwargs or {}).get("call_id"), job=job.key, error=repr(exc)))

    async def _render(self, store: ObjectStore, call_id: str, renderers: list[str],
                      attempt: int) -> dict[str, Any]:
        from .stored import call_record

        record = await asyncio.to_thread(call_record, store, call_id, False)
        if record is None:
            raise AlignerError(f"no call {call_id} in {store.url}")
        if record.get("state") == "done" and set(renderers) <= set(record.get("renderers") or ()):
            log.info("render skipped: already done", extra=fields(call_id=call_id,
                                                                   store=store.url))
            return {"skipped": True, "outputs": record.get("outputs", [])}
        await asyncio.to_thread(update_record, store, call_id, RENDER, {
            "state": "rendering", "worker": self.id, "attempts": attempt})
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="aligner-render-") as tmp:
            await asyncio.to_thread(fetch_capture, store, call_id, Path(tmp))
            result = await loop.run_in_executor(self._pool, render_call, tmp, list(renderers),
                                                self.voice_profiles, call_id)
            if "timeline" in result["errors"]:  # nothing to render: try again, then fail
                raise AlignerError(f"timeline of {call_id}: {result['errors']['timeline']}")
            written = await asyncio.to_thread(_upload_outputs, store, call_id, Path(tmp),
                                              result["outputs"])
        await asyncio.to_thread(update_record, store, call_id, RENDER, {
            "state": "done", "renderers": sorted(set(renderers) | set(record.get("renderers")
                                                                       or ())),
            "outputs": result["outputs"], "errors": result["errors"], "attempts": attempt,
            "render_seconds": round(time.perf_counter() - t0, 3), "worker": self.id,
            "rendered": time.time()})
        log.info("recording rendered", extra=fields(
            call_id=call_id, outputs=result["outputs"], written=written,
            errors=list(result["errors"])))
        return {"outputs": result["outputs"], "errors": result["errors"]}

    async def _finished(self, job, status) -> None:
        """A job ended for good: count it; a failed one's error goes to its call's record."""
        name = str(getattr(status, "value", status))
        try:
            # a job can be reported ended twice (a sweep racing its worker): count it once
            if name not in ("complete", "failed", "aborted") or not await self.redis.set(
                    f"aligner:job-ended:{job.key}:{job.queued}", name, nx=True, ex=7 * 86400):
                return
            if name == "complete":
                await self.redis.incr(DONE_COUNT)
                return
            await self.redis.incr(FAILED_COUNT)
            kwargs = job.kwargs or {}
            error = (job.error or name).strip().splitlines()[-1][:500]
            log.error("render job failed", extra=fields(
                call_id=kwargs.get("call_id"), job=job.key, attempts=job.attempts, error=error))
            store = self._store(kwargs["store"])
            await asyncio.to_thread(update_record, store, kwargs["call_id"], RENDER, {
                "state": "failed", "errors": {"worker": error}, "attempts": job.attempts,
                "worker": self.id})
        except (StoreError, AlignerError, KeyError) as exc:
            log.error("cannot record the end of a render job", extra=fields(
                call_id=(job.kwargs or {}).get("call_id"), job=job.key, error=str(exc)))
        except Exception as exc:  # Redis away
            log.error("cannot record the end of a render job", extra=fields(
                call_id=(job.kwargs or {}).get("call_id"), job=job.key, error=repr(exc)))


def _upload_outputs(store: ObjectStore, call_id: str, folder: Path, names: list[str]) -> int:
    """Each output of the render in ``folder`` that the store does not hold yet; returns how
    many were written."""
    return sum(store.put(f"{call_id}/{name}", (folder / name).read_bytes(), once=True)
               for name in names if (folder / name).is_file())


def _finishing_queue():
    """SAQ's Redis queue, telling its ``finished`` callback when a job has ended for good
    (completed, failed after its last attempt, or swept with no attempt left)."""
    base = _saq()

    class FinishingQueue(base):
        finished = None

        async def finish(self, job, status, **kwargs: Any) -> None:
            await super().finish(job, status, **kwargs)
            # A sweep aborts a job it took for lost (the worker running it acknowledges with
            # this finish) and then queues it again while it has attempts left: not its end.
            swept = str(getattr(status, "value", status)) == "aborted" and job.retryable
            if self.finished is not None and not swept:
                await self.finished(job, status)

        async def listen(self, *args: Any, **kwargs: Any) -> None:
            # A sweep takes a dead worker's job off the queue's lists, waits here for the
            # worker to acknowledge the abort, then puts the job back. When the wait's pub/sub
            # subscription fails to close (it never connected: a loaded machine, redis-py 7),
            # the error escaped the sweep and the job was left on no list, never run again;
            # as a timeout the sweep goes on and queues it again.
            try:
                await super().listen(*args, **kwargs)
            except TimeoutError:
                raise
            except Exception as exc:
                log.warning("waiting for a swept job's abort failed: %r", exc)
                raise TimeoutError from exc

    return FinishingQueue
