"""What the instances of ``aligner serve --redis`` share through Redis: who is alive and holds
which calls, observers of a call held by another instance, and the recovery of a dead instance's
calls.

Keys (all under ``aligner:``)::

    instances                  set of instance ids ever seen alive (until recovered)
    instance:{id}              heartbeat: JSON about the instance, expires after ``ttl`` s
    instance:{id}:calls        set of the calls the instance holds
    live:{call_id}             pub/sub channel of the call's observer events
    sticky:{call_id}           hash: the latest call_started / update / call_ended (late joiners)
    watch                      pub/sub channel: "someone on another instance watches call X"

The relay never waits for Redis: events for other instances go into an outbox that a task sends
in pipelined batches, and while Redis is unreachable the calls go on (events for remote
observers are dropped and counted; the latest sticky events and the call list are sent when it
is back). Every instance sweeps every ``ttl / 2`` s for instances whose heartbeat has expired and
hands their calls to ``recover`` (marked ended, what reached the store rendered); it only does so
after its own Redis connection has been healthy for ``ttl`` s, so that an instance is never
taken for dead just because Redis itself was away.

>>> channel("call_1"), sticky_key("call_1")
('aligner:live:call_1', 'aligner:sticky:call_1')
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..logs import fields
from .observers import _STICKY, ObserverHub, Subscription

__all__ = ["Cluster", "ClusterHub", "channel", "default_instance_id", "sticky_key"]

log = logging.getLogger(__name__)

_P = "aligner:"
_WATCH = _P + "watch"
_OUTBOX = 20_000  # events waiting for Redis at most; older ones are dropped (counted)


def channel(call_id: str) -> str:
    """The pub/sub channel of ``call_id``'s observer events."""
    return f"{_P}live:{call_id}"


def sticky_key(call_id: str) -> str:
    """The hash of ``call_id``'s latest sticky events (what a late observer gets first)."""
    return f"{_P}sticky:{call_id}"


