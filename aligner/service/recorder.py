"""A proxied call's capture, written off the event loop in batches.

The relay path must not do file work per frame: a JSON-escaped alignment chunk plus two
``write`` syscalls per frame cost the event loop about a quarter of its time with 100 calls.
:class:`CallRecorder` only appends ``(t, direction, payload)`` to a list on the event loop; a
task hands the list to a thread every ``interval`` seconds (0.2 s), which writes it through the
call's :class:`aligner.wire.capture.CaptureWriter`. Frames seen while the capture is still being
opened (its folder and header are fsync'd) wait in the same list, so the call never waits for
its recording.

Durability: a crash of the service loses at most the frames of the last ``interval`` (plus the
batch being written); a clean end, a shutdown or an upstream that dies writes everything and
closes the capture (fsync).

>>> import asyncio, tempfile
>>> from aligner.wire.capture import CaptureWriter, read
>>> async def demo(folder):
...     rec = CallRecorder(CaptureWriter(folder, {"audio_encoding": "s16le",
...                                               "sample_rate": 16000}))
...     rec.write(0.5, "in", b"\\x00\\x00")
...     rec.write_close(0.7, 1000, "bye", "client")
...     await rec.close()
>>> d = tempfile.mkdtemp()
>>> asyncio.run(demo(d))
>>> read(d).close.reason
'bye'
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

from ..logs import fields
from ..wire.capture import CaptureWriter

__all__ = ["CallRecorder"]

log = logging.getLogger(__name__)


class CallRecorder:
    """Buffers a call's frames and writes them to its capture in a thread, in order.

    Args:
        capture: the capture writer, a future of one (being opened; None: no recording), or
            None.
        executor: the threads that write (the store's ``io``); None: asyncio's default pool.
        interval: seconds between batch writes.
        call_id: for the logs.
    """

    def __init__(self, capture: CaptureWriter | asyncio.Future | None,
                 executor: Executor | None = None, interval: float = 0.2,
                 call_id: str = "") -> None:
        self.executor = executor
        self.interval = interval
        self.call_id = call_id
        self._opening = capture if isinstance(capture, asyncio.Future) else None
        self.capture: CaptureWriter | None = capture if self._opening is None else None
        self._batch: list[tuple[Any, ...]] = []
        self._failed = capture is None
        self._task: asyncio.Task | None = None
        self._writing: asyncio.Future | None = None  # the batch being written, in its thread

    def write(self, t: float, direction: str, payload: str | bytes) -> None:
        """Queue one frame seen at ``t`` (session clock) going ``direction`` (no I/O)."""
        if not self._failed:
            self._batch.append((t, direction, payload))
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run())

    def write_close(self, t: float, code: int | None, reason: str, by: str) -> None:
        """Queue the record of how the websocket closed."""
        if not self._failed:
            self._batch.append((t, code, reason, by))

    async def close(self) -> CaptureWriter | None:
        """Write what is queued, close the capture (fsync); returns it (None: no recording)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._flush()
        if self._writing is not None:
            self._check(await self._writing)
        capture = self.capture
        if capture is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self.executor, capture.close)
            except OSError as exc:
                log.error("capture close failed", extra=fields(call_id=self.call_id,
                                                                error=str(exc)))
        return capture

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._flush()

    async def _flush(self) -> None:
        if self._opening is not None:  # shielded: a cancelled flush leaves it to the next
            try:
                self.capture = await asyncio.shield(self._opening)
            except Exception:  # the call goes on without a recording
                log.exception("recording unavailable", extra=fields(call_id=self.call_id))
            self._opening = None
            self._failed = self._failed or self.capture is None
        if self._writing is not None:  # one batch at a time, in order
            self._check(await asyncio.shield(self._writing))
        batch, self._batch = self._batch, []
        if self.capture is None or self._failed or not batch:
            return
        self._writing = asyncio.get_running_loop().run_in_executor(
            self.executor, _write_batch, self.capture, batch)
        self._check(await asyncio.shield(self._writing))

    def _check(self, error: OSError | None) -> None:
        if error is not None and not self._failed:  # a full disk must not end the call
            log.error("capture write failed; recording stops",
                      extra=fields(call_id=self.call_id, error=str(error)))
            self._failed = True
            self._batch = []


def _write_batch(capture: CaptureWriter, batch: list[tuple[Any, ...]]) -> OSError | None:
    """Write a batch of frames and close records (runs in a thread); returns the error."""
    try:
        for item in batch:
            if len(item) == 3:
                capture.write(*item)
            else:
                capture.write_close(*item)
    except OSError as exc:
        return exc
    return None
