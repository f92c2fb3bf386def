"""Voice-activity detection and speech recognition of user audio (pocketsphinx, en-us).

All pure functions of samples (no clock, no I/O):

- :class:`VoiceActivityDetector`: energy-based VAD with hangover, fed int16 samples in any
  frame size; it reports when an utterance starts, optionally when it pauses (a candidate end
  of turn), and when it ends (after ``hangover`` seconds of silence). Times are seconds of the
  audio fed so far.
- :func:`recognize` / :func:`recognize_words`: pocketsphinx (the en-us model it ships) on a whole
  utterance at any sample rate. With ``vocabulary`` (phrase hints) the decoder searches a
  grammar: each hinted phrase as a whole (weighted, so a phrase that fits is heard whole), or
  else a free loop over the hinted words: much faster and far more accurate on synthetic speech
  than the general language model, which stays the default for open speech.
- :class:`RecognitionStream`: the same recognition while the utterance is spoken, with the words
  so far at any moment; :func:`sounds_complete` says whether they sound like a finished turn
  (smart endpointing).

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

import collections
import functools
import logging
import re
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio import as_int16, check_rate, resample

if TYPE_CHECKING:
    from .acoustic_model import MeanTransform

__all__ = [
    "CONTINUATIONS",
    "RECOGNITION_RATE",
    "RecognizedWord",
    "RecognitionStream",
    "SpeechEnded",
    "SpeechPaused",
    "SpeechStarted",
    "VoiceActivityDetector",
    "prepare",
    "recognize",
    "recognize_words",
    "sounds_complete",
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
class SpeechPaused:
    """The speech that started at ``start`` s stopped at ``end`` s, and ``pause`` s of silence
    followed: a candidate end of turn (speech resuming continues the same utterance)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """An utterance from ``start`` to ``end`` s is over (``hangover`` s of silence followed)."""

    start: float
    end: float


_PAUSE_REPEAT = 5  # frames (0.1 s) between two reports of the same pause


