"""The emulator's voices: one name each, audio with the time of every word, checked on the audio."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from aligner.speech import hibari_synthesis
from aligner.speech.voices import VOICES, check, synthesize

TEXT = "Hello there, the total is $42.50. See you at 3:30 pm on Tuesday!"
# Word boundaries where a vowel meets a voiceless consonant: voicing stops where the word starts.
FALLS = "I see two cats. She saw a few fish, so pay to keep the photo safe. We tie a shoe too."
VOWEL_END = {"I", "see", "two", "She", "saw", "a", "few", "so", "pay", "to", "the", "photo",
             "We", "tie", "shoe"}


def _frames_db(x: np.ndarray, rate: int, hop: float = 0.0025, width: float = 0.02,
               below: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame centre times and energy (dB; only under ``below`` Hz if given) of Hann frames."""
    w, h = int(width * rate), int(hop * rate)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), w)[::h] * np.hanning(w)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    if below is not None:
        power = power[:, np.fft.rfftfreq(w, 1 / rate) < below]
    return np.arange(len(frames)) * hop + width / 2, 10 * np.log10(power.sum(1) + 1e-3)


def test_a_voice_is_a_name():
    assert [check(v) for v in VOICES] == list(VOICES)
    assert check("espeak:en-us+f3") == "espeak:en-us+f3"
    for bad in ("en-us", "hibari:emma", "espeak:", ""):
        with pytest.raises(ValueError, match="espeak, hibari"):
            check(bad)


@pytest.mark.parametrize("voice", VOICES)
def test_every_whitespace_token_is_timed_in_order_inside_the_audio(voice):
    s = synthesize(TEXT, voice)
    assert [TEXT[w.char_start:w.char_end] for w in s.words] == TEXT.split()
    assert s.words[0].start >= 0.0 and s.words[-1].end <= s.duration
    for a, b in zip(s.words, s.words[1:], strict=False):
        assert a.start < a.end and a.start < b.start and a.end < b.end
        # espeak-ng lets a word's last phone run into the closure of a stop starting the next
        assert a.end <= b.start or voice == "espeak"
    # each word holds loud audio, the pause between the sentences is quiet
    t, db = _frames_db(s.samples, s.sample_rate)
    for w in s.words:
        assert db[(t >= w.start) & (t <= w.end)].max() > db.max() - 20, TEXT[w.char_start:]
    gap = (t > s.words[5].end + 0.02) & (t < s.words[6].start - 0.02)  # after "$42.50."
    assert gap.sum() >= 20 and db[gap].max() < db.max() - 40


def test_hibari_word_starts_sit_where_the_voicing_stops():
    """Where a vowel meets a voiceless consonant across words, the low band's energy falls
    steeply where the second word starts (its closure or frication)."""
    s = synthesize(FALLS, "hibari")
    t, low = _frames_db(s.samples, s.sample_rate, below=900)
    errors = []
    for prev, w in zip(s.words, s.words[1:], strict=False):
        if FALLS[prev.char_start:prev.char_end] in VOWEL_END and w.start - prev.end < 0.01:
            near = (t > w.start - 0.1) & (t < w.start + 0.1)
            k = np.flatnonzero(near)
            fall = low[k[6:]] - low[k[:-6]]  # 15 ms steps
            errors.append(t[k[np.argmin(fall) + 3]] - w.start)
    errors = np.abs(errors)
    assert len(errors) >= 10
    assert np.median(errors) <= 0.015 and np.mean(errors <= 0.02) >= 0.75, errors.round(3)


def test_hibari_words_before_a_pause_end_with_their_sound():
    """The model lets the last phone before a pause run on into it; the word ends with the sound."""
    s = synthesize(TEXT, "hibari")
    t, db = _frames_db(s.samples, s.sample_rate)
    ends = [w.end for w, nxt in zip(s.words, s.words[1:], strict=False) if nxt.start > w.end + 0.05]
    ends.append(s.words[-1].end)
    assert len(ends) >= 2  # "$42.50." and "Tuesday!"
    for end in ends:
        before = (t > end - 0.03) & (t < end - 0.01)
        after = (t > end + 0.02) & (t < end + 0.06)
        assert db[before].max() > db.max() - 40 > db[after].max(), end


def test_hibari_durations_come_out_of_hibaris_own_model_and_phonemiser():
    """The extra output leaves the audio as hibari makes it, and the phonemes as its G2P reads."""
    import hibari

    s = hibari_synthesis.synthesize(TEXT)
    own = hibari.Hibari()(TEXT, seed=0)
    assert np.array_equal(s.samples, np.round(np.clip(own, -1, 1) * 32767).astype(np.int16))
    engine = hibari_synthesis._engine
    for sentence in engine.sentences(TEXT):
        assert engine.phonemes(sentence)[0] == engine.g2p(sentence)
    # the duration units: the audio is as long as the durations say
    assert s.phones[-1].end == pytest.approx(s.duration)
    faster = hibari_synthesis.synthesize(TEXT, speed=1.5)
    assert 0.55 < faster.duration / s.duration < 0.8


def test_hibari_speaks_offline_and_downloads_nothing(tmp_path):
    """No network at run time: sockets fail, hibari's download cache stays empty and
    onnxruntime queues no usage events (it keeps them under ~/.cache unless told not to)."""
    code = ("import socket\n"
            "def refuse(*a, **k): raise OSError('network is off')\n"
            "socket.socket.connect = refuse\n"
            "socket.create_connection = refuse\n"
            "from aligner.speech.voices import synthesize\n"
            "s = synthesize('Offline, as always.', 'hibari')\n"
            "print(len(s.words), s.duration > 1)\n")
    env = {**os.environ, "HIBARI_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "True"]
    assert not list(tmp_path.iterdir())
