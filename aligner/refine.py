"""Sub-frame refinement of word boundaries on the signal (placeholder: identity until tuned)."""

from __future__ import annotations

import numpy as np

__all__ = ["refine"]


def refine(spans: list[tuple[float, float]], pcm: np.ndarray, sample_rate: int,
           db: np.ndarray, mask: np.ndarray,
           ) -> list[tuple[float, float]]:
    """Return ``spans`` with boundaries moved onto nearby onsets/offsets of speech."""
    return list(spans)
