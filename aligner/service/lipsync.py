"""Word and viseme events for one proxied call, computed chunk by chunk off the event loop.

Each agent chunk (audio + the text it speaks) is aligned with :class:`aligner.speech.stream.StreamAligner`
in a thread pool; its phones feed a :class:`aligner.visemes.VisemeStream`. :meth:`LipSync.align`
returns the events to send *before* that chunk's audio, with sample offsets relative to the
chunk's first sample (the proxy adds the call's delivered-sample offset):

- ``{"event_type": "word", "index": 3, "word": "Hello", "text": "Hello,", "utterance": 0,
  "start_sample": -800, "end_sample": 5200, "sample_rate": 24000, "final": false}``: a word
  that starts in this chunk, or a word of the previous chunk whose end moved because it
  continues here (same ``index``: the newer event replaces the older); ``text`` is the word as
  written in the chunks (with its punctuation), ``utterance`` the agent utterance it belongs to
  (the proxy numbers them); ``final`` is false while the word may still grow.
- ``{"event_type": "viseme", "viseme": "PP", "start_sample": 120, "end_sample": 900,
  "sample_rate": 24000, "weight": 1.0}``: a mouth shape (set chosen by the service) held
  from start to end; consecutive cues are contiguous.

With ``outputs`` (what the call's front-end formats need, :mod:`aligner.service.formats`),
also:

- ``"talkinghead"``, ``"azure"``: viseme events of the ``talkinghead`` or ``azure`` set timed
  when their sounds start (``lead`` 0, as those engines' events are), marked ``"for":
  "talkinghead"`` / ``"for": "azure"``;
- ``"chars"``: ``{"event_type": "chars", "chars": [["H", 0, 480], ...], "sample_rate": ...}``,
  each character of the chunk's text with its start and end sample;
- ``"blendshapes"``: ``{"event_type": "blendshapes", "fps": 60, "names": [ARKit names],
  "start_sample": ..., "sample_rate": ..., "frames": [[weights], ...]}``, ARKit weights of the
  ``oculus`` cues sampled at ``fps`` (frame ``k`` at ``start_sample + k * sample_rate / fps``),
  each frame sent once its crossfade is final.

The phones are refined before they become cues, as the offline ``aligner visemes --text`` does
(:func:`aligner.visemes.refine_phones`): where the aligner warped espeak-ng's speech of the
text onto the chunk, they go where that speech says they sound (:func:`aligner.visemes.by_sound`);
phones it spread by a duration model (pocketsphinx, words split between chunks) are re-timed on
the chunk's audio (with the end of the audio before it for context) by the shipped phone model
(:func:`aligner.visemes.retime`): sharper mouth-shape boundaries than the aligner's.

A viseme cue is final only once the next phones are known (the mouth anticipates the next
shape), so the last ~``lead + min_hold`` (about 0.1 s) of a chunk's cues go out with the next
chunk, or from :meth:`flush` when none follows soon. They lie at the chunk's end, so they still
reach the page before that audio plays. After a ``clear``, :meth:`clear` starts afresh.

Agent audio that comes without its text (a Twilio call) is estimated an utterance at a time
(:func:`utterance_events`, :meth:`LipSync.estimate`): words recognised from the audio (marked
``"source": "recognized"``), visemes from their phones (:mod:`aligner.session.textless`).

>>> import numpy as np
>>> ls = ChunkEvents(16000, "s16le", backend="fallback")
>>> [(e["word"], e["text"]) for e in ls.align_now(np.zeros(8000, np.int16).tobytes(),
...                                               "Hello, there.") if e["event_type"] == "word"]
[('Hello', 'Hello,'), ('there', 'there.')]
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from typing import Any

import numpy as np

from ..audio import decode
from ..speech.stream import StreamAligner
from ..speech.text import written
from ..timeline import Phone
from ..visemes import (
    Cue,
    Motion,
    VisemeStream,
    blendshape_weights,
    pause_after,
    pronunciation_variants,
    refine_phones,
)
from ..visemes.sets import ARKIT_SHAPES
from ..workers import process_pool

__all__ = ["OUTPUTS", "RECENT_SECONDS", "AlignWorkers", "ChunkEvents", "LipSync",
           "utterance_events", "warm_up"]

#: Seconds of audio before a chunk kept for re-timing its phones: a word grown across the chunk
#: edge, and the context the phone model's features look at.
RECENT_SECONDS = 2.0
#: What :class:`ChunkEvents` may compute besides word and viseme events (module docstring).
OUTPUTS = ("talkinghead", "azure", "chars", "blendshapes")
#: Frames per second of the blend-shape events (Azure's blend shapes run at 60 fps too).
BLENDSHAPE_FPS = 60
_MOTION = Motion()
_TWEEN = _MOTION.tween
_SOUNDING = Motion(lead=0.0)  # the engines' events say when a sound starts


class _Mouth:
    """One viseme stream of a call, with the end of its last cue sent (cues stay contiguous)."""

    def __init__(self, vset: str, motion: Motion = _MOTION) -> None:
        self.stream = VisemeStream(vset, motion)
        self.cue_until: float | None = None


class _Blendshapes:
    """ARKit frames of the ``oculus`` cues, each sampled once the cues around it are final."""

    def __init__(self) -> None:
        self.cues: list[Cue] = []  # recent cues: the crossfade of the next frames
        self.next = 0  # index of the next frame (at next / fps on the LipSync clock)

    def frames(self, cues: list[Cue], final: bool) -> tuple[int, np.ndarray]:
        """(first frame index, weights) of the frames that became final with ``cues``."""
        self.cues += cues
        if not self.cues:
            return self.next, np.zeros((0, len(ARKIT_SHAPES)))
        known = self.cues[-1].end - (0.0 if final else _TWEEN / 2)
        last = int(np.floor(known * BLENDSHAPE_FPS + 1e-9))
        first = self.next
        if last < first:
            return first, np.zeros((0, len(ARKIT_SHAPES)))
        times = np.arange(first, last + 1) / BLENDSHAPE_FPS
        weights = blendshape_weights(self.cues, times, tween=_TWEEN)
        self.next = last + 1
        keep = self.next / BLENDSHAPE_FPS - _TWEEN
        self.cues = [c for c in self.cues if c.end > keep]
        return first, weights


class ChunkEvents:
    """The word/viseme state of one call's agent audio, fed chunk by chunk (pure, no I/O).

    Args:
        sample_rate: the call's sample rate.
        encoding: the call's audio encoding (``s16le`` or ``mulaw``).
        viseme_set: ``oculus`` (default), ``talkinghead``, ``azure``, ``polly`` or ``rhubarb``.
        backend: the aligner backend (see :func:`aligner.align`).
        outputs: more events to compute, any of :data:`OUTPUTS` (module docstring).
        voice: the agent voice's profile (:class:`aligner.speech.adaptation.VoiceProfile`):
            each chunk uses it where it fits, and it learns from each chunk.
    """

    def __init__(self, sample_rate: int, encoding: str, *, viseme_set: str = "oculus",
                 backend: str = "auto", outputs: tuple[str, ...] = (), voice: Any = None) -> None:
        unknown = set(outputs) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}; known: {', '.join(OUTPUTS)}")
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.viseme_set = viseme_set
        self.backend = backend
        self.outputs = tuple(outputs)
        self.voice = voice
        self._aligner: StreamAligner | None = None
        self._mouths: dict[str | None, _Mouth] = {}
        self._blend: _Blendshapes | None = None
        self._new_mouths()
        self._fed = 0  # samples fed since the last clear: the LipSync clock
        self._aligner_at = 0  # LipSync-clock sample where the current StreamAligner started
        self._words_sent = 0  # words of the current aligner already announced
        self._last_end: int | None = None  # end (LipSync clock) announced for the last word
        self._last_final = True  # whether the last word was announced final
        self._index = 0  # word index across aligners
        self._phones_until = 0.0  # end of the last phone fed to the viseme streams (s)
        self._last_phone: Phone | None = None  # that phone (a word's onset may extend it)
        self._cleared = False
        self._utterance = 0
        self.pending_tail = False  # cues held back waiting for the next chunk
        self._recent = np.zeros(0, np.int16)  # the audio before the chunk: re-timing context

    def _new_mouths(self) -> None:
        """Fresh viseme streams: the service's set (key None), and those ``outputs`` need."""
        self._mouths = {None: _Mouth(self.viseme_set)}
        for name in ("talkinghead", "azure"):
            if name in self.outputs:
                self._mouths[name] = _Mouth(name, _SOUNDING)
        if "blendshapes" in self.outputs:
            self._mouths["blendshapes"] = _Mouth("oculus")
            self._blend = _Blendshapes()

    def clear(self) -> None:
        """A ``clear``: the next chunk starts a new utterance."""
        self._cleared = True

    def align_now(self, audio: bytes, text: str, utterance: int = 0) -> list[dict[str, Any]]:
        """The events for one chunk of agent utterance ``utterance``, offsets relative to the
        chunk's first sample (module docstring)."""
        if self._cleared:
            self._reset()
        pcm = decode(audio, self.encoding)
        chunk_at = self._fed
        if utterance != self._utterance:  # a new utterance never continues the last one's words
            self._utterance, self._aligner = utterance, None
        if self._aligner is not None and _new_sentence(self._aligner.text, text):
            text = " " + text  # "today?" + "Of course": two words, not "today?Of"
        if self._aligner is None:
            self._aligner = StreamAligner(self.sample_rate, backend=self.backend, voice=self.voice)
            self._aligner_at, self._words_sent, self._last_end = self._fed, 0, None
        chars_from = len(self._aligner.text)
        result = self._aligner.feed(pcm, text)
        self._fed += len(pcm)
        rate, base = self.sample_rate, self._aligner_at
        events: list[dict[str, Any]] = []
        words = result.words
        first_new = self._words_sent
        if first_new > 0 and first_new <= len(words):  # the last word announced may have grown
            w = words[first_new - 1]
            end = base + round(w.end * rate)
            final = w.end <= result.final_until
            if end != self._last_end or final != self._last_final:  # grown, or now final
                events.append(self._word(self._index - 1, w, result.text, base, chunk_at,
                                         final))
                self._last_end, self._last_final = end, final
        for w in words[first_new:]:
            final = w.end <= result.final_until
            events.append(self._word(self._index, w, result.text, base, chunk_at, final))
            self._index += 1
            self._last_end, self._last_final = base + round(w.end * rate), final
        self._words_sent = len(words)
        t0 = base / rate  # phones on the LipSync clock, in seconds
        # phones in order, each after those fed before (a grown word's earlier phones were fed)
        new_phones = [Phone(p.phone, t0 + p.start, t0 + p.end, p.word_index)
                      for p in result.phones if t0 + p.start >= self._phones_until - 1e-6]
        if new_phones:
            self._phones_until = new_phones[-1].end
        # refined on the recent audio (the phones of a grown word reach into the chunk before)
        audio = np.concatenate([self._recent, pcm])
        audio_start = (self._fed - len(audio)) / rate
        refined = refine_phones(new_phones, words, audio, rate, start=audio_start, offset=t0,
                                pauses=pause_after(result.text, words),
                                variants=pronunciation_variants(words, result.phones),
                                before=self._last_phone)
        self._last_phone = refined[-1] if refined else self._last_phone
        for key, mouth in self._mouths.items():
            events += self._cues(key, mouth.stream.feed(refined, self._fed / rate), chunk_at)
        self._recent = audio[-int(RECENT_SECONDS * rate):]
        if "chars" in self.outputs:
            events.append({"event_type": "chars", "sample_rate": rate, "chars": [
                [c.char, base + round(c.start * rate) - chunk_at,
                 base + round(c.end * rate) - chunk_at] for c in result.chars[chars_from:]]})
        self.pending_tail = True
        if result.final_until >= result.duration:  # no word straddles: next chunk starts afresh
            self._aligner = None
        return events

    def flush(self) -> list[dict[str, Any]]:
        """The held-back cues up to the end of the audio fed so far, relative to that end."""
        self.pending_tail = False
        if self._cleared:  # the held-back cues belong to audio that was cleared
            return []
        end = self._fed / self.sample_rate
        events: list[dict[str, Any]] = []
        for key, mouth in self._mouths.items():
            events += self._cues(key, mouth.stream.finish(end), self._fed, final=True)
        return events

    def _reset(self) -> None:
        self._cleared = False
        self._aligner = None
        self._new_mouths()
        self._fed = self._aligner_at = self._words_sent = 0
        self._last_end = None
        self._phones_until = 0.0
        self._last_phone = None
        self.pending_tail = False
        self._recent = self._recent[:0]

    def _word(self, index: int, w, text: str, base: int, chunk_at: int,
              final: bool) -> dict[str, Any]:
        return _word_event(index, w, text, self._utterance, self.sample_rate, base - chunk_at,
                           final)

    def _cues(self, key: str | None, cues: list[Cue], at: int,
              final: bool = False) -> list[dict[str, Any]]:
        """The events of stream ``key``'s new cues; a gap left after :meth:`flush` (the stream
        does not repeat its rest shape) is filled with the rest shape, so the cues stay
        contiguous. The blend-shape stream's cues become frames."""
        mouth = self._mouths[key]
        filled: list[Cue] = []
        for c in cues:
            if mouth.cue_until is not None and c.start > mouth.cue_until + 1e-9:
                filled.append(Cue(mouth.cue_until, c.start, mouth.stream.vset.rest))
            filled.append(c)
            mouth.cue_until = c.end
        if key == "blendshapes":
            return self._frames(filled, at, final)
        out = [self._cue(c, at) for c in filled]
        return [{**e, "for": key} for e in out] if key else out

    def _cue(self, cue, at: int) -> dict[str, Any]:
        return _cue_event(cue, self.sample_rate, at)

    def _frames(self, cues: list[Cue], at: int, final: bool) -> list[dict[str, Any]]:
        first, weights = self._blend.frames(cues, final)
        if not len(weights):
            return []
        rate = self.sample_rate
        return [{"event_type": "blendshapes", "fps": BLENDSHAPE_FPS, "names": list(ARKIT_SHAPES),
                 "start_sample": round(first / BLENDSHAPE_FPS * rate) - at, "sample_rate": rate,
                 "frames": np.round(weights, 3).tolist()}]

