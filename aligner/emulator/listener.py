"""The emulator's ear: streaming recognition of every call's user speech in worker processes.

Each user utterance is decoded while it is spoken (:class:`aligner.speech.recognize.RecognitionStream`),
so when the user pauses the words so far are ready at once (smart endpointing), and the final
transcript comes from the same decode. pocketsphinx holds the GIL while it decodes, so the
streams live in worker processes (one per core, ``spawn``ed, exiting with the server); a call
stays on one worker, which keeps the call's cepstral mean from one utterance to the next.

The server side never blocks and runs no thread: audio and requests go to a worker over a socket
pair through asyncio, batched per loop iteration. If a worker cannot start (e.g. a script
without an ``if __name__ == "__main__":`` guard under ``spawn``), it runs as a thread of the
server instead (correct, but its decoding then competes with the event loop for the GIL).

>>> listener = Listener(hints=None); await listener.start()     # doctest: +SKIP
>>> stream = listener.open("call_1", 16000)                     # doctest: +SKIP
>>> stream.feed(pcm); await stream.hypothesis(); await stream.finish()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import struct
import threading
from typing import Any

import numpy as np

from ..logs import configured_level
from ..speech.recognize import RECOGNITION_RATE, RecognitionStream, RecognizedWord
from ..workers import start_worker

__all__ = ["Listener", "ListenerStream"]

log = logging.getLogger(__name__)


_SLICE_S = 0.2  # audio decoded for one stream before looking at the others again


class _Live:
    """A stream in a worker: its audio not decoded yet, and the answers it is owed."""

    __slots__ = ("caller", "stream", "audio", "asks")

    def __init__(self, caller: str, stream: RecognitionStream) -> None:
        self.caller, self.stream = caller, stream
        self.audio: collections.deque[np.ndarray] = collections.deque()
        self.asks: list[tuple[str, int]] = []  # (op, req)

    def decode(self, seconds: float | None = None) -> None:
        """Decode the audio queued (at most about ``seconds`` of it)."""
        limit = None if seconds is None else seconds * self.stream.sample_rate
        pieces, done = [], 0
        while self.audio and (limit is None or done < limit):
            pieces.append(self.audio.popleft())
            done += len(pieces[-1])
        if pieces:  # one decoder call for the whole slice
            self.stream.feed(np.concatenate(pieces))


class _Ear:
    """A worker's state (sans-I/O but for ``send``): the live streams of its calls.

    Answers come first: a stream asked for its words has its queued audio decoded at once,
    oldest request first. In between, queued audio is decoded in slices of 0.2 s, the oldest
    utterance first (the one likely to pause first): when the worker cannot keep up, the
    utterances it took first stay in real time and get quick answers, and the later ones wait
    (their turns then end on the long path) instead of all falling behind together.

    A caller's utterance starts from the cepstral mean its previous one left; a new caller's
    from the mean this worker's last utterance left (pocketsphinx's own default for one audio
    source); only a worker's very first utterance starts from the model's initial mean."""

    def __init__(self, hints: list[str] | None, send) -> None:
        self.hints, self.send = hints, send
        self.streams: dict[int, _Live] = {}
        self.means: dict[str, str] = {}  # caller -> cepstral mean its last utterance left
        self.last_mean: str | None = None  # the mean of the last utterance, any caller
        self.urgent: collections.deque[int] = collections.deque()

    def receive(self, batch: list[tuple]) -> None:
        """Take a batch of messages ``(op, key, ...)``."""
        for op, key, *args in batch:
            if op == "forget":
                self.means.pop(key, None)
            elif op == "open":
                caller, rate = args
                try:
                    stream = RecognitionStream(rate, self.hints,
                                               self.means.get(caller, self.last_mean))
                except Exception:
                    log.exception("recognition worker: cannot open a stream")
                else:
                    self.streams[key] = _Live(caller, stream)
            elif key not in self.streams:  # failed to open, or lost with a previous worker
                if op in ("hyp", "finish"):
                    self.send((args[0], KeyError(f"no recognition stream {key}")))
            elif op == "feed":
                self.streams[key].audio.append(np.frombuffer(args[0], np.int16))
            elif op in ("hyp", "finish"):
                self.streams[key].asks.append((op, args[0]))
                self.urgent.append(key)
            elif op == "close":
                self.streams.pop(key).stream.close()

    @property
    def busy(self) -> bool:
        return bool(self.urgent) or any(live.audio for live in self.streams.values())

    def work(self) -> None:
        """Do the next piece of work: an answer, else a slice of audio."""
        if self.urgent:
            key = self.urgent.popleft()
            live = self.streams.get(key)
            if live is not None and live.asks:
                self._answer(key, live)
            return
        live = next((x for x in self.streams.values() if x.audio), None)  # oldest: dict order
        if live is not None:
            self._guarded(live, None, lambda: live.decode(_SLICE_S))

    def _answer(self, key: int, live: _Live) -> None:
        op, req = live.asks.pop(0)
        if op == "hyp":
            def hypothesis() -> None:
                live.decode()
                self.send((req, live.stream.hypothesis()))

            self._guarded(live, req, hypothesis)
            return
        del self.streams[key]

        def finish() -> None:
            live.decode()
            words = live.stream.finish()
            self.means[live.caller] = self.last_mean = live.stream.cmn
            self.send((req, [(w.word, w.start, w.end) for w in words]))

        self._guarded(live, req, finish)

    def _guarded(self, live: _Live, req: int | None, action) -> None:
        """Run ``action``; if it fails, drop the stream and fail what it was asked."""
        try:
            action()
        except Exception as exc:  # one bad stream must not stop the others
            log.exception("recognition worker: a stream failed")
            for key, other in list(self.streams.items()):
                if other is live:
                    del self.streams[key]
            live.stream.close()
            for _, pending in live.asks + ([("", req)] if req is not None else []):
                self.send((pending, exc))
            live.asks.clear()


def _serve(conn, hints: list[str] | None, parent: int | None,
           log_level: int | None = None) -> None:
    """A worker's loop: messages are lists of ``(op, stream key, ...)``; answers ``(req, value)``.

    ``open`` (key, caller, rate), ``feed`` (key, bytes), ``hyp`` (key, req), ``finish`` (key,
    req), ``close`` (key), ``forget`` (caller): the caller's cepstral mean is dropped."""
    if parent is not None:  # a process: below the server's priority; exit with it
        os.nice(10)
        start_worker(parent, log_level)
    RecognitionStream(RECOGNITION_RATE, hints).close()  # load a decoder now, not mid-call
    conn.send((None, "ready"))
    ear = _Ear(hints, conn.send)
    while True:
        try:
            while not ear.busy or conn.poll(0):
                ear.receive(conn.recv())
        except (EOFError, OSError):
            return
        ear.work()


