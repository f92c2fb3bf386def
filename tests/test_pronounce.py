"""Pronunciations: CMU dictionary first, letter names, letter-to-sound for unknown words."""

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from aligner.speech.dictionary import PHONES, dictionary_phones, dictionary_variants
from aligner.speech.pronounce import connected_speech, guess_phones, phones, token_phones
from aligner.speech.text import spoken, tokenize


def test_dictionary_words_use_the_cmu_dictionary_without_stress():
    assert phones("hello") == ("HH", "AH", "L", "OW")
    assert dictionary_phones("table") == phones("table")
    assert all(p in PHONES for p in phones("extraordinary"))


def test_dictionary_search_finds_what_a_full_read_finds():
    """The in-place binary search over the dictionary file gives every word the entries a
    full parse of the file gives: the first pronunciation and its alternatives ("read(2)")."""
    from pocketsphinx import get_model_path

    first: dict[str, tuple[str, ...]] = {}
    others: dict[str, list[tuple[str, ...]]] = {}
    path = os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, pron = line.partition(" ")
            p = tuple(pron.translate(str.maketrans("", "", "012")).split())
            if "(" in key:
                others.setdefault(key.split("(")[0], []).append(p)
            else:
                first[key] = p
    words = sorted(set(first) | set(others))
    sample = [words[0], words[-1], "a", "read", "tuesday", "a's", "aaronson's", "'em"]
    sample += random.Random(7).sample(words, 3000)
    for w in sample:
        assert dictionary_phones(w) == first.get(w), w
        want = (first[w], *(p for p in dict.fromkeys(others.get(w, ())) if p != first[w])) \
            if w in first else ()
        assert dictionary_variants(w) == want, w
    for w in ("", "zzzzzz", "aaaa", "~", "read(2)"):
        assert dictionary_phones(w) == first.get(w)


def test_oov_words_get_phones_from_the_letter_to_sound_model():
    for word in ("zorblaxian", "retellify", "quibbleworth", "xyzzyq"):
        assert dictionary_phones(word) is None
        ph = phones(word)
        assert len(ph) >= 3 and all(p in PHONES for p in ph)
    assert phones("zorblax")[0] == "Z"


def test_both_letter_to_sound_backends_are_plausible():
    # espeak-ng (optional, better) and gruut's CRF model (always there) agree on easy guesses.
    for word, expected in (("blick", ("B", "L", "IH", "K")), ("snarf", ("S", "N", "AA", "R", "F"))):
        assert guess_phones(word) == expected
        crf = guess_phones(word, use_espeak=False)
        assert crf[0] == expected[0] and crf[-1] == expected[-1]
    assert guess_phones("nguyen")[:1] == ("N",)


def test_spelled_letters_and_tokens():
    assert phones("f") == ("EH", "F")
    assert phones("a.") == ("EY",)
    assert token_phones("FBI") == (("EH", "F"), ("B", "IY"), ("AY",))
    assert [p[0] for p in token_phones("$5")] == ["F", "D"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789$%&'.,-: ", max_size=30))
def test_every_token_gets_phones(text):
    for t in tokenize(text):
        ph = token_phones(t.word)
        assert ph, t.word
        assert all(p in PHONES for w in ph for p in w)
        assert len(ph) <= len(spoken(t.word))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_any_unicode_token_is_pronounced_without_error(text):
    for t in tokenize(text):
        for word in token_phones(t.word):
            assert all(p in PHONES for p in word)


def test_odd_digits_do_not_recurse():
    for word in ("x²", "①②", "٣", "½", "3²"):
        token_phones(word)


def test_connected_speech_drops_final_stops_after_consonants_and_flaps_t():
    assert connected_speech(("L", "AE", "S", "T")) == [("L", "AE", "S")]
    assert connected_speech(("AE", "N", "D")) == [("AE", "N")]
    assert connected_speech(("W", "AO", "T", "ER")) == [("W", "AO", "D", "ER")]
    assert connected_speech(("P", "AA", "R", "T", "IY")) == [("P", "AA", "R", "D", "IY")]
    # a stop after a vowel stays; a lone consonant is not dropped; no T between vowels
    assert connected_speech(("K", "AE", "T")) == []
    assert connected_speech(("N", "D")) == []
    assert connected_speech(("S", "T", "AA", "P")) == []


def test_the_acoustic_backend_offers_connected_speech_pronunciations():
    from aligner.speech.backends.acoustic import _slots
    from aligner.speech.text import tokenize

    water, first = tokenize("water first")
    assert ("W", "AO", "D", "ER") in _slots(water, token_phones("water"))[0]
    assert ("F", "ER", "S") in _slots(first, token_phones("first"))[0]
