"""Backend choice and the permissive path: pause trimming, dithered pocketsphinx, the cost gate."""

import numpy as np

from aligner import align
from aligner.speech.alignment import MAX_REFERENCE_COST, VOICE_SECONDS, time_tokens, voice_verdict
from aligner.speech.backends import reference, sphinx
from aligner.speech.backends.reference import prefix_cost, reference_spans
from aligner.speech.backends.sphinx import acoustic_spans
from aligner.speech.durations import expected_seconds
from aligner.speech.pronounce import token_phones
from aligner.speech.refine import trim_pauses
from aligner.speech.signal import frame_db, speech_mask
from aligner.speech.stream import StreamAligner
from aligner.speech.synthesis import synthesize
from aligner.speech.text import tokenize

TEXT = "Hello there, how are you doing today?"


def _padded(text, seconds=0.4):
    """espeak-ng speech with ``seconds`` of digital silence on both sides, and its word times."""
    s = synthesize(text, "en-us", 150)
    pad = np.zeros(int(seconds * s.sample_rate), np.int16)
    words = [(seconds + w.start, seconds + w.end) for w in s.words]
    return np.concatenate([pad, s.samples, pad]), s.sample_rate, words


def test_trim_pauses_takes_silence_out_of_words_and_keeps_a_stops_closure():
    pcm = np.zeros(16000, np.int16)
    pcm[4000:7200] = 3000  # speech 0.25-0.45 s, a pause, speech 0.6-0.75 s
    pcm[9600:12000] = 3000
    prons = [token_phones("hello"), token_phones("today")]
    spans = trim_pauses([(0.0, 0.55), (0.55, 0.9)], prons, pcm, 16000)
    (a0, a1), (b0, b1) = spans
    assert abs(a0 - 0.25) < 0.01 and abs(a1 - 0.45) < 0.01
    assert abs(b0 - 0.57) < 0.01  # "today" starts with T: it keeps 30 ms of closure
    assert abs(b1 - 0.75) < 0.01
    # A word placed wholly in a pause shares the speech of the next word, in order.
    lost = trim_pauses([(0.0, 0.45), (0.46, 0.5), (0.5, 0.9)],
                       [token_phones("hello"), token_phones("oh"), token_phones("away")],
                       pcm, 16000)
    assert 0.6 - 1e-9 <= lost[1][0] < lost[1][1] <= lost[2][0] < lost[2][1]
    # A word running over the pause and a little into the next word ends where the pause began.
    over = trim_pauses([(0.0, 0.63), (0.63, 0.9)], [token_phones("hello"), token_phones("away")],
                       pcm, 16000)
    assert abs(over[0][1] - 0.45) < 0.01 and abs(over[1][0] - 0.6) < 0.01


def test_pauses_are_taken_back_out_of_pocketsphinx_words():
    pcm, rate, truth = _padded(TEXT)
    tokens = tokenize(TEXT)
    prons = [token_phones(t.word) for t in tokens]
    raw = acoustic_spans(pcm, rate, tokens, prons, plain=True)
    assert all(r is not None for r in raw)
    assert raw[0][0] < 0.2 and raw[-1][1] > truth[-1][1] + 0.2  # words cover the silence
    trimmed = trim_pauses(raw, prons, pcm, rate)
    assert abs(trimmed[0][0] - truth[0][0]) < 0.03
    assert abs(trimmed[-1][1] - truth[-1][1]) < 0.03
    err = [abs(a - b) for sp, g in ((raw, truth), (trimmed, truth))
           for x, y in zip(sp, g, strict=True) for a, b in zip(x, y, strict=True)]
    half = len(err) // 2
    assert np.mean(err[half:]) < np.mean(err[:half]) / 2
    assert all(a <= b <= c for (a, b), (c, _) in zip(trimmed, trimmed[1:], strict=False))
    # The permissive backend does all of it: cut, dither, align, trim.
    result = align(pcm, rate, TEXT, backend="pocketsphinx")
    assert result.backend == "pocketsphinx"
    ours = np.abs(np.array([(w.start, w.end) for w in result.words]) - truth)
    assert np.median(ours) < 0.02 and np.mean(ours) < np.mean(err[:half]) / 2


