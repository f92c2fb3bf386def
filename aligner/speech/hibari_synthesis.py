"""Speech synthesis with hibari (``hibari-tts``), a small neural voice, with word and phone times.

hibari is a distillation of Kokoro-82M's ``af_heart`` voice (American English, female; Apache-2.0,
model and phonemiser inside the package, no espeak-ng): it sounds like the neural voices agents
speak with. Its ONNX model predicts a duration per phoneme token before it makes the spectrum, but
only returns the spectrum; at load time the graph is given the duration tensor (the input of its
one ``CumSum``, in 25 ms units) as an extra output (with the ``onnx`` package, in memory: the file
on disk is untouched). Every phoneme token then has a start and an end, fitted to the sound (see
:func:`_piece_phones`), and each token is traced back to the text it reads (hibari's own text
normalisation, tokeniser and lexicon), so every whitespace token of the text gets the times of
its phonemes. How exact they are: ``benchmarks/voice_timings.py`` and docs/emulator.md.

Part of the ``speech`` extra, like espeak-ng (:mod:`aligner.speech.synthesis`); returns the same
:class:`~aligner.speech.synthesis.Synthesis`. Nothing is downloaded: the voice ships inside the
package.

>>> s = synthesize("Hello there")                       # doctest: +SKIP
>>> [(round(w.start, 2), "Hello there"[w.char_start:w.char_end]) for w in s.words]  # doctest: +SKIP
[(0.29, 'Hello'), (0.61, 'there')]
"""

from __future__ import annotations

import bisect
import difflib
import json
import os
import re
import threading
from dataclasses import replace

import numpy as np

from ..audio import as_int16
from ..errors import AlignerError, MissingBackendError
from .synthesis import SpokenPhone, SpokenWord, Synthesis

__all__ = ["SAMPLE_RATE", "SHIFT", "UNIT", "synthesize"]

SAMPLE_RATE = 24000
#: Seconds per duration unit of the model (two 12.5 ms spectrum frames).
UNIT = 0.025
#: The sound of a token comes this many seconds before its predicted duration puts it (a
#: constant of the model): every time is moved earlier by it. Measured where voicing stops
#: between words, where sound starts after silence, and by pocketsphinx forced alignment
#: (``benchmarks/voice_timings.py``: median offsets within 5 ms of zero with it).
SHIFT = 0.0375
_VOICE = "heart"  # the voice inside the package; the others would download on first use
_STRESS = frozenset("ˈˌ")
_PAUSES = frozenset(';:,.!?—…"“”()')


class _Engine:
    """hibari's phonemiser and its model with the duration tensor as an extra output."""

    def __init__(self) -> None:
        try:
            import hibari
            import hibari.dsp
            import hibari.tts
            import hibari.voices
            import onnx

            # onnxruntime queues usage events for Microsoft (and writes them under ~/.cache)
            # unless this is set before it is imported: nothing leaves the machine.
            os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
            import onnxruntime
            from hibari.g2p import G2P
            from hibari.g2p.normalize import normalize
        except ImportError as exc:
            raise MissingBackendError("hibari-tts", "speech") from exc
        if hasattr(onnxruntime, "disable_telemetry_events"):  # imported earlier elsewhere
            onnxruntime.disable_telemetry_events()
        model = onnx.load(hibari.voices.voice_path(_VOICE, download_missing=False))
        cumsum = [n for n in model.graph.node if n.op_type == "CumSum"]
        if len(cumsum) != 1:
            raise AlignerError(f"hibari-tts {hibari.__version__}: no duration tensor found in its "
                               "model (a version this module does not know)")
        model.graph.output.append(onnx.helper.make_tensor_value_info(
            cumsum[0].input[0], onnx.TensorProto.INT64, None))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        with open(os.path.join(hibari.tts.ASSETS, "vocab.json"), encoding="utf-8") as f:
            self.vocab: dict[str, int] = json.load(f)
        self.g2p = G2P(british=False)
        self.normalize = normalize
        self.sentences = hibari.Hibari.split_sentences
        self.max_phonemes = hibari.tts.MAX_PHONEMES
        self.dsp = hibari.dsp

    def phonemes(self, sentence: str) -> tuple[str, list[int]]:
        """hibari's phoneme string of a sentence (what ``G2P.__call__`` returns), and for each
        of its characters the offset in ``sentence`` of the text it reads."""
        norm = self.normalize(sentence)
        to_sentence = _offset_map(norm, sentence)
        chars: list[str] = []
        where: list[int] = []
        pos = 0
        for tok in self.g2p.phonemize_tokens(self.g2p.tokenize(norm)):
            found = norm.find(tok.text, pos)
            if found >= 0:
                pos = found
            ps = (self.g2p.unk if tok.phonemes is None else tok.phonemes)
            ps += " " if tok.whitespace else ""
            chars += ps
            where += [to_sentence(pos)] * len(ps)
            if found >= 0:
                pos += len(tok.text)
        while chars and chars[0].isspace():  # G2P.__call__ strips the joined string
            del chars[0], where[0]
        while chars and chars[-1].isspace():
            del chars[-1], where[-1]
        return "".join(chars), where

    def pieces(self, phonemes: str) -> list[tuple[int, int]]:
        """Spans of a sentence's phonemes the model reads at once: a long sentence is cut at
        clause punctuation into pieces of at most ``MAX_PHONEMES``, as ``Hibari.phonemize`` does."""
        clauses, start = [], 0
        for m in re.finditer(r"(?<=[,;:—])\s+", phonemes):
            clauses.append((start, m.start()))
            start = m.end()
        clauses.append((start, len(phonemes)))
        spans = [clauses[0]]
        for a, b in clauses[1:]:
            if b - spans[-1][0] > self.max_phonemes:
                spans.append((a, b))
            else:
                spans[-1] = (spans[-1][0], b)
        return spans

    def run(self, phonemes: str, speed: float, rng) -> tuple[np.ndarray, list[int], np.ndarray]:
        """Audio (float32) of a phoneme string, the indices of its characters the model read,
        and the duration (units) of each: ``[leading pad, *read characters, trailing pad]``."""
        read = [i for i, c in enumerate(phonemes) if c in self.vocab]
        ids = [0, *(self.vocab[phonemes[i]] for i in read), 0]
        *spectrum, durations = self.session.run(
            None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([speed], np.float32)})
        audio = self.dsp.synth(*(x[0] for x in spectrum), rng)
        return audio, read, durations.reshape(-1)


