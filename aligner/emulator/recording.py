"""A call's recording as the emulator serves it (``recording_url``): both voices as heard.

User audio is placed when it arrived (the client streams in real time, so it runs on from its
first frame); agent audio where the client's playback clock plays it, and a barge-in cuts what
had not played. :meth:`CallRecording.wav` mixes both into one mono WAV at the call's rate.

>>> import numpy as np
>>> rec = CallRecording(8000)
>>> rec.agent(np.full(8000, 1000, np.int16), at=0.5)   # 1 s of agent audio from 0.5 s
>>> rec.cut(at=1.0)                                      # barge-in: the rest never played
>>> rec.user(np.full(800, 10, np.int16), end_at=1.2)     # 0.1 s of user audio ending at 1.2 s
>>> pcm = rec.samples()
>>> len(pcm), int(pcm[4000]), int(pcm[8400]), int(pcm[9000])
(9600, 1000, 0, 10)
"""

from __future__ import annotations

import numpy as np

from ..audio import mix, wav_bytes

__all__ = ["CallRecording"]


class CallRecording:
    """The audio of one call, kept in memory while the call runs and after (see
    :class:`aligner.emulator.calls.CallRegistry` for how many are kept)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._user: list[np.ndarray] = []
        self._user_start: int | None = None
        self._agent: list[tuple[int, np.ndarray]] = []  # (start sample, samples)

    def user(self, samples: np.ndarray, end_at: float) -> None:
        """User audio that arrived at call time ``end_at`` (its end)."""
        if self._user_start is None:
            self._user_start = max(0, round(end_at * self.sample_rate) - len(samples))
        self._user.append(np.asarray(samples, np.int16))

    def agent(self, samples: np.ndarray, at: float) -> None:
        """Agent audio that starts playing at call time ``at``."""
        self._agent.append((round(at * self.sample_rate), np.asarray(samples, np.int16)))

    def cut(self, at: float) -> None:
        """A barge-in at call time ``at``: agent audio after it never played."""
        end = round(at * self.sample_rate)
        self._agent = [(start, pcm[:end - start]) for start, pcm in self._agent if start < end]

    def samples(self) -> np.ndarray:
        """Both voices mixed, from the socket's opening (int16 at the call's rate)."""
        user = np.concatenate(self._user) if self._user else np.zeros(0, np.int16)
        end = max([start + len(pcm) for start, pcm in self._agent]
                  + [(self._user_start or 0) + len(user)])
        agent = np.zeros(end, np.int16)
        for start, pcm in self._agent:
            agent[start:start + len(pcm)] = pcm
        placed = np.zeros(end, np.int16)
        placed[self._user_start or 0:][:len(user)] = user
        return mix(agent, placed)

    def wav(self) -> bytes:
        """:meth:`samples` as a 16-bit mono WAV file."""
        return wav_bytes(self.samples(), self.sample_rate)
