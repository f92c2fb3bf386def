"""The frames a lip-sync call sends its front end, in the formats it asked for (pure, no I/O).

:class:`aligner.service.lipsync.LipSync` computes a chunk's events on the call's stream clock
(samples of agent audio delivered since the call started); :class:`FrontEndFrames` turns them
into what the front end's query asked for, each before the audio it belongs to:

- ``enable_words`` / ``enable_visemes``: the ``word`` and ``viseme`` events as they are;
- ``enable_talkinghead``: ``{"event_type": "talkinghead", "words", "wtimes", "wdurations",
  "visemes", "vtimes", "vdurations"}``: what TalkingHead's ``streamAudio`` (and
  ``speakAudio``) take, times and durations in milliseconds on the stream clock; each word
  once, when it starts (a word still growing over the next chunk keeps the duration known
  then); visemes in TalkingHead's names, timed when their sounds start, pauses left out;
- ``enable_characters``: ``{"event_type": "characters", "characters",
  "character_start_times_seconds", "character_end_times_seconds"}``: ElevenLabs-style
  alignment of the chunk's characters, seconds on the stream clock;
- ``enable_azure_visemes``: ``{"event_type": "azure_viseme", "AudioOffset": ticks,
  "VisemeId": id}`` per viseme, as Azure Speech's ``VisemeReceived`` events (100 ns ticks on
  the stream clock, ids 0-21);
- ``enable_blendshapes``: ``{"event_type": "blendshapes", "fps": 60, "names": [ARKit
  names], "start_sample", "sample_rate", "frames": [[weights], ...]}``.

Frames built from events that came after their audio carry ``"late": true``.

>>> f = FrontEndFrames(CallOptions(enable_azure_visemes=True))
>>> f.frames([{"event_type": "viseme", "for": "azure", "viseme": 21, "start_sample": 2400,
...            "end_sample": 3600, "sample_rate": 24000, "weight": 1.0}])
[{'event_type': 'azure_viseme', 'AudioOffset': 1000000, 'VisemeId': 21}]
"""

from __future__ import annotations

from typing import Any

from .options import CallOptions

__all__ = ["FrontEndFrames", "outputs"]

_TICKS = 10_000_000  # Azure's audio offsets: 100 ns ticks


def outputs(options: CallOptions) -> tuple[str, ...]:
    """What :class:`~aligner.service.lipsync.ChunkEvents` must compute for ``options``."""
    wanted = {"talkinghead": options.enable_talkinghead, "azure": options.enable_azure_visemes,
              "chars": options.enable_characters, "blendshapes": options.enable_blendshapes}
    return tuple(name for name, on in wanted.items() if on)


class FrontEndFrames:
    """One call's front-end frames from its lip-sync events (see the module docstring).

    Args:
        options: what the front end asked for.
    """

    def __init__(self, options: CallOptions) -> None:
        self.options = options
        self._words_sent = -1  # TalkingHead: the highest word index sent

    def frames(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The frames for a batch of events (offsets already on the stream clock), in order."""
        opts = self.options
        late = {"late": True} if any(e.get("late") for e in events) else {}
        out: list[dict[str, Any]] = []
        head: dict[str, list] = {k: [] for k in ("words", "wtimes", "wdurations", "visemes",
                                                 "vtimes", "vdurations")}
        for ev in events:
            kind, target = ev["event_type"], ev.get("for")
            if kind == "word":
                if opts.enable_words:
                    out.append(ev)
                if opts.enable_talkinghead and ev["index"] > self._words_sent:
                    self._words_sent = ev["index"]
                    a, b = _ms(ev["start_sample"], ev), _ms(ev["end_sample"], ev)
                    head["words"].append(ev["text"] or ev["word"])
                    head["wtimes"].append(a)
                    head["wdurations"].append(b - a)
            elif kind == "viseme" and target is None:
                if opts.enable_visemes:
                    out.append(ev)
            elif kind == "viseme" and target == "talkinghead":
                a, b = _ms(ev["start_sample"], ev), _ms(ev["end_sample"], ev)
                if ev["viseme"] != "sil" and b > a:
                    head["visemes"].append(ev["viseme"])
                    head["vtimes"].append(a)
                    head["vdurations"].append(b - a)
            elif kind == "viseme" and target == "azure":
                out.append({"event_type": "azure_viseme",
                            "AudioOffset": round(ev["start_sample"] * _TICKS / ev["sample_rate"]),
                            "VisemeId": int(ev["viseme"]), **late})
            elif kind == "chars" and opts.enable_characters and ev["chars"]:
                rate = ev["sample_rate"]
                out.append({"event_type": "characters",
                            "characters": [c for c, _a, _b in ev["chars"]],
                            "character_start_times_seconds": [round(a / rate, 3)
                                                              for _c, a, _b in ev["chars"]],
                            "character_end_times_seconds": [round(b / rate, 3)
                                                            for _c, _a, b in ev["chars"]],
                            **late})
            elif kind == "blendshapes" and opts.enable_blendshapes:
                out.append(ev)
        if opts.enable_talkinghead and (head["words"] or head["visemes"]):
            out.append({"event_type": "talkinghead", **head, **late})
        return out


def _ms(sample: int, ev: dict[str, Any]) -> int:
    return round(sample * 1000 / ev["sample_rate"])
