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
_WINDOWS = ("latency", "latency_in_call", "loop_lag", "playback_delay")  # ProxyStats' sample windows


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What the front end asked for in its query string.

    The upstream's flags (``enable_update``, ``enable_audio_alignment``) and the service's own
    lip-sync events: ``enable_words``, ``enable_visemes``, and the same timings in the formats
    of front-end tools (:mod:`aligner.service.formats`): ``enable_talkinghead``,
    ``enable_characters`` (ElevenLabs-style), ``enable_azure_visemes``, ``enable_blendshapes``
    (ARKit weights).
    """

    enable_update: bool = False
    enable_audio_alignment: bool = False
    enable_words: bool = False
    enable_visemes: bool = False
    enable_talkinghead: bool = False
    enable_characters: bool = False
    enable_azure_visemes: bool = False
    enable_blendshapes: bool = False

    @classmethod
    def from_query(cls, query: Any) -> CallOptions:
        """Parse the ``enable_*`` flags of a request's query (``true``/``1``/``yes``/``on``)."""
        return cls(**{name: str(query.get(name, "")).lower() in _TRUE
                      for name in cls.__dataclass_fields__})

    @property
    def lipsync(self) -> bool:
        """True if the front end wants any lip-sync events (words, visemes, a format)."""
        return any(getattr(self, name) for name in self.__dataclass_fields__
                   if name not in ("enable_update", "enable_audio_alignment"))


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-call limits.

    Attributes:
        max_frame_bytes: largest frame a front end may send; larger closes with 1009.
        idle_timeout: seconds without a frame in either direction before the proxy ends the
            call itself (the server's ``inactivity`` answer). None (default): 30 s past the
            call's ``end_call_after_silence_ms`` (120 s without one), so that the upstream,
            which ends a silent call itself, answers and records it as it would without the
            proxy; a shorter value ends idle calls earlier, and the upstream then records a
            user hang-up.
        mic_realtime_factor: mic audio allowed, as a multiple of real time (excess is dropped).
        mic_burst_seconds: seconds of audio a front end may send at once above that rate.
        max_frames_per_second: front-end frames per second (excess is dropped).
        upstream_timeout: seconds to connect to the upstream.
        align_budget: seconds a lip-sync chunk's audio may wait for its alignment when the
            page has no audio left to play (the first chunk of an utterance); a later chunk
            may wait as long as the page still has audio queued. After that the audio goes
            first and the chunk's events follow, marked late.
    """

    max_frame_bytes: int = 64 * 1024
    idle_timeout: float | None = None
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
    added latency (seconds from an upstream frame's bytes read from the socket to the front-end
    frame handed to its socket), ``latency_in_call`` the same for frames sent after their call's
    first agent audio (no call-setup work of other calls in the way), ``loop_lag`` the last 100,000 lateness samples of a 10 ms
    event-loop timer (how long any ready callback may wait for the loop), ``playback_delay``
    per lip-sync chunk how long holding it for its alignment delayed the page's playback."""

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
    latency_in_call: deque = field(default_factory=lambda: deque(maxlen=200_000))
    loop_lag: deque = field(default_factory=lambda: deque(maxlen=100_000))
    playback_delay: deque = field(default_factory=lambda: deque(maxlen=100_000))

    def percentiles(self) -> dict[str, float | None]:
        """p50/p90/p99/max of the added latency (all frames, and ``in_call_``: after the call's
        first agent audio), p99/max of the loop lag and p50/p99/max of the lip-sync playback
        delay, in milliseconds."""
        return {**_percentiles(self.latency, "", (0.5, 0.9, 0.99)),
                **_percentiles(self.latency_in_call, "in_call_", (0.5, 0.99)),
                **_percentiles(self.loop_lag, "loop_lag_", (0.99,)),
                **_percentiles(self.playback_delay, "playback_delay_", (0.5, 0.99))}

    def reset(self) -> None:
        """Zero the counters and the latency window (``calls_active`` stays)."""
        for name in self.__dataclass_fields__:
            if name in _WINDOWS:
                getattr(self, name).clear()
            elif name != "calls_active":
                setattr(self, name, 0)

    def as_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__dataclass_fields__
             if name not in _WINDOWS}
        d["latency_samples"] = len(self.latency)
        return {**d, **self.percentiles()}


def _percentiles(samples: deque, prefix: str, qs: tuple[float, ...]) -> dict[str, float | None]:
    """``{prefix}p50_ms``... and ``{prefix}max_ms`` of ``samples`` (seconds), None when empty."""
    data = sorted(samples)
    names = [f"{prefix}p{round(100 * q)}_ms" for q in qs] + [f"{prefix}max_ms"]
    if not data:
        return dict.fromkeys(names)
    values = [data[min(len(data) - 1, int(q * len(data)))] for q in qs] + [data[-1]]
    return {n: round(1000 * v, 3) for n, v in zip(names, values, strict=True)}
