"""Tokenisation with character offsets, and normalisation of tokens into the words a TTS says.

A *token* is a whitespace-separated piece of the text that contains a letter or a digit; its
``word`` is the piece without surrounding punctuation and ``char_start``/``char_end`` index the
original text. :func:`spoken` turns one token into the words a speaker would say for it
(numbers, ordinals, money, times, dates, percentages, abbreviations, acronyms, symbols), so a
token like ``"$42.50"`` stays *one* output word whose time covers all of them.

>>> [t.word for t in tokenize('He said: "I paid $42.50!"')]
['He', 'said', 'I', 'paid', '$42.50']
>>> spoken("$42.50")
('forty', 'two', 'dollars', 'and', 'fifty', 'cents')
>>> spoken("3rd"), spoken("NASA"), spoken("FBI")
(('third',), ('nasa',), ('f', 'b', 'i'))
    >>> spoken("API")
    ('a.', 'p', 'i')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Token", "number_words", "ordinal_words", "spoken", "tokenize", "written"]

# Punctuation that may surround a word; a token keeps inner punctuation ("it's", "$42.50").
_LEADING = "\"'([{<«“‘¿¡*_-–—…"
_TRAILING = "\"')]}>»”’.,;:!?*_-–—…"


@dataclass(frozen=True, slots=True)
class Token:
    """One word of the text: ``text[char_start:char_end] == word``.

    ``token_start``/``token_end`` delimit the whole whitespace token (punctuation included).
    """

    word: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int


def tokenize(text: str) -> tuple[Token, ...]:
    """Split ``text`` on whitespace; keep the tokens holding a letter or digit.

    Args:
        text: any text.

    Returns:
        The tokens in order, each with its offsets into ``text``.

    >>> tokenize("  Hi, there -- you!")
    (Token(word='Hi', char_start=2, char_end=4, token_start=2, token_end=5), \
Token(word='there', char_start=6, char_end=11, token_start=6, token_end=11), \
Token(word='you', char_start=15, char_end=18, token_start=15, token_end=19))
    """
    out = []
    for m in re.finditer(r"\S+", text):
        piece = m.group()
        if not any(c.isalnum() for c in piece):
            continue
        a, b = 0, len(piece)
        while a < b and not piece[a].isalnum() and piece[a] in _LEADING:
            a += 1
        while b > a and not piece[b - 1].isalnum() and piece[b - 1] in _TRAILING:
            b -= 1
        # A trailing "%" or leading "$" belongs to the word (kept: not in the strip sets).
        out.append(Token(piece[a:b], m.start() + a, m.start() + b, m.start(), m.end()))
    return tuple(out)


# --- numbers ------------------------------------------------------------------------------------
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORD_EXCEPT = {"one": "first", "two": "second", "three": "third", "five": "fifth",
               "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def written(text: str, start: int, end: int) -> str:
    """The whitespace token of ``text`` holding ``text[start:end]``: a word as written, with
    its punctuation (what captions show).

    >>> written("Hello, there.", 7, 12)
    'there.'
    """
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end]


def number_words(n: int) -> tuple[str, ...]:
    """English words for a non-negative integer (``"and"`` omitted, US style).

    >>> " ".join(number_words(1_204_017))
    'one million two hundred four thousand seventeen'
    """
    if n < 0:
        return ("minus", *number_words(-n))
    if n < 20:
        return (_ONES[n],)
    if n < 100:
        return (_TENS[n // 10],) + ((_ONES[n % 10],) if n % 10 else ())
    if n < 1000:
        return (_ONES[n // 100], "hundred") + (number_words(n % 100) if n % 100 else ())
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return (*number_words(head), name) + (number_words(rest) if rest else ())
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> tuple[str, ...]:
    """English ordinal words: ``21 -> ('twenty', 'first')``."""
    words = list(number_words(n))
    last = words[-1]
    if last in _ORD_EXCEPT:
        words[-1] = _ORD_EXCEPT[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return tuple(words)


def _year_words(n: int) -> tuple[str, ...]:
    if 2000 <= n <= 2009:
        return number_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return (*number_words(hi), "hundred")
    return number_words(hi) + (("oh",) if lo < 10 else ()) + number_words(lo)


def _digits(s: str) -> tuple[str, ...]:
    return tuple(_ONES[int(c)] for c in s if c.isdigit())


def _cardinal(s: str) -> tuple[str, ...]:
    """A digit string with optional thousands commas and decimals: '1,204.5'."""
    s = s.replace(",", "")
    whole, _, frac = s.partition(".")
    out: tuple[str, ...] = number_words(int(whole)) if whole else ("zero",)
    if frac:
        out += ("point", *_digits(frac))
    return out


_ABBREVIATIONS = {
    "mr": ("mister",), "mrs": ("missus",), "ms": ("miz",), "dr": ("doctor",), "st": ("saint",),
    "jr": ("junior",), "sr": ("senior",), "prof": ("professor",), "vs": ("versus",),
    "etc": ("et", "cetera"), "e.g": ("for", "example"), "i.e": ("that", "is"),
    "approx": ("approximately",), "min": ("minutes",), "mins": ("minutes",),
    "hr": ("hour",), "hrs": ("hours",), "km": ("kilometers",), "kg": ("kilograms",),
    "ft": ("feet",), "lb": ("pounds",), "lbs": ("pounds",), "no": ("no",),
}
_SYMBOLS = {"&": ("and",), "%": ("percent",), "+": ("plus",), "@": ("at",), "#": ("number",),
            "=": ("equals",), "/": ("slash",), "°": ("degrees",)}
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence")}
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]

_RE_MONEY = re.compile(r"^([$€£])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?([kKmMbB]?)$")
_RE_TIME = re.compile(r"^(\d{1,2}):(\d{2})\s*([aApP]\.?[mM]\.?)?$")
_RE_HOUR = re.compile(r"^(\d{1,2})([aApP]\.?[mM]\.?)$")
_RE_ORD = re.compile(r"^(\d+)(st|nd|rd|th)$", re.I)
_RE_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_RE_NUMBER = re.compile(r"^-?(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_RE_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$")
_RE_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_RE_ALNUM = re.compile(r"[A-Za-z]+|\d+(?:[.,]\d+)*|[&%+@#=°]")


def _money(m: re.Match) -> tuple[str, ...]:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    cents = int((m.group(3) or "0").ljust(2, "0"))
    scale = {"k": "thousand", "m": "million", "b": "billion"}.get(m.group(4).lower())
    out = number_words(whole)
    if scale:
        return (*out, scale, many)
    out = (*out, one if whole == 1 else many) if whole or not cents else ()
    if cents:
        out = (*out, "and") if out else out
        out += (*number_words(cents), sub_one if cents == 1 else sub_many)
    return out


def _clock(hour: int, minute: int, suffix: str | None) -> tuple[str, ...]:
    out = number_words(hour)
    if minute:
        out += (("oh",) if minute < 10 else ()) + number_words(minute)
    elif not suffix:
        out += ("o'clock",)
    if suffix:
        out += ("a.", "m") if suffix[0].lower() == "a" else ("p", "m")
    return out


def _letters(word: str) -> tuple[str, ...]:
    # "a." is the letter's name (EY), "a" the article (AH), as in the CMU dictionary.
    return tuple("a." if c in "aA" else c.lower() for c in word if c.isalpha())


def spoken(word: str) -> tuple[str, ...]:
    """The words (lower case) a speaker says for one token's ``word``.

    Args:
        word: a token's word (see :func:`tokenize`), e.g. ``"$42.50"``, ``"7:30pm"``, ``"Dr"``.

    Returns:
        One or more spoken words; at least one for any token holding a letter or digit.

    >>> spoken("7:30pm"), spoken("50%"), spoken("R&D")
    (('seven', 'thirty', 'p', 'm'), ('fifty', 'percent'), ('r', 'and', 'd'))
    """
    w = word.strip()
    low = w.lower().rstrip(".")
    if low in _ABBREVIATIONS and (w.endswith(".") or w[:1].isupper() or low in ("etc", "vs")):
        return _ABBREVIATIONS[low]
    if m := _RE_MONEY.match(w):
        return _money(m)
    if m := _RE_TIME.match(w):
        return _clock(int(m.group(1)), int(m.group(2)), m.group(3))
    if m := _RE_HOUR.match(w):
        return _clock(int(m.group(1)), 0, m.group(2))
    if m := _RE_ORD.match(w):
        return ordinal_words(int(m.group(1)))
    if m := _RE_PERCENT.match(w):
        return (*_cardinal(m.group(1)), "percent")
    if m := _RE_DATE.match(w):
        month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        year += 2000 if year < 100 else 0
        if 1 <= month <= 12:
            return (_MONTHS[month - 1], *ordinal_words(day), *_year_words(year))
    if m := _RE_ISO_DATE.match(w):
        year, month, day = (int(g) for g in m.groups())
        if 1 <= month <= 12:
            return (_MONTHS[month - 1], *ordinal_words(day), *_year_words(year))
    if _RE_NUMBER.match(w):
        neg = w.startswith("-")
        digits = w.lstrip("-")
        if re.fullmatch(r"(1[89]|20)\d\d", digits):  # 1800-2099: read as a year
            return _year_words(int(digits))
        return (("minus",) if neg else ()) + _cardinal(digits)
    if w.isalpha():
        if w.isupper() and len(w) >= 2 and not _pronounceable(w):
            return _letters(w)
        return (low if w.isupper() else w.lower(),)
    # Mixed tokens: "R&D", "well-known", "it's", "COVID-19", "B2B", "e-mail".
    if re.fullmatch(r"[A-Za-z]+(?:['’][A-Za-z]+)+", w):
        return (w.lower().replace("’", "'"),)
    out: list[str] = []
    for part in _RE_ALNUM.findall(w):
        if part in _SYMBOLS:
            out += _SYMBOLS[part]
        elif part[0].isdigit():
            out += _cardinal(part.replace(",", "")) if part.count(".") <= 1 else _digits(part)
        elif part.isupper() and len(part) <= 4 and len(_RE_ALNUM.findall(w)) > 1:
            out += _letters(part) if not _pronounceable(part) or len(part) == 1 else (part.lower(),)
        else:
            out.append(part.lower())
    return tuple(out) or _letters(w) or (low,)


_VOWELS = set("aeiouy")


def _pronounceable(word: str) -> bool:
    """Whether an upper-case word is said as a word (NASA, SCUBA) rather than spelled (FBI, API)."""
    low = word.lower()
    if len(low) <= 2 or not any(c in _VOWELS for c in low):
        return False
    from .dictionary import in_dictionary

    # In the dictionary and not a known spelled acronym (cmudict spells those as letters).
    return in_dictionary(low) and not _spelled_in_dict(low)


def _spelled_in_dict(low: str) -> bool:
    from .dictionary import dictionary_phones, letter_phones

    entry = dictionary_phones(low)
    return entry is not None and entry == letter_phones(low)
