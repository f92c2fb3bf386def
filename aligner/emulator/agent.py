"""The agent loop of one call: turn-taking, speaking, barge-in, recognition, hang-up.

A :class:`Conversation` sits between a transport (the web or Twilio websocket, see
:class:`Transport`) and a brain (:mod:`.brain`). User audio goes in through
:meth:`Conversation.receive_audio`; a voice-activity detector decides when the user starts and
stops talking. The agent's lines are synthesised (:mod:`.speaker`) and sent faster than real time,
while a model of the client's playback clock says what the user has actually heard: agent audio
plays back-to-back from when it arrives. User speech while agent audio is still playing is a
barge-in: ``clear``, ``turntaking: user_turn``, and the agent's turn is cut to the words that had
started playing. Call times are seconds since the socket opened (scaled by ``time_scale``).

Smart endpointing: the user's speech is recognised while it is spoken (:mod:`.listener`). A
short pause (``quick_end_of_turn_ms``) ends the turn at once if the words so far sound complete
(:func:`aligner.speech.recognize.sounds_complete`), else the turn waits for ``end_of_turn_ms`` of
silence; speech resuming before then continues the same turn.

Updates follow what the user hears (:mod:`.heard`): agent words as they start to play, user
words as they are recognised (every ``_INTERIM_S`` of speech, then the final words), and the
call's last update, sent before the server hangs up, holds the whole transcript. Before the
agent hangs up, its goodbye must have played: on Twilio the client's echo of the last ``mark``
says so (waited for at most ``_MARK_WAIT_S`` after the playback clock's own estimate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from typing import Any, Protocol

import numpy as np

from .. import audio
from ..logs import fields
from ..speech.recognize import (
    SpeechEnded,
    SpeechPaused,
    SpeechStarted,
    VoiceActivityDetector,
    sounds_complete,
)
from ..wire.answers import INACTIVITY
from .brain import Brain, BrainError, Hangup, Say, SendMetadata
from .calls import Call, Turn
from .config import EmulatorConfig
from .heard import SpokenTurn, heard_transcript, next_change
from .listener import Listener, ListenerStream
from .recording import CallRecording
from .speaker import Chunk, SpeechCache, SpokenLine

__all__ = ["Conversation", "Transport"]

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"[.!?;:](\s+|$)")
_INTERIM_S = 0.5  # call seconds between the user's interim words while they speak
_MARK_WAIT_S = 5.0  # call seconds the agent's hang-up waits for the client's playback to end


class Transport(Protocol):
    """What a conversation needs from its websocket (web or Twilio form)."""

    async def send_chunk(self, chunk: Chunk, response_id: int, last: bool) -> None: ...

    async def send_clear(self) -> None: ...

    async def send_update(self, transcript: list[dict], turntaking: str | None) -> None: ...

    async def send_metadata(self, metadata: Any) -> None: ...

    async def played(self, timeout: float) -> None:
        """Return once the client has played everything sent (at most ``timeout`` s)."""
        ...

    async def close(self, code: int, reason: str) -> None: ...


class Conversation:
    """One call's agent loop. Create, :meth:`run` as a task, feed :meth:`receive_audio`.

    Args:
        call: the call record (its transcript is filled in here).
        config: emulator options.
        transport: where frames go.
        brain: what to say.
        speech: the server's shared synthesis cache.
        listener: the server's streaming recogniser, or None (no recognition: user turns stay
            empty and only ``end_of_turn_ms`` of silence ends them).
    """

    def __init__(self, call: Call, config: EmulatorConfig, transport: Transport, brain: Brain,
                 speech: SpeechCache, listener: Listener | None = None) -> None:
        self.call = call
        self.config = config
        self.transport = transport
        self.brain = brain
        self.speech = speech
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self._t0 = self.loop.time()
        quick = config.quick_end_of_turn_ms if listener is not None else 0
        self.vad = VoiceActivityDetector(call.sample_rate, min_speech=config.min_speech_ms / 1000,
                                         hangover=config.end_of_turn_ms / 1000,
                                         pause=quick / 1000 or None)
        self.play_end = 0.0  # call time when the client's queued agent audio has played
        self.response_id = 0  # the response the agent may speak now
        self._agent: SpokenTurn | None = None  # the agent turn being spoken
        self._pieces: asyncio.Queue = asyncio.Queue()  # (response_id, text, complete, end_call)
        self._pending_text = ""
        self._user: SpokenTurn | None = None  # the user turn being spoken
        self._spoken: list[SpokenTurn] = []  # every turn, in the order said (for updates)
        self._shown: list[dict] = []  # the transcript of the last update
        self._announced: set[int] = set()  # agent turns whose first words an update showed
        self._changed = asyncio.Event()  # the heard transcript may have changed
        self._updating = asyncio.Lock()
        self._user_stopped: float | None = None  # call time the last user utterance ended
        call.recording = CallRecording(call.sample_rate)
        call.note(0.0, f"call started ({call.protocol}, {call.encoding}, {call.sample_rate} Hz)")
        self._audio: list[np.ndarray] = []  # recent user samples (context before speech)
        self._audio_start = 0  # sample index of _audio[0]
        self._stream: ListenerStream | None = None  # recognition of the current utterance
        self._stream_offset = 0.0  # call time of its first sample
        self._samples_in = 0
        self._last_activity = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._recognitions: set[asyncio.Task] = set()  # finish even after the call ended
        self._done = asyncio.Event()
        self.ended_reason: str | None = None
        self._turn_decided: float | None = None
        self._next_send = 0.0
        self._audio_lag = 0.0

    # --- clock ----------------------------------------------------------------------------------
    def now(self) -> float:
        """Seconds of call time since the socket opened."""
        return (self.loop.time() - self._t0) * self.config.time_scale

    async def _sleep_call(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds / self.config.time_scale)

    @property
    def agent_playing(self) -> bool:
        return self.now() < self.play_end

    # --- lifecycle ------------------------------------------------------------------------------
    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("agent failed", exc_info=exc, extra=fields(call_id=self.call.call_id))
            if isinstance(exc, BrainError):
                self.hangup(exc.reason, 1011, error=True)
            else:
                self.hangup("error_retell", 1011, error=True)

    async def run(self) -> None:
        """Drive the call until it ends (hang-up, error, or :meth:`stop`)."""
        self._spawn(self._speak_loop())
        self._spawn(self._watch_silence())
        self._spawn(self._brain_loop())
        self._spawn(self._follow_transcript())
        try:
            await self.brain.start(self.call.to_json())
        except BrainError as exc:
            self.hangup(exc.reason, 1011, error=True)
        await self._done.wait()

    def stop(self, reason: str) -> None:
        """The client went away: end without closing (the socket is already closed)."""
        self.call.end(reason)
        self._finish()

    def hangup(self, reason: str, code: int = 1000, error: bool = False) -> None:
        """End the call from the server side: close the socket with ``code`` and ``reason``."""
        if self._done.is_set():
            return
        self.call.end(reason, error=error)
        self.ended_reason = reason
        asyncio.ensure_future(self.transport.close(code, reason))
        self._finish()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        self.call.note(self.now(), f"call ended: {self.call.disconnection_reason}")
        if self._stream is not None:  # the call ended mid-utterance: keep what was said
            stream, self._stream = self._stream, None
            task = asyncio.ensure_future(self._transcribe(self._user, stream,
                                                          self._stream_offset))
            self._recognitions.add(task)
            task.add_done_callback(self._recognitions.discard)
        if self.listener is not None:
            self.listener.forget(self.call.call_id)
        for task in list(self._tasks):
            if task not in self._recognitions:
                task.cancel()
        asyncio.ensure_future(self.brain.close())

    async def _watch_silence(self) -> None:
        limit = self.call.fields["end_call_after_silence_ms"] / 1000
        while True:
            await self._sleep_call(0.5)
            if self.vad.in_speech or self.agent_playing:
                self._last_activity = self.now()
            elif self.now() - self._last_activity > limit:
                await self._send_heard()
                self.hangup(INACTIVITY.reason, INACTIVITY.code)
                return

    # --- transcript -----------------------------------------------------------------------------
    def transcript_json(self) -> list[dict]:
        """Everything said so far (the brain's view: every turn with words, whole)."""
        return [t.to_json(with_words=False) for t in self.call.transcript if t.content]

    async def _follow_transcript(self) -> None:
        """Send an update whenever what the user has heard changes: at each agent word's
        start on the playback clock, and when the turns change (recognition, barge-in)."""
        while True:
            await self._send_heard()
            now = self.now()
            at = next_change(self._spoken, now)
            self._changed.clear()
            wait = None if at is None else (at - now) / self.config.time_scale + 0.001
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    async def _send_heard(self) -> None:
        """Send the heard transcript if it changed."""
        async with self._updating:
            await self._update()

    async def _update(self, turntaking: str | None = None) -> None:
        """Send the heard transcript if it changed (or ``turntaking`` is given; an update
        showing an agent turn's first words says ``agent_turn``). Hold ``_updating``."""
        now = self.now()
        transcript = heard_transcript(self._spoken, now)
        if transcript == self._shown and turntaking is None:
            return
        for spoken in self._spoken:
            if spoken.turn.role == "agent" and id(spoken) not in self._announced \
                    and spoken.heard(now):
                self._announced.add(id(spoken))
                turntaking = turntaking or "agent_turn"
        self._shown = transcript
        await self.transport.send_update(transcript, turntaking)
        await self.brain.transcript_changed(transcript, turntaking)

    # --- user side ------------------------------------------------------------------------------
    def receive_audio(self, samples: np.ndarray) -> None:
        """User audio arrived (int16 at the call's rate): run turn-taking on it."""
        self._audio.append(samples)
        self._samples_in += len(samples)
        # call time of audio time: the audio just received ends now (a client streaming slower
        # or faster than real time shifts it; user words are placed when the server heard them)
        self._audio_lag = self.now() - self._samples_in / self.call.sample_rate
        self.call.recording.user(samples, self.now())
        if self._stream is not None:
            self._stream.feed(samples)
        for event in self.vad.feed(samples):
            if isinstance(event, SpeechStarted):
                self._user_started(event)
            elif isinstance(event, SpeechPaused):
                self._spawn(self._judge_pause(event))
            else:
                self._user_ended(event, quick=False)
        keep = self.call.sample_rate // 2  # 0.5 s of context before the next utterance
        if self._samples_in - self._audio_start > 4 * keep:
            data = np.concatenate(self._audio)[-keep:]
            self._audio, self._audio_start = [data], self._samples_in - len(data)

    def _user_started(self, event: SpeechStarted) -> None:
        self._last_activity = self.now()
        interrupting = (self._agent is not None and not self._agent.complete) or self.agent_playing
        self.response_id += 1  # whatever the agent was about to say is stale now
        self._pending_text = ""
        if self._user is not None and self._stream is not None:  # never ended: nothing to wait for
            self._user.complete = True
        self._user = SpokenTurn(Turn("user"))
        self.call.transcript.append(self._user.turn)
        self._spoken.append(self._user)
        if self.listener is not None:  # recognise from 0.2 s before the speech
            rate = self.call.sample_rate
            audio = np.concatenate(self._audio)
            a = min(len(audio), max(0, round((event.start - 0.2) * rate) - self._audio_start))
            if self._stream is not None:
                self._stream.close()
            self._stream = self.listener.open(self.call.call_id, rate)
            self._stream.feed(audio[a:])
            self._stream_offset = (self._audio_start + a) / rate + self._audio_lag
            self._spawn(self._follow_user(self._stream, self._user))
        if interrupting:
            self._spawn(self._barge_in())
        else:
            self._agent = None

    async def _follow_user(self, stream: ListenerStream, user: SpokenTurn) -> None:
        """While the user speaks, show the words recognised so far every ``_INTERIM_S``."""
        while True:
            await self._sleep_call(_INTERIM_S)
            if stream is not self._stream:
                return
            try:
                heard = await stream.hypothesis()
            except Exception:  # the final words come anyway
                return
            self._interim(stream, user, heard)

    def _interim(self, stream: ListenerStream, user: SpokenTurn, heard: str) -> None:
        """Words recognised so far in the user's utterance (shown until the final ones)."""
        if stream is self._stream and heard and not user.complete and heard != user.turn.content:
            user.turn.content = heard
            self._changed.set()

    async def _barge_in(self) -> None:
        """``clear`` (if agent audio is playing), the agent's turn cut to what played, and at
        once the update saying ``user_turn`` (no other update in between)."""
        async with self._updating:
            t = self.now()
            playing = t < self.play_end
            agent, self._agent = self._agent, None
            if playing:
                await self.transport.send_clear()
                self.play_end = t
                self.call.recording.cut(t)
            if agent is not None:
                self._cut(agent, t)
            log.info("barge-in", extra=fields(call_id=self.call.call_id, t=round(t, 3)))
            self.call.note(t, "user barged in, agent audio cleared" if playing
                           else "user barged in")
            await self._update("user_turn")

    def _cut(self, agent: SpokenTurn, t: float) -> None:
        """Cut an agent turn to the words that had started playing at ``t``."""
        turn = agent.turn
        kept = [(w, s) for w, s in zip(turn.words, agent.spans, strict=False) if w[1] < t]
        turn.words = [(w, s, min(e, t)) for (w, s, e), _ in kept]
        turn.content = turn.content[: kept[-1][1][1]] if kept else ""
        agent.spans = [s for _, s in kept]
        agent.complete, agent.play_end = True, min(agent.play_end, t)

    async def _judge_pause(self, event: SpeechPaused) -> None:
        """A short pause: end the turn now if what was heard so far sounds complete."""
        stream = self._stream
        if stream is None:
            return
        asked = self.now()
        try:
            heard = await stream.hypothesis()
        except Exception as exc:  # the turn ends on the long path instead
            log.debug("no hypothesis at a pause", extra=fields(call_id=self.call.call_id,
                                                                error=str(exc)))
            return
        self.call.hypothesis_waits.append(self.now() - asked)
        log.debug("pause", extra=fields(call_id=self.call.call_id, after=heard))
        if self._user is not None:
            self._interim(stream, self._user, heard)
        if stream is not self._stream or self.vad.paused_at != event.end:
            return  # the user went on speaking, or the turn is over already
        if sounds_complete(heard, self.listener.hints):
            ended = self.vad.end_utterance()
            if ended is not None:
                self._user_ended(ended, quick=True)

    def _user_ended(self, event: SpeechEnded, quick: bool) -> None:
        """The user's turn is over (``quick``: at a short pause, it sounded complete)."""
        self._turn_decided = self.now()
        self._user_stopped = event.end + self._audio_lag
        self.call.turn_ends.append("quick" if quick else "long")
        stream, self._stream = self._stream, None
        task = self._spawn(self._end_of_turn(self._user, stream, self._stream_offset,
                                             self.response_id))
        self._recognitions.add(task)
        task.add_done_callback(self._recognitions.discard)

    async def _end_of_turn(self, user: SpokenTurn | None, stream: ListenerStream | None,
                           offset: float, response_id: int) -> None:
        if not self.config.llm_url:  # the script needs no transcript: answer at once
            await self.brain.respond(response_id, self.transcript_json())
        await self._transcribe(user, stream, offset)
        if self.config.llm_url and response_id == self.response_id:
            await self.brain.respond(response_id, self.transcript_json())

    async def _transcribe(self, user: SpokenTurn | None, stream: ListenerStream | None,
                          offset: float) -> None:
        """Finish recognising an utterance into its turn (a decode that finds nothing keeps
        the words shown while it was spoken)."""
        if user is None:
            return
        try:
            words = await stream.finish() if stream is not None else []
        except Exception as exc:
            log.warning("recognition failed", extra=fields(call_id=self.call.call_id,
                                                           error=str(exc)))
            words = []
        turn = user.turn
        if words:
            turn.words = [(w.word, w.start + offset, w.end + offset) for w in words]
            turn.content = " ".join(w.word for w in words)
        if turn.content:
            self.call.note(turn.words[0][1] if turn.words else self.now(),
                           f"user: {turn.content}")
        user.complete = True
        self._changed.set()

    # --- agent side -----------------------------------------------------------------------------
    async def _brain_loop(self) -> None:
        while True:
            action = await self.brain.actions.get()
            if isinstance(action, BrainError):
                raise action
            if isinstance(action, Hangup):
                await self._pieces.put(None)
            elif isinstance(action, SendMetadata):
                await self.transport.send_metadata(action.metadata)
            elif isinstance(action, Say):
                if action.response_id < self.response_id:
                    continue  # stale: the user spoke since it was asked for
                self.response_id = action.response_id
                self._pending_text += action.text
                # speak whole sentences as soon as they are complete
                cut = 0
                for m in _SENTENCE_END.finditer(self._pending_text):
                    cut = m.end()
                if action.complete:
                    cut = len(self._pending_text)
                if cut:
                    piece, self._pending_text = self._pending_text[:cut], self._pending_text[cut:]
                    await self._pieces.put((action.response_id, piece, action.complete,
                                            action.end_call))

    async def _speak_loop(self) -> None:
        options = self.config.speech_options()
        while True:
            item = await self._pieces.get()
            if item is None:  # hang up once everything queued has played
                await self._hang_up_after_playback(check=False)
                return
            response_id, text, complete, end_call = item
            if response_id != self.response_id or not text.strip():
                continue
            line = await self.speech.speak(text, self.call.encoding, self.call.sample_rate,
                                           **options)
            if response_id != self.response_id:
                continue
            if not await self._send_line(line, response_id, complete):
                continue
            if end_call and complete and response_id == self.response_id:
                await self._hang_up_after_playback()
                if self._done.is_set():
                    return

    async def _hang_up_after_playback(self, check: bool = True) -> None:
        """The agent hangs up once its last words have played (on Twilio: once the client
        echoed the last mark, at most ``_MARK_WAIT_S`` after the playback clock's estimate)
        and the user's last words are recognised; the last update shows the whole call.
        ``check``: not if the user has spoken since (a new response is due)."""
        response_id = self.response_id
        await self._sleep_call(self.play_end - self.now())
        await self.transport.played(_MARK_WAIT_S / self.config.time_scale)
        await self._drain_recognitions()
        if check and response_id != self.response_id:
            return
        await self._send_heard()
        self.hangup("agent_hangup")

    async def _drain_recognitions(self, limit: float = 10.0) -> None:
        """Before the agent hangs up, let pending recognitions finish (at most ``limit`` s), so
        the update carrying the user's last turn reaches the client before the socket closes
        (on a busy machine recognition can take longer than the goodbye line)."""
        pending = [t for t in self._recognitions if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=limit)

    async def _send_line(self, line: SpokenLine, response_id: int, complete: bool) -> bool:
        """Send a line's chunks, paced at ``send_speed``; False if a barge-in stopped it."""
        cfg = self.config
        if self._agent is None or self._agent.response_id != response_id:
            turn = Turn("agent")
            self.call.transcript.append(turn)
            self._agent = SpokenTurn(turn, response_id)
            self._spoken.append(self._agent)
            if self._turn_decided is not None:
                self.call.turn_delays.append(self.now() - self._turn_decided)
                self._turn_decided = None
            first = True
        else:
            first = False
        agent = self._agent
        next_send = max(self._next_send, self.now())  # a schedule: late wake-ups catch up
        base = len(agent.turn.content)
        # char span of each word in the line text
        spans, pos = [], 0
        for word, _, _ in line.words:
            pos = line.text.find(word, pos)
            spans.append((base + pos, base + pos + len(word)))
            pos += len(word)
        wi = 0
        for i, chunk in enumerate(line.chunks):
            delay = max(0.0, next_send - self.now())
            if cfg.jitter_ms:
                delay += random.uniform(0, cfg.jitter_ms / 1000)
            await self._sleep_call(delay)
            if response_id != self.response_id or self._agent is not agent:
                return False
            now = self.now()
            start = max(now, self.play_end)
            self.play_end = agent.play_end = start + chunk.duration
            next_send += chunk.duration / cfg.send_speed
            agent.turn.content += chunk.text
            while wi < len(line.words) and line.words[wi][1] < chunk.start + chunk.duration:
                word, ws, we = line.words[wi]
                agent.turn.words.append((word, start + ws - chunk.start,
                                         start + we - chunk.start))
                agent.spans.append(spans[wi])
                wi += 1
            last = complete and i == len(line.chunks) - 1
            self.call.recording.agent(audio.decode(chunk.audio, self.call.encoding), start)
            if first:
                first = False
                self._agent_started(start)
            await self.transport.send_chunk(chunk, response_id, last)
            self._changed.set()
        self._next_send = next_send
        agent.complete = complete
        self._changed.set()
        return True

    def _agent_started(self, at: float) -> None:
        """A new agent turn's audio starts playing at call time ``at``."""
        if self._user_stopped is not None:
            self.call.e2e_latencies.append(round(1000 * max(0.0, at - self._user_stopped), 1))
            self._user_stopped = None
        self.call.note(at, "agent starts speaking")