def utterance_events(audio: bytes, encoding: str, sample_rate: int, *, first_index: int = 0,
                     utterance: int = 0, viseme_set: str = "oculus",
                     backend: str = "auto", voice: Any = None) -> list[dict[str, Any]]:
    """Word and viseme events of a whole agent utterance that came without its text.

    Words are recognised from the audio and aligned on it, visemes come from their phones
    (:func:`aligner.session.textless.estimate`; with the agent voice's profile ``voice``, on
    the model adapted to it where it fits, and the profile learns from them). Word indexes
    start at ``first_index``; offsets are relative to the utterance's first sample; every event
    is final.

    >>> utterance_events(bytes(1600), "s16le", 8000)[0]["viseme"]   # 0.1 s of silence
    'sil'
    """
    from ..session.textless import estimate

    pcm = decode(audio, encoding)
    found = estimate(pcm, sample_rate, backend=backend, voice=voice)
    events = [{**_word_event(first_index + i, w, found.text, utterance, sample_rate, 0, True),
               "source": "recognized"} for i, w in enumerate(found.words)]
    visemes = VisemeStream(viseme_set)
    duration = len(pcm) / sample_rate
    cues = visemes.feed(found.phones, duration) + visemes.finish(duration)
    return events + [_cue_event(c, sample_rate, 0) for c in cues]


