"""The CMU pronouncing dictionary and letter names: the lookups shared by text normalisation
(:mod:`aligner.speech.text`, which asks whether a capitalised word is said or spelled) and
pronunciation (:mod:`aligner.speech.pronounce`).

The dictionary is the one pocketsphinx ships (``cmudict-en-us.dict``; BSD-style licence), read
on first use and searched in place (its head words are sorted); stress digits are stripped.

>>> dictionary_phones("table")
('T', 'EY', 'B', 'AH', 'L')
>>> letter_phones("fbi")
('EH', 'F', 'B', 'IY', 'AY')
"""

from __future__ import annotations

import bisect
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


class _Dictionary:
    """The CMU dictionary file, searched in place: its head words (``read`` of ``read(2)``) are
    sorted, so a lookup is a binary search over its lines. A per-file tool needs a few words,
    and reading the file costs milliseconds where parsing all 135,000 entries cost 0.2 s."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self._lines = f.read().rstrip().split(b"\n")
        log.debug("opened the CMU dictionary %s (%d lines)", path, len(self._lines))

    @staticmethod
    def _head(line: bytes) -> bytes:
        return line.split(b" ", 1)[0].split(b"(", 1)[0]

    def entries(self, word: str) -> list[tuple[str, tuple[str, ...]]]:
        """``(key, phones)`` of every line of ``word`` (``key``: ``read`` or ``read(2)``), in
        file order, stress stripped."""
        head = word.encode("utf-8")
        i = bisect.bisect_left(self._lines, head, key=self._head)
        out = []
        while i < len(self._lines) and self._head(self._lines[i]) == head:
            key, _, pron = self._lines[i].decode("utf-8").partition(" ")
            out.append((key, tuple(pron.translate(_NO_STRESS).split())))
            i += 1
        return out

    def get(self, word: str) -> tuple[str, ...] | None:
        """The first pronunciation of ``word`` (its line without ``(n)``), or None."""
        return next((p for key, p in self.entries(word) if "(" not in key), None)

    def __contains__(self, word: str) -> bool:
        return self.get(word) is not None


_NO_STRESS = str.maketrans("", "", "012")


@functools.cache
def _cmudict() -> _Dictionary:
    from pocketsphinx import get_model_path

    return _Dictionary(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict"))


def in_dictionary(word: str) -> bool:
    """Whether the lower-cased ``word`` is in the CMU dictionary."""
    return word.lower() in _cmudict()


def dictionary_phones(word: str) -> tuple[str, ...] | None:
    """The CMU dictionary's first pronunciation of ``word`` (stress stripped), or None."""
    return _cmudict().get(word.lower())


def dictionary_variants(word: str) -> tuple[tuple[str, ...], ...]:
    """Every CMU dictionary pronunciation of ``word`` (stress stripped), the first one first
    (:func:`dictionary_phones`); empty when the word is not in the dictionary.

    >>> dictionary_variants("tuesday")[:2]
    (('T', 'UW', 'Z', 'D', 'IY'), ('T', 'UW', 'Z', 'D', 'EY'))
    """
    entries = _cmudict().entries(word.lower())
    first = next((p for key, p in entries if "(" not in key), None)
    if first is None:
        return ()
    others = dict.fromkeys(p for key, p in entries if "(" in key)
    return (first, *(p for p in others if p != first))


def letter_phones(word: str) -> tuple[str, ...]:
    """Phones of ``word`` spelled letter by letter: ``"fbi" -> EH F B IY AY``."""
    return tuple(p for c in word.lower() if c in _LETTERS for p in _LETTERS[c].split())
