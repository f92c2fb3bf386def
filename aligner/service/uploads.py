"""A call's capture on its way to the object store, and back from it for rendering.

While a call runs, the instance writes its capture on local disk as always
(:mod:`aligner.wire.capture`: append-only files) and :class:`CaptureUpload` sends what the files
gained since the last time as one *segment* object, about once a second, so an instance that
dies loses at most the last second or two of its calls. When the call ends, the whole files go
up and the segments are deleted. :func:`fetch_capture` rebuilds a capture folder from whatever
reached the store: whole files, segments, or both (an instance that died while finishing).

Store layout under ``<call_id>/capture/``::

    capture.json               the header (sent first, and again when the call ends)
    segments/000001.tar        a tar of offsets.json ({file: byte offset}) and, per file, the
                               bytes it gained; placing each at its offset rebuilds the file
    events.jsonl agent.raw user.raw   the whole files, once the call has ended

The events file is measured before the raw files: the capture writes a frame's audio before the
line pointing at it, so every line a segment holds has its audio in the same or an earlier one.

>>> import tempfile
>>> from pathlib import Path
>>> from aligner.wire.capture import CaptureWriter, read
>>> from aligner.service.store import open_store
>>> store = open_store("file://" + tempfile.mkdtemp())
>>> local = Path(tempfile.mkdtemp()) / "capture"
>>> w = CaptureWriter(local, {"audio_encoding": "s16le", "sample_rate": 16000})
>>> up = CaptureUpload(store, "call_1", local)
>>> w.write(0.5, "in", b"\\x01\\x00"); up.step() > 0
True
>>> w.write(0.7, "in", "clear"); up.step() > 0
True
>>> [s.t for s in read(fetch_capture(store, "call_1", Path(tempfile.mkdtemp()))).events()]
[0.5, 0.7]
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

from ..wire.capture import EVENTS, HEADER, RAW
from .store import NotInStore, ObjectStore

__all__ = ["CAPTURE_FILES", "CaptureUpload", "capture_key", "fetch_capture", "send_segment"]

CAPTURE_FILES = (EVENTS, *RAW.values())  # the events file first: see the module docstring
_OFFSETS = "offsets.json"


def capture_key(call_id: str, name: str = "") -> str:
    """The store key of ``name`` in ``call_id``'s capture (the capture's prefix when empty)."""
    return f"{call_id}/capture/{name}"


class CaptureUpload:
    """Sends one call's capture folder to the store: segments, then the whole files.

    Blocking (file reads and store writes): call it from a thread. A failed :meth:`step` leaves
    everything unsent for the next one, so the store catches up when it is back.

    Args:
        store: where the capture goes.
        call_id: the call.
        folder: the local capture folder being written.
    """

    def __init__(self, store: ObjectStore, call_id: str, folder: Path) -> None:
        self.store, self.call_id, self.folder = store, call_id, Path(folder)
        self.sent = dict.fromkeys(CAPTURE_FILES, 0)
        self.seq = 0
        self._header_sent = False
        self.synced_at = time.time()  # when everything written so far was in the store

    def __getstate__(self) -> dict:
        """Pickled without its store client (it goes to an upload process): the store's URL."""
        state = dict(self.__dict__)
        store = state.pop("store")
        state["_store"] = (store.url, getattr(store, "endpoint", None))
        return state

    def __setstate__(self, state: dict) -> None:
        url, endpoint = state.pop("_store")
        self.__dict__.update(state)
        self.store = _opened(url, endpoint)

    def lag(self) -> float:
        """Seconds since the store last had everything the capture held (0 while it does)."""
        return max(0.0, time.time() - self.synced_at) if self._unsent() else 0.0

    def _sizes(self) -> dict[str, int]:
        sizes = {}
        for name in CAPTURE_FILES:  # events first (module docstring)
            try:
                sizes[name] = (self.folder / name).stat().st_size
            except FileNotFoundError:
                sizes[name] = 0
        return sizes

    def _unsent(self) -> bool:
        return any(size > self.sent[name] for name, size in self._sizes().items())

    def step(self) -> int:
        """Send what the capture gained since the last segment; returns the bytes sent.

        Raises:
            StoreError: the store failed (nothing is marked sent).
        """
        started = time.time()
        if not self._header_sent:
            self.store.put(capture_key(self.call_id, HEADER), (self.folder / HEADER).read_bytes())
            self._header_sent = True
        sizes = self._sizes()
        gained = {}
        for name, size in sizes.items():
            if size > self.sent[name]:
                with open(self.folder / name, "rb") as f:
                    f.seek(self.sent[name])
                    gained[name] = f.read(size - self.sent[name])
        if gained:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                _add(tar, _OFFSETS, json.dumps({n: self.sent[n] for n in gained}).encode())
                for name, data in gained.items():
                    _add(tar, name, data)
            self.store.put(capture_key(self.call_id, f"segments/{self.seq + 1:06d}.tar"),
                           buf.getvalue())
            self.seq += 1
            for name, data in gained.items():
                self.sent[name] += len(data)
        self.synced_at = started
        return sum(len(d) for d in gained.values())

    def complete(self) -> None:
        """The call has ended: send the whole files and the final header, delete the segments.

        Raises:
            StoreError: the store failed (call again later: it starts over).
        """
        for name in CAPTURE_FILES:
            path = self.folder / name
            if path.is_file():
                self.store.put(capture_key(self.call_id, name), path.read_bytes())
        self.store.put(capture_key(self.call_id, HEADER), (self.folder / HEADER).read_bytes())
        self.sent = self._sizes()
        self._header_sent = True
        self.synced_at = time.time()
        self.store.delete(self.store.list(capture_key(self.call_id, "segments/")))