def _word_event(index: int, w, text: str, utterance: int, rate: int, offset: int,
                final: bool) -> dict[str, Any]:
    """A word event; ``offset`` (samples) is added to the word's own times."""
    return {"event_type": "word", "index": index, "word": w.word,
            "text": written(text, w.char_start, w.char_end), "utterance": utterance,
            "start_sample": offset + round(w.start * rate),
            "end_sample": offset + round(w.end * rate), "sample_rate": rate, "final": final}


def _cue_event(cue, rate: int, at: int) -> dict[str, Any]:
    """A viseme event, ``at`` samples subtracted from the cue's times."""
    return {"event_type": "viseme", "viseme": cue.viseme,
            "start_sample": round(cue.start * rate) - at,
            "end_sample": round(cue.end * rate) - at,
            "sample_rate": rate, "weight": round(cue.weight, 3)}



def _new_sentence(before: str, text: str) -> bool:
    """True if ``text`` starts a sentence glued to the end of ``before`` (no space between
    lines, as the emulator sends them): ``"...today?"`` + ``"Of course"``."""
    return (before[-1:] in ("?", "!") and text[:1].isalpha()) or (
        before[-1:] == "." and text[:1].isupper())


# --- running ChunkEvents in worker processes ------------------------------------------------------

_STATES: dict[str, ChunkEvents] = {}  # filled at run time, in whichever process aligns


