"""Audio codecs of the call (s16le, mulaw), resampling and file decoding with PyAV.

Samples inside the project are mono ``numpy.int16`` arrays; bytes on the wire are in the call's
``audio_encoding``. Resampling and file decoding go through PyAV (FFmpeg's libswresample).

>>> import numpy as np
>>> pcm = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
>>> decode(encode(pcm, "s16le"), "s16le").tolist()
[0, 1000, -1000, 32767, -32768]
>>> len(encode(pcm, "mulaw"))
5
"""

from __future__ import annotations

import functools
import io
import math
import numbers
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AudioError

__all__ = [
    "ENCODINGS",
    "as_int16",
    "MIN_RATE",
    "MAX_RATE",
    "as_pcm",
    "bytes_per_sample",
    "check_rate",
    "decode",
    "duration",
    "encode",
    "frame_count",
    "frame_start",
    "load",
    "mix",
    "resample",
    "wav_bytes",
]

ENCODINGS = ("s16le", "mulaw")
MIN_RATE = 8000
MAX_RATE = 48000

_MULAW_BIAS = 0x84


@functools.cache
def _mulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


@functools.cache
def _mulaw_encode_table() -> np.ndarray:
    # Index: the int16 sample's uint16 bit pattern (65536 entries); value: the mulaw byte.
    # Same arithmetic as the Sun G.711 reference (and CPython's audioop): 14-bit magnitude.
    s = np.arange(65536, dtype=np.int32)
    pcm = np.where(s >= 32768, s - 65536, s) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), pcm)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((pcm >> (seg + 1)) & 0x0F))
    return (uval ^ mask).astype(np.uint8)




_MAX_CHANNELS = 8


def as_int16(samples) -> np.ndarray:
    """Mono int16 samples from an array of audio, whatever its type and layout.

    int16 passes as it is (no copy); other integer types are taken in int16 units (a list of
    Python ints, an int64 array); floats are full scale -1..1 (``1.0`` is 32767; louder is
    clipped); a 2-D array is several channels (its shorter side, at most 8), mixed down by
    their mean before the conversion, so the mix of int16 channels is never mistaken for float
    audio.

    Raises:
        AudioError: not an array of real numbers, more than two dimensions, integer samples
            outside the int16 range (scale 24/32-bit PCM first), NaN or infinite samples.

    >>> as_int16([0, 1000, -1000]).tolist(), as_int16(np.array([0.5, -1.0, 2.0])).tolist()
    ([0, 1000, -1000], [16384, -32767, 32767])
    >>> as_int16(np.array([[1000, 3000], [-1000, -3000]], np.int16)).tolist()  # (frames, 2)
    [2000, -2000]
    """
    x = np.asarray(samples)
    if x.dtype == np.int16 and x.ndim == 1:
        return x
    if x.dtype.kind not in "iuf" or x.ndim > 2:
        raise AudioError(f"samples must be a 1-D or 2-D array of real numbers, got "
                         f"{x.dtype} with shape {x.shape}")
    floating = x.dtype.kind == "f"
    if x.ndim == 2:
        axis = 1 if x.shape[1] <= x.shape[0] else 0
        if x.shape[axis] > _MAX_CHANNELS:
            raise AudioError(f"a {x.shape[0]}x{x.shape[1]} array is not mono or up to "
                             f"{_MAX_CHANNELS} channels of audio")
        x = x.mean(axis=axis)  # float64: in int16 units when the channels were integers
    if floating:
        if not np.isfinite(x).all():
            raise AudioError("samples hold NaN or infinite values")
        return np.rint(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    if len(x) and (x.min() < -32768 or x.max() > 32767):
        raise AudioError(f"integer samples outside the int16 range ({x.min()}..{x.max()}): "
                         "scale 24- or 32-bit PCM to 16 bits first")
    return np.rint(x).astype(np.int16) if x.dtype.kind == "f" else x.astype(np.int16)


def check_encoding(encoding: str) -> str:
    """Return ``encoding`` if it is one the protocol knows, else raise :class:`AudioError`."""
    if encoding not in ENCODINGS:
        raise AudioError(f"unknown audio encoding {encoding!r}; expected one of {ENCODINGS}")
    return encoding


def check_rate(sample_rate: int) -> int:
    """Return ``sample_rate`` (an int) if it is a whole number within 8000–48000 Hz, else raise
    :class:`AudioError`: the range of the protocol, and of what the aligner's analysis works
    on (25 ms windows, mel bands up to 7.6 kHz, pocketsphinx at 16 kHz)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) \
            or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioError(f"sample rate {sample_rate!r} is outside {MIN_RATE}-{MAX_RATE} Hz")
    return int(sample_rate)


def bytes_per_sample(encoding: str) -> int:
    """2 for s16le, 1 for mulaw."""
    return 2 if check_encoding(encoding) == "s16le" else 1


def decode(data: bytes, encoding: str) -> np.ndarray:
    """Decode wire bytes into int16 samples.

    Raises:
        AudioError: unknown encoding, or an odd number of bytes for s16le.
    """
    if check_encoding(encoding) == "s16le":
        if len(data) % 2:
            raise AudioError(f"s16le audio needs an even byte count, got {len(data)} bytes")
        return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
    return _mulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)]


def encode(samples: np.ndarray, encoding: str) -> bytes:
    """Encode samples (int16, or any array :func:`as_int16` takes) into wire bytes."""
    samples = as_int16(samples)
    if check_encoding(encoding) == "s16le":
        return samples.astype("<i2", copy=False).tobytes()
    return _mulaw_encode_table()[samples.view(np.uint16)].tobytes()


def duration(nbytes: int, encoding: str, sample_rate: int) -> float:
    """Seconds of audio in ``nbytes`` bytes of the given encoding and rate."""
    return nbytes / bytes_per_sample(encoding) / sample_rate


def _step(sample_rate: int, hop: float) -> Fraction:
    """Samples per ``hop`` seconds, exactly (220.5 at 22050 Hz for 10 ms)."""
    return Fraction(sample_rate) * Fraction(hop).limit_denominator(1_000_000)


def frame_start(k, sample_rate: int, hop: float):
    """The first sample of frame ``k`` (an int or an integer array) of a grid of ``hop``-second
    frames: ``k * hop * sample_rate`` rounded, so that frame ``k`` is at ``k * hop`` seconds at
    every rate. A whole number of samples per frame, rounded once, drifts where ``hop *
    sample_rate`` is not whole: 220 samples at 22050 Hz are 9.977 ms, 0.48 s early after 210 s.

    >>> frame_start(np.arange(4), 22050, 0.01).tolist(), frame_start(100, 22050, 0.01)
    ([0, 221, 441, 662], 22050)
    """
    step = _step(sample_rate, hop)
    return (2 * k * step.numerator + step.denominator) // (2 * step.denominator)


def frame_count(n_samples: int, sample_rate: int, hop: float) -> int:
    """How many ``hop``-second frames (:func:`frame_start`) start within ``n_samples``.

    >>> frame_count(22050, 22050, 0.01), frame_count(1, 16000, 0.01), frame_count(0, 8000, 0.02)
    (100, 1, 0)
    """
    return max(0, math.ceil((n_samples - Fraction(1, 2)) / _step(sample_rate, hop)))


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono int16 samples with libswresample (PyAV). Output length is exact:
    ``round(len(samples) * to_rate / from_rate)``. Takes any array :func:`as_int16` takes."""
    samples = as_int16(samples)
    if from_rate == to_rate or len(samples) == 0:
        return samples.copy() if from_rate == to_rate else np.zeros(0, np.int16)
    import av

    want = round(len(samples) * to_rate / from_rate)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = from_rate
    rs = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    parts = [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    out = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    if len(out) < want:
        out = np.concatenate([out, np.zeros(want - len(out), np.int16)])
    return out[:want].astype(np.int16, copy=False)


def mix(*tracks: np.ndarray) -> np.ndarray:
    """Sum tracks that start together (the shorter ones padded with silence), clipped; each
    track is any array :func:`as_int16` takes.

    >>> mix(np.array([1000, 30000], np.int16), np.array([500, 30000, 7], np.int16)).tolist()
    [1500, 32767, 7]
    """
    total = np.zeros(max((len(t) for t in tracks), default=0), np.int32)
    for track in tracks:
        track = as_int16(track)
        total[:len(track)] += track
    return np.clip(total, -32768, 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit mono WAV file of int16 ``samples``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


def load(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode any audio file PyAV can read (wav, mp3, ogg, m4a, ...) to mono int16 at ``sample_rate``.

    Raises:
        AudioError: the file is missing or holds no decodable audio stream.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    pcm = _plain_wav(path, sample_rate)
    if pcm is not None:
        return pcm
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"no audio stream in {path}")
            rs = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            parts = []
            for frame in container.decode(audio=0):
                frame.pts = None
                parts += [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
            parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    except av.FFmpegError as exc:
        raise AudioError(f"cannot decode {path}: {exc}") from exc
    return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)


def _plain_wav(path: Path, sample_rate: int) -> np.ndarray | None:
    """The samples of a mono 16-bit PCM WAV file at ``sample_rate``, read without FFmpeg (its
    import costs a per-file tool 0.1 s; PyAV would hand back the very same samples), else None."""
    if path.suffix.lower() != ".wav":
        return None
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, sample_rate):
                return None
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError):
        return None  # WAVE_FORMAT_EXTENSIBLE, float, a damaged header...: FFmpeg decides
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)