class VoiceActivityDetector:
    """Energy VAD with hangover over 20 ms frames (sans-I/O: feed samples, get events).

    A frame is speech when its RMS level is above ``threshold_db`` dBFS and ``margin_db`` above
    the tracked noise floor. The floor starts as the quietest of the first 200 ms (never speech)
    and then follows quiet frames. An utterance starts after ``min_speech`` s of speech frames
    (short clicks are ignored) and ends after ``hangover`` s of non-speech. With ``pause``,
    ``pause`` s of silence first report :class:`SpeechPaused` (then again every 0.1 s of the
    same silence, as what a recogniser makes of the end firms up), and the caller may end the
    utterance there (:meth:`end_utterance`) without waiting for the whole hangover.

    Args:
        sample_rate: rate of the samples fed.
        threshold_db: absolute speech level, dBFS.
        margin_db: how far above the noise floor speech must be.
        min_speech: seconds of speech before :class:`SpeechStarted` is reported.
        hangover: seconds of silence that end an utterance.
        pause: seconds of silence that report :class:`SpeechPaused` (None: never; must be
            shorter than ``hangover``).
    """

    def __init__(self, sample_rate: int, threshold_db: float = -45.0, margin_db: float = 12.0,
                 min_speech: float = 0.1, hangover: float = 0.6,
                 pause: float | None = None) -> None:
        if pause is not None and not 0 < pause < hangover:
            raise ValueError(f"need 0 < pause < hangover, got {pause}, {hangover}")
        self.sample_rate = check_rate(sample_rate)
        self.threshold_db = threshold_db
        self.margin_db = margin_db
        self.frame = max(1, sample_rate // 50)
        self._min_frames = max(1, round(min_speech * 50))
        self._hang_frames = max(1, round(hangover * 50))
        self._pause_frames = None if pause is None else max(1, round(pause * 50))
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

    @property
    def paused_at(self) -> float | None:
        """End of the speech (s) when a reported pause is still going on, else None."""
        if not self.in_speech or self._pause_frames is None or self._run < self._pause_frames:
            return None
        return self._span()[1]

    def _span(self) -> tuple[float, float]:
        """Start and end (s) of the current utterance's speech."""
        seconds = self.frame / self.sample_rate
        return self._start * seconds, (self._last_speech + 1) * seconds

    def end_utterance(self) -> SpeechEnded | None:
        """End the current utterance at its pause (see :attr:`paused_at`), as if the whole
        hangover had passed; None (and nothing changes) when no pause is going on."""
        if self.paused_at is None:
            return None
        self.in_speech, self._run = False, 0
        return SpeechEnded(*self._span())

    def feed(self, samples: np.ndarray) -> list[SpeechStarted | SpeechPaused | SpeechEnded]:
        """Consume int16 samples; return the utterance events they complete, in order."""
        data = np.concatenate([self._pending, as_int16(samples)])
        n = len(data) // self.frame
        self._pending = data[n * self.frame:]
        if n == 0:
            return []
        frames = data[: n * self.frame].astype(np.float32).reshape(n, self.frame)
        levels = 10 * np.log10(np.mean(frames * frames, axis=1) / (32768.0 ** 2) + 1e-12)
        events: list[SpeechStarted | SpeechPaused | SpeechEnded] = []
        for level in levels:
            events += self._step(float(level))
        return events

    def _step(self, level: float) -> list[SpeechStarted | SpeechPaused | SpeechEnded]:
        index = self._frames
        self._frames += 1
        if index < self._calibration:
            self._noise_db = min(self._noise_db, max(level, -90.0))
            return []
        speech = level > self.threshold_db and level > self._noise_db + self.margin_db
        if not speech:  # the noise floor follows quiet frames quickly and loud ones slowly
            rate = 0.1 if level < self._noise_db else 0.01
            self._noise_db += rate * (level - self._noise_db)
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
            return [SpeechStarted(self._span()[0])]
        if speech:
            self._run, self._last_speech = 0, index
            return []
        self._run += 1
        if (self._pause_frames is not None and self._run >= self._pause_frames
                and (self._run - self._pause_frames) % _PAUSE_REPEAT == 0
                and self._run < self._hang_frames):
            return [SpeechPaused(*self._span())]
        if self._run < self._hang_frames:
            return []
        self.in_speech, self._run = False, 0
        return [SpeechEnded(*self._span())]


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    """A recognised word and its time in seconds from the start of the audio given."""

    word: str
    start: float
    end: float


_decoders: dict = {}  # per process: vocabulary key -> (Decoder, its initial cepstral mean)
#: Voices whose adapted decoders a process keeps (the last used; about 90 MB each with the
#: general language model, a few with hints): agents that take turns on one worker each keep
#: theirs instead of loading it again (0.2 s) at every turn.
ADAPTED_VOICES = 3
# per process, last used last: (vocabulary key, voice) -> (transform's MLLR text, Decoder, mean)
_adapted: collections.OrderedDict = collections.OrderedDict()
_idle: dict = {}  # per process: vocabulary key -> decoders free for a stream
_lock = threading.Lock()
_PRIMING = 3  # passes over the features priming the cepstral mean of a whole utterance
_PRIME_SEARCH = "_prime"  # the trivial search those passes run
_PRIME_GRAMMAR = "#JSGF V1.0;\ngrammar prime;\npublic <u> = a;\n"
_PIECE = RECOGNITION_RATE // 50  # samples fed per decoder call (GIL released in between)
# JSGF weight of "a whole hinted phrase" against "a loop of hinted words": measured on espeak
# speech, 10 lets a slightly mis-normalised phrase fall apart into loose words, 10000 does not,
# and a partial phrase ("i would like to") is still heard as loose words, not forced whole.
_PHRASE_WEIGHT = 10000


@functools.lru_cache(maxsize=8)
def _pronunciations(words: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """``(entry, phones)`` of ``words`` in the model's dictionary, alternatives as ``word(2)``."""
    from pocketsphinx import get_model_path

    found = []
    with (Path(get_model_path()) / "en-us" / "cmudict-en-us.dict").open(encoding="utf-8") as f:
        for line in f:
            entry, _, phones = line.partition(" ")
            if re.sub(r"\(\d+\)$", "", entry) in words:
                found.append((entry, phones.split("#")[0].strip()))
    return tuple(found)


def _new_decoder(vocabulary: tuple[str, ...] | None, **settings: str):
    """A fresh decoder for normalised hint phrases (None: the general language model), with
    further pocketsphinx ``settings`` (``mllr``: a transform file's path).

    With hints it loads no language model and only the hinted words' pronunciations (5 MB and
    30 ms instead of 100 MB and a second), so each live stream can have its own."""
    from pocketsphinx import Decoder

    if not vocabulary:
        decoder = Decoder(samprate=RECOGNITION_RATE, loglevel="FATAL", **settings)
        decoder.add_jsgf_string(_PRIME_SEARCH, _PRIME_GRAMMAR)
        return decoder
    # The default two-pass search only slows a grammar.
    decoder = Decoder(samprate=RECOGNITION_RATE, loglevel="FATAL", lm=None, dict=None,
                      fwdflat=False, bestpath=False, **settings)
    entries = _pronunciations(frozenset(w for p in vocabulary for w in p.split()))
    for i, (entry, phones) in enumerate(entries):
        decoder.add_word(entry, phones, i == len(entries) - 1)
    known = sorted({re.sub(r"\(\d+\)$", "", e) for e, _ in entries})
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
    decoder.add_jsgf_string(_PRIME_SEARCH, _PRIME_GRAMMAR)
    decoder.activate_search("hints")
    return decoder


def _decoder(vocabulary: tuple[str, ...] | None, transform: MeanTransform | None = None,
             voice: str | None = None):
    """This process's shared decoder for a vocabulary (its model adapted by ``transform``, the
    transform of ``voice``), and its initial cepstral mean. The adapted decoders of the last
    :data:`ADAPTED_VOICES` voices are kept, one per voice: a voice's transform changes little
    from one clip to the next, but each is another model to load."""
    key = vocabulary or ()
    if transform is not None:
        mllr = transform.sphinx_mllr()
        slot = (key, voice if voice is not None else mllr)
        if slot in _adapted and _adapted[slot][0] == mllr:
            _adapted.move_to_end(slot)
        else:
            _adapted.pop(slot, None)  # free the old models before loading the new one
            while len(_adapted) >= ADAPTED_VOICES:
                _adapted.popitem(last=False)
            with tempfile.TemporaryDirectory(prefix="aligner-mllr-") as folder:
                path = Path(folder) / "voice.mllr"  # read as the decoder loads its model
                path.write_text(mllr)
                decoder = _new_decoder(vocabulary, mllr=str(path))
            _adapted[slot] = (mllr, decoder, decoder.get_cmn())
        return _adapted[slot][1:]
    if key not in _decoders:
        decoder = _new_decoder(vocabulary)
        _decoders[key] = (decoder, decoder.get_cmn())
    return _decoders[key]


def _vocabulary(phrases: Iterable[str] | None) -> tuple[str, ...] | None:
    """Hint phrases normalised to lower-case words (punctuation dropped), unique and sorted."""
    if phrases is None:
        return None
    found = {_words(text) for text in phrases}
    return tuple(sorted(p for p in found if p)) or None


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower()))