_LEARNED: dict[str, tuple[Any, dict | None]] = {}  # call -> (its profile, the stats it began with)


def _voice(key: str, profiles: str | None, voice: str | None) -> Any:
    """Call ``key``'s profile: its voice's profile as stored now (what every earlier call of the
    voice added, in any process), which learns from the call's chunks."""
    if not profiles or not voice:
        return None
    from .profiles import open_profiles

    mine = open_profiles(profiles).load(voice)
    _LEARNED[key] = (mine, mine.stats)
    return mine


def _keep_learned(key: str, profiles: str | None) -> None:
    """Add what call ``key`` learned to its voice's stored profile (once: its recording's
    timeline, rendered from the same call, adds nothing more)."""
    mine, before = _LEARNED.pop(key, (None, None))
    learned = mine.learned_since(before) if mine is not None else None
    if learned is not None and profiles:
        from .profiles import open_profiles

        open_profiles(profiles).merge(mine.key, learned, source=key)


def _remote(op: str, key: str, params: tuple, cleared: bool, audio: bytes = b"",
            text: str = "", utterance: int = 0) -> tuple[list[dict[str, Any]], bool]:
    """Run ``op`` (``feed``, ``flush``, ``drop``) on call ``key``'s state; returns (events,
    pending_tail)."""
    if op == "drop":
        *_, profiles, _voice_key = params
        _STATES.pop(key, None)
        _keep_learned(key, profiles)
        return [], False
    state = _state(key, params)
    if cleared:
        state.clear()
    events = state.align_now(audio, text, utterance) if op == "feed" else state.flush()
    return events, state.pending_tail


