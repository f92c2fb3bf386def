"""The call as heard, for the video: a mono mix that never clips, or stereo, read block by block.

WAV tracks (16-bit mono PCM at the track's rate) are read a block at a time rather than loaded,
so a one-hour call costs no memory; other files are decoded with :meth:`AudioTrack.load`.

>>> import numpy as np
>>> from aligner.timeline import AudioTrack, Timeline
>>> loud = np.full(8, 30000, np.int16)
>>> tl = Timeline(audio=(AudioTrack("agent", 8000, samples=loud),
...                      AudioTrack("user", 8000, samples=loud)), duration=0.001)
>>> AudioMix(tl, None, stereo=False).read(0, 2).tolist()     # scaled, not clipped
[32767, 32767]
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from aligner.timeline import Timeline

__all__ = ["AudioMix"]

log = logging.getLogger(__name__)


class AudioMix:
    """The call as heard, read block by block: a mono mix scaled as a whole if the sum of the
    tracks would clip (never clipped), or stereo with the agent left and the user right.

    ``rate`` is the highest track rate (24000 without tracks); other tracks are resampled.
    """

    def __init__(self, timeline: Timeline, base: Path | None, stereo: bool) -> None:
        from aligner.audio import resample

        tracks = [t for t in timeline.audio if t.speaker in ("agent", "user")]
        self.rate = max((t.sample_rate for t in tracks), default=24000)
        self.stereo = stereo
        self.tracks: dict[str, Any] = {}  # speaker -> int16 array or _WavData
        for t in tracks:
            pcm = _open_pcm(t, base)
            if t.sample_rate != self.rate:  # rare: both tracks normally share the call's rate
                pcm = resample(np.asarray(pcm[0:len(pcm)]), t.sample_rate, self.rate)
            self.tracks[t.speaker] = pcm
        self.gain = 1.0
        if not stereo and len(self.tracks) > 1:
            peak = 0
            n = max(len(a) for a in self.tracks.values())
            for s in range(0, n, self.rate * 10):
                peak = max(peak, int(np.abs(self._sum(s, min(n, s + self.rate * 10))).max(initial=0)))
            if peak > 32767:
                self.gain = 32767 / peak
                log.info("mix would clip (peak %d): scaled by %.3f", peak, self.gain)

    def _part(self, speaker: str, start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, np.int32)
        a = self.tracks.get(speaker)
        if a is not None and start < len(a):
            seg = a[start:min(stop, len(a))]
            out[:len(seg)] = seg
        return out

    def speaker(self, speaker: str, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of one speaker's track (int16, zeros where it has none)."""
        return self._part(speaker, start, stop).astype(np.int16)

    def _sum(self, start: int, stop: int) -> np.ndarray:
        return self._part("agent", start, stop) + self._part("user", start, stop)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` as int16: mono, or interleaved stereo (agent left, user right)."""
        if self.stereo:
            both = np.stack([self._part("agent", start, stop), self._part("user", start, stop)], 1)
            return both.astype(np.int16).reshape(-1)
        mix = self._sum(start, stop)
        if self.gain < 1.0:
            mix = np.round(mix * self.gain)
        return np.clip(mix, -32768, 32767).astype(np.int16)


class _WavData:
    """The samples of a 16-bit mono PCM WAV, read from disk slice by slice (never all held).

    Not memory-mapped either: mapped pages that were read stay in the process's resident set.
    """

    def __init__(self, path: Path, offset: int, count: int) -> None:
        self.path, self.offset, self.count = path, offset, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, item: slice) -> np.ndarray:
        start, stop, _ = item.indices(self.count)
        if stop <= start:
            return np.zeros(0, np.int16)
        with open(self.path, "rb") as f:
            f.seek(self.offset + 2 * start)
            data = f.read(2 * (stop - start))
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")


def _open_pcm(track: Any, base: Path | None) -> Any:
    """A track's samples: a PCM16 mono WAV read slice by slice (flat memory), else loaded."""
    if track.samples is None and track.path and track.path.lower().endswith(".wav"):
        p = Path(track.path)
        if base is not None and not p.is_absolute():
            p = Path(base) / p
        data = _wav_data(p, track.sample_rate)
        if data is not None:
            return data
    return track.load(base)


def _wav_data(path: Path, rate: int) -> _WavData | None:
    """The data of a 16-bit mono PCM WAV at ``rate``; None if it is anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            fmt_ok = False
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    tag, channels = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little")
                    srate, bits = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[14:16], "little")
                    fmt_ok = tag in (1, 0xFFFE) and channels == 1 and srate == rate and bits == 16
                elif cid == b"data":
                    if not fmt_ok:
                        return None
                    offset = f.tell()
                    count = max(0, min(size, os.path.getsize(path) - offset) // 2)
                    return _WavData(path, offset, count)
                else:
                    f.seek(size + (size & 1), 1)
    except OSError:
        return None