def _segments(decoder) -> list[RecognizedWord]:
    """The words of the decoder's last utterance, fillers and silences dropped."""
    words = []
    for seg in decoder.seg() or ():  # None when the audio held no frame of features
        word = re.sub(r"\(\d+\)$", "", seg.word)  # alternative pronunciations: "the(2)"
        if word in _FILLERS or word.startswith("["):
            continue
        words.append(RecognizedWord(word, seg.start_frame / 100.0, (seg.end_frame + 1) / 100.0))
    return words


def prepare(vocabulary: Iterable[str] | None = None) -> None:
    """Load the decoder for ``vocabulary`` now (about a second), so the first
    :func:`recognize_words` call is fast."""
    with _lock:
        _decoder(_vocabulary(vocabulary))


def recognize_words(samples: np.ndarray, sample_rate: int,
                    vocabulary: Iterable[str] | None = None, *,
                    transform: MeanTransform | None = None,
                    voice: str | None = None) -> list[RecognizedWord]:
    """Recognise an utterance with pocketsphinx and return its words with times.

    Args:
        samples: mono int16 speech at ``sample_rate`` (resampled to 16 kHz here).
        sample_rate: any rate 8000-48000 (8 kHz telephone audio is upsampled; accuracy drops).
        vocabulary: optional phrase hints (words or whole sentences); when given, only these
            words can be recognised, and a hinted sentence that fits is recognised whole.
        transform: a voice's transform of the model's means
            (:attr:`aligner.speech.adaptation.VoiceProfile.transform`): the speech is
            recognised on the model adapted to the voice (a decoder loaded with it as
            pocketsphinx's MLLR; about 0.2 s the first time a transform is used). Unguarded:
            the caller checks that the transform fits the audio.
        voice: whose transform it is (its profile's key): the adapted decoders of the last
            :data:`ADAPTED_VOICES` voices are kept, a voice's newer transform replacing its
            older one (None: the transform is a voice of its own).

    Returns:
        Words (lower case, fillers and silences removed) with start/end seconds. The cepstral
        mean is primed on this audio, but pocketsphinx's noise tracking carries over from the
        audio the process decoded before, so a repeat on other history may hear other words.

    Raises:
        ValueError: no hinted word is in the dictionary.
    """
    pcm = resample(samples, check_rate(sample_rate), RECOGNITION_RATE)
    with _lock:
        decoder, cmn = _decoder(_vocabulary(vocabulary), transform, voice)
        return _decode_primed(decoder, cmn, pcm)