def _offset_map(source: str, target: str):
    """A function from offsets in ``source`` to offsets in ``target`` (a rewriting of it):
    exact where the two agree, in proportion inside a rewritten stretch."""
    if source == target:
        return lambda j: j
    ops = difflib.SequenceMatcher(None, source, target, autojunk=False).get_opcodes()
    starts = [op[1] for op in ops]

    def to_target(j: int) -> int:
        _tag, a1, a2, b1, b2 = ops[max(0, bisect.bisect_right(starts, j) - 1)]
        if a2 <= a1:
            return b1
        return min(b2, b1 + (min(j, a2) - a1) * (b2 - b1) // (a2 - a1))

    return to_target


_engine: _Engine | None = None
_lock = threading.Lock()


def synthesize(text: str, speed: float = 1.0) -> Synthesis:
    """Speak ``text`` with hibari's ``heart`` voice.

    Args:
        text: what to say (English, any length; numbers, money, times are read out).
        speed: 1.0 is the voice's own pace, 0.5 slow .. 2.0 fast.

    Returns:
        A :class:`~aligner.speech.synthesis.Synthesis`: mono int16 samples at 24000 Hz, one word per
        whitespace token of ``text`` (start of its first phoneme to end of its last; a token
        read as several words, "$42.50", is one; punctuation pauses fall between words), and
        the phones in hibari's alphabet (misaki's, stress marks joined to the vowel they
        stress; ``_`` for the silence at each end of a sentence, punctuation for its pauses).
        The same text always gives the same samples.

    Raises:
        MissingBackendError: ``hibari-tts`` is not installed (extra ``speech``).
    """
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        return _synthesize(_engine, text, speed)


def _synthesize(engine: _Engine, text: str, speed: float) -> Synthesis:
    rng = np.random.default_rng(0)  # the noise part of the voice: the same every time
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    word_starts = [a for a, _ in words]
    audio: list[np.ndarray] = []
    phones: list[SpokenPhone] = []
    elapsed = 0.0
    pos = 0
    for sentence in engine.sentences(text):
        offset = text.find(sentence, pos)
        pos = offset + len(sentence)
        phonemes, where = engine.phonemes(sentence)
        for a, b in engine.pieces(phonemes):
            if not phonemes[a:b].strip():
                continue
            samples, read, durations = engine.run(phonemes[a:b], speed, rng)
            chars = [phonemes[a + i] for i in read]
            owners = [max(0, bisect.bisect_right(word_starts, offset + where[a + i]) - 1)
                      for i in read]
            length = len(samples) / SAMPLE_RATE
            phones += _piece_phones(chars, owners, durations, samples, elapsed)
            audio.append(samples)
            elapsed += length
    samples = np.concatenate(audio) if audio else np.zeros(0, np.float32)
    pcm = as_int16(samples)
    return Synthesis(text=text, samples=pcm, sample_rate=SAMPLE_RATE,
                     words=_words(words, phones, elapsed), phones=tuple(phones))


def _piece_phones(chars: list[str], owners: list[int], durations: np.ndarray,
                  samples: np.ndarray, elapsed: float) -> list[SpokenPhone]:
    """The phones of one model run: ``chars`` read (each by word ``owners[i]``) with
    ``durations`` (units, with the pads at both ends), moved earlier by :data:`SHIFT` and
    placed ``elapsed`` seconds into the line.

    A space sounds as the start of the phone after it and a stress mark as the start of the
    vowel it stresses, so both are joined to the next phone; punctuation is a pause (word -1)
    that takes the space after it too. The model lets the phone before a pause run on into it
    (by up to 300 ms): that phone ends where its sound ends (:func:`_trim`).
    """
    length = len(samples) / SAMPLE_RATE
    edges = np.clip(np.cumsum(np.concatenate([[0], durations])) * UNIT - SHIFT, 0.0, length)
    phones = [SpokenPhone("_", 0.0, float(edges[1]), -1)]
    prefix, start = "", None  # spaces and stress marks waiting for their phone
    for k, (c, wi) in enumerate(zip(chars, owners, strict=True), start=1):
        end = float(edges[k + 1])
        if c == " " and start is None and phones[-1].word_index < 0:  # the pause goes on
            phones[-1] = SpokenPhone(phones[-1].phone, phones[-1].start, end, -1)
            continue
        start = float(edges[k]) if start is None else start
        if c == " " or c in _STRESS:
            prefix += c.strip()
            continue
        if end > start:
            phones.append(SpokenPhone(prefix + c, start, end, -1 if c in _PAUSES else wi))
        prefix, start = "", None
    phones.append(SpokenPhone("_", phones[-1].end, length, -1))
    phones = _trim(phones, samples)
    return [SpokenPhone(p.phone, elapsed + p.start, elapsed + p.end, p.word_index)
            for p in phones]


_FRAME = 0.005  # seconds of the loudness frames of _trim


def _trim(phones: list[SpokenPhone], samples: np.ndarray) -> list[SpokenPhone]:
    """Fit the phones next to a pause to the sound: the phone before it ends at its last 5 ms
    frame within 40 dB of the run's loudest frame; the phone after a quiet pause, if already
    sounding where it should start, starts where that sound starts (a word's first fricative
    can start up to 60 ms before the model says). The pause keeps the rest."""
    n = int(_FRAME * SAMPLE_RATE)
    frames = samples[:len(samples) // n * n].reshape(-1, n).astype(np.float64)
    rms = np.sqrt((frames ** 2).mean(axis=1)) if len(frames) else np.zeros(1)
    loud = np.append(rms > 0.01 * rms.max(initial=0.0), False)
    out = list(phones)
    for j in range(len(out) - 1):
        p, q = out[j], out[j + 1]
        if p.word_index >= 0 and q.word_index < 0:  # a phone, then a pause
            k = np.flatnonzero(loud[int(p.start / _FRAME):int(np.ceil(p.end / _FRAME))])
            if len(k):
                end = float(min(p.end, (int(p.start / _FRAME) + k[-1] + 1) * _FRAME))
                out[j], out[j + 1] = replace(p, end=end), replace(q, start=end)
        elif p.word_index < 0 and q.word_index >= 0:  # a pause, then a phone
            k = first = int(q.start / _FRAME)
            while first > int(p.start / _FRAME) and loud[first - 1] and loud[k]:
                first -= 1
            start = float(max(p.start, first * _FRAME))
            if p.start < start < q.start:  # a quiet pause, then sound before the phone
                out[j], out[j + 1] = replace(p, end=start), replace(q, start=start)
    return out


def _words(words: list[tuple[int, int]], phones: list[SpokenPhone],
           total: float) -> tuple[SpokenWord, ...]:
    """Each whitespace token from the start of its first phone to the end of its last."""
    spans: list[list[float]] = [[] for _ in words]
    for p in phones:
        if p.word_index >= 0:
            span = spans[p.word_index]
            spans[p.word_index] = [span[0], p.end] if span else [p.start, p.end]
    # Tokens with nothing to say ("-", "&" read with its neighbours) sit where the next one starts.
    for i in range(len(spans) - 1, -1, -1):
        if not spans[i]:
            t = spans[i + 1][0] if i + 1 < len(spans) else total
            spans[i] = [t, t]
    last = 0.0
    spoken = []
    for (a, b), (start, end) in zip(words, spans, strict=True):
        start = max(start, last)
        end = max(end, start)
        spoken.append(SpokenWord(a, b, start, end))
        last = end
    return tuple(spoken)
