"""Voice-activity detection and speech recognition of user audio (pocketsphinx, en-us).

Two pieces, both pure functions of samples (no clock, no I/O):

- :class:`VoiceActivityDetector`: energy-based VAD with hangover, fed int16 samples in any
  frame size; it reports when an utterance starts and when it ends (after ``hangover`` seconds
  of silence). Times are seconds of the audio fed so far.
- :func:`recognize` / :func:`recognize_words`: pocketsphinx (the en-us model it ships) on a whole
  utterance at any sample rate. With ``vocabulary`` (phrase hints) the decoder searches a
  grammar: each hinted phrase as a whole (weighted, so a phrase that fits is heard whole), or
  else a free loop over the hinted words: much faster and far more accurate on synthetic speech
  than the general language model, which stays the default for open speech.

pocketsphinx holds the GIL while it decodes, so :func:`recognize_words` feeds it 20 ms at a time:
run in a worker thread (``asyncio.to_thread``), it lets an event loop in the same process run
between pieces. One decoder per vocabulary is kept per process, used under a lock.

>>> import numpy as np
>>> vad = VoiceActivityDetector(16000)
>>> quiet, tone = np.zeros(8000, np.int16), (np.sin(np.arange(16000) / 5) * 8000).astype(np.int16)
>>> vad.feed(np.concatenate([quiet, tone, quiet, quiet]))
[SpeechStarted(start=0.5), SpeechEnded(start=0.5, end=1.5)]
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RECOGNITION_RATE",
    "RecognizedWord",
    "SpeechEnded",
    "SpeechStarted",
    "VoiceActivityDetector",
    "prepare",
    "recognize",
    "recognize_words",
    "word_overlap",
]

log = logging.getLogger(__name__)

RECOGNITION_RATE = 16000  # the en-us acoustic model's rate
_FILLERS = {"<s>", "</s>", "<sil>", "(NULL)", "[NOISE]", "[SPEECH]", "++NOISE++", "++BREATH++"}


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech has begun at ``start`` s (reported once ``min_speech`` s of it were heard)."""

    start: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """An utterance from ``start`` to ``end`` s is over (``hangover`` s of silence followed)."""

    start: float
    end: float


class VoiceActivityDetector:
    """Energy VAD with hangover over 20 ms frames (sans-I/O: feed samples, get events).

    A frame is speech when its RMS level is above ``threshold_db`` dBFS and ``margin_db`` above
    the tracked noise floor. The floor starts as the quietest of the first 200 ms (never speech)
    and then follows quiet frames. An utterance starts after ``min_speech`` s of speech frames
    (short clicks are ignored) and ends after ``hangover`` s of non-speech.

    Args:
        sample_rate: rate of the samples fed.
        threshold_db: absolute speech level, dBFS.
        margin_db: how far above the noise floor speech must be.
        min_speech: seconds of speech before :class:`SpeechStarted` is reported.
        hangover: seconds of silence that end an utterance.
    """

    def __init__(self, sample_rate: int, threshold_db: float = -45.0, margin_db: float = 12.0,
                 min_speech: float = 0.1, hangover: float = 0.6) -> None:
        self.sample_rate = sample_rate
        self.threshold_db = threshold_db
        self.margin_db = margin_db
        self.frame = max(1, sample_rate // 50)
        self._min_frames = max(1, round(min_speech * 50))
        self._hang_frames = max(1, round(hangover * 50))
        self._pending = np.zeros(0, np.int16)
        self._frames = 0  # frames consumed
        self._noise_db = 0.0
        self._calibration = 10  # frames measuring the noise floor before anything is speech
        self._run = 0  # consecutive speech frames (before start) / silence frames (after)
        self._start: int | None = None  # first frame of the current utterance
        self._last_speech = 0  # last speech frame of the current utterance
        self.in_speech = False

    @property
    def time(self) -> float:
        """Seconds of audio consumed so far (whole frames)."""
        return self._frames * self.frame / self.sample_rate

    def feed(self, samples: np.ndarray) -> list[SpeechStarted | SpeechEnded]:
        """Consume int16 samples; return the utterance events they complete, in order."""
        data = np.concatenate([self._pending, np.asarray(samples, np.int16)])
        n = len(data) // self.frame
        self._pending = data[n * self.frame:]
        if n == 0:
            return []
        frames = data[: n * self.frame].astype(np.float32).reshape(n, self.frame)
        levels = 10 * np.log10(np.mean(frames * frames, axis=1) / (32768.0 ** 2) + 1e-12)
        events: list[SpeechStarted | SpeechEnded] = []
        for level in levels:
            events += self._step(float(level))
        return events

    def _step(self, level: float) -> list[SpeechStarted | SpeechEnded]:
        index = self._frames
        self._frames += 1
        if index < self._calibration:
            self._noise_db = min(self._noise_db, max(level, -90.0))
            return []
        speech = level > self.threshold_db and level > self._noise_db + self.margin_db
        if not speech:  # the noise floor follows quiet frames quickly and loud ones slowly
            rate = 0.1 if level < self._noise_db else 0.01
            self._noise_db += rate * (level - self._noise_db)
        seconds = self.frame / self.sample_rate
        if not self.in_speech:
            if not speech:
                self._run = 0
                return []
            self._run += 1
            if self._run == 1:
                self._start = index
            if self._run < self._min_frames:
                return []
            self.in_speech, self._run, self._last_speech = True, 0, index
            return [SpeechStarted(self._start * seconds)]
        if speech:
            self._run, self._last_speech = 0, index
            return []
        self._run += 1
        if self._run < self._hang_frames:
            return []
        self.in_speech, self._run = False, 0
        return [SpeechEnded(self._start * seconds, (self._last_speech + 1) * seconds)]


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    """A recognised word and its time in seconds from the start of the audio given."""

    word: str
    start: float
    end: float


_decoders: dict = {}  # per process: vocabulary key -> (Decoder, its initial cepstral mean)
_lock = threading.Lock()
_PRIMING = 3  # passes over the features priming the cepstral mean (no search: cheap)
_PIECE = RECOGNITION_RATE // 50  # samples fed per decoder call (GIL released in between)
_PHRASE_WEIGHT = 10  # JSGF weight of "a whole hinted phrase" against "a loop of hinted words"


def _decoder(vocabulary: tuple[str, ...] | None):
    """The decoder for a tuple of normalised hint phrases (None: the general language model)."""
    from pocketsphinx import Decoder

    key = vocabulary or ()
    if key in _decoders:
        return _decoders[key]
    if not vocabulary:
        decoder = Decoder(samprate=RECOGNITION_RATE, loglevel="FATAL")
    else:
        # The default two-pass search only slows a grammar.
        decoder = Decoder(samprate=RECOGNITION_RATE, loglevel="FATAL", fwdflat=False,
                          bestpath=False)
        known = sorted({w for p in vocabulary for w in p.split()
                        if decoder.lookup_word(w) is not None})
        if not known:
            raise ValueError("none of the vocabulary words is in the pronouncing dictionary")
        phrases = [p for p in vocabulary if all(w in known for w in p.split())]
        # A hinted phrase that fits the audio is heard whole; anything else falls back to a
        # free loop over the hinted words (speech that matches no phrase is not forced into one).
        body = "<word>*" if not phrases else (
            f"/{_PHRASE_WEIGHT}/ <phrase> | /1/ <word>*;\n<phrase> = "
            + " | ".join(f"( {p} )" for p in phrases))
        grammar = (f"#JSGF V1.0;\ngrammar hints;\npublic <utterance> = {body};\n<word> = "
                   + " | ".join(known) + ";\n")
        decoder.add_jsgf_string("hints", grammar)
        decoder.activate_search("hints")
    _decoders[key] = (decoder, decoder.get_cmn())
    return _decoders[key]


def _vocabulary(phrases: Iterable[str] | None) -> tuple[str, ...] | None:
    """Hint phrases normalised to lower-case words (punctuation dropped), unique and sorted."""
    if phrases is None:
        return None
    found = {" ".join(re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())) for text in phrases}
    return tuple(sorted(p for p in found if p)) or None


