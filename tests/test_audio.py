"""aligner.audio: files (a plain 16-bit mono WAV read directly, anything else through FFmpeg), and
samples of any type and layout in, int16 out, read alike by every entry point that takes them."""

from __future__ import annotations

import wave

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from aligner import audio
from aligner.audio import load
from aligner.errors import AudioError
from aligner.speech.recognize import recognize_words
from aligner.speech.synthesis import synthesize
from aligner.visemes import estimate_phones
from aligner.wire.source import CallState, SamplesSource


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


TEXT = "Please hold while I look that up."


@pytest.fixture(scope="module")
def speech():
    s = synthesize(TEXT)
    return audio.resample(s.samples, s.sample_rate, 16000)


def test_int16_passes_as_it_is_and_channels_mix_in_int16_units():
    pcm = np.array([0, 1000, -1000, 32767, -32768], np.int16)
    assert audio.as_int16(pcm) is pcm
    assert audio.as_int16(np.stack([pcm, pcm], 1)).tolist() == pcm.tolist()
    assert audio.as_int16(np.stack([pcm, pcm])).tolist() == pcm.tolist()
    assert audio.as_int16(pcm.astype(np.int32)).tolist() == pcm.tolist()
    assert audio.as_int16(pcm / 32767.0).tolist() == [0, 1000, -1000, 32767, -32767]


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(max_dims=3, max_side=12)))
def test_any_array_gives_int16_mono_or_an_audio_error(x):
    try:
        out = audio.as_int16(x)
    except AudioError:
        return
    assert out.dtype == np.int16 and out.ndim == 1
    assert len(out) == (x.size if x.ndim < 2 else max(x.shape))


@pytest.mark.parametrize("entry", ["encode", "resample", "mix", "source", "phones", "recognize"])
def test_float_audio_means_the_same_everywhere(speech, entry):
    floats = speech / 32768.0  # the same audio, full scale -1..1

    def run(pcm):
        if entry == "encode":
            return audio.decode(audio.encode(pcm, "mulaw"), "mulaw")
        if entry == "resample":
            return audio.resample(pcm, 16000, 8000)
        if entry == "mix":
            return audio.mix(pcm, pcm[:100])
        if entry == "source":
            src = SamplesSource(pcm, 16000)
            src.open(CallState("s16le", 16000))
            return audio.decode(src.read(CallState("s16le", 16000), len(speech)), "s16le")
        if entry == "phones":
            return [p.phone for p in estimate_phones(pcm, 16000)]
        return [w.word for w in recognize_words(pcm, 16000)]

    want, got = run(speech), run(floats)
    if isinstance(want, np.ndarray):  # 1 LSB apart at most (mulaw: one step, 1024 when loud)
        assert np.abs(got.astype(int) - want).max() <= (1024 if entry == "encode" else 2)
        assert np.abs(want).max() > 3000
    else:  # read as int16, float audio was silence: no phones, no words
        assert got == want and len(want) >= 3
