"""align(): real espeak-ng speech against espeak's own word times; invariants on odd input."""

import json
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from speech_helpers import long_speech, truth, word_errors

from aligner import align
from aligner.audio import resample, wav_bytes
from aligner.cli import main
from aligner.errors import AlignmentError
from aligner.speech.pronounce import espeak_to_arpabet
from aligner.speech.synthesis import synthesize
from aligner.speech.text import tokenize

SENTENCE = "Hello there, how are you doing today? Your table for 4 costs $42.50 at 7:30pm."


def _boundary_errors(result, synth):
    assert len(result.words) == len(synth.words)
    return np.array([abs(a - b) for w, g in zip(result.words, synth.words, strict=True)
                     for a, b in ((w.start, g.start), (w.end, g.end))])


def _check_invariants(result, text, duration):
    toks = tokenize(text)
    assert [w.word for w in result.words] == [t.word for t in toks]
    assert [(w.char_start, w.char_end) for w in result.words] == [
        (t.char_start, t.char_end) for t in toks]
    assert [c.char for c in result.chars] == list(text)
    t = 0.0
    for w in result.words:
        assert t - 1e-9 <= w.start <= w.end <= duration + 1e-9
        t = w.end
    for seq in (result.chars, result.phones):
        for a, b in zip(seq, seq[1:], strict=False):
            assert a.start <= b.start + 1e-9 and a.end <= b.end + 1e-9
        for c in seq:
            assert 0 <= c.start <= c.end <= duration + 1e-9
    assert all(-1 <= p.word_index < len(result.words) for p in result.phones)
    assert {p.word_index for p in result.phones if p.phone != "sil"} == set(range(len(toks)))


@pytest.mark.parametrize("voice, rate", [("en-us", 175), ("en-us+m3", 140)])
def test_word_boundaries_match_espeak_within_20ms_mostly(voice, rate):
    s = synthesize(SENTENCE, voice, rate)
    result = align(s.samples, s.sample_rate, SENTENCE)
    _check_invariants(result, SENTENCE, s.duration)
    err = _boundary_errors(result, s)
    assert result.backend == "reference"
    assert np.mean(err <= 0.05) >= 0.9 and np.mean(err) < 0.03
    uniform = np.linspace(0, s.duration, len(s.words) + 1)
    assert np.mean(err) < np.mean(np.abs(uniform[:-1] - [g.start for g in s.words]))


def test_phone_onsets_follow_the_speech():
    s = synthesize(SENTENCE, "en+m3", 160)
    onsets = [p.start for p in s.phones if p.word_index >= 0 and espeak_to_arpabet(p.phone)]

    def distances(result):
        starts = np.array([p.start for p in result.phones if p.phone != "sil"])
        return np.array([np.min(np.abs(starts - t)) for t in onsets])

    ours = distances(align(s.samples, s.sample_rate, SENTENCE))
    fallback = distances(align(s.samples, s.sample_rate, SENTENCE, backend="fallback"))
    assert np.mean(ours <= 0.02) >= 0.85
    assert np.median(ours) < np.median(fallback) < 0.03


def test_fallback_without_espeak_beats_the_uniform_baseline_and_keeps_invariants():
    s = synthesize(SENTENCE, "en+m3", 160)
    result = align(s.samples, s.sample_rate, SENTENCE, backend="fallback")
    _check_invariants(result, SENTENCE, s.duration)
    assert result.backend == "fallback"
    err = _boundary_errors(result, s)
    n = len(SENTENCE)
    uniform = np.array([abs(a - b) for t, g in zip(tokenize(SENTENCE), s.words, strict=True)
                        for a, b in ((t.char_start / n * s.duration, g.start),
                                     (t.char_end / n * s.duration, g.end))])
    assert np.median(err) < np.median(uniform) / 2
    # The first word starts with the speech; the pause after "there," lies between words.
    assert abs(result.words[0].start - s.words[0].start) < 0.03
    there, how = result.words[1], result.words[2]
    assert there.end <= s.words[1].end + 0.05 and how.start >= s.words[2].start - 0.05