def _state(key: str, params: tuple) -> ChunkEvents:
    """Call ``key``'s state in this process (made on first use, with its voice's profile)."""
    state = _STATES.get(key)
    if state is None:
        rate, encoding, viseme_set, backend, outputs, profiles, voice = params
        state = _STATES[key] = ChunkEvents(rate, encoding, viseme_set=viseme_set, backend=backend,
                                           outputs=outputs, voice=_voice(key, profiles, voice))
    return state


def _remote_estimate(key: str, params: tuple, audio: bytes, utterance: int,
                     first_index: int) -> list[dict[str, Any]]:
    """:func:`utterance_events` for call ``key``, with its voice's profile (which learns)."""
    rate, encoding, viseme_set, backend, *_ = params
    return utterance_events(audio, encoding, rate, first_index=first_index, utterance=utterance,
                            viseme_set=viseme_set, backend=backend, voice=_state(key, params).voice)


def warm_up(viseme_set: str = "oculus") -> bool:
    """Align a short spoken chunk once, so that the first call does not pay for loading the
    aligner and for the first run of its reference warp and re-timing (silence without the
    ``speech`` extra: the fallback aligner is what runs then)."""
    text = "Hi there, how can I help?"
    from ..audio import resample
    from ..errors import MissingBackendError
    from ..speech.synthesis import synthesize

    try:
        said = synthesize(text)
        pcm = resample(said.samples, said.sample_rate, 16000)
    except MissingBackendError:
        pcm = np.zeros(8000, np.int16)
    ChunkEvents(16000, "s16le", viseme_set=viseme_set).align_now(pcm.tobytes(), text)
    return True


