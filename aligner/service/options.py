"""What a proxied call may ask for and may do: front-end options, per-call limits, counters.

>>> CallOptions.from_query({"enable_words": "true"}).lipsync
True
>>> b = TokenBucket(rate=100.0, burst=50.0)
>>> b.take(50, 0.0), b.take(1, 0.0), b.take(10, 0.1)
(True, False, True)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallOptions", "Limits", "ProxyStats", "TokenBucket"]

_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What the front end asked for in its query string."""

    enable_update: bool = False
    enable_audio_alignment: bool = False
    enable_words: bool = False
    enable_visemes: bool = False

    @classmethod
    def from_query(cls, query: Any) -> CallOptions:
        """Parse the ``enable_*`` flags of a request's query (``true``/``1``/``yes``/``on``)."""
        return cls(*(str(query.get(name, "")).lower() in _TRUE for name in
                     ("enable_update", "enable_audio_alignment", "enable_words",
                      "enable_visemes")))

    @property
    def lipsync(self) -> bool:
        """True if the front end wants word or viseme events."""
        return self.enable_words or self.enable_visemes


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-call limits.

    Attributes:
        max_frame_bytes: largest frame a front end may send; larger closes with 1009.
        idle_timeout: seconds without a frame in either direction before closing (1008).
        mic_realtime_factor: mic audio allowed, as a multiple of real time (excess is dropped).
        mic_burst_seconds: seconds of audio a front end may send at once above that rate.
        max_frames_per_second: front-end frames per second (excess is dropped).
        upstream_timeout: seconds to connect to the upstream.
        align_budget: seconds a lip-sync chunk's audio may wait for its alignment (after that
            the audio goes first and the chunk's events follow, marked late).
    """

    max_frame_bytes: int = 64 * 1024
    idle_timeout: float = 120.0
    mic_realtime_factor: float = 2.0
    mic_burst_seconds: float = 4.0
    max_frames_per_second: int = 1000
    upstream_timeout: float = 10.0
    align_budget: float = 0.25


class TokenBucket:
    """A token bucket; ``take(n, now)`` is False when ``n`` exceeds what is left."""

    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, None

    def take(self, n: float, now: float) -> bool:
        if self.at is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if n > self.tokens:
            return False
        self.tokens -= n
        return True


@dataclass(slots=True)
class ProxyStats:
    """Service-wide counters, shown by ``/stats``; ``latency`` keeps the last 200,000 samples of
    added latency (seconds from an upstream frame received to the front-end frame sent)."""

    calls_active: int = 0
    calls_total: int = 0
    frames_up: int = 0
    frames_down: int = 0
    frames_cleared: int = 0
    frames_rate_limited: int = 0
    frames_malformed: int = 0
    frames_too_big: int = 0
    send_failures: int = 0
    late_chunks: int = 0
    latency: deque = field(default_factory=lambda: deque(maxlen=200_000))

    def percentiles(self) -> dict[str, float | None]:
        """p50/p90/p99/max of the added latency, in milliseconds."""
        data = sorted(self.latency)
        if not data:
            return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}

        def at(q: float) -> float:
            return round(1000 * data[min(len(data) - 1, int(q * len(data)))], 3)

        return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
                "max_ms": round(1000 * data[-1], 3)}

    def reset(self) -> None:
        """Zero the counters and the latency window (``calls_active`` stays)."""
        for name in self.__dataclass_fields__:
            if name not in ("calls_active", "latency"):
                setattr(self, name, 0)
        self.latency.clear()

    def as_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "latency"}
        d["latency_samples"] = len(self.latency)
        return {**d, **self.percentiles()}
