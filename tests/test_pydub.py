"""pydub interop: ``align()`` and the renderers' audio inputs take a ``pydub.AudioSegment``.

pydub is an optional extra; the library never imports it (a subprocess proves it works with
pydub made unimportable).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():  # pydub warns at import when no ffmpeg binary is on PATH
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

import renderers
from aligner import align
from aligner.audio import as_pcm, resample
from aligner.speech.synthesis import synthesize
from aligner.timeline import AudioTrack, Timeline, Utterance, Word

TEXT = "Please bring your photo card, and a pen."


@pytest.fixture(scope="module")
def speech():
    s = synthesize(TEXT)
    return s.samples, s.sample_rate


def _segment(pcm: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> AudioSegment:
    x = pcm.astype(np.int32)
    data = {1: (x >> 8).astype(np.int8), 2: x.astype("<i2"), 4: (x << 16).astype("<i4")}[width]
    data = np.repeat(data, channels)  # the same signal in every channel, interleaved
    return AudioSegment(data=data.tobytes(), sample_width=width, frame_rate=rate,
                        channels=channels)


def test_align_takes_an_audio_segment(speech):
    pcm, rate = speech
    ps = "pocketsphinx"  # deterministic (espeak-ng's reference varies a little run to run)
    want = align(pcm, rate, TEXT, backend=ps)
    got = align(_segment(pcm, rate, channels=2), None, TEXT, backend=ps)  # stereo, own rate
    assert got == want and len(got.words) == 8
    at16 = align(_segment(pcm, rate), 16000, TEXT, backend=ps)  # resampled to the rate asked
    assert at16 == align(resample(pcm, rate, 16000), 16000, TEXT, backend=ps)


@pytest.mark.parametrize("width", [1, 2, 4])
def test_every_sample_width_becomes_int16(speech, width):
    pcm, rate = speech
    got, got_rate = as_pcm(_segment(pcm, rate, width=width))
    assert got.dtype == np.int16 and got_rate == rate and len(got) == len(pcm)
    tolerance = 256 if width == 1 else 0  # 8-bit keeps the top byte only
    assert np.abs(got.astype(np.int32) - pcm).max() <= tolerance


def test_a_renderer_reads_a_segment_track(speech):
    pcm, rate = speech
    # words spread evenly over the clip: the visemes renderer re-times them on the audio
    words = TEXT.split()
    step = len(pcm) / rate / len(words)
    offsets, ws = 0, []
    for i, w in enumerate(words):
        start = TEXT.index(w, offsets)
        offsets = start + len(w)
        core = w.strip(",.")
        ws.append(Word(core, i * step, (i + 1) * step, start, start + len(core)))
    from aligner.speech.alignment import align as _align

    phones = _align(pcm, rate, TEXT, backend="pocketsphinx").phones
    u = Utterance("agent", 0.0, len(pcm) / rate, TEXT, words=tuple(ws), phones=phones)

    def out(samples) -> str:
        tl = Timeline(utterances=(u,), audio=(AudioTrack("agent", rate, samples=samples),),
                      duration=len(pcm) / rate)
        return renderers.get("visemes")().render_string(tl)

    track = AudioTrack("agent", rate, samples=_segment(pcm, rate, channels=2))
    assert isinstance(track.samples, np.ndarray) and np.array_equal(track.samples, pcm)
    assert out(_segment(pcm, rate, channels=2)) == out(pcm)
    assert out(pcm) != out(np.zeros_like(pcm))  # the audio is what the phones are re-timed on


def test_pydub_is_never_required():
    code = ("import sys; sys.modules['pydub'] = None\n"
            "import numpy as np\n"
            "from aligner import align\n"
            "a = align(np.zeros(16000, np.int16), 16000, 'Hello there', backend='fallback')\n"
            "print(len(a.words))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
