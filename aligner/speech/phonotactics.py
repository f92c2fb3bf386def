"""Which phone follows which in English: pocketsphinx's en-us phone language model as a bigram.

The phone loops that decode speech without its text (the acoustic backend's
:func:`aligner.speech.backends.acoustic.recognize_phones` and the shipped phone model of
:mod:`aligner.visemes.model`) weigh each step from one phone to the next by it: ``DH`` is mostly
followed by a vowel, hardly ever by ``ZH``.

>>> b = phone_bigram(("sil", "DH", "AH", "ZH"))
>>> bool(b[1, 2] > b[1, 3] + 3)
True
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["phone_bigram"]


@functools.cache
def phone_bigram(names: tuple[str, ...]) -> np.ndarray:
    """ln P(phone | previous phone) over ``names`` (ARPAbet, ``"sil"`` for the pause):
    ``[i, j]`` for ``names[j]`` after ``names[i]``."""
    import os

    from pocketsphinx import NGramModel, get_model_path

    lm = NGramModel.readfile(os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"))
    words = ["SIL" if n == "sil" else n for n in names]
    # prob() takes the phone first, then its history, and answers in log base 1.0001
    return np.array([[lm.prob([cur, prev]) for cur in words] for prev in words]) * np.log(1.0001)
