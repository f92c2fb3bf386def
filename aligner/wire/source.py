"""User audio sources for the client: files, silence, scripted turns, the microphone.

A source is pulled by the client once per chunk: ``read(call, nsamples)`` returns the next
``nsamples`` samples as wire bytes in the call's encoding (``b""`` for nothing this time, ``None``
when finished). The client paces the calls in real time, so sources know no clock; they may
look at :class:`CallState` (the session time and whether the agent is audible) to react, which
is how :class:`TurnSource` waits for the agent to finish before answering, or barges in.

>>> import numpy as np
>>> src = SamplesSource(np.ones(480, np.int16), 16000)
>>> call = CallState("s16le", 16000)
>>> src.open(call)
>>> [len(src.read(call, 320)), len(src.read(call, 320)), src.read(call, 320)]
[640, 320, None]
>>> check_chunk_ms(10)
Traceback (most recent call last):
...
aligner.errors.AudioError: chunk size 10 ms is outside 20-250 ms (the protocol's frame sizes)
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import AudioError, MissingBackendError

__all__ = [
    "MAX_CHUNK_MS",
    "MIN_CHUNK_MS",
    "CallState",
    "FileSource",
    "MicrophoneSource",
    "SamplesSource",
    "SilenceSource",
    "Source",
    "Turn",
    "TurnSource",
    "check_chunk_ms",
    "open_source",
]

logger = logging.getLogger(__name__)

MIN_CHUNK_MS = 20
MAX_CHUNK_MS = 250


def check_chunk_ms(chunk_ms: float) -> int:
    """Return ``chunk_ms`` as an int if it is a frame size the protocol allows (20–250 ms).

    Raises:
        AudioError: any other size.
    """
    if not isinstance(chunk_ms, int | float) or not MIN_CHUNK_MS <= chunk_ms <= MAX_CHUNK_MS:
        raise AudioError(f"chunk size {chunk_ms!r} ms is outside {MIN_CHUNK_MS}-{MAX_CHUNK_MS} ms "
                         "(the protocol's frame sizes)")
    return int(chunk_ms)


class CallState:
    """What a source may know about the call: format, session time, the agent's playback.

    The client updates it: :attr:`now` before every ``read``, :meth:`agent_audio` for every agent
    chunk, :meth:`clear` for every ``clear``. Agent audio plays back-to-back from when it arrives,
    like a front end's queue, so :attr:`agent_until` is when the queued agent audio runs dry.

    >>> c = CallState("s16le", 8000)
    >>> c.agent_audio(1.0, 16000)            # one second of audio arriving at t=1
    >>> c.agent_audible(1.5), c.agent_until, c.agent_stretches
    (True, 2.0, 1)
    """

    def __init__(self, encoding: str, sample_rate: int) -> None:
        self.encoding = audio.check_encoding(encoding)
        self.sample_rate = audio.check_rate(sample_rate)
        self.now = 0.0
        self.agent_until = 0.0          # session time the queued agent audio finishes playing
        self.agent_stretches = 0        # stretches of continuous agent speech begun so far
        self.agent_stretch_start = 0.0  # when the current/last stretch began
        self.clears = 0

    def agent_audio(self, t: float, nbytes: int) -> None:
        """Agent audio of ``nbytes`` bytes arrived at ``t``."""
        if t >= self.agent_until:
            self.agent_stretches += 1
            self.agent_stretch_start = t
        self.agent_until = max(t, self.agent_until) + audio.duration(
            nbytes, self.encoding, self.sample_rate)

    def clear(self, t: float) -> None:
        """The server sent ``clear`` at ``t``: the agent's queued audio is dropped."""
        self.clears += 1
        self.agent_until = min(self.agent_until, t)

    def agent_audible(self, t: float | None = None) -> bool:
        """Whether agent audio is playing at ``t`` (default: :attr:`now`)."""
        return (self.now if t is None else t) < self.agent_until


class Source:
    """Base class of user audio sources (see the module docstring for the contract)."""

    #: True when the source paces itself (a microphone); the client then never sends silence.
    realtime = False

    def open(self, call: CallState) -> None:
        """Prepare for a call in ``call.encoding`` at ``call.sample_rate``."""

    def read(self, call: CallState, nsamples: int) -> bytes | None:
        """The next ``nsamples`` samples as wire bytes, ``b""`` for none now, None when done."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`open` took (idempotent)."""


class SamplesSource(Source):
    """Mono int16 samples at ``rate`` Hz, resampled to the call's rate, played once.

    The last chunk may be shorter than asked for.
    """

    def __init__(self, samples: np.ndarray, rate: int) -> None:
        self._samples = audio.as_int16(samples)
        self._rate = rate
        self._pcm = np.zeros(0, np.int16)
        self._pos = 0
        self._encoding = "s16le"

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self._samples) / self._rate

    def open(self, call: CallState) -> None:
        self._pcm = audio.resample(self._samples, self._rate, call.sample_rate)
        self._pos = 0
        self._encoding = call.encoding

    def read(self, call: CallState, nsamples: int) -> bytes | None:
        if self._pos >= len(self._pcm):
            return None
        part = self._pcm[self._pos:self._pos + nsamples]
        self._pos += len(part)
        return audio.encode(part, self._encoding)


