"""The acoustic backend: pocketsphinx's front end and model in numpy, adaptation, confidence."""

from __future__ import annotations

import glob
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from aligner import align
from aligner.audio import resample, wav_bytes
from aligner.cli import main
from aligner.speech.acoustic_model import model
from aligner.speech.adaptation import MIN_FRAMES, VoiceProfile, profile_path
from aligner.speech.alignment import time_tokens
from aligner.speech.features import cepstra, features
from aligner.speech.pronounce import token_phones
from aligner.speech.synthesis import synthesize
from aligner.speech.text import tokenize
from aligner.speech.voices import synthesize as speak

SENTENCES = [
    "Thank you for calling Riverside Dental, how can I help you today?",
    "Your appointment is confirmed for Tuesday morning at nine.",
    "Please hold while I look that up in our system.",
    "We have two openings next week, on Monday and on Friday.",
    "Could you spell your last name for me, please?",
    "The total comes to forty two dollars, including tax.",
    "I can transfer you to the billing department right now.",
    "Is there anything else I can help you with today?",
    "She had your dark suit in greasy wash water all year.",
]


def _voice(text: str, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """espeak-ng speech at 16 kHz with its formants and pitch moved by ``shift`` (the samples
    played faster or slower): a voice unlike espeak's own. Returns the samples and where each
    token starts (espeak-ng's word events; its word ends run over the next word's closure)."""
    s = synthesize(text, "en+m3", 150)
    pcm = resample(s.samples, int(round(s.sample_rate * shift)), 16000)
    return pcm, np.array([w.start for w in s.words]) / shift


def _neural(text: str) -> tuple[np.ndarray, np.ndarray]:
    """hibari's neural voice at 16 kHz, and where its words start (its duration predictor)."""
    s = speak(text, "hibari")
    return resample(s.samples, s.sample_rate, 16000), np.array([w.start for w in s.words])


def _starts(spans) -> np.ndarray:
    return np.array([s for s, _ in spans])


def _timing(pcm: np.ndarray, text: str, **kw):
    tokens = tokenize(text)
    return time_tokens(pcm, 16000, text, tokens, [token_phones(t.word) for t in tokens],
                       backend="acoustic", **kw)


def test_front_end_matches_the_features_pocketsphinx_computes(tmp_path):
    from pocketsphinx import Decoder

    with wave.open("samples/user1.wav") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    pcm = resample(pcm, rate, 16000)
    d = Decoder(lm=None, loglevel="FATAL", mfclogdir=str(tmp_path))
    d.set_align_text("hi")
    d.start_utt()
    d.process_raw(pcm.tobytes(), full_utt=True)
    d.end_utt()
    data = Path(glob.glob(str(tmp_path / "*"))[0]).read_bytes()
    # Sphinx feature files: a count of values, then 13 cepstra per frame, in either byte order
    order = "<" if np.frombuffer(data[:4], "<i4")[0] == len(data) // 4 - 1 else ">"
    theirs = np.frombuffer(data[4:], order + "f4").reshape(-1, 13)
    ours = cepstra(pcm)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-3
    assert features(ours).shape == (len(ours), 39)


def test_triphones_and_scores_come_from_the_model():
    m = model()
    inside = m.states("AE", "K", "T", "i")
    alone = m.states("AE", "SIL", "SIL", "s")
    assert [s for s, _, _ in inside] != [s for s, _, _ in alone]  # context-dependent senones
    assert all(stay < 0 and go < 0 for _, stay, go in inside)
    pcm, _ = _voice("see", 1.0)
    feats = features(cepstra(pcm))
    iy = [s for s, _, _ in m.states("IY", "S", "SIL", "e")]
    aa = [s for s, _, _ in m.states("AA", "S", "SIL", "e")]
    iy_score, aa_score = m.scores(feats, iy, aa)
    vowel = slice(len(feats) // 2, len(feats) // 2 + 10)  # the vowel of "see"
    assert iy_score[vowel].max(1).mean() > aa_score[vowel].max(1).mean()


def test_densities_match_the_gaussians_written_out_in_double_precision():
    """The one-product float32 densities agree with log N(x; mean, variance) summed per
    dimension in float64, for every Gaussian near enough to a frame to count in its mixture."""
    m = model()
    pcm, _ = _neural(SENTENCES[2])
    feats = features(cepstra(pcm))
    variances = 1.0 / m.precisions
    for stream in range(3):
        got = m.densities(feats, stream).transpose(2, 0, 1)  # (frames, codebooks, 128)
        x = feats[::7, 13 * stream:13 * (stream + 1)].astype(np.float64)
        mean, var = m.means[:, stream], variances[:, stream]  # (codebooks, 128, 13)
        want = -0.5 * (np.log(2 * np.pi * var)[None]
                       + (x[:, None, None, :] - mean[None]) ** 2 / var[None]).sum(-1)
        near = want > want.max(2, keepdims=True) - 160  # what the mixtures count
        assert np.abs(got[::7] - want)[near].max() < 0.01


def test_adaptation_statistics_sum_every_gaussians_posterior():
    """The statistics gathered from the (codebook, frame) pairs that hold a frame's posterior
    equal the sums over every Gaussian of every frame, written out from their definition: each
    senone's occupancy split over its Gaussians by their weighted densities."""
    m = model()
    pcm, _ = _neural(SENTENCES[3])
    feats = features(cepstra(pcm))
    senones = np.unique([s for ph in ("W", "IY", "HH", "AE", "V", "T", "UW", "OW", "P", "N")
                         for s, _, _ in m.states(ph, "SIL", "SIL", "s")])
    _, mixtures = m.scores(feats, senones, keep=True)
    rng = np.random.default_rng(0)
    occupancy = rng.dirichlet(np.full(len(senones), 0.05), len(feats))  # peaky, like posteriors
    occ, sx = mixtures.gaussian_sums(occupancy, feats)
    for s, (relative, table, mix) in enumerate(mixtures.streams):
        share = np.zeros(mix.shape)  # (books, slots, frames)
        share[mixtures.rows, mixtures.slots] = occupancy.T / mix[mixtures.rows, mixtures.slots]
        per = relative * np.matmul(table.transpose(0, 2, 1), share)  # (books, 128, frames)
        want_occ = per.sum(2)
        want_sx = np.matmul(per, feats[:, 13 * s:13 * (s + 1)])
        assert np.abs(occ[s] - want_occ).max() < 1e-3 * want_occ.max()
        assert np.abs(sx[s] - want_sx).max() < 1e-3 * np.abs(want_sx).max()
        assert abs(occ[s].sum() - len(feats)) < 1e-3 * len(feats)  # every frame's whole mass


def test_a_neural_voice_is_timed_by_the_acoustic_backend_closely():
    text = SENTENCES[0]
    pcm, truth = _neural(text)
    result = align(pcm, 16000, text)
    assert result.backend == "acoustic"
    got = np.array([w.start for w in result.words])
    assert np.median(np.abs(got - truth)) < 0.03
    assert all(w.confidence is not None and 0 <= w.confidence <= 1 for w in result.words)
    assert not result.mismatch
    # phones come from the search itself: each word's first phone starts at the word
    first = {p.word_index: p for p in reversed(result.phones) if p.word_index >= 0}
    assert all(abs(first[k].start - w.start) < 1e-6 for k, w in enumerate(result.words))


def test_adaptation_improves_a_held_out_utterance_of_its_voice():
    shift = 0.8
    profile = VoiceProfile("agent")
    for text in SENTENCES[1:]:
        pcm, _ = _voice(text, shift)
        profile.learn(_timing(pcm, text, learn=True).stats)
    assert profile.frames >= MIN_FRAMES and profile.transform is not None
    text = SENTENCES[0]
    pcm, truth = _voice(text, shift)
    cold = _timing(pcm, text)
    warm = _timing(pcm, text, profile=profile)
    assert warm.adapted and not cold.adapted
    cold_err = np.abs(_starts(cold.spans) - truth).mean()
    warm_err = np.abs(_starts(warm.spans) - truth).mean()
    assert warm_err < cold_err


def test_a_profile_of_another_voice_never_makes_a_clip_worse():
    other = VoiceProfile("other")
    for text in SENTENCES[1:5]:
        pcm, _ = _voice(text, 1.3)  # another voice: formants 30% higher
        other.learn(_timing(pcm, text, learn=True).stats)
    text = SENTENCES[0]
    pcm, truth = _voice(text, 0.8)
    cold = _timing(pcm, text)
    guarded = _timing(pcm, text, profile=other)
    if guarded.adapted:  # used only where it explains the clip better than the model alone
        assert np.abs(_starts(guarded.spans) - truth).mean() <= (
            np.abs(_starts(cold.spans) - truth).mean() + 0.002)
    else:
        assert guarded.spans == cold.spans


def test_a_voice_profile_round_trips_through_its_file(tmp_path):
    profile = VoiceProfile("agent_42")
    for text in SENTENCES[:3]:
        pcm, _ = _voice(text, 0.9)
        profile.learn(_timing(pcm, text, learn=True).stats)
    path = profile_path(tmp_path, "agent/42 voice")
    assert path.parent == tmp_path and "/" not in path.name[:-5]
    profile.save(path)
    back = VoiceProfile.load(path)
    assert (back.key, back.frames, back.clips) == ("agent_42", profile.frames, 3)
    for a, b in zip(back.transform.matrices, profile.transform.matrices, strict=True):
        assert np.allclose(a, b)
    assert VoiceProfile.load(tmp_path / "nobody.json").frames == 0
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError):
        VoiceProfile.load(tmp_path / "bad.json")


def test_confidence_is_lower_on_noise_than_on_speech():
    text = SENTENCES[3]
    pcm, _ = _neural(text)
    speech = align(pcm, 16000, text, backend="acoustic")
    noise = np.random.default_rng(0).normal(0, 2000, len(pcm)).astype(np.int16)
    heard = align(noise, 16000, text, backend="acoustic")
    assert heard.confidence < speech.confidence
    assert heard.mismatch and not speech.mismatch


def test_text_that_the_audio_does_not_say_is_flagged(tmp_path, capsys):
    pcm, _ = _neural(SENTENCES[2])
    assert align(pcm, 16000, SENTENCES[6]).mismatch
    assert not align(pcm, 16000, SENTENCES[2]).mismatch
    assert align(pcm[: len(pcm) // 3], 16000, SENTENCES[2]).mismatch  # audio cut short
    german = synthesize("Guten Morgen, wie geht es Ihnen heute?", "de")
    assert align(german.samples, german.sample_rate, "Good morning, how are you today?").mismatch
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(pcm, 16000))
    assert main(["align", str(path), "--text", SENTENCES[6]]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["mismatch"] is True
    assert "does not seem to say the text" in out.err


def test_cli_voice_profile_learns_and_is_saved(tmp_path, capsys):
    profile = tmp_path / "voices" / "agent.json"
    profile.parent.mkdir()
    for i, text in enumerate(SENTENCES[:2]):
        pcm, _ = _voice(text, 0.85)
        path = tmp_path / f"{i}.wav"
        path.write_bytes(wav_bytes(pcm, 16000))
        assert main(["align", str(path), "--text", text, "--voice-profile", str(profile),
                     "--backend", "acoustic"]) == 0
        assert VoiceProfile.load(profile).clips == i + 1
    assert "of speech learned" in capsys.readouterr().err
    # the same recording aligned again uses the profile and teaches it nothing more
    before = VoiceProfile.load(profile)
    assert main(["align", str(path), "--text", text, "--voice-profile", str(profile),
                 "--backend", "acoustic"]) == 0
    after = VoiceProfile.load(profile)
    assert (after.clips, after.frames) == (before.clips, before.frames) == (2, before.frames)
    assert "learned from this audio already" in capsys.readouterr().err


def test_cli_runs_at_once_on_one_voice_profile_all_count(tmp_path):
    """Two ``aligner align`` processes end at once with the same profile: each adds its clip
    (a run that saved the profile it read at its start would drop the other's)."""
    import subprocess
    import sys

    profile = tmp_path / "agent.json"
    runs = []
    for i, text in enumerate(SENTENCES[:2]):
        pcm, _ = _voice(text, 0.85)
        path = tmp_path / f"{i}.wav"
        path.write_bytes(wav_bytes(pcm, 16000))
        runs.append(subprocess.Popen(
            [sys.executable, "-m", "aligner", "align", str(path), "--text", text,
             "--voice-profile", str(profile), "--backend", "acoustic"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    assert [run.wait(120) for run in runs] == [0, 0], [run.stderr.read() for run in runs]
    stored = VoiceProfile.load(profile)
    assert stored.clips == 2 and len(stored.sources) == 2


def test_adapt_aligns_twice_on_the_clips_own_voice():
    text = " ".join(SENTENCES[:4])
    pcm, truth = _neural(text)
    once = align(pcm, 16000, text, backend="acoustic")
    twice = align(pcm, 16000, text, backend="acoustic", adapt=True)
    assert twice.adapted and not once.adapted
    err = [np.abs(np.array([w.start for w in a.words]) - truth).mean() for a in (once, twice)]
    assert err[1] <= err[0] + 0.001


def test_a_long_clip_the_model_fits_poorly_is_still_aligned_in_order():
    """19 s of a voice far from the model's: the posteriors need the log-domain sums (the
    scaled ones underflow), and the words must still follow the speech, not pile up."""
    text = " ".join(SENTENCES[:4])
    pcm, truth = _voice(text, 0.8)
    result = align(pcm, 16000, text, backend="acoustic")
    assert result.backend == "acoustic"  # not handed to the fallback
    starts = np.array([w.start for w in result.words])
    # espeak-ng's speech varies from call to call: measured medians 0.06-0.16 s; posteriors
    # spread evenly where the log-domain sums should have been used give 0.5 s
    assert np.median(np.abs(starts - truth)) < 0.25
    assert starts[-1] > 0.8 * truth[-1]


def test_a_profile_that_keeps_fitting_is_checked_now_and_then():
    from aligner.speech.adaptation import CHECK_EVERY, TRUSTED_AFTER

    p = VoiceProfile("agent")
    for _ in range(TRUSTED_AFTER):
        assert p.should_check()
        p.checked(True)
    skipped = 0
    while not p.should_check():  # trusted: clips go unchecked ...
        p.checked(None)
        skipped += 1
    assert skipped == CHECK_EVERY - 1  # ... until every CHECK_EVERY-th
    p.checked(False)  # a check that prefers the model alone: every clip is checked again
    assert p.should_check()
    p.checked(True)
    assert p.should_check()


def test_the_scaled_forward_backward_gives_the_exact_log_domain_sums(monkeypatch):
    """The fast pass (emissions relative to each frame's best, mass rescaled every frame, on
    the band of states that hold forward mass) gives the posteriors and the likelihood the
    log-domain sums over every state give, without falling back to them, and its bands are a
    small part of the graph."""
    import aligner.speech.backends.acoustic as acoustic
    from aligner.speech.signal import dither

    exact_sums = acoustic._log_forward_backward

    def no_fallback(*args, **kwargs):
        raise AssertionError("the scaled pass fell back to the log domain")

    monkeypatch.setattr(acoustic, "_log_forward_backward", no_fallback)
    m = model()
    for text in (SENTENCES[4], " ".join(SENTENCES[4:7])):
        pcm, _ = _neural(text)
        tokens = tokenize(text)
        g, _ = acoustic._build(m, tokens, [token_phones(t.word) for t in tokens])
        senones, inv = np.unique(np.asarray(g.senone), return_inverse=True)
        (scores,) = m.scores(features(cepstra(dither(pcm))), senones)
        edges = acoustic._edges_of(g)
        fast, fast_loglik = acoustic._forward_backward(g, scores, inv, edges)
        exact, exact_loglik = exact_sums(g, scores[:, inv], edges)
        assert np.abs(fast.dense() - exact.dense()).max() < 1e-8
        assert abs(fast_loglik - exact_loglik) < 1e-9 * abs(exact_loglik)
        assert acoustic._forward_backward(g, scores, inv, edges, backward=False) == (
            None, fast_loglik)
        per_frame = np.bincount(fast.frame, minlength=len(scores))
        assert per_frame.min() >= 1 and per_frame.mean() < 0.25 * len(inv)


def test_a_words_first_phone_is_in_the_context_of_what_it_follows():
    """A word's first phone has a version for each phone it can follow, entered only from
    there: the last phone of each pronunciation of the word before it, and silence (from a
    pause). The clip's first word follows silence only."""
    import aligner.speech.backends.acoustic as acoustic

    m = model()
    tokens = tokenize("Fine. Thanks")
    g, segments = acoustic._build(m, tokens, [token_phones(t.word) for t in tokens])
    _, fine, pause, thanks = segments[:4]
    assert {last for _, _, last in fine.exits} == {"N", "AH"}  # F AY N, F IH N AH
    assert m.states("TH", "N", "AE", "b")[0][0] != m.states("TH", "SIL", "AE", "b")[0][0]
    followed = set()
    for e, follows in thanks.entries:
        if g.variant[e] != 0:  # TH AE NG K S (the others spell it)
            continue
        for left in follows:
            assert g.senone[e] == m.states("TH", left, "AE", "b")[0][0]
        came_from = {a for a, _ in g.preds[e] if a != e}
        assert came_from == ({a for a, _, last in fine.exits if last in follows}
                             | {a for a, _, _ in pause.exits if "SIL" in follows})
        followed |= follows
    assert followed == {"N", "AH", "SIL"}
    first = {g.senone[e] for e, _ in fine.entries if g.variant[e] == 0}
    assert first == {m.states("F", "SIL", "AY", "b")[0][0]}


def test_a_long_clip_is_cut_where_the_models_own_pass_finds_the_pauses(monkeypatch):
    """A clip over the long limit is cut into pieces at the pauses the context-independent
    phones' pass over the whole clip finds: no other aligner is asked (the anchors given are
    only for when that pass finds no path), and the words are timed as well as uncut."""
    import aligner.speech.backends.acoustic as acoustic

    text = " ".join(SENTENCES[:4])
    pcm, truth = _neural(text)
    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    whole = acoustic.align_tokens(pcm, tokens, prons)
    pieces = []
    real_piece = acoustic._align_piece
    monkeypatch.setattr(acoustic, "_align_piece", lambda m, feats, *args, **kwargs: (
        pieces.append(len(feats)) or real_piece(m, feats, *args, **kwargs)))
    monkeypatch.setattr(acoustic, "_LONG", 8.0)  # this ~19 s clip is then long: ~4 s pieces
    monkeypatch.setattr(acoustic, "_PIECE", 4.0)

    def not_asked():
        raise AssertionError("the anchors given were asked for")

    cut = acoustic.align_tokens(pcm, tokens, prons, anchors=not_asked)
    assert len(pieces) >= 3 and sum(pieces) <= len(pcm) / 160 + 2 * len(pieces)
    errors = [np.abs(_starts(r.spans) - truth).mean() for r in (whole, cut)]
    assert errors[1] < errors[0] + 0.005 and errors[1] < 0.05, errors
    # where that pass finds no path, the anchors given decide the cuts
    monkeypatch.setattr(acoustic, "_anchor_spans", lambda *args: None)
    asked = []
    given = acoustic.align_tokens(pcm, tokens, prons,
                                  anchors=lambda: asked.append(1) or list(cut.spans))
    assert asked == [1] and np.abs(_starts(given.spans) - truth).mean() < 0.05


def test_a_long_pieces_statistics_gathered_block_by_block_are_the_same(monkeypatch):
    """Adaptation statistics of a piece too long to keep its mixtures are gathered block by
    block from the same alignment: the same normal equations."""
    import aligner.speech.backends.acoustic as acoustic

    text = SENTENCES[0]
    pcm, _ = _neural(text)
    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    whole = acoustic.align_tokens(pcm, tokens, prons, learn=True)
    monkeypatch.setattr(acoustic, "_KEPT", 60)  # this ~4 s clip is then "long": 7 blocks
    blocks = acoustic.align_tokens(pcm, tokens, prons, learn=True)
    assert blocks.spans == whole.spans and blocks.stats["frames"] == whole.stats["frames"]
    for key in ("G", "k"):
        scale = np.abs(whole.stats[key]).max()
        assert np.abs(blocks.stats[key] - whole.stats[key]).max() < 1e-4 * scale


@pytest.mark.parametrize("text", ["They sailed around the hull.", "Call me tomorrow."])
def test_a_last_word_ends_where_its_sound_does_not_where_its_echo_fades(text):
    """The last word's sound goes on, 25 dB down, for 0.4 s (a room's tail, a fading voice): the
    model hears more of the same phone there, and the word must still end where its energy
    falls, even when that is before the middle of the phone the model stretched."""
    s = speak(text, "hibari")
    pcm = resample(s.samples, s.sample_rate, 16000).astype(np.float64)
    end = s.words[-1].end
    tail = pcm[int((end - 0.08) * 16000):int(end * 16000)]
    clip = np.concatenate([pcm[:int(end * 16000)], np.tile(tail, 5) * 10 ** (-25 / 20),
                           np.zeros(1600)])
    result = align(clip.astype(np.int16), 16000, text, backend="acoustic")
    assert abs(result.words[-1].end - end) < 0.06


def test_a_pause_inside_a_clip_is_an_utterance_edge_too():
    """Two sentences with a pause between them in one clip: the first one's last sound fades
    on, 25 dB down, for 0.4 s (a room's tail), and the second is led in by 60 ms of its first
    sound at the same level (a breath, a smack). The words beside the pause are timed as at a
    clip's edges: the one before it ends where its sound does, the one after starts where its
    sound does."""
    first, second = (speak(t, "hibari") for t in ("They sailed around the hull.",
                                                   "Always call me tomorrow."))
    a = resample(first.samples, first.sample_rate, 16000).astype(np.float64)
    b = resample(second.samples, second.sample_rate, 16000).astype(np.float64)
    end, start = first.words[-1].end, second.words[0].start
    tail = a[int((end - 0.08) * 16000):int(end * 16000)]
    lead = b[int(start * 16000):int((start + 0.06) * 16000)]
    before = np.concatenate([a[:int(end * 16000)], np.tile(tail, 5) * 10 ** (-25 / 20),
                             np.zeros(3200), lead * 10 ** (-25 / 20)])
    clip = np.concatenate([before, b[int(start * 16000):]])
    result = align(clip.astype(np.int16), 16000, f"{first.text} {second.text}",
                   backend="acoustic")
    n = len(first.words)
    assert abs(result.words[n - 1].end - end) < 0.04
    assert abs(result.words[n].start - len(before) / 16000) < 0.04
