"""Avatar and lip-sync alignment pipeline for voice-agent audio websockets.

The small public API (heavy modules load on first use)::

    from aligner import align, Timeline
    result = align(pcm, 16000, "Hello there")   # word, char and phone timings of one clip
    timeline = Timeline.load("out/timeline.json")
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Alignment",
    "Char",
    "Phone",
    "Timeline",
    "TimelineEvent",
    "Utterance",
    "Word",
    "align",
]

__version__ = "0.1.0"

# public name -> module that defines it (constant table; imported lazily)
_EXPORTS = {
    "align": "speech.alignment",
    "Alignment": "speech.alignment",
    "Timeline": "timeline",
    "TimelineEvent": "timeline",
    "Utterance": "timeline",
    "Word": "timeline",
    "Char": "timeline",
    "Phone": "timeline",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'aligner' has no attribute {name!r}")