class AlignWorkers:
    """``n`` single-process executors; a call stays on one (its state lives there).

    Alignment is CPU-bound Python: in worker processes it never takes the event loop's GIL.
    """

    def __init__(self, n: int = 2) -> None:
        self.executors = [process_pool(1) for _ in range(max(1, n))]
        self._next = 0

    def pick(self) -> Executor:
        """The executor for a new call (round robin)."""
        self._next = (self._next + 1) % len(self.executors)
        return self.executors[self._next]

    async def warm_up(self, viseme_set: str) -> None:
        """Load the aligner in every worker."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(ex, warm_up, viseme_set)
                               for ex in self.executors))

    def shutdown(self) -> None:
        """Stop the workers (alignments not started are cancelled)."""
        for ex in self.executors:
            ex.shutdown(wait=True, cancel_futures=True)


class LipSync:
    """One call's word/viseme events, computed off the event loop (see the module docstring).

    Calls run one at a time in call order (an asyncio lock, first come first served). With
    ``executor=None`` the work runs inline (tests, doctests).

    Args:
        key: a unique key of the call (its id).
        sample_rate: the call's sample rate.
        encoding: the call's audio encoding.
        executor: a single-process executor from :class:`AlignWorkers`, or None.
        viseme_set: the viseme set of the viseme events.
        backend: the aligner backend.
        outputs: more events to compute (:data:`OUTPUTS`).
        profiles: where the voice profiles are (a folder or a Redis URL:
            :func:`aligner.service.profiles.open_profiles`) and ``voice``: the key of the call's
            voice there (its agent id): the call starts with what earlier calls of the voice
            learned and adds what it learns when it ends.
    """

    def __init__(self, key: str, sample_rate: int, encoding: str, executor: Executor | None, *,
                 viseme_set: str = "oculus", backend: str = "auto",
                 outputs: tuple[str, ...] = (), profiles: str | None = None,
                 voice: str | None = None) -> None:
        self.key = key
        self.executor = executor
        self._params = (sample_rate, encoding, viseme_set, backend, tuple(outputs), profiles,
                        voice)
        self._cleared = False
        self._lock: asyncio.Lock | None = None
        self.pending_tail = False  # cues held back waiting for the next chunk

    @property
    def busy(self) -> bool:
        """True while a chunk is being aligned or waits to be."""
        return self._lock is not None and self._lock.locked()

    def clear(self) -> None:
        """A ``clear``: the next chunk starts a new utterance."""
        self._cleared = True

    async def align(self, audio: bytes, text: str, utterance: int = 0) -> list[dict[str, Any]]:
        """The events for one chunk of utterance ``utterance``, offsets relative to its first
        sample."""
        return await self._run("feed", audio, text, utterance)

    async def flush(self) -> list[dict[str, Any]]:
        """The held-back cues, offsets relative to the end of the audio aligned so far."""
        return await self._run("flush")

    async def close(self) -> None:
        """Forget the call's state."""
        await self._run("drop")

    async def estimate(self, audio: bytes, utterance: int,
                       first_index: int) -> list[dict[str, Any]]:
        """The events of a whole utterance without text (:func:`utterance_events`), with the
        call's voice profile."""
        work = functools.partial(_remote_estimate, self.key, self._params, audio, utterance,
                                 first_index)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.executor is None:
                return work()
            return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def _run(self, op: str, audio: bytes = b"", text: str = "",
                   utterance: int = 0) -> list[dict[str, Any]]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            cleared, self._cleared = self._cleared, False
            if self.executor is None:
                events, tail = _remote(op, self.key, self._params, cleared, audio, text,
                                       utterance)
            else:
                loop = asyncio.get_running_loop()
                events, tail = await loop.run_in_executor(
                    self.executor, _remote, op, self.key, self._params, cleared, audio, text,
                    utterance)
            self.pending_tail = tail
            return events