class FileSource(SamplesSource):
    """Any audio file PyAV decodes (wav, mp3, ogg, m4a, ...), mixed down to mono.

    Raises:
        AudioError: the file is missing or holds no decodable audio (at construction).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Decode at 48 kHz once; open() resamples to the call's rate.
        super().__init__(audio.load(self.path, audio.MAX_RATE), audio.MAX_RATE)


class SilenceSource(Source):
    """``seconds`` of silence (or forever when None)."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        self._left = 0

    def open(self, call: CallState) -> None:
        self._left = -1 if self.seconds is None else round(self.seconds * call.sample_rate)

    def read(self, call: CallState, nsamples: int) -> bytes | None:
        if self._left == 0:
            return None
        n = nsamples if self._left < 0 else min(nsamples, self._left)
        if self._left > 0:
            self._left -= n
        return _silence(call.encoding, n)


def _silence(encoding: str, n: int) -> bytes:
    return audio.encode(np.zeros(n, np.int16), encoding)


@dataclass(frozen=True, slots=True)
class Turn:
    """One user turn of a :class:`TurnSource`.

    ``barge_in`` None: wait until the agent has spoken and then been silent for ``gap`` seconds.
    ``barge_in`` = d: wait until the agent has been speaking for ``d`` seconds, then talk over it.
    """

    source: Source
    barge_in: float | None = None
    gap: float = 0.6


class TurnSource(Source):
    """A scripted user side: silence, then each turn when its moment comes, like a person.

    Before a turn it sends silence until the agent has started a new stretch of speech since the
    previous turn and (normal turn) gone quiet for ``gap`` seconds, or (barge-in) been audible for
    ``barge_in`` seconds. ``max_wait`` bounds each wait. After the last turn it waits for the
    agent's answer to finish (``tail`` seconds of quiet) and ends.

    Args:
        turns: the turns, in order.
        max_wait: seconds a turn waits at most for its moment.
        tail: seconds of agent silence after the last answer before the source ends.
    """

    def __init__(self, turns: Sequence[Turn], *, max_wait: float = 20.0, tail: float = 0.8) -> None:
        self.turns = list(turns)
        self.max_wait = max_wait
        self.tail = tail
        self.started: list[float] = []  # session time each turn started
        self._i = 0
        self._playing = False
        self._waiting_since: float | None = None
        self._seen_stretches = 0

    def open(self, call: CallState) -> None:
        for turn in self.turns:
            turn.source.open(call)

    def close(self) -> None:
        for turn in self.turns:
            turn.source.close()

    def _moment(self, call: CallState, turn: Turn | None) -> bool:
        if self._waiting_since is None:
            self._waiting_since = call.now
        if call.now - self._waiting_since >= self.max_wait:
            logger.info("turn %d: agent did not answer in %.0f s; going on", self._i, self.max_wait)
            return True
        new_speech = call.agent_stretches > self._seen_stretches
        if not new_speech:
            return False
        if turn is not None and turn.barge_in is not None:
            return call.agent_audible() and call.now - call.agent_stretch_start >= turn.barge_in
        gap = self.tail if turn is None else turn.gap
        return not call.agent_audible() and call.now - call.agent_until >= gap

    def read(self, call: CallState, nsamples: int) -> bytes | None:
        if self._playing:
            data = self.turns[self._i].source.read(call, nsamples)
            if data is not None:
                return data
            self._playing = False
            self._i += 1
            self._waiting_since = None
            self._seen_stretches = call.agent_stretches
        turn = self.turns[self._i] if self._i < len(self.turns) else None
        if self._moment(call, turn):
            if turn is None:
                return None
            self._playing = True
            self.started.append(call.now)
            logger.info("turn %d starts at %.2f s", self._i, call.now)
            return self.read(call, nsamples)
        return _silence(call.encoding, nsamples)


class MicrophoneSource(Source):
    """Live microphone input through ``sounddevice`` (optional extra ``mic``).

    Raises:
        MissingBackendError: ``sounddevice`` is not installed, or it cannot load the PortAudio
            library (the error says which).
    """

    realtime = True

    def __init__(self, device: int | str | None = None) -> None:
        try:
            import sounddevice  # noqa: F401
        except ImportError as exc:
            raise MissingBackendError("sounddevice", "mic") from exc
        except OSError as exc:  # installed, but its C library is missing or broken
            raise MissingBackendError(
                "sounddevice", "mic", cause=str(exc),
                install="install the PortAudio library (Debian/Ubuntu: apt-get install "
                        "libportaudio2; macOS: brew install portaudio)") from exc
        self.device = device
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._stream = None
        self._encoding = "s16le"

    def open(self, call: CallState) -> None:
        import sounddevice

        self._encoding = call.encoding

        def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread
            if status:
                logger.warning("microphone: %s", status)
            self._queue.put(bytes(indata))

        self._stream = sounddevice.RawInputStream(
            samplerate=call.sample_rate, channels=1, dtype="int16", device=self.device,
            blocksize=call.sample_rate // 50, callback=callback)
        self._stream.start()

    def read(self, call: CallState, nsamples: int) -> bytes | None:
        parts = []
        while True:
            try:
                parts.append(self._queue.get_nowait())
            except queue.Empty:
                break
        pcm = b"".join(parts)
        if self._encoding == "mulaw":
            return audio.encode(audio.decode(pcm, "s16le"), "mulaw")
        return pcm

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None


def open_source(spec: str | Path | None) -> Source:
    """A source from a command-line value: a file path, ``mic[:DEVICE]``, ``silence[:SECONDS]``
    (None: silence until the call ends).

    Raises:
        AudioError: a missing or undecodable file.
        MissingBackendError: ``mic`` without ``sounddevice``.
    """
    if spec is None:
        return SilenceSource(None)
    text = str(spec)
    kind, _, arg = text.partition(":")
    if kind == "mic" and not Path(text).exists():
        return MicrophoneSource(int(arg) if arg.isdigit() else (arg or None))
    if kind == "silence" and not Path(text).exists():
        return SilenceSource(float(arg) if arg else None)
    return FileSource(text)
