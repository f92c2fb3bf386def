"""StreamAligner: chunk by chunk, words split over chunks, chunk edges as anchors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligner import align
from aligner.errors import AlignmentError
from aligner.speech.stream import StreamAligner
from aligner.speech.synthesis import synthesize

TEXT = "Hello there, I can book that table for you tomorrow at noon."


def _chunks(s, cuts):
    """Split a synthesis at text offsets, cutting the audio at espeak's time for each offset."""
    bounds = [0, *cuts, len(s.text)]
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        out.append(s.text[a:b])
    times = []
    for c in cuts:  # time of the character at offset c: inside its word, proportionally
        w = next(w for w in s.words if w.char_start <= c < w.char_end or w.char_start >= c)
        if w.char_start >= c:
            times.append(w.start)
        else:
            times.append(w.start + (w.end - w.start) * (c - w.char_start) / (w.char_end - w.char_start))
    samples = [0, *[int(t * s.sample_rate) for t in times], len(s.samples)]
    return [(s.samples[a:b], txt) for (a, b), txt in zip(zip(samples, samples[1:], strict=False), out, strict=True)]


def test_mid_word_split_is_one_word_spanning_both_chunks():
    s = synthesize(TEXT)
    cut = TEXT.index("table") + 3  # "tab" | "le for you..."
    chunks = _chunks(s, [TEXT.index("there") + 2, cut])
    sa = StreamAligner(s.sample_rate)
    edge = 0.0
    edges = []
    for pcm, txt in chunks:
        r = sa.feed(pcm, txt)
        edge += len(pcm) / s.sample_rate
        edges.append(edge)
        assert r.final_until <= r.duration
    r = sa.finish()
    assert [w.word for w in r.words] == [w.word for w in align(s.samples, s.sample_rate, TEXT).words]
    table = next(w for w in r.words if w.word == "table")
    assert table.start < edges[1] < table.end
    # Characters of each piece stay in their own chunk.
    i = TEXT.index("table")
    assert r.chars[i + 2].end <= edges[1] + 1e-6 and r.chars[i + 3].start >= edges[1] - 1e-6
    there = next(w for w in r.words if w.word == "there")
    assert there.start < edges[0] < there.end
    err = [abs(w.start - g.start) for w, g in zip(r.words, s.words, strict=True)]
    assert np.mean(err) < 0.04
    assert r.final_until == pytest.approx(r.duration)


def test_final_until_holds_back_only_an_unfinished_word():
    s = synthesize(TEXT)
    chunks = _chunks(s, [TEXT.index("book") + 2])
    sa = StreamAligner(s.sample_rate)
    r1 = sa.feed(*chunks[0])
    book1 = next(w for w in r1.words if w.word == "bo")
    assert r1.final_until == pytest.approx(book1.start)
    r2 = sa.feed(*chunks[1])
    # Everything before final_until is unchanged; the split word grew into chunk 2.
    for a, b in zip(r1.words, r2.words, strict=False):
        if a.end <= r1.final_until:
            assert (a.word, a.start, a.end) == (b.word, b.start, b.end)
    book2 = next(w for w in r2.words if w.word == "book")
    assert book2.start == book1.start and book2.end > r1.duration


def test_a_token_may_go_on_after_punctuation_so_it_is_not_final_yet():
    sa = StreamAligner(16000, backend="fallback")
    r1 = sa.feed(np.zeros(8000, np.int16), "It is 77.")
    assert r1.final_until == pytest.approx(r1.words[-1].start) and r1.final_until < 0.5
    r2 = sa.feed(np.zeros(8000, np.int16), "5 now ")
    assert [w.word for w in r2.words] == ["It", "is", "77.5", "now"]
    assert r2.final_until == 1.0  # ends in whitespace: nothing left open
    assert r2.final_until >= r1.final_until