def test_the_last_word_ends_before_a_faint_tail():
    # Speech ending in 0.1 s of faint noise (36 dB under its peak, over the speech threshold),
    # as voices made from recordings fade out: the tail is not part of the last word.
    s = synthesize(TEXT, "en-us", 150)
    end = s.words[-1].end
    peak = np.percentile(frame_db(s.samples, s.sample_rate), 99)
    tail = np.random.default_rng(0).normal(0, 32768 * 10 ** ((peak - 36) / 20),
                                           int(0.1 * s.sample_rate))
    pcm = np.concatenate([s.samples[:int(end * s.sample_rate)], tail.astype(np.int16),
                          np.zeros(int(0.3 * s.sample_rate), np.int16)])
    assert speech_mask(frame_db(pcm, s.sample_rate))[-39:-31].all()  # the tail is "speech"
    words = align(pcm, s.sample_rate, TEXT, backend="pocketsphinx").words
    assert abs(words[-1].end - end) < 0.02


def test_pocketsphinx_aligns_a_one_word_clip():  # a one-word grammar alone gives no result
    s = synthesize("Okay.", "en-us", 150)
    result = align(s.samples, s.sample_rate, "Okay.", backend="pocketsphinx")
    assert result.backend == "pocketsphinx"  # not the phone-class HMM's times
    (word,), (truth,) = result.words, s.words
    assert abs(word.start - truth.start) < 0.02 and abs(word.end - truth.end) < 0.02


def test_pocketsphinx_reaches_the_last_word():  # its search stopped short of "up" and "it"
    for text in ("Please hold while I look that up.",
                 "I'm sorry, I didn't catch that. Could you repeat it?"):
        s = synthesize(text, "en-us", 150)
        tokens = tokenize(text)
        spans = acoustic_spans(s.samples, s.sample_rate, tokens,
                               [token_phones(t.word) for t in tokens])
        assert all(sp is not None for sp in spans), text
        assert abs(spans[-1][0] - s.words[-1].start) < 0.05


def test_a_chunk_cut_mid_word_gets_no_second_search(monkeypatch):  # latency of a stream
    text = "Please hold while I look that up."
    s = synthesize(text, "en-us", 150)
    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    passes = []
    first_pass = sphinx._first_pass
    monkeypatch.setattr(sphinx, "_first_pass", lambda *a: passes.append(1) or first_pass(*a))
    for partial, searches in (((False, True), 1), ((False, False), 2)):
        passes.clear()
        time_tokens(s.samples, s.sample_rate, text, tokens, prons, backend="pocketsphinx",
                    partial=partial)
        assert len(passes) == searches


def test_a_threads_decoder_is_made_afresh_after_many_added_words(monkeypatch):
    monkeypatch.setattr(sphinx, "_MAX_ADDED", 4)  # each number adds two readings
    monkeypatch.setattr(sphinx._local, "added", 5, raising=False)  # the first call: a new one
    s = synthesize("Room 101", "en-us", 150)
    decoders = []
    for n in range(101, 106):
        text = f"Room {n}"
        tokens = tokenize(text)
        spans = acoustic_spans(s.samples, s.sample_rate, tokens,
                               [token_phones(t.word) for t in tokens])
        assert all(sp is not None for sp in spans)
        decoders.append(sphinx._thread_decoder())
    assert decoders[0] is decoders[1] and decoders[-1] is not decoders[0]


def test_dithered_pocketsphinx_aligns_a_clip_the_same_way_every_time():  # seeded noise
    pcm, rate, _ = _padded(TEXT, 0.1)
    tokens = tokenize(TEXT)
    prons = [token_phones(t.word) for t in tokens]
    first = acoustic_spans(pcm, rate, tokens, prons)
    assert acoustic_spans(pcm, rate, tokens, prons) == first


def test_pocketsphinx_follows_a_token_read_another_way():
    # The text says "4815162342", "Tchaikovsky" and "17:00"; the voice reads the digits one by
    # one, spells the name and says the hour alone, as some synthesisers do. The words around
    # them keep their times.
    for said, text in (("Your order number is 4 8 1 5 1 6 2 3 4 2, thank you.",
                        "Your order number is 4815162342, thank you."),
                       ("I love T C H A I K O V S K Y and Dvorak.",
                        "I love Tchaikovsky and Dvorak."),
                       ("We close at 17 today.", "We close at 17:00 today.")):
        s = synthesize(said, "en-us", 150)
        truth: dict[str, tuple[float, float]] = {}  # first time each word is said
        for w, after in zip(s.words, [*s.words[1:], None], strict=True):
            end = w.end if after is None else min(w.end, after.start)  # as the benchmark does
            truth.setdefault(said[w.char_start:w.char_end].strip(",."), (w.start, end))
        words = align(s.samples, s.sample_rate, text, backend="pocketsphinx").words
        plain = [w for w in words if w.word in truth]  # the words both texts share
        assert len(plain) == len(words) - 1
        # every start, and every end not followed by a pause in ours (espeak's word event gives
        # a short pause after "at" to "at", ours to nobody: which is a convention, not an error)
        gaps = {w.word: b.start - w.end for w, b in zip(words, words[1:], strict=False)}
        errors = [abs(w.start - truth[w.word][0]) for w in plain] + \
            [abs(w.end - truth[w.word][1]) for w in plain if gaps.get(w.word, 0.0) < 0.03]
        assert max(errors) < 0.06, errors


