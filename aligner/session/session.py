"""The session model: playback as a front end hears it, and the :class:`Timeline` it builds.

Sans-I/O like h11's state module: no sockets, no clock. Every input is an
:class:`aligner.wire.events.Stamped` event carrying the time (session clock, 0 = websocket open) the
edge saw it; everything else is derived:

* **Agent audio** (``AlignedAudio`` with text, ``AgentAudio`` without; Twilio ``media`` from the
  server) is queued and played back-to-back, never before ``arrival + jitter_buffer``. An agent
  utterance ends when the queue runs dry for more than ``utterance_gap`` (default 0.5 s) or at a
  ``clear``. See :mod:`aligner.session.playback` for the schedule, the streaming alignment of each
  utterance and the exact ``clear`` rules (unplayed words kept with ``played=False``).
  An agent utterance that came with no text at all is estimated when it ends
  (:func:`aligner.session.textless.estimate`): phones from the audio alone, and recognised words
  (``Utterance.source`` ``"recognized"``; ``"audio"`` with phones only when nothing was
  recognised or ``recognize=False``).
* **User audio** (``MicAudio``; Twilio ``media`` to the server) is placed when it was sent, and
  user utterances come from ``update`` transcripts (:mod:`aligner.session.usertrack`).
* **Events**: ``clear``, ``metadata`` (payload), ``turn`` (``{"turn": "user_turn"}`` when the
  turn-taking changes), ``unknown`` (malformed frames, counted), ``close`` (code, reason), and
  on Twilio ``start``, ``mark``, ``dtmf``, ``stop``.

Why 0.5 s for the utterance gap: TTS streams usually run ahead of playback, but short underruns
(an LLM token stall between sentences) happen inside one answer and must not split it, while a
new answer comes only after the user spoke (well over half a second). Tune it with
``utterance_gap``.

Usage (live or from a capture)::

    session = Session(16000, "s16le", jitter_buffer=0.05)
    for stamped in events:             # each aligner.wire.events.Stamped, in order
        session.receive(stamped)
        live = session.timeline(audio=False), session.final_until   # for LiveRenderer.feed
    timeline = session.finish()

>>> import numpy as np
>>> from aligner.wire.events import AgentAudio, Clear, Stamped
>>> s = Session(8000, "s16le", align=False)
>>> s.receive(Stamped(0.0, "in", AgentAudio(bytes(16000))))   # 1 s of audio
>>> s.receive(Stamped(0.4, "in", Clear()))
>>> tl = s.finish()
>>> u = tl.utterances[0]
>>> (u.start, u.end, u.interrupted, len(tl.track("agent").samples))
(0.0, 0.4, True, 3200)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import check_encoding, check_rate, decode, wav_bytes
from ..errors import AudioError, CaptureError, SessionError
from ..timeline import AudioTrack, Timeline, TimelineEvent, write_atomic
from ..wire.events import (
    AgentAudio,
    AlignedAudio,
    Clear,
    Metadata,
    MicAudio,
    Ping,
    Pong,
    Stamped,
    TwilioClear,
    TwilioConnected,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioStart,
    TwilioStop,
    Unknown,
    Update,
)
from .playback import AgentUtterance, ScheduledChunk, first_sample
from .usertrack import UserAudio, UserTurns

__all__ = ["DEFAULT_UTTERANCE_GAP", "Session", "build_timeline", "save_timeline", "write_audio"]

logger = logging.getLogger(__name__)

DEFAULT_UTTERANCE_GAP = 0.5
_NORMAL_CLOSE = (1000, 1001, 1005, None)


class Session:
    """One call, fed stamped events in order; gives the :class:`Timeline` at any time.

    Call :meth:`receive` for every event of both directions (and :meth:`advance` when time
    passes without one, so utterances can end live), read :meth:`timeline` and
    :attr:`final_until` whenever you like, :meth:`receive_close` when the socket closes, and
    :meth:`finish` at the end.

    Args:
        sample_rate: the call's ``sample_rate`` (8000-48000 Hz).
        encoding: the call's ``audio_encoding`` (``"s16le"`` or ``"mulaw"``).
        jitter_buffer: seconds a front end waits after a chunk arrives before it may play.
        utterance_gap: the queue must run dry longer than this (seconds) to end an utterance.
        align: align words/chars/phones (agent: streaming per utterance; user: when updates
            carry no words). False keeps text and times of utterances only (fast).
        recognize: with ``align``, agent utterances that came without text get words
            recognised from their audio when they end (pocketsphinx: slow, a blocking call
            inside :meth:`receive`/:meth:`advance`/:meth:`finish`; see
            ``benchmarks/textless.py``). False: their phones only, estimated from the audio
            (fast).
        backend: the aligner backend (see :func:`aligner.align`), e.g. ``"fallback"``.
        voice: the agent voice's profile (:class:`aligner.speech.adaptation.VoiceProfile`):
            every agent utterance uses it where it fits and it learns from each (one without
            text from the words recognised in it, which are heard on the adapted model).
        info: call facts for ``Timeline.metadata`` (call_id, protocol, ...; JSON values).

    Raises:
        AudioError: unknown encoding or a rate out of range.
        ValueError: a negative ``jitter_buffer`` or ``utterance_gap``.
    """

    def __init__(self, sample_rate: int, encoding: str = "s16le", *, jitter_buffer: float = 0.0,
                 utterance_gap: float = DEFAULT_UTTERANCE_GAP, align: bool = True,
                 recognize: bool = True, backend: str = "auto", voice: Any = None,
                 info: Mapping[str, Any] | None = None) -> None:
        self.sample_rate = check_rate(sample_rate)
        self.encoding = check_encoding(encoding)
        if jitter_buffer < 0 or utterance_gap < 0:
            raise ValueError("jitter_buffer and utterance_gap must be >= 0")
        self.jitter_buffer = float(jitter_buffer)
        self.utterance_gap = float(utterance_gap)
        self.now = 0.0
        self.finished = False
        self.malformed = 0  # frames that could not be used (logged, counted, kept as events)
        self._factory = _stream_aligner(backend, voice) if align else None
        self._estimator = _estimator(backend, recognize, voice) if align else None
        self._info = {k: v for k, v in (info or {}).items() if _is_json_scalar(v)}
        self._agent: list[AgentUtterance] = []
        self._current: AgentUtterance | None = None
        self._agent_end = 0  # sample where the last scheduled agent chunk ends
        self._events: list[TimelineEvent] = []
        self._turn: str | None = None
        self._final = 0.0
        self.user = UserAudio(sample_rate)
        self.turns = UserTurns(self.user, _user_aligner(backend) if align else None)

    # --- input -----------------------------------------------------------------------------------
    def receive(self, stamped: Stamped) -> None:
        """Feed one event stamped with the time the edge saw it.

        Raises:
            SessionError: the session has finished.
        """
        t = self._tick(stamped.t)
        ev, direction = stamped.event, stamped.direction
        match ev:
            case AlignedAudio(audio=audio, text=text):
                self._agent_audio(t, audio, text)
            case AgentAudio(audio=audio):
                self._agent_audio(t, audio, "")
            case MicAudio(audio=audio):
                self._user_audio(t, audio)
            case TwilioMedia(payload=payload):
                # Direction decides: the server sends agent audio, the caller's side user audio
                # (the server's media frames carry no track field).
                if direction == "in":
                    self._agent_audio(t, payload, "")
                else:
                    self._user_audio(t, payload)
            case Clear() | TwilioClear():
                self._clear(t)
            case Update(transcript=transcript, turntaking=turn):
                self.turns.update(t, transcript)
                if turn is not None and turn != self._turn:
                    self._turn = turn
                    self._event(t, "turn", {"turn": turn})
            case Metadata(metadata=payload):
                self._event(t, "metadata", payload)
            case Unknown(raw=raw, reason=reason):
                self._malformed(t, reason or "unknown frame", direction, raw)
            case TwilioStart():
                self._info.setdefault("stream_sid", ev.stream_sid)
                self._event(t, "start", {"stream_sid": ev.stream_sid, "call_sid": ev.call_sid,
                                         "tracks": list(ev.tracks)})
            case TwilioMark(name=name) if direction == "in":
                # the server's mark follows the audio it queued: it plays once that audio has
                plays_at = round(max(t, self._agent_end / self.sample_rate), 6)
                self._event(t, "mark", {"name": name, "direction": direction, "plays_at": plays_at})
            case TwilioMark(name=name):
                self._event(t, "mark", {"name": name, "direction": direction})
            case TwilioDtmf(digit=digit):
                self._event(t, "dtmf", {"digit": digit})
            case TwilioStop():
                self._event(t, "stop", None)
            case Ping() | Pong() | TwilioConnected():
                pass
            case _:
                logger.debug("session ignores %s", type(ev).__name__)

    def receive_all(self, events: Iterable[Stamped]) -> None:
        """:meth:`receive` each event in order."""
        for stamped in events:
            self.receive(stamped)

    def advance(self, t: float) -> None:
        """Time ``t`` has come with no event (lets a live session end a finished utterance)."""
        self._tick(t)

    def receive_close(self, t: float, code: int | None, reason: str = "",
                      by: str = "server") -> None:
        """The websocket closed at ``t`` with ``code`` and ``reason`` (an ``error`` if abnormal)."""
        t = self._tick(t)
        self._event(t, "close", {"code": code, "reason": reason, "by": by,
                                 "error": code not in _NORMAL_CLOSE})

    def finish(self, t: float | None = None) -> Timeline:
        """End the session (at ``t``, default: the last event) and return the final timeline."""
        if not self.finished:
            if t is not None:
                self._tick(t)
            self._end_current()
            self.finished = True
        return self.timeline()

    # --- output ----------------------------------------------------------------------------------
    @property
    def final_until(self) -> float:
        """Session time before which the timeline will not change any more (never decreases).

        Bounded by the last time seen (a ``clear`` may still come), by the streaming aligner of
        the utterance being spoken, and, once updates arrive, by user speech not yet final.
        ``inf`` after :meth:`finish`.
        """
        if self.finished:
            return math.inf
        f = self.now
        if self._current is not None:
            f = min(f, self._current.final_until())
        f = min(f, self.turns.final_until(self.now))
        self._final = max(self._final, f)
        return self._final

    def schedule(self) -> tuple[ScheduledChunk, ...]:
        """Every agent chunk so far with its arrival, play and heard times."""
        sr = self.sample_rate
        return tuple(ScheduledChunk(i, c.arrival, c.start / sr, c.end / sr,
                                    (c.start + c.heard) / sr, c.text)
                     for i, u in enumerate(self._agent) for c in u.chunks)

    def timeline(self, *, audio: bool = True) -> Timeline:
        """The timeline so far (frozen). ``audio=False`` leaves out the tracks (cheaper live)."""
        utterances = [u.utterance() for u in self._agent] + self.turns.utterances(self.finished)
        utterances.sort(key=lambda u: (u.start, u.end))
        tracks: tuple[AudioTrack, ...] = ()
        if audio:
            tracks = (AudioTrack("agent", self.sample_rate, samples=self._agent_track()),
                      AudioTrack("user", self.sample_rate, samples=self.user.samples()))
        heard = max((u.heard_end for u in self._agent), default=0) / self.sample_rate
        duration = max([self.now, heard, self.user.end] + [u.end for u in utterances])
        meta = dict(self._info, jitter_buffer=self.jitter_buffer,
                    utterance_gap=self.utterance_gap, malformed_frames=self.malformed,
                    sample_rate=self.sample_rate, audio_encoding=self.encoding)
        return Timeline(utterances=tuple(utterances), events=tuple(self._events), audio=tracks,
                        duration=round(duration, 6), metadata=tuple(sorted(meta.items())))

    # --- internals -------------------------------------------------------------------------------
    def _tick(self, t: float) -> float:
        if self.finished:
            raise SessionError("session already finished; start a new Session")
        if not t >= self.now:  # out of order (or NaN): keep the clock monotonic
            logger.debug("event at %.3f s before the clock (%.3f s); using the clock", t, self.now)
            t = self.now
        # The session clock has the timeline's resolution (1 us): an event recorded at a time
        # must act at exactly that time (a clear at 2.325875 s cuts at that sample, not later).
        t = round(t, 6)
        self.now = t
        cur = self._current
        if cur is not None and t + self.jitter_buffer > cur.end_time + self.utterance_gap:
            self._end_current()
        return t

    def _end_current(self) -> None:
        if self._current is not None:
            self._current.finish()
            self._current = None

    def _decode(self, t: float, data: bytes, direction: str) -> np.ndarray | None:
        try:
            return decode(data, self.encoding)
        except AudioError as exc:
            self._malformed(t, str(exc), direction, data)
            if len(data) > 1:  # keep what can be used: drop the odd trailing byte
                return decode(data[:len(data) - len(data) % 2], self.encoding)
            return None

    def _agent_audio(self, t: float, data: bytes, text: str) -> None:
        samples = self._decode(t, data, "in")
        if samples is None:
            samples = np.zeros(0, np.int16)
        if not len(samples) and not text:
            return  # nothing to play, nothing said
        start = max(self._agent_end, first_sample(t + self.jitter_buffer, self.sample_rate))
        cur = self._current
        if cur is not None and (start - cur.chunks[-1].end) / self.sample_rate > self.utterance_gap:
            self._end_current()
        if self._current is None:
            self._current = AgentUtterance(self.sample_rate, self._factory, self._estimator)
            self._agent.append(self._current)
        self._current.add(t, samples, text, start=start)
        self._agent_end = start + len(samples)

    def _user_audio(self, t: float, data: bytes) -> None:
        samples = self._decode(t, data, "out")
        if samples is not None:
            self.user.add(t, samples)

    def _clear(self, t: float) -> None:
        self._event(t, "clear", None)
        if self._current is not None:
            self._current.clear(t)
            self._end_current()
        self._agent_end = min(self._agent_end, first_sample(t, self.sample_rate))

    def _event(self, t: float, kind: str, data: Any) -> None:
        self._events.append(TimelineEvent(round(t, 6), kind, data))

    def _malformed(self, t: float, reason: str, direction: str, raw: str | bytes) -> None:
        self.malformed += 1
        logger.warning("malformed %s frame at %.3f s: %s", direction, t, reason)
        self._event(t, "unknown", {"reason": reason, "direction": direction, "size": len(raw)})

    def _agent_track(self) -> np.ndarray:
        end = max((u.heard_end for u in self._agent), default=0)
        out = np.zeros(end, np.int16)
        for u in self._agent:
            for c in u.chunks:
                out[c.start:c.start + c.heard] = c.samples[:c.heard]
        return out


def _is_json_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _stream_aligner(backend: str, voice: Any = None) -> Callable[[int], Any]:
    def factory(sample_rate: int) -> Any:
        from ..speech.stream import StreamAligner

        return StreamAligner(sample_rate, backend=backend, voice=voice)

    return factory


def _estimator(backend: str, recognize: bool, voice: Any = None
               ) -> Callable[[np.ndarray, int], Any]:
    def estimate(pcm: np.ndarray, sample_rate: int) -> Any:
        from .textless import estimate as _estimate

        return _estimate(pcm, sample_rate, recognize=recognize, backend=backend, voice=voice)

    return estimate


def _user_aligner(backend: str) -> Callable[[np.ndarray, int, str], Any]:
    def align(pcm: np.ndarray, sample_rate: int, text: str) -> Any:
        from ..speech.alignment import align as _align

        return _align(pcm, sample_rate, text, backend=backend)

    return align


# --- captures and files ---------------------------------------------------------------------------

def build_timeline(capture: Any, *, audio_dir: str | Path | None = None,
                   jitter_buffer: float = 0.0, utterance_gap: float = DEFAULT_UTTERANCE_GAP,
                   align: bool = True, recognize: bool = True, backend: str = "auto",
                   voice: Any = None, adapt: bool = False,
                   progress: Callable[[float, float], None] | None = None) -> Timeline:
    """The timeline of a recorded call.

    Args:
        capture: a capture directory (path) or an opened :class:`aligner.wire.capture.Capture`.
        audio_dir: if given, write the tracks there as ``agent.wav``/``user.wav`` and name them
            by file name in the timeline (save ``timeline.json`` in the same folder, as
            :func:`save_timeline` does).
        jitter_buffer, utterance_gap, align, recognize, backend, voice: see :class:`Session`.
        adapt: align the agent twice: once to learn the call's own voice (added to ``voice``'s
            statistics, if given, for this call only), once with what was learned.
        progress: called as ``progress(t, duration)`` while events are fed.

    Returns:
        The final :class:`Timeline` (tracks carry their samples in memory too).

    Raises:
        CaptureError: unreadable capture, or a header without a usable rate/encoding.
    """
    if not hasattr(capture, "events"):
        from ..wire.capture import read

        capture = read(capture)
    info = dict(capture.info)
    info["capture_skipped_lines"] = int(getattr(capture, "skipped", 0) or 0)  # e.g. a torn tail
    twilio = info.get("protocol") == "twilio"
    total = float(getattr(capture, "duration", 0.0) or 0.0)

    def run(profile: Any) -> Timeline:
        try:
            session = Session(int(info.get("sample_rate", 8000 if twilio else 0)),
                              info.get("audio_encoding", "mulaw" if twilio else "s16le"),
                              jitter_buffer=jitter_buffer, utterance_gap=utterance_gap,
                              align=align, recognize=recognize, backend=backend, voice=profile,
                              info={k: v for k, v in info.items()
                                    if k not in ("format", "version")})
        except (AudioError, TypeError, ValueError) as exc:
            raise CaptureError(f"capture {getattr(capture, 'path', '')}: {exc}") from exc
        step = max(total / 10, 1.0)
        next_report = 0.0
        for stamped in capture.events():
            session.receive(stamped)
            if progress is not None and stamped.t >= next_report:
                progress(stamped.t, total)
                next_report = stamped.t + step
        close = getattr(capture, "close", None)
        if close is not None:
            session.receive_close(close.t, close.code, close.reason, close.by)
        done = session.finish(total)
        if progress is not None:
            progress(total, total)
        return done

    if adapt and align:
        from ..speech.adaptation import VoiceProfile

        learner = voice if voice is not None else VoiceProfile("call")
        run(learner)  # learns the call's own voice
        timeline = run(VoiceProfile(learner.key, learner.stats, learner.clips))  # a copy
    else:
        timeline = run(voice)
    if audio_dir is not None:
        timeline = write_audio(timeline, audio_dir)
    return timeline


def write_audio(timeline: Timeline, audio_dir: str | Path) -> Timeline:
    """Write each in-memory track as ``<speaker>.wav`` (16-bit mono) into ``audio_dir``
    atomically; return the timeline with the tracks named by file name (samples kept)."""
    tracks = []
    for track in timeline.audio:
        if track.samples is None:
            tracks.append(track)
            continue
        name = f"{track.speaker}.wav"
        write_atomic(Path(audio_dir) / name, wav_bytes(track.samples, track.sample_rate))
        tracks.append(replace(track, path=name))
    return timeline.with_audio(*tracks)


def save_timeline(timeline: Timeline, out_dir: str | Path) -> Path:
    """Write ``timeline.json`` and its WAV tracks into ``out_dir`` (atomically); return the
    path of ``timeline.json``."""
    out_dir = Path(out_dir)
    timeline = write_audio(timeline, out_dir)
    return timeline.save(out_dir / "timeline.json")

