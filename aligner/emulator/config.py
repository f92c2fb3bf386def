"""Options of the emulator (one frozen dataclass, shared by every call of one server)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..speech import voices

__all__ = ["DEFAULT_DIALOGUE", "EmulatorConfig"]

DEFAULT_DIALOGUE = Path(__file__).resolve().parents[1] / "data" / "samples" / "dialogue.json"


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulated voice-agent server behaves.

    Attributes:
        api_key: the Bearer key ``/register-call`` and ``/get-call`` require.
        alignment_event_type: value of the alignment chunk's discriminator ``event_type``.
        alignment_text_key: key of the text in an alignment chunk (``"text"`` or ``"content"``).
        chunk_min_ms, chunk_max_ms: agent chunk duration bounds.
        split_words: chunks may cut inside words (text split in proportion to phones).
        send_speed: agent audio is sent this many times faster than real time (first chunk
            at once); the client's playback clock still plays it in real time.
        time_scale: every clock of the emulator (playback, timers, silence timeout) runs this
            many times faster; lets tests stream user audio faster than real time with the same
            semantics. VAD and recognition count time in audio samples and need no scaling.
        jitter_ms: random extra delay (0..jitter) before each agent chunk is sent.
        dialogue: the scripted agent (JSON); ignored when ``llm_url`` is set.
        llm_url: an agent LLM websocket server (protocol section 6); ``{llm_url}/{call_id}``.
        voice: the agent's voice, a name of :data:`aligner.speech.voices.VOICES`: ``"espeak"``
            (espeak-ng; ``"espeak:en-us+f3"`` for another espeak-ng voice) or ``"hibari"`` (a
            small neural voice); words_per_minute its rate (175: hibari's own pace).
        end_of_turn_ms: user silence that always ends the user's turn (VAD hangover).
        quick_end_of_turn_ms: user silence after which the turn ends at once if the words
            recognised so far sound complete (smart endpointing; 0: off, needs recognition).
        min_speech_ms: user speech needed before it counts (start of turn, barge-in).
        recognition: recognise user speech with pocketsphinx (off: user turns stay empty).
        use_hints: recognise with the dialogue's ``user_hints`` vocabulary when it has one.
    """

    api_key: str = "dev-key"
    alignment_event_type: str = "audio"
    alignment_text_key: str = "text"
    chunk_min_ms: int = 150
    chunk_max_ms: int = 400
    split_words: bool = False
    send_speed: float = 2.0
    time_scale: float = 1.0
    jitter_ms: float = 0.0
    dialogue: Path = DEFAULT_DIALOGUE
    llm_url: str | None = None
    voice: str = "espeak"
    words_per_minute: int = voices.DEFAULT_RATE
    end_of_turn_ms: int = 600
    quick_end_of_turn_ms: int = 200
    min_speech_ms: int = 100
    recognition: bool = True
    use_hints: bool = True

    def speech_options(self) -> dict:
        """Keyword arguments of :func:`aligner.emulator.speaker.speak` for this config."""
        return {"voice": self.voice, "words_per_minute": self.words_per_minute,
                "chunk_min_ms": self.chunk_min_ms, "chunk_max_ms": self.chunk_max_ms,
                "split_words": self.split_words}

    def __post_init__(self) -> None:
        if not 20 <= self.chunk_min_ms <= self.chunk_max_ms:
            raise ValueError(f"need 20 <= chunk_min_ms <= chunk_max_ms, got "
                             f"{self.chunk_min_ms}, {self.chunk_max_ms}")
        if self.send_speed < 1.0 or self.time_scale <= 0:
            raise ValueError("send_speed must be >= 1 and time_scale > 0")
        if not (self.quick_end_of_turn_ms == 0
                or 20 <= self.quick_end_of_turn_ms < self.end_of_turn_ms):
            raise ValueError("need quick_end_of_turn_ms = 0 or 20 <= quick_end_of_turn_ms < "
                             f"end_of_turn_ms, got {self.quick_end_of_turn_ms}, "
                             f"{self.end_of_turn_ms}")
        voices.check(self.voice)
        if self.alignment_text_key in ("audio", "event_type") or not self.alignment_text_key:
            raise ValueError(f"bad alignment_text_key {self.alignment_text_key!r}")
