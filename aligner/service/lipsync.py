"""Word and viseme events for one proxied call, computed chunk by chunk off the event loop.

Each agent chunk (audio + the text it speaks) is aligned with :class:`aligner.stream.StreamAligner`
in a thread pool; its phones feed a :class:`aligner.visemes.VisemeStream`. :meth:`LipSync.align`
returns the events to send *before* that chunk's audio, with sample offsets relative to the
chunk's first sample (the proxy adds the call's delivered-sample offset):

- ``{"event_type": "word", "index": 3, "word": "Hello", "start_sample": -800, "end_sample":
  5200, "sample_rate": 24000, "final": false}``: a word that starts in this chunk, or a word of
  the previous chunk whose end moved because it continues here (same ``index``: the newer event
  replaces the older); ``final`` is false while the word may still grow.
- ``{"event_type": "viseme", "viseme": "PP", "start_sample": 120, "end_sample": 900,
  "sample_rate": 24000, "weight": 1.0}``: a mouth shape (set chosen by the service) held
  from start to end; consecutive cues are contiguous.

A viseme cue is final only once the next phones are known (the mouth anticipates the next
shape), so the last ~``lead + min_hold`` (about 0.1 s) of a chunk's cues go out with the next
chunk, or from :meth:`flush` when none follows soon. They lie at the chunk's end, so they still
reach the page before that audio plays. After a ``clear``, :meth:`clear` starts afresh.

>>> import numpy as np
>>> ls = LipSync(16000, "s16le", None, backend="fallback")
>>> ls.align_now(np.zeros(8000, np.int16).tobytes(), "Hello there")[0]["word"]
'Hello'
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

from ..audio import decode
from ..stream import StreamAligner
from ..timeline import Phone
from ..visemes import VisemeStream

__all__ = ["LipSync"]


class LipSync:
    """Incremental word/viseme events of one call's agent audio (not thread-safe: one chunk at a
    time, which the proxy's ordered sender guarantees).

    Args:
        sample_rate: the call's sample rate.
        encoding: the call's audio encoding (``s16le`` or ``mulaw``).
        executor: where alignment runs (a thread pool); None runs it inline.
        viseme_set: ``oculus`` (default), ``azure``, ``polly`` or ``rhubarb``.
        backend: the aligner backend (see :func:`aligner.align`).
    """

    def __init__(self, sample_rate: int, encoding: str, executor: Executor | None, *,
                 viseme_set: str = "oculus", backend: str = "auto") -> None:
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.executor = executor
        self.viseme_set = viseme_set
        self.backend = backend
        self._aligner: StreamAligner | None = None
        self._visemes = VisemeStream(viseme_set)
        self._fed = 0  # samples fed since the last clear: the LipSync clock
        self._aligner_at = 0  # LipSync-clock sample where the current StreamAligner started
        self._words_sent = 0  # words of the current aligner already announced
        self._last_end: int | None = None  # end (LipSync clock) announced for the last word
        self._index = 0  # word index across aligners
        self._phones_until = 0.0  # end of the last phone fed to the viseme stream (s)
        self._cleared = False
        self._lock: asyncio.Lock | None = None
        self.pending_tail = False  # cues held back waiting for the next chunk

    async def align(self, audio: bytes, text: str) -> list[dict[str, Any]]:
        """The events for one chunk, computed in the executor (see the module docstring).

        Calls run one at a time in call order (an asyncio lock, first come first served)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, self.align_now, audio, text)

    @property
    def busy(self) -> bool:
        """True while a chunk is being aligned or waits to be (then :meth:`flush` must wait)."""
        return self._lock is not None and self._lock.locked()

    def clear(self) -> None:
        """A ``clear``: the next chunk starts a new utterance (safe while a chunk is aligning)."""
        self._cleared = True

    def align_now(self, audio: bytes, text: str) -> list[dict[str, Any]]:
        """Like :meth:`align`, in the calling thread."""
        if self._cleared:
            self._reset()
        pcm = decode(audio, self.encoding)
        chunk_at = self._fed
        if self._aligner is None:
            self._aligner = StreamAligner(self.sample_rate, backend=self.backend)
            self._aligner_at, self._words_sent, self._last_end = self._fed, 0, None
        result = self._aligner.feed(pcm, text)
        self._fed += len(pcm)
        rate, base = self.sample_rate, self._aligner_at
        events: list[dict[str, Any]] = []
        words = result.words
        first_new = self._words_sent
        if first_new > 0 and first_new <= len(words):  # the last word announced may have grown
            w = words[first_new - 1]
            end = base + round(w.end * rate)
            if end != self._last_end:
                events.append(self._word(self._index - 1, w, base, chunk_at,
                                         w.end <= result.final_until))
                self._last_end = end
        for w in words[first_new:]:
            events.append(self._word(self._index, w, base, chunk_at, w.end <= result.final_until))
            self._index += 1
            self._last_end = base + round(w.end * rate)
        self._words_sent = len(words)
        t0 = base / rate  # phones on the LipSync clock, in seconds
        # phones in order, each after those fed before (a grown word's earlier phones were fed)
        new_phones = [Phone(p.phone, t0 + p.start, t0 + p.end, p.word_index)
                      for p in result.phones if t0 + p.start >= self._phones_until - 1e-6]
        if new_phones:
            self._phones_until = new_phones[-1].end
        cues = self._visemes.feed(new_phones, self._fed / rate)
        events += [self._cue(c, chunk_at) for c in cues]
        self.pending_tail = True
        if result.final_until >= result.duration:  # no word straddles: next chunk starts afresh
            self._aligner = None
        return events

    def flush(self) -> list[dict[str, Any]]:
        """The held-back cues up to the end of the audio fed so far, relative to that end."""
        self.pending_tail = False
        if self._cleared:  # the held-back cues belong to audio that was cleared
            return []
        end = self._fed / self.sample_rate
        return [self._cue(c, self._fed) for c in self._visemes.finish(end)]

    def _reset(self) -> None:
        self._cleared = False
        self._aligner = None
        self._visemes = VisemeStream(self.viseme_set)
        self._fed = self._aligner_at = self._words_sent = 0
        self._last_end = None
        self._phones_until = 0.0
        self.pending_tail = False

    def _word(self, index: int, w, base: int, chunk_at: int, final: bool) -> dict[str, Any]:
        rate = self.sample_rate
        return {"event_type": "word", "index": index, "word": w.word,
                "start_sample": base + round(w.start * rate) - chunk_at,
                "end_sample": base + round(w.end * rate) - chunk_at,
                "sample_rate": rate, "final": final}

    def _cue(self, cue, at: int) -> dict[str, Any]:
        rate = self.sample_rate
        return {"event_type": "viseme", "viseme": cue.viseme,
                "start_sample": round(cue.start * rate) - at,
                "end_sample": round(cue.end * rate) - at,
                "sample_rate": rate, "weight": round(cue.weight, 3)}