def test_permissive_backend_uses_pocketsphinx_and_times_every_token():
    text = "I would like to book a table for two people tonight, please."
    s = synthesize(text, "en+m3", 160)
    result = align(s.samples, s.sample_rate, text, backend="pocketsphinx")
    _check_invariants(result, text, s.duration)
    assert result.backend == "pocketsphinx"
    fallback = align(s.samples, s.sample_rate, text, backend="fallback")
    assert np.median(_boundary_errors(result, s)) < np.median(_boundary_errors(fallback, s))
    assert np.mean(_boundary_errors(result, s) <= 0.05) >= 0.75


def test_when_pocketsphinx_loses_its_way_the_fallback_times_every_token():
    text = "Hello there, how are you doing today? Quibbleworth paid $42.50."
    s = synthesize(text, "en+m3", 160)  # pocketsphinx reaches none of these words
    result = align(s.samples, s.sample_rate, text, backend="pocketsphinx")
    _check_invariants(result, text, s.duration)
    assert result.backend in ("pocketsphinx", "fallback")
    assert np.mean(_boundary_errors(result, s) <= 0.05) >= 0.6


def test_long_clip_is_warped_coarse_to_fine():
    text = " ".join([SENTENCE, "Thank you for calling, and have a wonderful afternoon."] * 4)
    s = synthesize(text, "en-us", 150)
    assert s.duration > 31  # above the coarse-to-fine threshold
    result = align(s.samples, s.sample_rate, text)
    _check_invariants(result, text, s.duration)
    starts = np.array([w.start for w in result.words]) - [g.start for g in s.words]
    assert np.median(np.abs(starts)) < 0.02 and np.mean(np.abs(starts) <= 0.05) > 0.9


def test_any_sample_rate_gives_the_same_times():
    s = synthesize("Testing one two three.")
    a = align(s.samples, s.sample_rate, s.text)
    b = align(resample(s.samples, s.sample_rate, 8000), 8000, s.text)
    assert np.max(np.abs([x.start - y.start for x, y in zip(a.words, b.words, strict=True)])) < 0.03


def test_oov_words_are_timed():
    text = "Zorblax quibbleworth frobnicated the xyzzyq."
    s = synthesize(text)
    result = align(s.samples, s.sample_rate, text)
    _check_invariants(result, text, s.duration)
    assert np.mean(_boundary_errors(result, s)) < 0.04


def test_silence_only_and_garbage_audio_still_cover_every_token():
    rng = np.random.default_rng(7)
    for pcm in (np.zeros(16000, np.int16), (rng.normal(0, 3000, 16000)).astype(np.int16),
                np.zeros(320, np.int16), np.zeros(0, np.int16)):
        result = align(pcm, 16000, "Nothing, really, here: 42 things!")
        _check_invariants(result, "Nothing, really, here: 42 things!", len(pcm) / 16000)


def test_empty_text_with_audio():
    s = synthesize("Some speech nobody wrote down.")
    result = align(s.samples, s.sample_rate, "")
    assert result.words == () and result.chars == ()
    assert result.duration == pytest.approx(s.duration)
    assert align(s.samples, s.sample_rate, " ... ").words == ()


def test_bad_arguments_raise_alignment_errors():
    with pytest.raises(AlignmentError):
        align(np.zeros(10, np.int16), 0, "hi")
    with pytest.raises(AlignmentError):
        align(np.zeros(10, np.int16), 16000, "hi", backend="magic")


@pytest.mark.parametrize("rate", [100, 7999, 48001, 16000.0, True])
def test_rates_the_aligner_cannot_use_are_refused_with_the_range(rate):
    from aligner.speech.stream import StreamAligner

    # 100 Hz was accepted and gave zero-length words
    for make in (lambda: align(np.zeros(1000, np.int16), rate, "hello there"),
                 lambda: StreamAligner(rate)):
        with pytest.raises(AlignmentError, match="8000-48000 Hz"):
            make()
    assert align(np.zeros(8000, np.int16), np.int64(8000), "hi").duration == 1.0