_OPENED: dict[tuple[str, str | None], ObjectStore] = {}  # per upload process, filled on use


def _opened(url: str, endpoint: str | None) -> ObjectStore:
    from .store import open_store

    key = (url, endpoint)
    if key not in _OPENED:
        _OPENED[key] = open_store(url, endpoint)
    return _OPENED[key]


def send_segment(upload: CaptureUpload, first: tuple[str, bytes] | None = None
                 ) -> tuple[CaptureUpload, int]:
    """One :meth:`CaptureUpload.step` in an upload process (the caller keeps the returned
    copy): the instance's event loop shares no GIL with the store client's work. ``first``:
    an object ``(key, data)`` to write before it (the call's ``call.json``).

    Raises:
        StoreError: the store failed (nothing marked sent).
    """
    if first is not None:
        upload.store.put(*first)
    return upload, upload.step()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def fetch_capture(store: ObjectStore, call_id: str, folder: Path) -> Path:
    """Rebuild ``call_id``'s capture from the store in ``folder``/capture; returns that folder.

    Whole files win over segments when longer (they hold everything); segments rebuild what an
    instance that died had sent.

    Raises:
        NotInStore: the store has no header of that capture.
        StoreError: the store failed.
    """
    dest = Path(folder) / "capture"
    dest.mkdir(parents=True, exist_ok=True)
    keys = store.list(capture_key(call_id))
    if capture_key(call_id, HEADER) not in keys:
        raise NotInStore(f"no capture of {call_id} in {store.url}", capture_key(call_id, HEADER))
    (dest / HEADER).write_bytes(store.get(capture_key(call_id, HEADER)))
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context(open(dest / name, "w+b")) for name in CAPTURE_FILES}
        for key in sorted(k for k in keys if k.startswith(capture_key(call_id, "segments/"))):
            with tarfile.open(fileobj=io.BytesIO(store.get(key)), mode="r") as tar:
                offsets = json.loads(tar.extractfile(_OFFSETS).read())
                for name, offset in offsets.items():
                    if name in files and isinstance(offset, int) and offset >= 0:
                        files[name].seek(offset)
                        files[name].write(tar.extractfile(name).read())
        for name, f in files.items():
            whole = (store.get_or_none(capture_key(call_id, name))
                     if capture_key(call_id, name) in keys else None)
            f.seek(0, os.SEEK_END)
            if whole is not None and len(whole) >= f.tell():
                f.seek(0)
                f.truncate()
                f.write(whole)
    for name in RAW.values():  # the capture reader wants no empty raw files it never wrote
        if (dest / name).stat().st_size == 0:
            (dest / name).unlink()
    return dest

