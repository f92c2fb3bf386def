"""The CMU pronouncing dictionary and letter names: the lookups shared by text normalisation
(:mod:`aligner.speech.text`, which asks whether a capitalised word is said or spelled) and
pronunciation (:mod:`aligner.speech.pronounce`).

The dictionary is the one pocketsphinx ships (``cmudict-en-us.dict``; BSD-style licence), read
on first use and cached; stress digits are stripped.

>>> dictionary_phones("table")
('T', 'EY', 'B', 'AH', 'L')
>>> letter_phones("fbi")
('EH', 'F', 'B', 'IY', 'AY')
"""

from __future__ import annotations

import functools
import logging
import os

__all__ = [
    "PHONES",
    "VOWELS",
    "dictionary_phones",
    "dictionary_variants",
    "in_dictionary",
    "letter_phones",
]

log = logging.getLogger(__name__)

#: The 39 ARPAbet phones of the CMU dictionary (no stress).
PHONES = ["AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH"]
VOWELS = frozenset(["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"])

_LETTERS = {
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY",
    "h": "EY CH", "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N",
    "o": "OW", "p": "P IY", "q": "K Y UW", "r": "AA R", "s": "EH S", "t": "T IY", "u": "Y UW",
    "v": "V IY", "w": "D AH B AH L Y UW", "x": "EH K S", "y": "W AY", "z": "Z IY",
}


@functools.cache
def _cmudict() -> dict[str, tuple[str, ...]]:
    from pocketsphinx import get_model_path

    path = os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")
    out: dict[str, tuple[str, ...]] = {}
    no_stress = str.maketrans("", "", "012")
    canon = {p: p for p in PHONES}  # share one string per phone (saves tens of MB)
    with open(path, encoding="utf-8") as f:
        for line in f:
            word, _, pron = line.partition(" ")
            if "(" in word:  # alternative pronunciations "read(2)": keep the first
                continue
            out[word] = tuple(canon.get(p, p) for p in pron.translate(no_stress).split())
    log.debug("loaded %d CMU dictionary entries from %s", len(out), path)
    return out


def in_dictionary(word: str) -> bool:
    """Whether the lower-cased ``word`` is in the CMU dictionary."""
    return word.lower() in _cmudict()


def dictionary_phones(word: str) -> tuple[str, ...] | None:
    """The CMU dictionary's first pronunciation of ``word`` (stress stripped), or None."""
    return _cmudict().get(word.lower())


@functools.cache
def _cmudict_alternatives() -> dict[str, tuple[tuple[str, ...], ...]]:
    """The dictionary's alternative pronunciations ("read(2)"), by word; read on first use."""
    from pocketsphinx import get_model_path

    path = os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")
    no_stress = str.maketrans("", "", "012")
    out: dict[str, list[tuple[str, ...]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            word, _, pron = line.partition(" ")
            if "(" in word:
                out.setdefault(word.split("(", 1)[0], []).append(
                    tuple(pron.translate(no_stress).split()))
    return {w: tuple(dict.fromkeys(v)) for w, v in out.items()}


def dictionary_variants(word: str) -> tuple[tuple[str, ...], ...]:
    """Every CMU dictionary pronunciation of ``word`` (stress stripped), the first one first
    (:func:`dictionary_phones`); empty when the word is not in the dictionary.

    >>> dictionary_variants("tuesday")[:2]
    (('T', 'UW', 'Z', 'D', 'IY'), ('T', 'UW', 'Z', 'D', 'EY'))
    """
    first = dictionary_phones(word)
    if first is None:
        return ()
    others = _cmudict_alternatives().get(word.lower(), ())
    return (first, *(p for p in others if p != first))


def letter_phones(word: str) -> tuple[str, ...]:
    """Phones of ``word`` spelled letter by letter: ``"fbi" -> EH F B IY AY``."""
    return tuple(p for c in word.lower() if c in _LETTERS for p in _LETTERS[c].split())