def test_other_entry_points_refuse_such_rates_too():
    from aligner.errors import AudioError
    from aligner.session.textless import estimate
    from aligner.speech.recognize import recognize_words
    from aligner.visemes import estimate_phones

    for call in (lambda: recognize_words(np.zeros(100, np.int16), 100),
                 lambda: estimate_phones(np.zeros(100, np.int16), 100),
                 lambda: estimate(np.zeros(100, np.int16), 100)):
        with pytest.raises(AudioError, match="8000-48000 Hz"):
            call()


def test_cli_refuses_a_rate_it_cannot_use_in_one_line(tmp_path, capsys):
    path = tmp_path / "clip.wav"
    s = synthesize("Hello there.")
    path.write_bytes(wav_bytes(s.samples, s.sample_rate))
    assert main(["align", str(path), "--text", "Hello there.", "--rate", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "8000-48000 Hz" in err[0] and "--rate" in err[0]


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet="abcxyz ABC0123456789$%.,!?'-", max_size=60),
       seconds=st.floats(0, 2.0), noise=st.booleans())
def test_monotonic_and_covering_for_any_text_and_audio(text, seconds, noise):
    n = int(seconds * 16000)
    pcm = (np.random.default_rng(n).normal(0, 2000, n) if noise else np.zeros(n)).astype(np.int16)
    result = align(pcm, 16000, text, backend="fallback")
    _check_invariants(result, text, n / 16000)