class _Worker:
    """One worker (a process; a thread as a fallback) on the far end of a socket pair.

    The server side is plain asyncio: writes are buffered by the transport (never block the
    loop, even when the worker lags), messages queued within one loop iteration go out as one
    batch, and a reader task resolves the futures of answers. Framing is that of
    :class:`multiprocessing.connection.Connection` (4-byte big-endian length, pickle), which the
    worker uses on its end."""

    def __init__(self, hints: list[str] | None, pending: dict) -> None:
        self.hints = hints
        self._pending = pending  # req -> (worker, future), shared by the listener
        self.streams = 0  # open streams (load balancing)
        self._batch: list[tuple] = []
        self._writer: asyncio.StreamWriter | None = None
        self.ready: asyncio.Future | None = None  # set once the worker has loaded a decoder
        self._runner: Any = None
        self._closed = False

    def start(self, process: bool = True) -> None:
        ours, theirs = multiprocessing.Pipe()
        if process:
            context = multiprocessing.get_context("spawn")
            self._runner = context.Process(
                target=_serve, args=(theirs, self.hints, os.getpid(), configured_level()),
                daemon=True, name="aligner-listener")
        else:
            self._runner = threading.Thread(target=_serve, args=(theirs, self.hints, None),
                                            daemon=True, name="aligner-listener")
        self._runner.start()
        if process:
            theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))
        ours.close()
        self.ready = asyncio.get_running_loop().create_future()
        asyncio.ensure_future(self._connect(sock, process))

    async def wait_ready(self) -> None:
        """Wait until the worker (or the thread replacing a failed one) can decode."""
        while True:
            ready = self.ready
            try:
                await asyncio.shield(ready)
                return
            except RuntimeError:
                if self.ready is ready:
                    raise

    async def _connect(self, sock: socket.socket, process: bool) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        if self._batch:
            self._flush()
        asyncio.ensure_future(self._read(reader, process))

    def send(self, message: tuple) -> None:
        """Queue a message; the batch goes out once this loop iteration is over."""
        self._batch.append(message)
        if len(self._batch) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if not self._batch or self._writer is None or self._writer.is_closing():
            return  # sent once connected
        data = pickle.dumps(self._batch, pickle.HIGHEST_PROTOCOL)
        self._batch = []
        self._writer.write(struct.pack("!i", len(data)) + data)

    async def _read(self, reader: asyncio.StreamReader, process: bool) -> None:
        try:
            while True:
                size, = struct.unpack("!i", await reader.readexactly(4))
                req, value = pickle.loads(await reader.readexactly(size))
                if req is None:
                    _resolve(self.ready, value)
                    continue
                entry = self._pending.get(req)
                if entry is not None:
                    _resolve(entry[1], value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if self._closed:
            return
        for worker, future in [*self._pending.values(), (self, self.ready)]:
            if worker is self:
                _resolve(future, RuntimeError("recognition worker lost"))
        if process:
            log.warning("recognition process failed; recognising in a thread instead")
            self._writer = None
            self.start(process=False)

    def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if isinstance(self._runner, multiprocessing.process.BaseProcess):
            self._runner.join(2)
            if self._runner.is_alive():
                self._runner.terminate()


class ListenerStream:
    """One utterance being recognised (server side: feed samples, await answers)."""

    def __init__(self, listener: Listener, worker: _Worker, key: int) -> None:
        self._listener, self._worker, self._key = listener, worker, key
        self.closed = False

    def feed(self, samples: np.ndarray) -> None:
        """Queue more audio (int16 at the call's rate); never blocks."""
        if not self.closed and len(samples):
            self._worker.send(("feed", self._key, np.asarray(samples, np.int16).tobytes()))

    async def hypothesis(self) -> str:
        """The words heard so far, once the worker has decoded everything fed before."""
        return await self._listener.ask(self._worker, "hyp", self._key)

    async def finish(self) -> list[RecognizedWord]:
        """End the utterance; its words with times in seconds from its first sample."""
        self._end()
        words = await self._listener.ask(self._worker, "finish", self._key)
        return [RecognizedWord(*w) for w in words]

    def close(self) -> None:
        """Drop the utterance unfinished."""
        if not self.closed:
            self._end()
            self._worker.send(("close", self._key))

    def _end(self) -> None:
        if self.closed:
            raise RuntimeError("the stream is already finished")
        self.closed = True
        self._worker.streams -= 1


class Listener:
    """Streaming recognition for a whole server: ``workers`` processes shared by every call.

    Args:
        hints: phrase hints for every call (the dialogue's ``user_hints``), or None.
        workers: worker processes (default: one per core, at most 4).
    """

    def __init__(self, hints: list[str] | None, workers: int | None = None) -> None:
        self.hints = hints
        self.count = workers or max(1, min(4, os.cpu_count() or 1))
        self._workers: list[_Worker] = []
        self._callers: dict[str, _Worker] = {}
        self._keys = itertools.count()
        self._pending: dict[int, tuple[_Worker, asyncio.Future]] = {}

    async def start(self, timeout: float = 60.0) -> None:
        """Start the workers and wait until each has loaded a decoder (a few seconds), so the
        first words of the first call are not held up by start-up."""
        while len(self._workers) < self.count:
            worker = _Worker(self.hints, self._pending)
            worker.start()
            self._workers.append(worker)
        try:
            await asyncio.wait_for(asyncio.gather(*(w.wait_ready() for w in self._workers)),
                                   timeout)
        except TimeoutError:
            log.warning("recognition workers not ready after %.0f s; going on", timeout)

    def open(self, caller: str, sample_rate: int) -> ListenerStream:
        """Start recognising an utterance of ``caller`` (a call id) at ``sample_rate``.

        Raises:
            RuntimeError: :meth:`start` was not called.
        """
        if not self._workers:
            raise RuntimeError("the listener is not started")
        worker = self._callers.get(caller)
        if worker is None:
            worker = min(self._workers, key=lambda w: w.streams)
            self._callers[caller] = worker
        key = next(self._keys)
        worker.streams += 1
        worker.send(("open", key, caller, sample_rate))
        return ListenerStream(self, worker, key)

    def forget(self, caller: str) -> None:
        """The call is over: drop what was kept about its voice."""
        worker = self._callers.pop(caller, None)
        if worker is not None:
            worker.send(("forget", caller))

    async def ask(self, worker: _Worker, op: str, key: int):
        """Send ``op`` about stream ``key`` and wait for the worker's answer."""
        future = asyncio.get_running_loop().create_future()
        req = next(self._keys)
        self._pending[req] = (worker, future)
        worker.send((op, key, req))
        try:
            return await future
        finally:
            self._pending.pop(req, None)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []


def _resolve(future: asyncio.Future, value) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