def is_audio_segment(audio: Any) -> bool:
    """True for a ``pydub.AudioSegment`` (recognised by its attributes: pydub is optional and
    never imported here)."""
    return all(hasattr(audio, a) for a in ("raw_data", "frame_rate", "sample_width", "channels"))


def as_pcm(audio: Any, sample_rate: int | None = None) -> tuple[Any, int | None]:
    """``(samples, rate)`` of ``audio``: pydub interop for every audio input of the library.

    A ``pydub.AudioSegment`` (8, 16 or 32-bit, any channels) becomes mono int16 samples (its
    channels averaged) at its own rate, or resampled to ``sample_rate`` when one is given. Any
    other ``audio`` (a numpy array...) is returned as it is, with ``sample_rate``. pydub is
    an optional extra (``pip install 'aligner[pydub]'``): nothing here needs it.

    >>> pcm, rate = as_pcm(np.zeros(4, np.int16), 16000)
    >>> rate
    16000

    Raises:
        AudioError: a segment of a sample width other than 1, 2 or 4 bytes.
    """
    if not is_audio_segment(audio):
        return audio, sample_rate
    width, channels = int(audio.sample_width), max(1, int(audio.channels))
    if width not in (1, 2, 4):
        raise AudioError(f"AudioSegment of {width}-byte samples; expected 1, 2 or 4")
    data = np.frombuffer(audio.raw_data, {1: "i1", 2: "<i2", 4: "<i4"}[width])
    data = data[: len(data) // channels * channels].reshape(-1, channels)
    mono = data.mean(axis=1) if channels > 1 else data[:, 0].astype(np.float64)
    mono *= {1: 256.0, 2: 1.0, 4: 1 / 65536}[width]  # to the int16 scale
    pcm = np.clip(np.round(mono), -32768, 32767).astype(np.int16)
    rate = int(audio.frame_rate)
    if sample_rate is not None and sample_rate != rate:
        return resample(pcm, rate, sample_rate), sample_rate
    return pcm, rate
