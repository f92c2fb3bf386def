"""The ``Timeline``: the contract between the core and the renderers.

A timeline is immutable data on the *session clock* (seconds, 0 = websocket open). It holds the
utterances of both speakers with their word, character and phone timings, the session events
(``clear``, metadata, turn changes) and the audio tracks as heard. It serialises to
``timeline.json`` (see ``docs/timeline.md`` for the schema) and back without loss.

>>> w = Word("Hello", 0.10, 0.42, 0, 5)
>>> u = Utterance("agent", 0.10, 0.42, "Hello", words=(w,))
>>> tl = Timeline(utterances=(u,), duration=1.0)
>>> Timeline.from_json(tl.to_json()) == tl
True
>>> [x.word for x in tl.utterances[0].heard_words]
['Hello']
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA_VERSION",
    "AudioTrack",
    "Char",
    "Phone",
    "Timeline",
    "TimelineEvent",
    "Utterance",
    "Word",
    "atomic_output",
    "write_atomic",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Word:
    """A word (a whitespace token without its surrounding punctuation) of ``Utterance.text``.

    ``text[char_start:char_end]`` is the word. ``played`` is False for words the listener never
    heard (cut by a ``clear`` before they started); those have ``start == end`` at the clear.
    ``onset``: when the word's first phone starts sounding, where the aligner timed the word's
    phones itself (warped from espeak-ng's speech of the text: a word that starts with a stop
    starts at its silent closure, its sound at the burst), else None (see
    :func:`aligner.visemes.by_sound`). ``confidence``: how sure the aligner is of the word's
    times, 0..1, where it says (None where it does not).
    """

    word: str
    start: float
    end: float
    char_start: int
    char_end: int
    played: bool = True
    onset: float | None = None
    confidence: float | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"word {self.word!r} ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class Char:
    """One character of ``Utterance.text`` (whitespace and punctuation included) with its time."""

    char: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Phone:
    """An ARPAbet phone (stress digits stripped, ``"sil"`` for pauses), with the word it is in."""

    phone: str
    start: float
    end: float
    word_index: int = -1


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech by one speaker.

    ``interrupted`` is True when a ``clear`` cut it; ``end`` is then the clear's time.
    ``source`` says where ``text`` and the timings come from: ``"text"`` (the text sent with
    the audio, or the transcript), ``"recognized"`` (agent audio that came without text: words
    recognised from the audio, then aligned; estimates), ``"audio"`` (nothing recognised: no
    words, phones estimated from the audio alone).
    """

    speaker: str  # "agent" | "user"
    start: float
    end: float
    text: str
    interrupted: bool = False
    words: tuple[Word, ...] = ()
    chars: tuple[Char, ...] = ()
    phones: tuple[Phone, ...] = ()
    source: str = "text"  # "text" | "recognized" | "audio"

    @property
    def heard_words(self) -> tuple[Word, ...]:
        """The words the listener heard (``played``), in order."""
        return tuple(w for w in self.words if w.played)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A session event at time ``t``: ``kind`` is ``"clear"``, ``"metadata"``, ``"turn"``,
    ``"error"``, ...; ``data`` its JSON payload (metadata value, ``{"turn": "user_turn"}``...)."""

    t: float
    kind: str
    data: Any = None


@dataclass(frozen=True, slots=True, eq=False)
class AudioTrack:
    """A mono track on the session clock (sample 0 = time 0), silence where nobody speaks.

    ``path`` (relative to the timeline file, or absolute) names a WAV file holding it; in memory,
    ``samples`` may hold it instead: int16 samples, or a ``pydub.AudioSegment`` (mixed to mono
    and resampled to ``sample_rate`` here, :func:`aligner.audio.as_pcm`). ``speaker`` is
    ``"agent"`` (as played: cleared audio removed) or ``"user"`` (as sent).
    """

    speaker: str
    sample_rate: int
    path: str | None = None
    samples: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.samples is not None and not isinstance(self.samples, np.ndarray):
            from .audio import as_pcm

            pcm, _rate = as_pcm(self.samples, self.sample_rate)
            object.__setattr__(self, "samples", np.asarray(pcm, np.int16))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AudioTrack) and (self.speaker, self.sample_rate, self.path)
                == (other.speaker, other.sample_rate, other.path))

    def __hash__(self) -> int:
        return hash((self.speaker, self.sample_rate, self.path))

    def load(self, base: str | Path | None = None) -> np.ndarray:
        """The samples (int16), from memory or decoded from ``path`` (relative to ``base``)."""
        if self.samples is not None:
            return self.samples
        if self.path is None:
            return np.zeros(0, np.int16)
        from .audio import load

        p = Path(self.path)
        if base is not None and not p.is_absolute():
            p = Path(base) / p
        return load(p, self.sample_rate)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything a renderer needs: utterances, events and audio, on the session clock."""

    utterances: tuple[Utterance, ...] = ()
    events: tuple[TimelineEvent, ...] = ()
    audio: tuple[AudioTrack, ...] = ()
    duration: float = 0.0
    metadata: tuple[tuple[str, Any], ...] = ()  # call facts: call_id, encoding, sample_rate...
    version: int = SCHEMA_VERSION

    # --- views ---------------------------------------------------------------------------------
    def speaker(self, name: str) -> tuple[Utterance, ...]:
        """The utterances of one speaker, in time order."""
        return tuple(u for u in self.utterances if u.speaker == name)

    def track(self, speaker: str) -> AudioTrack | None:
        """The audio track of ``speaker``, or None."""
        return next((a for a in self.audio if a.speaker == speaker), None)

    def with_audio(self, *tracks: AudioTrack) -> Timeline:
        """A copy with these audio tracks instead."""
        return replace(self, audio=tuple(tracks))

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``timeline.json`` schema)."""
        return {
            "version": self.version,
            "duration": round(self.duration, 6),
            "metadata": dict(self.metadata),
            "utterances": [
                {
                    "speaker": u.speaker,
                    "start": _r(u.start),
                    "end": _r(u.end),
                    "text": u.text,
                    "interrupted": u.interrupted,
                    "words": [_word_dict(w) for w in u.words],
                    "chars": [{"char": c.char, "start": _r(c.start), "end": _r(c.end)}
                              for c in u.chars],
                    "phones": [{"phone": p.phone, "start": _r(p.start), "end": _r(p.end),
                                "word_index": p.word_index} for p in u.phones],
                    "source": u.source,
                }
                for u in self.utterances
            ],
            "events": [{"t": _r(e.t), "kind": e.kind, "data": e.data} for e in self.events],
            "audio": [{"speaker": a.speaker, "sample_rate": a.sample_rate, "path": a.path}
                      for a in self.audio],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timeline:
        """Inverse of :meth:`to_dict`; every value is checked for its type, so what loads is a
        timeline the renderers can use.

        Raises:
            ValueError: a newer schema version, or a malformed document (the message names the
                field).
        """
        doc = _Fields(d, "timeline")
        version = d.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"unsupported timeline version {version!r:.40} (this reads <= "
                             f"{SCHEMA_VERSION})")
        metadata = doc.get("metadata", dict, {})
        if not all(isinstance(k, str) for k in metadata):
            raise ValueError("timeline: metadata keys must be strings")
        return cls(
            version=version,
            duration=doc.number("duration", 0.0),
            metadata=tuple(sorted(metadata.items())),
            utterances=tuple(_utterance(u) for u in doc.items("utterances")),
            events=tuple(TimelineEvent(e.number("t"), e.get("kind", str), e.get("data", object, None))
                         for e in doc.items("events")),
            audio=tuple(AudioTrack(a.get("speaker", str), a.get("sample_rate", int),
                                   a.get("path", str, None)) for a in doc.items("audio")),
        )

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Timeline:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write ``timeline.json`` atomically (temp file + rename)."""
        return write_atomic(path, self.to_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Timeline:
        """Read a ``timeline.json``."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _r(x: float) -> float:
    return round(float(x), 6)


class _Fields:
    """A JSON object of a timeline document, read field by field with type checks; every
    failure is a ValueError naming the field."""

    _MISSING = object()

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise ValueError(f"{where} must be a JSON object, got {type(obj).__name__}")
        self.obj, self.where = obj, where

    def get(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        value = self.obj.get(key, default)
        if value is self._MISSING:
            raise ValueError(f"{self.where}: {key} is missing")
        if value is default and default is not self._MISSING:
            return value
        if kind is not object and (not isinstance(value, kind) or (
                kind is int and isinstance(value, bool))):
            raise ValueError(f"{self.where}: {key} must be {kind.__name__}, got {value!r:.40}")
        return value

    def number(self, key: str, default: Any = _MISSING) -> float:
        value = self.obj.get(key, default)
        if value is self._MISSING:
            raise ValueError(f"{self.where}: {key} is missing")
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise ValueError(f"{self.where}: {key} must be a finite number, got {value!r:.40}")
        return float(value)

    def items(self, key: str) -> list[_Fields]:
        value = self.get(key, list, [])
        return [_Fields(v, f"{self.where}.{key}[{i}]") for i, v in enumerate(value)]


def _utterance(u: _Fields) -> Utterance:
    words = []
    for w in u.items("words"):
        words.append(Word(w.get("word", str), w.number("start"), w.number("end"),
                          w.get("char_start", int), w.get("char_end", int),
                          w.get("played", bool, True), w.number("onset", None),
                          w.number("confidence", None)))
    return Utterance(
        speaker=u.get("speaker", str), start=u.number("start"), end=u.number("end"),
        text=u.get("text", str), interrupted=u.get("interrupted", bool, False),
        words=tuple(words),
        chars=tuple(Char(c.get("char", str), c.number("start"), c.number("end"))
                    for c in u.items("chars")),
        phones=tuple(Phone(p.get("phone", str), p.number("start"), p.number("end"),
                           p.get("word_index", int, -1)) for p in u.items("phones")),
        source=u.get("source", str, "text"))


def _word_dict(w: Word) -> dict[str, Any]:
    d = {"word": w.word, "start": _r(w.start), "end": _r(w.end), "char_start": w.char_start,
         "char_end": w.char_end, "played": w.played}
    if w.onset is not None:
        d["onset"] = _r(w.onset)
    if w.confidence is not None:
        d["confidence"] = _r(w.confidence)
    return d


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, rename."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temp file's path in ``path``'s folder to write an output into (by any means: a file
    object, an encoder); when the block ends without error it is synced and renamed onto
    ``path`` with the permissions of an ordinarily created file (``mkstemp`` makes 0600),
    else removed. Readers of ``path`` never see a partial output.

    >>> import tempfile
    >>> with atomic_output(Path(tempfile.mkdtemp()) / "out.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> oct((tmp.parent / "out.txt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