def test_a_voice_unlike_espeaks_is_timed_by_the_acoustic_model():
    s = synthesize(TEXT, "en-us", 150)
    tokens = tokenize(TEXT)
    _, _, cost, _ = reference_spans(s.samples, s.sample_rate, TEXT, tokens)
    assert cost <= MAX_REFERENCE_COST
    assert align(s.samples, s.sample_rate, TEXT).backend == "reference"
    # Played 25% fast, the same speech has another speaker's pitch and formants.
    rate = int(s.sample_rate * 1.25)
    _, _, other, _ = reference_spans(s.samples, rate, TEXT, tokens)
    assert other > MAX_REFERENCE_COST > cost
    result = align(s.samples, rate, TEXT)
    assert result.backend == "acoustic"
    assert align(s.samples, rate, TEXT, backend="reference").backend == "reference"
    truth = np.array([(w.start, w.end) for w in s.words]) * s.sample_rate / rate
    err = np.abs(np.array([(w.start, w.end) for w in result.words]) - truth)
    assert np.median(err) < 0.03


def test_a_stream_judges_the_voice_by_all_its_chunks_so_far():
    s = synthesize(TEXT, "en-us", 150)
    rate = int(s.sample_rate * 1.25)
    tokens = tokenize(TEXT)
    prons = [token_phones(t.word) for t in tokens]
    alone = time_tokens(s.samples, rate, TEXT, tokens, prons)
    assert alone.backend == "acoustic" and alone.cost > MAX_REFERENCE_COST
    # After 30 s of chunks that warped closely, one odd chunk does not change the verdict.
    familiar = time_tokens(s.samples, rate, TEXT, tokens, prons, voice=(1.0 * 30, 30.0))
    assert familiar.backend == "reference" and abs(familiar.cost - alone.cost) < 0.1


def _first_second(text, voice, wpm):
    """espeak-ng speech of ``text`` cut after 1 s, with the text said by then (cut mid-word)."""
    s = synthesize(text, voice, wpm)
    cut = s.sample_rate
    w = next(w for w in s.words if w.end > 1.0)
    c = w.char_start + int(round((1.0 - w.start) / (w.end - w.start) * (w.char_end - w.char_start)))
    return s.samples[:cut], s.sample_rate, text[:c]


def test_a_chunk_cut_mid_word_is_judged_on_its_whole_words():
    pcm, rate, text = _first_second("Your balance is 1,204 dollars and 17 cents.", "en+m3", 200)
    assert text == "Your balance is 1"  # espeak is saying "one thousand" at the cut, not "one"
    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    _, _, whole, _ = reference_spans(pcm, rate, text, tokens)
    _, _, words, _ = reference_spans(pcm, rate, text, tokens, partial=(False, True))
    assert words < MAX_REFERENCE_COST < whole
    assert time_tokens(pcm, rate, text, tokens, prons).backend == "acoustic"
    assert time_tokens(pcm, rate, text, tokens, prons, partial=(False, True)).backend == "reference"
    # A chunk of nothing but word pieces has nothing to judge the voice by.
    piece = tokenize("1,2")
    assert reference_spans(pcm, rate, "1,2", piece, partial=(True, True))[2] is None


def test_a_voice_judged_unlike_espeak_is_not_warped_again():
    s = synthesize(TEXT, "en-us", 150)
    tokens = tokenize(TEXT)
    prons = [token_phones(t.word) for t in tokens]
    unlike = (4.5 * VOICE_SECONDS, VOICE_SECONDS)
    assert voice_verdict(unlike) is False
    timing = time_tokens(s.samples, s.sample_rate, TEXT, tokens, prons, voice=unlike)
    assert timing.backend == "acoustic" and timing.cost is None  # no warp, no cost
    # Not enough evidence yet: this clip's own cost decides (espeak's voice: the reference).
    early = (4.5 * VOICE_SECONDS / 4, VOICE_SECONDS / 4)
    assert time_tokens(s.samples, s.sample_rate, TEXT, tokens, prons,
                       voice=early).backend == "reference"


