"""The agent's voice: chunks cut at word boundaries, each paired with exactly its text."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from emulator_helpers import AGENT_LINES

from aligner import audio
from aligner.emulator.speaker import SpeechCache, speak
from aligner.speech.voices import VOICES


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize(("encoding", "rate"), [("s16le", 24000), ("mulaw", 8000),
                                                ("s16le", 44100)])
def test_chunks_concatenate_to_the_line_and_cut_between_words(encoding, rate, voice):
    for text in AGENT_LINES:
        line = speak(text, encoding, rate, voice=voice)
        assert "".join(c.text for c in line.chunks) == text
        total = sum(len(audio.decode(c.audio, encoding)) for c in line.chunks)
        assert total == round(line.duration * rate)
        starts = [c.start for c in line.chunks]
        assert starts == sorted(starts) and starts[0] == 0.0
        for prev, chunk in zip(line.chunks, line.chunks[1:], strict=False):
            assert abs(prev.start + prev.duration - chunk.start) < 1 / rate + 1e-9
            # every cut is at a word boundary: a chunk never starts inside a word
            assert not chunk.text or chunk.text[0] != " "
            assert prev.text == "" or prev.text.endswith((" ", ".", ",", "?", "!"))
        # out of the 150-400 ms range only where no word boundary allowed a cut in range
        bounds = [t for (_, _, e), (_, s, _) in zip(line.words, line.words[1:], strict=False)
                  for t in (e, s)]
        for chunk in line.chunks[:-1]:
            if not 0.15 <= chunk.duration <= 0.4:
                lo, hi = chunk.start + 0.15, chunk.start + 0.4
                assert not [t for t in bounds if lo + 0.002 < t < hi - 0.002], chunk.text


@pytest.mark.parametrize("voice", VOICES)
def test_each_chunk_holds_the_audio_of_its_words(voice):
    """A chunk whose text is a word has voiced audio; an empty-text chunk is a pause; every
    word sounds inside the chunk that carries its text."""
    line = speak(AGENT_LINES[0], "s16le", 16000, voice=voice)
    for chunk in line.chunks:
        pcm = audio.decode(chunk.audio, "s16le").astype(np.float64)
        rms = np.sqrt(np.mean(pcm ** 2))
        if chunk.text.strip():
            assert rms > 500, chunk
        else:
            assert rms < 300, chunk
    assert any(not c.text for c in line.chunks)  # the sentence pause is its own chunk
    offsets = [0]
    for chunk in line.chunks:
        offsets.append(offsets[-1] + len(chunk.text))
    pos = 0
    for i, (word, start, end) in enumerate(line.words):
        pos = line.text.index(word, pos)
        k = next(i for i in range(len(line.chunks)) if offsets[i] <= pos < offsets[i + 1])
        chunk_end = line.chunks[k].start + line.chunks[k].duration
        # (espeak-ng lets a word run into the closure of a stop starting the next one: the
        # cut between them may fall anywhere in that overlap)
        overlap_before = i > 0 and start < line.words[i - 1][2]
        overlap_after = i + 1 < len(line.words) and line.words[i + 1][1] < end
        assert start < end, word
        assert line.chunks[k].start - 1e-3 <= start or overlap_before, word
        assert end <= chunk_end + 1e-3 or overlap_after, word
        pos += len(word)


def test_split_words_cuts_inside_words_and_splits_text_by_phones():
    text = AGENT_LINES[1]
    line = speak(text, "s16le", 16000, split_words=True, chunk_min_ms=150, chunk_max_ms=250)
    assert "".join(c.text for c in line.chunks) == text
    durations = [c.duration for c in line.chunks[:-1]]
    assert max(durations) - min(durations) < 0.01  # fixed-size cuts
    words = set(text.replace(",", " ").replace(".", " ").replace("?", " ").split())
    cut_inside = [c.text for c in line.chunks[:-1]
                  if c.text and c.text[-1].isalpha() and c.text.split()[-1] not in words]
    assert cut_inside


@pytest.mark.parametrize("voice", VOICES)
def test_word_times_are_ordered_and_inside_the_line(voice):
    line = speak(AGENT_LINES[2], "mulaw", 8000, voice=voice)
    assert [w for w, _, _ in line.words] == AGENT_LINES[2].split()
    for (_, s0, e0), (_, s1, e1) in zip(line.words, line.words[1:], strict=False):
        assert s0 < e0 and s0 < s1 and e0 < e1
    assert line.words[-1][2] <= line.duration + 1e-6


async def test_cache_synthesises_once_for_concurrent_calls():
    cache = SpeechCache()
    lines = await asyncio.gather(*[cache.speak(AGENT_LINES[3], "s16le", 16000)
                                   for _ in range(20)])
    assert all(line is lines[0] for line in lines)
    other = await cache.speak(AGENT_LINES[3], "mulaw", 8000)
    assert other is not lines[0] and other.text == lines[0].text