def prepare(vocabulary: Iterable[str] | None = None) -> None:
    """Load the decoder for ``vocabulary`` now (about a second), so the first
    :func:`recognize_words` call is fast."""
    with _lock:
        _decoder(_vocabulary(vocabulary))


def recognize_words(samples: np.ndarray, sample_rate: int,
                    vocabulary: Iterable[str] | None = None) -> list[RecognizedWord]:
    """Recognise an utterance with pocketsphinx and return its words with times.

    Args:
        samples: mono int16 speech at ``sample_rate`` (resampled to 16 kHz here).
        sample_rate: any rate 8000-48000 (8 kHz telephone audio is upsampled; accuracy drops).
        vocabulary: optional phrase hints (words or whole sentences); when given, only these
            words can be recognised, and a hinted sentence that fits is recognised whole.

    Returns:
        Words (lower case, fillers and silences removed) with start/end seconds.

    Raises:
        ValueError: no hinted word is in the dictionary.
    """
    from .audio import resample

    pcm = resample(np.asarray(samples, np.int16), sample_rate, RECOGNITION_RATE)
    frate = 100.0
    with _lock:
        decoder, cmn = _decoder(_vocabulary(vocabulary))
        # Reset the live cepstral mean, then prime it on this utterance (cheap: features only,
        # no search): the result depends on this audio only, not on what came before.
        decoder.set_cmn(cmn)
        for _ in range(_PRIMING):
            decoder.start_utt()
            for i in range(0, len(pcm), _PIECE * 10):
                decoder.process_raw(pcm[i:i + _PIECE * 10].tobytes(), True, False)
            decoder.end_utt()
        decoder.start_utt()
        for i in range(0, len(pcm), _PIECE):
            decoder.process_raw(pcm[i:i + _PIECE].tobytes(), False, False)
        decoder.end_utt()
        segments = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
    words = []
    for name, start, end in segments:
        word = re.sub(r"\(\d+\)$", "", name)  # alternative pronunciations: "the(2)"
        if word in _FILLERS or word.startswith("["):
            continue
        words.append(RecognizedWord(word, start / frate, (end + 1) / frate))
    return words


def recognize(samples: np.ndarray, sample_rate: int,
              vocabulary: Iterable[str] | None = None) -> str:
    """Recognise an utterance and return its text (lower case words separated by spaces).

    Same arguments as :func:`recognize_words`.

    >>> recognize(np.zeros(8000, np.int16), 16000)  # doctest: +SKIP
    ''
    """
    return " ".join(w.word for w in recognize_words(samples, sample_rate, vocabulary))


def word_overlap(expected: str, heard: str) -> float:
    """Share of ``expected``'s words found, in order, in ``heard`` (longest common subsequence).

    >>> word_overlap("Hello there, how are you?", "hello how are you")
    0.8
    """
    a = re.findall(r"[a-z]+(?:'[a-z]+)?", expected.lower())
    b = re.findall(r"[a-z]+(?:'[a-z]+)?", heard.lower())
    if not a:
        return 1.0 if not b else 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1] / len(a)