def test_a_stream_settles_its_verdict_on_the_voice():
    text = f"{TEXT} Please hold while I look that up for you."
    s = synthesize(text, "en-us", 150)
    half = len(s.samples) // 2  # over 1.2 s of speech even played 25% fast
    cut = next(w.char_end for w in s.words if w.end * s.sample_rate >= half) + 1
    feeds = [(s.samples[:half], text[:cut]), (s.samples[half:], text[cut:])]
    for rate, like in ((s.sample_rate, True), (int(s.sample_rate * 1.25), False)):
        sa = StreamAligner(rate)
        assert sa.voice_like_espeak is None
        sa.feed(*feeds[0])
        assert sa.voice_like_espeak is like
        words = sa.feed(*feeds[1]).words
        assert sa.voice_like_espeak is like
        assert [w.word for w in words] == [t.word for t in tokenize(text)]


def test_a_long_clip_unlike_espeak_is_judged_on_its_start_without_the_whole_warp(monkeypatch):
    text = "Thank you for calling Acme Insurance, this is Jordan speaking. How can I help?"
    s = synthesize(text, "en-us", 150)
    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    seconds = [sum(expected_seconds(p) for p in pr) for pr in prons]
    costs = {}
    for rate in (s.sample_rate, int(s.sample_rate * 1.25)):
        mask = speech_mask(frame_db(s.samples, rate))
        costs[rate] = prefix_cost(s.samples, rate, text, tokens, seconds, mask)
    like, unlike = costs[s.sample_rate], costs[int(s.sample_rate * 1.25)]
    assert like <= MAX_REFERENCE_COST < MAX_REFERENCE_COST + 0.2 < unlike
    warped = []  # the number of tokens of each warp (the real one, watched)

    def watched(pcm, rate, text, tokens, *args, **kwargs):
        warped.append(len(tokens))
        return warp(pcm, rate, text, tokens, *args, **kwargs)

    warp = reference.reference_spans
    monkeypatch.setattr(reference, "reference_spans", watched)
    timing = time_tokens(s.samples, int(s.sample_rate * 1.25), text, tokens, prons)
    assert timing.backend == "acoustic" and timing.cost > MAX_REFERENCE_COST + 0.2
    assert len(warped) == 1 and warped[0] < len(tokens) / 2  # the start only
    timing = time_tokens(s.samples, s.sample_rate, text, tokens, prons)
    assert timing.backend == "reference" and timing.cost <= MAX_REFERENCE_COST
    assert warped[1:] == [warped[0], len(tokens)]  # the start, then the whole clip


def test_a_higher_voice_is_warped_against_a_female_reference():
    """espeak-ng's female variants cost too much against the male reference (so they went to
    pocketsphinx); the clip's pitch picks the female reference, and they warp closely."""
    for voice, expected in (("en-us+f3", "en-us+f3"), ("en-us+f2", "en-us+f3"),
                            ("en-us+m3", "en-us"), ("en-us", "en-us")):
        s = synthesize(TEXT, voice, 160)
        assert reference.reference_voice(s.samples, s.sample_rate) == expected, voice
    assert reference.reference_voice(np.zeros(16000, np.int16), 16000) is None  # no pitch
    s = synthesize(TEXT, "en-us+f4", 160)
    tokens = tokenize(TEXT)
    _, _, male, _ = reference_spans(s.samples, s.sample_rate, TEXT, tokens, voice="en-us")
    _, _, female, _ = reference_spans(s.samples, s.sample_rate, TEXT, tokens, voice="en-us+f3")
    assert female <= MAX_REFERENCE_COST < male
    result = align(s.samples, s.sample_rate, TEXT)
    assert result.backend == "reference"
    truth = np.array([(w.start, w.end) for w in s.words])
    err = np.abs(np.array([(w.start, w.end) for w in result.words]) - truth)
    assert np.median(err) < 0.015
    # a stream chooses the female reference on its first chunk and warps every chunk on it (a
    # word warped has its onset; pocketsphinx would leave none)
    stream, cut = StreamAligner(s.sample_rate), s.words[3]
    stream.feed(s.samples[:round(cut.start * s.sample_rate)], TEXT[:cut.char_start])
    stream.feed(s.samples[round(cut.start * s.sample_rate):], TEXT[cut.char_start:])
    words = stream.finish().words
    assert stream.voice_like_espeak and all(w.onset is not None for w in words)
