"""Audio files: a plain 16-bit mono WAV is read directly, anything else through FFmpeg."""

from __future__ import annotations

import wave

import av
import numpy as np
import pytest

from aligner.audio import load
from aligner.errors import AudioError


def _write(path, pcm: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def _ffmpeg(path, rate: int) -> np.ndarray:
    with av.open(str(path)) as c:
        rs = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts = []
        for frame in c.decode(audio=0):
            frame.pts = None
            parts += [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in rs.resample(None)]
    return np.concatenate(parts).astype(np.int16)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (22050, 1), (16000, 2), (8000, 1)])
def test_wav_files_decode_as_ffmpeg_decodes_them(tmp_path, rate, channels):
    rng = np.random.default_rng(3)
    pcm = (rng.standard_normal(rate * channels) * 3000).astype(np.int16)
    path = tmp_path / "clip.wav"
    _write(path, pcm, rate, channels)
    got = load(path, 16000)
    assert got.dtype == np.int16 and np.array_equal(got, _ffmpeg(path, 16000))


def test_missing_and_broken_files_are_clear_errors(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load(tmp_path / "nope.wav", 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError):
        load(bad, 16000)
