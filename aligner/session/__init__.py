"""The session: a call's stamped events in, the :class:`~aligner.timeline.Timeline` out.

Pure, no sockets and no clock:

- :mod:`.session`: :class:`Session` (events in, timeline out) and :func:`build_timeline` (a
  capture's timeline), :func:`save_timeline`;
- :mod:`.playback`: the agent's queue as a front end plays it, ``clear``, the clock mapping;
- :mod:`.usertrack`: the user's audio, voice activity and turns;
- :mod:`.textless`: words and phones of agent audio that came without text.
"""

from .session import DEFAULT_UTTERANCE_GAP, Session, build_timeline, save_timeline, write_audio

__all__ = ["DEFAULT_UTTERANCE_GAP", "Session", "build_timeline", "save_timeline", "write_audio"]
