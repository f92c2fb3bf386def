"""Speech synthesis with espeak-ng (through the ``espeakng-loader`` wheel), with word and phone times.

This is the GPL-licensed optional backend (extra ``speech``): the emulator speaks with it, tests and
benchmarks make real speech and ground-truth timings with it. The core never imports it.

>>> s = synthesize("Hello there")                       # doctest: +SKIP
>>> [(round(w.start, 2), "Hello there"[w.char_start:w.char_end]) for w in s.words]  # doctest: +SKIP
[(0.0, 'Hello'), (0.31, 'there')]
"""

from __future__ import annotations

import bisect
import ctypes
import re
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import MissingBackendError

__all__ = ["Synthesis", "SpokenPhone", "SpokenWord", "synthesize", "SAMPLE_RATE"]

SAMPLE_RATE = 22050

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_SENTENCE, _EV_MARK, _EV_PLAY, _EV_END = 0, 1, 2, 3, 4, 5
_EV_MSG_TERMINATED, _EV_PHONEME, _EV_SAMPLERATE = 6, 7, 8
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True, slots=True)
class SpokenWord:
    """A whitespace token as espeak spoke it: ``text[char_start:char_end]``, ``start``–``end`` s.

    Tokens that espeak speaks as several words (``"$42.50"``) are one entry spanning all of them.
    """

    char_start: int
    char_end: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class SpokenPhone:
    """A phone in espeak's own mnemonic (``"h"``, ``"'oU"``, ``"_:"`` for a pause)."""

    phone: str
    start: float
    end: float
    word_index: int  # index into Synthesis.words, -1 for pauses outside words


@dataclass(frozen=True, slots=True)
class Synthesis:
    """Samples (mono int16 at :data:`SAMPLE_RATE`) with the word and phone timings espeak reported."""

    text: str
    samples: np.ndarray
    sample_rate: int
    words: tuple[SpokenWord, ...]
    phones: tuple[SpokenPhone, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class _Engine:
    """The one espeak-ng instance of this process (the C library keeps global state)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise MissingBackendError("espeak-ng", "speech") from exc
        try:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:  # installed, but its library does not load here
            raise MissingBackendError("espeak-ng", "speech", cause=str(exc),
                                      install="pip install --force-reinstall espeakng-loader"
                                      ) from exc
        self.lib.espeak_Initialize.restype = ctypes.c_int
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                          espeakng_loader.get_data_path().encode(),
                                          _INITIALIZE_PHONEME_EVENTS)
        if rate != SAMPLE_RATE:
            raise MissingBackendError(
                "espeak-ng", "speech", cause=f"it initialised at {rate} Hz, not {SAMPLE_RATE}"
                " (its data folder is missing or unreadable)",
                install="pip install --force-reinstall espeakng-loader")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample, bytes(e.id)))
            i += 1
        return 0

    def run(self, text: str, voice: str, rate: int, pitch: int | None):
        self._chunks, self._events = [], []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        if pitch is not None:
            self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        data = text.encode("utf-8")
        self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples.astype(np.int16), self._events


_engine: _Engine | None = None
_lock = threading.Lock()


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int | None = None) -> Synthesis:
    """Speak ``text`` with espeak-ng.

    Args:
        text: what to say (UTF-8, any length).
        voice: an espeak-ng voice name, e.g. ``"en-us"``, ``"en"``, ``"en-us+f3"``.
        rate: words per minute (80–450).
        pitch: 0–100, or None for the voice's default.

    Returns:
        A :class:`Synthesis` with mono int16 samples at 22050 Hz and word/phone timings.

    Raises:
        MissingBackendError: ``espeakng-loader`` is not installed (extra ``speech``).
    """
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        samples, events = _engine.run(text, voice, rate, pitch)
    return _timings(text, samples, events)


def _timings(text: str, samples: np.ndarray, events) -> Synthesis:
    sr = SAMPLE_RATE
    total = len(samples) / sr
    # espeak reports text positions 1-based, in characters of the UTF-8 input.
    words: list[list[float]] = []  # [char_start, char_end, start, end]
    phones: list[list] = []  # [phone, start, word_index]
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    starts = [a for a, _ in tokens]
    last_token = None
    for etype, pos, _length, sample, ident in events:
        t = sample / sr
        if etype == _EV_WORD:
            # One whitespace token may be spoken as several words ("$42.50", "it's"): merge them.
            ti = max(0, bisect.bisect_right(starts, max(0, pos - 1)) - 1)
            if ti == last_token or not tokens:
                continue
            last_token = ti
            words.append([tokens[ti][0], tokens[ti][1], t, t])
        elif etype == _EV_PHONEME:
            name = ident.split(b"\0", 1)[0].decode("ascii", "replace")
            is_pause = name.startswith("_")
            phones.append([name, t, -1 if is_pause or not words else len(words) - 1])
    # A phone ends where the next begins; a word ends where its last phone ends.
    spoken_phones = []
    for i, (name, start, wi) in enumerate(phones):
        end = phones[i + 1][1] if i + 1 < len(phones) else total
        spoken_phones.append(SpokenPhone(name, start, end, wi))
    for i, w in enumerate(words):
        own = [p for p in spoken_phones if p.word_index == i]
        if own:
            w[2] = min(w[2], own[0].start)
            w[3] = own[-1].end
        else:
            w[3] = words[i + 1][2] if i + 1 < len(words) else total
    return Synthesis(
        text=text,
        samples=samples,
        sample_rate=sr,
        words=tuple(SpokenWord(int(a), int(b), float(s), float(e)) for a, b, s, e in words),
        phones=tuple(spoken_phones),
    )