def test_cli_prints_words_chars_and_phones_as_json(tmp_path, capsys):
    s = synthesize("It costs $42.50, OK?")
    path = tmp_path / "clip.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(s.sample_rate)
        w.writeframes(s.samples.tobytes())
    assert main(["align", str(path), "--text", s.text]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"duration", "confidence", "mismatch", "words", "chars", "phones"}
    assert doc["mismatch"] is False and 0.5 <= doc["confidence"] <= 1
    assert [w["word"] for w in doc["words"]] == ["It", "costs", "$42.50", "OK"]
    assert set(doc["words"][0]) == {"word", "start", "end", "char_start", "char_end",
                                    "confidence"}
    assert set(doc["phones"][0]) == {"phone", "start", "end", "word_index"}
    assert len(doc["chars"]) == len(s.text)
    assert abs(doc["words"][2]["start"] - s.words[2].start) < 0.05
    out = tmp_path / "a.json"
    assert main(["align", str(path), "--text-file", str(tmp_path / "missing.txt")]) == 2
    assert main(["align", str(tmp_path / "nope.wav"), "--text", "x"]) == 2
    (tmp_path / "t.txt").write_text(s.text, encoding="utf-8")
    assert main(["align", str(path), "--text-file", str(tmp_path / "t.txt"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["words"][0]["word"] == "It"


@pytest.mark.parametrize("rate", [11025, 22050, 44100])
def test_analysis_frames_lie_on_the_10_ms_grid_at_every_rate(rate):
    from aligner.speech.backends.hmm import class_features
    from aligner.speech.signal import frame_db

    # a 20 ms burst at 30.00 s: frame 3000 at every rate (a whole number of samples per
    # frame, 220 at 22050 Hz, put it 7 frames late; 110 at 11025 Hz, 27)
    pcm = np.zeros(31 * rate, np.int16)
    at = 30 * rate
    pcm[at - rate // 100: at + rate // 100] = 20000
    for frames in (frame_db(pcm, rate), class_features(pcm, rate)[:, 0]):
        assert len(frames) == 3100
        loud = np.flatnonzero(frames > frames.max() - 3)
        assert loud.min() >= 2998 and loud.max() <= 3002, (loud.min(), loud.max())
    fine = frame_db(pcm, rate, hop=0.0025, window=0.005)  # the refinement's grid
    assert len(fine) == 12400
    assert abs(np.flatnonzero(fine > fine.max() - 3).mean() - 12000) <= 2


@pytest.mark.parametrize("backend", ["reference", "fallback"])
def test_a_long_clip_decoded_at_16k_is_timed_like_at_its_own_rate(backend):
    s = long_speech(40)  # espeak-ng speaks at 22050 Hz
    gt = truth(s)
    median, drift = {}, {}
    for rate in (16000, 22050):
        words = align(resample(s.samples, 22050, rate), rate, s.text, backend=backend).words
        median[rate] = np.median(word_errors([(w.start, w.end) for w in words], s))
        drift[rate] = np.median([w.start - g[0] for w, g in zip(words[-40:], gt[-40:],
                                                                strict=True) if g[0] is not None])
    # frames of 220 samples taken for 10 ms at 22050 Hz: against the reference at 22050 Hz the
    # 16 kHz clip drifted (54 ms median, words 100 ms early at its end); the fallback at 22050
    # Hz put the last words 75-85 ms late, 70 ms median
    assert abs(drift[16000] - drift[22050]) < 0.01, drift
    assert max(median.values()) < (0.01 if backend == "reference" else 0.04), median


def test_the_fallback_keeps_its_way_on_a_long_clip_in_bounded_memory():
    import tracemalloc

    s = long_speech(90)
    pcm = resample(s.samples, 22050, 16000)
    tracemalloc.start()
    try:
        result = align(pcm, 16000, s.text, backend="fallback")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    errors = word_errors([(w.start, w.end) for w in result.words], s)
    # the search looked at every frame x every state (the emissions alone 200 MB for 90 s;
    # 1.8 GB for 210 s) and only 0.15 s around the duration model's times, which was up to
    # 0.7 s off on long clips
    assert peak < 60e6, peak
    assert np.median(errors) < 0.03 and np.mean(errors <= 0.05) > 0.6, np.median(errors)


def test_stereo_and_float_arrays_are_timed_like_the_mono_int16_clip():
    s = synthesize(SENTENCE)
    pcm = s.samples
    mono = align(pcm, s.sample_rate, SENTENCE)
    floats = pcm / 32768.0
    # the int16 stereo mix was read as float audio: clipped, another backend, words 0.3 s off
    # (espeak-ng's reference speech differs by a few samples from one call to the next)
    for same in (np.stack([pcm, pcm], 1), np.stack([pcm, pcm]), pcm.astype(np.int64).tolist(),
                 floats, np.stack([floats, floats], 1).astype(np.float32)):
        result = align(same, s.sample_rate, SENTENCE)
        assert result.backend == mono.backend
        assert max(abs(a.start - b.start) + abs(a.end - b.end)
                   for a, b in zip(result.words, mono.words, strict=True)) < 0.03


@pytest.mark.parametrize("bad", [np.full(100, np.nan), np.zeros((100, 100)),
                                 np.zeros(10, complex), np.full(100, 70000, np.int32),
                                 np.zeros((2, 2, 100), np.int16), ["a", "b"]])
def test_what_is_not_audio_is_refused_with_a_clear_error(bad):
    from aligner.errors import AudioError

    with pytest.raises(AudioError):
        align(bad, 16000, "hello")


def test_characters_and_phones_of_words_that_meet_never_overlap():
    """A word's characters split its span evenly and its phones by their durations; the last of
    each ends exactly where the word does (``start + n * (span / n)`` can land a float step
    after it), so the next word's first character and phone never start before it ends (live
    events in samples round such a step into a whole sample)."""
    from aligner.speech.alignment import assemble
    from aligner.speech.pronounce import token_phones

    text = "yesterday afternoon"  # 9 letters: 0.0425 + 9 * (0.3179 / 9) > 0.3604
    tokens = tokenize(text)
    spans = [(0.0425, 0.3604), (0.3604, 0.9)]
    d = (spans[0][1] - spans[0][0]) / (tokens[0].char_end - tokens[0].char_start)
    assert spans[0][0] + (tokens[0].char_end - tokens[0].char_start) * d != spans[0][1]
    al = assemble(text, tokens, [token_phones(t.word) for t in tokens], spans, 1.0)
    for seq in (al.chars, al.phones):
        assert all(a.end <= b.start for a, b in zip(seq, seq[1:], strict=False))
    assert al.chars[tokens[0].char_end - 1].end == al.words[0].end
    assert [p.end for p in al.phones if p.word_index == 0][-1] == al.words[0].end