def default_instance_id() -> str:
    """``host-pid``: unique per running instance."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


class ClusterHub(ObserverHub):
    """The observer hub of one instance: local observers as before, and the events of calls
    that observers on other instances watch (plus every sticky event) go to Redis too."""

    def __init__(self, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.remote_watched: set[str] = set()  # calls held here that other instances watch

    def has_observers(self, call_id: str) -> bool:
        return super().has_observers(call_id) or call_id in self.remote_watched

    def publish(self, call_id: str, event: dict[str, Any]) -> int:
        delivered = super().publish(call_id, event)
        if call_id in self.remote_watched or event.get("event_type") in _STICKY:
            self.cluster.send(call_id, event)
        return delivered


class Cluster:
    """This instance's membership in the cluster (create inside the running loop's app).

    Args:
        redis_url: ``redis://HOST:PORT/DB``.
        instance_id: this instance's id.
        recover: ``await recover(call_id, dead_instance_id)`` marks a dead instance's call
            ended and queues its render.
        ttl: seconds a heartbeat lives; an instance silent that long is taken for dead.
        sticky_ttl: seconds the late-join state of a call is kept.
    """

    def __init__(self, redis_url: str, instance_id: str,
                 recover: Callable[[str, str], Awaitable[Any]] | None = None,
                 ttl: float = 10.0, sticky_ttl: float = 3600.0) -> None:
        from .jobs import connect

        self.redis = connect(redis_url)
        self.id = instance_id
        self.recover = recover
        self.ttl = ttl
        self.sticky_ttl = int(sticky_ttl)
        self.hub = ClusterHub(self)
        self.calls: set[str] = set()  # calls held here
        self.up = False  # Redis answered the last command
        self.up_since: float | None = None
        self.dropped = 0  # events for remote observers lost while Redis was away
        self.recovered = 0
        self._errors = _redis_errors()
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self._sticky_backlog: dict[tuple[str, str], dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._remote: dict[str, set[Subscription]] = {}  # remote calls watched from here
        self._echo: dict[Subscription, set[str]] = {}
        self._pubsub = None
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the heartbeat, the sender, the subscriber and the sweeper."""
        self._tasks = [asyncio.create_task(self._heartbeat(), name="cluster-heartbeat"),
                       asyncio.create_task(self._sender(), name="cluster-sender"),
                       asyncio.create_task(self._subscriber(), name="cluster-subscriber"),
                       asyncio.create_task(self._sweeper(), name="cluster-sweeper")]

    async def close(self) -> None:
        """Leave the cluster cleanly: send what is queued, drop the heartbeat."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush(), 2.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.redis.delete(f"{_P}instance:{self.id}"), 2.0)
            await asyncio.wait_for(self.redis.srem(f"{_P}instances", self.id), 2.0)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self.redis.aclose()

    def _ok(self) -> None:
        if not self.up:
            self.up, self.up_since = True, time.monotonic()
            log.info("instance %s: Redis reachable", self.id)

    def _failed(self, exc: BaseException) -> None:
        if self.up or self.up_since is None:
            log.warning("instance %s: Redis unreachable (%r); calls go on, observers on other "
                        "instances and render queueing wait", self.id, exc)
        self.up, self.up_since = False, 0.0

    # --- calls held here -----------------------------------------------------------------------
    async def call_started(self, call_id: str, wait: float = 0.2) -> None:
        """Register a call held here and learn whether other instances watch it already
        (waits at most ``wait`` s for Redis: never longer, whatever its state)."""
        self.calls.add(call_id)

        async def register() -> None:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(f"{_P}instance:{self.id}:calls", call_id)
            pipe.pubsub_numsub(channel(call_id))
            _, numsub = await pipe.execute()
            if numsub and numsub[0][1]:
                self.hub.remote_watched.add(call_id)

        try:
            await asyncio.wait_for(register(), wait)
            self._ok()
        except (*self._errors, TimeoutError) as exc:
            self._failed(exc)

    def call_ended(self, call_id: str) -> None:
        """The call held here is over (its call_ended event went out through the hub)."""
        self.calls.discard(call_id)
        self.hub.remote_watched.discard(call_id)
        self._outbox.append((call_id, {"_unregister": True}))
        self._wake.set()

    # --- events to other instances ------------------------------------------------------------
    def send(self, call_id: str, event: dict[str, Any]) -> None:
        """Queue ``event`` of a call held here for Redis (no I/O)."""
        if len(self._outbox) >= _OUTBOX:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append((call_id, event))
        self._wake.set()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if await self._flush():
                    self._ok()
            except self._errors as exc:
                self._failed(exc)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _flush(self) -> bool:
        """Send the outbox in one pipeline; returns whether there was anything to send."""
        if not self._outbox and not self._sticky_backlog:
            return False
        batch, self._outbox = list(self._outbox), deque()
        pipe = self.redis.pipeline(transaction=False)
        sticky = dict(self._sticky_backlog)
        self._sticky_backlog.clear()
        for call_id, event in batch:
            if event.get("_unregister"):
                pipe.srem(f"{_P}instance:{self.id}:calls", call_id)
                continue
            kind = event.get("event_type")
            if kind in _STICKY:
                sticky[(call_id, kind)] = event
            pipe.publish(channel(call_id), json.dumps(event, separators=(",", ":")))
        for (call_id, kind), event in sticky.items():
            pipe.hset(sticky_key(call_id), kind, json.dumps(event, separators=(",", ":")))
            pipe.expire(sticky_key(call_id), self.sticky_ttl)
        try:
            await pipe.execute()
        except self._errors:
            # what late joiners need is sent again; the rest was live and is gone
            self._sticky_backlog.update(sticky)
            self._outbox.extendleft(reversed([(c, e) for c, e in batch if e.get("_unregister")]))
            self.dropped += sum(1 for _, e in batch if not e.get("_unregister"))
            raise
        return True

    # --- heartbeat and recovery ---------------------------------------------------------------
    async def _heartbeat(self) -> None:
        key, calls = f"{_P}instance:{self.id}", f"{_P}instance:{self.id}:calls"
        while True:
            info = {"instance": self.id, "calls": len(self.calls), "at": time.time()}
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(key, json.dumps(info), px=int(self.ttl * 1000))
                    pipe.sadd(f"{_P}instances", self.id)
                    pipe.delete(calls)
                    if self.calls:
                        pipe.sadd(calls, *self.calls)
                    await pipe.execute()
                watched = list(self.hub.remote_watched)
                if watched and self._settled():  # forget the calls nobody watches any more
                    for call_id, count in await self.redis.pubsub_numsub(
                            *(channel(c) for c in watched)):
                        if not count:
                            self.hub.remote_watched.discard(
                                call_id.decode().removeprefix(f"{_P}live:"))
                self._ok()
            except self._errors as exc:
                self._failed(exc)
            await asyncio.sleep(self.ttl / 5)

    def _settled(self) -> bool:
        """Redis has answered for ``ttl`` s: long enough for every live instance to have sent
        its heartbeat and subscriptions again after an outage, so absences mean something."""
        return self.up and time.monotonic() - (self.up_since or 0) >= self.ttl

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 2)
            if not self._settled():
                continue  # our own view of Redis is too fresh to judge others
            try:
                await self._sweep()
            except self._errors as exc:
                self._failed(exc)
            except Exception:
                log.exception("instance %s: recovery sweep failed", self.id)

    async def _sweep(self) -> None:
        others = [i.decode() for i in await self.redis.smembers(f"{_P}instances")]
        for other in others:
            if other == self.id or await self.redis.exists(f"{_P}instance:{other}"):
                continue
            if not await self.redis.set(f"{_P}recovering:{other}", self.id, nx=True, px=60_000):
                continue  # another instance recovers it
            calls = [c.decode() for c in await self.redis.smembers(f"{_P}instance:{other}:calls")]
            log.warning("instance %s: instance %s lost (no heartbeat); recovering %d calls",
                        self.id, other, len(calls))
            for call_id in calls:
                try:
                    if self.recover is not None:
                        await self.recover(call_id, other)
                except Exception:
                    log.exception("recovery failed", extra=fields(call_id=call_id,
                                                                  instance=other))
                    continue  # left in the set: tried again at the next sweep
                ended = {"event_type": "call_ended", "call_id": call_id, "close_code": 1011,
                         "close_reason": "instance_lost"}
                data = json.dumps(ended, separators=(",", ":"))
                pipe = self.redis.pipeline(transaction=False)
                pipe.hset(sticky_key(call_id), "call_ended", data)
                pipe.publish(channel(call_id), data)
                pipe.srem(f"{_P}instance:{other}:calls", call_id)
                await pipe.execute()
                self.recovered += 1
            if not await self.redis.scard(f"{_P}instance:{other}:calls"):
                await self.redis.srem(f"{_P}instances", other)
            await self.redis.delete(f"{_P}recovering:{other}")

    # --- observers of calls held elsewhere -----------------------------------------------------
    async def subscribe(self, call_id: str, wait: float = 2.0) -> Subscription:
        """Observe ``call_id`` held by another instance (or not started yet): its latest sticky
        events first, then what its instance publishes; ``None`` after its ``call_ended``.
        Waits at most ``wait`` s for Redis: without it, the subscription starts empty and
        fills once Redis is back."""
        sub = Subscription(call_id)
        first = call_id not in self._remote
        self._remote.setdefault(call_id, set()).add(sub)
        try:
            if first:
                await asyncio.wait_for(self._subscribed.wait(), wait)
                await asyncio.wait_for(self._pubsub.subscribe(channel(call_id)), wait)
            sticky = await asyncio.wait_for(self.redis.hgetall(sticky_key(call_id)), wait)
            await asyncio.wait_for(self.redis.publish(_WATCH, call_id), wait)
        except (*self._errors, TimeoutError, AttributeError) as exc:
            self._failed(exc)
            return sub
        latest = {k.decode(): v.decode() for k, v in sticky.items()}
        # an event published between SUBSCRIBE and HGETALL comes twice: the echo is skipped
        self._echo[sub] = {latest[kind] for kind in _STICKY if kind in latest}
        for kind in _STICKY:
            if kind in latest:
                self._deliver_to(sub, latest[kind])
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (idempotent); the channel is left when its last observer goes."""
        self._echo.pop(sub, None)
        subs = self._remote.get(sub.call_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._remote[sub.call_id]
            if self._pubsub is not None:
                task = asyncio.ensure_future(self._unsubscribe(sub.call_id))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _unsubscribe(self, call_id: str) -> None:
        with contextlib.suppress(*self._errors):
            if call_id not in self._remote and self._pubsub is not None:
                await self._pubsub.unsubscribe(channel(call_id))

    def _deliver(self, call_id: str, data: str) -> None:
        for sub in list(self._remote.get(call_id, ())):
            echo = self._echo.get(sub)
            if echo and data in echo:
                echo.discard(data)
                continue
            self._deliver_to(sub, data)

    def _deliver_to(self, sub: Subscription, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        try:
            sub.queue.put_nowait(event)
            if event.get("event_type") == "call_ended":
                sub.queue.put_nowait(None)
        except asyncio.QueueFull:
            sub.dropped += 1
            self.dropped += 1

    async def _subscriber(self) -> None:
        """One pub/sub connection for every remote call watched from here and the watch
        channel; reconnects and subscribes again after Redis comes back."""
        delay = 0.2
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(_WATCH, *(channel(c) for c in self._remote))
                for call_id in list(self._remote):  # watched again: tell their instances
                    await self.redis.publish(_WATCH, call_id)
                self._pubsub = pubsub
                if self._remote:
                    log.info("instance %s: observing %d calls of other instances again",
                             self.id, len(self._remote))
                self._subscribed.set()
                delay = 0.2
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg["type"] != "message":
                        continue
                    name, data = msg["channel"].decode(), msg["data"].decode()
                    if name == _WATCH:
                        if data in self.calls:
                            self.hub.remote_watched.add(data)
                    else:
                        self._deliver(name.removeprefix(f"{_P}live:"), data)
            except self._errors as exc:
                self._failed(exc)
            finally:
                self._subscribed.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)

    def stats(self) -> dict[str, Any]:
        """What ``/stats`` shows about this instance's place in the cluster."""
        return {"redis": "up" if self.up else "down", "calls_held": len(self.calls),
                "remote_watched": len(self.hub.remote_watched),
                "remote_observed": len(self._remote), "observer_events_lost": self.dropped,
                "calls_recovered": self.recovered}
