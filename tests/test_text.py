"""Tokenisation and normalisation: offsets into the original text, what a speaker says."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aligner.speech.text import number_words, ordinal_words, spoken, tokenize


def test_tokens_strip_surrounding_punctuation_and_keep_offsets():
    text = '  "Well," she said -- it costs $42.50! (Really?)'
    toks = tokenize(text)
    assert [t.word for t in toks] == ["Well", "she", "said", "it", "costs", "$42.50", "Really"]
    for t in toks:
        assert text[t.char_start:t.char_end] == t.word


def test_tokens_skip_pure_punctuation_and_keep_inner_punctuation():
    assert [t.word for t in tokenize("-- ... it's e-mail & R&D 50%")] == [
        "it's", "e-mail", "R&D", "50%"]


@pytest.mark.parametrize("word, expected", [
    ("$42.50", "forty two dollars and fifty cents"),
    ("$1", "one dollar"),
    ("$0.99", "ninety nine cents"),
    ("$3k", "three thousand dollars"),
    ("€20", "twenty euros"),
    ("7:30pm", "seven thirty p m"),
    ("9:05", "nine oh five"),
    ("10am", "ten a. m"),
    ("3rd", "third"),
    ("21st", "twenty first"),
    ("50%", "fifty percent"),
    ("3.14", "three point one four"),
    ("1,204", "one thousand two hundred four"),
    ("1999", "nineteen ninety nine"),
    ("2024", "twenty twenty four"),
    ("12/25/2024", "december twenty fifth twenty twenty four"),
    ("Dr.", "doctor"),
    ("FBI", "f b i"),
    ("API", "a. p i"),
    ("NASA", "nasa"),
    ("R&D", "r and d"),
    ("well-known", "well known"),
    ("COVID-19", "covid nineteen"),
    ("it's", "it's"),
])
def test_spoken_forms(word, expected):
    assert " ".join(spoken(word)) == expected


def test_number_words_and_ordinals():
    assert " ".join(number_words(0)) == "zero"
    assert " ".join(number_words(1_000_001)) == "one million one"
    assert " ".join(ordinal_words(40)) == "fortieth"
    assert " ".join(ordinal_words(112)) == "one hundred twelfth"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_every_token_has_a_word_inside_the_text_and_spoken_words(text):
    for t in tokenize(text):
        assert text[t.char_start:t.char_end] == t.word
        assert t.token_start <= t.char_start < t.char_end <= t.token_end
        assert any(c.isalnum() for c in text[t.token_start:t.token_end])
        assert spoken(t.word)
