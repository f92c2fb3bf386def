"""Observers: read-only live streams of one call (``/live/{call_id}``) for captions and dashboards.

Each call has an observer token: an HMAC of the call id under the service's secret, so the
service stores nothing per call and a token for one call never opens another. The proxy
*publishes* JSON events to the :class:`ObserverHub`; every subscriber of that call gets them
through its own bounded queue, and a slow subscriber loses events (counted) instead of slowing
the call down.

>>> tokens = TokenIssuer(b"secret")
>>> t = tokens.issue("call_1")
>>> tokens.check("call_1", t), tokens.check("call_2", t)
(True, False)
>>> hub = ObserverHub()
>>> sub = hub.subscribe("call_1")
>>> hub.publish("call_1", {"event_type": "word", "word": "hi"})
1
>>> sub.queue.get_nowait()["word"]
'hi'
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ObserverHub", "Subscription", "TokenIssuer"]

log = logging.getLogger(__name__)

# Events a late joiner needs to make sense of the stream: the latest of each kind is replayed.
_STICKY = ("call_started", "update", "call_ended")


class TokenIssuer:
    """Issues and checks per-call observer tokens (HMAC-SHA256 of the call id, hex, 32 chars).

    Args:
        secret: the service's secret; random per process when None (tokens die with the process).
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def issue(self, call_id: str) -> str:
        """The observer token of ``call_id``."""
        return hmac.new(self._secret, call_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def check(self, call_id: str, token: str | None) -> bool:
        """True if ``token`` is the observer token of ``call_id`` (constant-time comparison)."""
        if not token:
            return False  # bytes: a token from outside may hold any character
        return hmac.compare_digest(self.issue(call_id).encode(), token.encode("utf-8", "replace"))


@dataclass(eq=False, slots=True)
class Subscription:
    """One observer of one call: a bounded queue of JSON-able dicts; ``None`` means the end."""

    call_id: str
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=512))
    dropped: int = 0


class ObserverHub:
    """Fans out a call's events to its observers; never blocks the publisher.

    Subscribing to a call that has not started (or has ended) is allowed: a subscriber gets the
    latest ``call_started``/``update``/``call_ended`` events first, then everything new.
    """

    def __init__(self, max_sticky_calls: int = 10_000) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._sticky: dict[str, dict[str, dict[str, Any]]] = {}
        self._max_sticky_calls = max_sticky_calls
        self.published = 0
        self.dropped = 0

    def subscribe(self, call_id: str) -> Subscription:
        """A new subscription to ``call_id``'s events; call :meth:`unsubscribe` when done."""
        sub = Subscription(call_id)
        for kind in _STICKY:
            event = self._sticky.get(call_id, {}).get(kind)
            if event is not None:
                sub.queue.put_nowait(event)
        self._subs.setdefault(call_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (idempotent)."""
        subs = self._subs.get(sub.call_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.call_id]

    def has_observers(self, call_id: str) -> bool:
        """True if anybody watches ``call_id`` (lets the proxy skip building events)."""
        return bool(self._subs.get(call_id))

    def publish(self, call_id: str, event: dict[str, Any]) -> int:
        """Queue ``event`` for every observer of ``call_id``; returns how many got it."""
        kind = event.get("event_type")
        if kind in _STICKY:
            if call_id not in self._sticky and len(self._sticky) >= self._max_sticky_calls:
                self._sticky.pop(next(iter(self._sticky)))
            self._sticky.setdefault(call_id, {})[kind] = event
        self.published += 1
        delivered = 0
        for sub in self._subs.get(call_id, ()):
            try:
                sub.queue.put_nowait(event)
                delivered += 1
            except asyncio.QueueFull:
                sub.dropped += 1
                self.dropped += 1
        return delivered

    def end(self, call_id: str) -> None:
        """Tell every observer of ``call_id`` that the stream is over."""
        for sub in list(self._subs.get(call_id, ())):
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:  # make room: the end matters more than one old event
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)