def _decode_primed(decoder, cmn: str, pcm: np.ndarray) -> list[RecognizedWord]:
    """Decode a whole 16 kHz utterance after priming the cepstral mean on it.

    The live mean is reset to ``cmn`` and primed on this utterance, so the result depends on
    this audio only, not on what came before. ``no_search`` only defers the search to
    ``end_utt()``, so the priming passes run on a one-word grammar (measured: ~0.1 s instead
    of a full language-model search each)."""
    decoder.set_cmn(cmn)
    main = decoder.current_search()
    decoder.activate_search(_PRIME_SEARCH)
    for _ in range(_PRIMING):
        decoder.start_utt()
        for i in range(0, len(pcm), _PIECE * 10):
            decoder.process_raw(pcm[i:i + _PIECE * 10].tobytes(), True, False)
        decoder.end_utt()
    decoder.activate_search(main)
    decoder.start_utt()
    for i in range(0, len(pcm), _PIECE):
        decoder.process_raw(pcm[i:i + _PIECE].tobytes(), False, False)
    decoder.end_utt()
    return _segments(decoder)


class RecognitionStream:
    """Recognition of one utterance while it is spoken (sans-I/O: feed samples, ask).

    The hypothesis so far is ready at any moment (:meth:`hypothesis`, cheap), and the final
    words come from the same decode (:meth:`finish`): no second pass over the audio. The
    partial hypothesis is pocketsphinx's best path so far; the final one may still differ
    (measured once on espeak speech with hints: "you book table at to a the please" at the
    pause, "the window table at seven please" at the end). Closing the utterance at each pause
    instead was tried: it loses the hint grammar's context across the pause and heard less.
    Each stream holds a decoder of its own, taken from (and given back to) a per-process pool.

    pocketsphinx normalises features by a cepstral mean, which it updates at the end of each
    utterance. Start a caller's next utterance with the mean its last one left (``cmn`` after
    :meth:`finish`); without one, the model's own initial mean is used. Measured on espeak
    speech with hints: with a carried mean every hinted sentence is heard whole; with the
    initial one, 2 of 4 (estimating the mean on the first 0.6-1.2 s of the utterance instead
    does worse: that audio is too short to be representative).

    Args:
        sample_rate: rate of the samples fed (8000-48000).
        vocabulary: phrase hints as for :func:`recognize_words`, or None.
        cmn: the caller's cepstral mean from a previous stream, or None.

    >>> stream = RecognitionStream(16000)                           # doctest: +SKIP
    >>> stream.feed(pcm); stream.hypothesis(); stream.finish()      # doctest: +SKIP
    """

    def __init__(self, sample_rate: int, vocabulary: Iterable[str] | None = None,
                 cmn: str | None = None) -> None:
        import av

        self.sample_rate = check_rate(sample_rate)
        self._key = _vocabulary(vocabulary) or ()
        self.cmn = cmn
        with _lock:
            idle = _idle.get(self._key)
            if idle:
                self._decoder, self._initial_cmn = idle.pop()
            else:
                self._decoder = _new_decoder(self._key or None)
                self._initial_cmn = self._decoder.get_cmn()
        self._decoder.set_cmn(cmn or self._initial_cmn)
        self._resampler = None if sample_rate == RECOGNITION_RATE else av.AudioResampler(
            format="s16", layout="mono", rate=RECOGNITION_RATE)
        self._started = False
        # Without a carried mean the live decode starts from the model's initial one and can
        # mishear; the audio is kept so finish() can decode it once more, primed on itself.
        self._kept: list[np.ndarray] | None = [] if cmn is None else None
        self.words: list[RecognizedWord] | None = None  # set by finish()

    def _to_16k(self, samples: np.ndarray, flush: bool = False) -> np.ndarray:
        import av

        if self._resampler is None:
            return samples
        frames = []
        if len(samples):
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = self.sample_rate
            frames += self._resampler.resample(frame)
        if flush:
            frames += self._resampler.resample(None)
        return (np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames
                else np.zeros(0, np.int16))

    def feed(self, samples: np.ndarray) -> None:
        """Decode more of the utterance (int16 at ``sample_rate``, any length).

        Raises:
            ValueError: the stream is finished or closed.
        """
        if self.words is not None:
            raise ValueError("the stream is finished")
        self._decode(self._to_16k(as_int16(samples)))

    def _decode(self, pcm: np.ndarray) -> None:
        if not self._started:
            self._decoder.start_utt()
            self._started = True
        if len(pcm):
            self._decoder.process_raw(pcm.tobytes(), False, False)
            if self._kept is not None:
                self._kept.append(pcm)

    def hypothesis(self) -> str:
        """The words heard so far (lower case, space-separated; ``""`` for none)."""
        if self.words is not None:
            return " ".join(w.word for w in self.words)
        self._decode(np.zeros(0, np.int16))
        hyp = self._decoder.hyp()
        words = (re.sub(r"\(\d+\)$", "", w) for w in (hyp.hypstr.split() if hyp else ()))
        return " ".join(w for w in words if w not in _FILLERS and not w.startswith("["))

    def finish(self) -> list[RecognizedWord]:
        """End the utterance: its words with times in seconds from the first sample fed.
        Afterwards ``cmn`` is the mean to start this caller's next stream with. A stream that
        started without a mean decodes its utterance once more here, primed on itself (as
        :func:`recognize_words` does), since the live pass heard it with the model's
        initial mean."""
        if self.words is not None:
            return self.words
        self._decode(self._to_16k(np.zeros(0, np.int16), flush=True))
        self._decoder.end_utt()
        if self._kept:  # no mean was carried in: decode again, primed on this utterance
            self.words = _decode_primed(self._decoder, self._initial_cmn,
                                        np.concatenate(self._kept))
        else:
            self.words = _segments(self._decoder)
        self.cmn = self._decoder.get_cmn()  # updated by this utterance
        self._kept = None
        self._release()
        return self.words

    def close(self) -> None:
        """Drop the utterance unfinished and give the decoder back (no-op once finished)."""
        if self.words is None:
            if self._started:
                self._decoder.end_utt()
            self.words = []
            self._release()

    def _release(self) -> None:
        with _lock:
            _idle.setdefault(self._key, []).append((self._decoder, self._initial_cmn))
        self._decoder = None


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


# Words after which a sentence is not over (general language model, no hints).
CONTINUATIONS = frozenset((
    "a", "an", "the", "and", "but", "or", "nor", "so", "because", "if", "then", "than", "which",
    "who", "whose", "to", "of", "for", "with", "by", "from", "into", "about", "as", "like", "my",
    "your", "our", "their", "its", "um", "uh", "er", "ah", "hmm", "is", "are", "was", "were",
    "be", "am", "would", "could", "should", "will", "can", "i", "we", "he", "she", "they",
))


def sounds_complete(hypothesis: str, vocabulary: Iterable[str] | None = None) -> bool:
    """Whether the words heard so far sound like a finished turn (smart endpointing).

    With hints, only a whole hinted sentence is complete; without, anything but nothing or a
    hypothesis ending in a word that needs a continuation (:data:`CONTINUATIONS`).

    >>> sounds_complete("i would like to")
    False
    >>> sounds_complete("yes please")
    True
    >>> sounds_complete("the window table", ["The window table at seven please."])
    False
    """
    heard = _words(hypothesis)
    if vocabulary is not None:
        return heard in (_vocabulary(vocabulary) or ())
    return bool(heard) and heard.split()[-1] not in CONTINUATIONS
