"""Visemes: phone timings become mouth shapes for avatars.

- :mod:`.sets`: the viseme sets (OVR, Azure, Polly, Rhubarb) and ARKit blend-shape weights;
- :mod:`.motion`: cues with coarticulation, holds and glides, blend-shape frames, a live stream;
- :mod:`.phones`: phones from audio, refined when the text is known or recognised without it;
- :mod:`.model`: the shipped phone model those use (``python -m aligner.visemes.model``
  retrains it).

>>> from aligner.timeline import Phone
>>> [c.viseme for c in cues([Phone("M", 0.1, 0.2)], "rhubarb", end=0.4)]
['X', 'A', 'X']
"""

from .motion import (
    Cue,
    Motion,
    VisemeStream,
    blendshape_frames,
    blendshape_weights,
    cues,
    timeline_cues,
    timeline_phones,
)
from .phones import (
    METHODS,
    by_sound,
    estimate_phones,
    heard_phones,
    pause_after,
    pronunciation_variants,
    refine_alignment,
    refine_phones,
    retime,
    text_phones,
)

__all__ = [
    "METHODS",
    "Cue",
    "Motion",
    "VisemeStream",
    "blendshape_frames",
    "blendshape_weights",
    "by_sound",
    "cues",
    "estimate_phones",
    "heard_phones",
    "pause_after",
    "pronunciation_variants",
    "refine_alignment",
    "refine_phones",
    "retime",
    "text_phones",
    "timeline_cues",
    "timeline_phones",
]