def test_empty_text_chunks_and_silence_only_chunks():
    sa = StreamAligner(16000)
    r = sa.feed(np.zeros(8000, np.int16), "")
    assert r.words == () and r.duration == 0.5 and r.final_until == 0.5
    r = sa.feed(np.zeros(8000, np.int16), "Are you there?")
    assert [w.word for w in r.words] == ["Are", "you", "there"]
    assert all(0.5 <= w.start <= w.end <= 1.0 for w in r.words)
    r = sa.finish()
    assert r.final_until == 1.0
    with pytest.raises(AlignmentError):
        sa.feed(np.zeros(10, np.int16), "x")


def test_twenty_ms_chunks_with_a_character_each():
    s = synthesize("Okay, see you soon.")
    sa = StreamAligner(s.sample_rate)
    step = int(0.02 * s.sample_rate)
    pieces = [s.samples[i:i + step] for i in range(0, len(s.samples), step)]
    text = s.text
    for k, pcm in enumerate(pieces):
        a = k * len(text) // len(pieces)
        b = (k + 1) * len(text) // len(pieces)
        r = sa.feed(pcm, text[a:b])
    r = sa.finish()
    assert [w.word for w in r.words] == ["Okay", "see", "you", "soon"]
    t = 0.0
    for w in r.words:
        assert t <= w.start <= w.end <= r.duration
        t = w.end


@settings(max_examples=25, deadline=None)
@given(text=st.text(alphabet="ab cd,.!7$", max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=5), noise=st.booleans())
def test_any_chunking_is_monotonic_and_covers(text, cuts, noise):
    bounds = sorted({0, len(text), *[c for c in cuts if c <= len(text)]})
    rng = np.random.default_rng(len(text))
    sa = StreamAligner(8000, backend="fallback")
    prev_final = 0.0
    for a, b in zip(bounds, bounds[1:] or [len(text)], strict=False):
        pcm = (rng.normal(0, 2000, 800 * (1 + b - a)) if noise else np.zeros(800 * (1 + b - a)))
        r = sa.feed(pcm.astype(np.int16), text[a:b])
        assert r.final_until >= prev_final - 1e-9
        prev_final = r.final_until
    r = sa.finish()
    assert r.text == text
    assert [c.char for c in r.chars] == list(text)
    from aligner.speech.text import tokenize

    assert [w.word for w in r.words] == [t.word for t in tokenize(text)]
    t = 0.0
    for w in r.words:
        assert t - 1e-9 <= w.start <= w.end <= r.duration + 1e-9
        t = w.end


def test_a_chunk_too_short_to_align_alone_is_aligned_with_the_chunk_before():
    """A fast neural voice's chunk holding one short word ("the", well under a quarter of a
    second) is aligned with the last second of the chunk before it as context: its word gets a
    confidence like every other word's and stays inside its chunk, near where the voice says
    it."""
    from aligner.audio import resample
    from aligner.speech.stream import SHORT_CHUNK
    from aligner.speech.voices import synthesize as speak

    text = "Thank you so much for calling the Riverside Dental office."
    s = speak(text, "hibari")
    pcm = resample(s.samples, s.sample_rate, 16000)
    w = s.words

    def cut(k: int) -> int:  # between word k - 1 and word k
        return int(round((w[k - 1].end + w[k].start) / 2 * 16000))

    the = [text[x.char_start:x.char_end] for x in w].index("the")
    bounds = [0, cut(the), cut(the + 1), len(pcm)]
    texts = [text[:w[the].char_start], text[w[the].char_start:w[the + 1].char_start],
             text[w[the + 1].char_start:]]
    assert (bounds[2] - bounds[1]) / 16000 < SHORT_CHUNK
    stream = StreamAligner(16000)
    for a, b, t in zip(bounds, bounds[1:], texts, strict=False):
        stream.feed(pcm[a:b], t)
    words = stream.finish().words
    assert all(x.confidence is not None for x in words)
    got = words[the]
    assert got.word == "the" and bounds[1] / 16000 <= got.start < got.end <= bounds[2] / 16000
    assert abs(got.start - w[the].start) < 0.05 and got.confidence > 0.3
