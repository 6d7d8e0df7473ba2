"""Tests of the synthesizer text front-end (``synthesizer.text``)."""

from __future__ import annotations

import warnings

import pytest

from synthesizer.text import (
    CLEANERS,
    EncodedText,
    TextError,
    TextWarning,
    encode_text,
    prepare_utterances,
    sequence_to_text,
    split_sentences,
    text_to_sequence,
)
from synthesizer.text.cleaners import (
    ABBREVIATIONS,
    basic_cleaners,
    english_cleaners,
    transliteration_cleaners,
)
from synthesizer.text.numbers import normalize_numbers
from synthesizer.text.symbols import EOS, PAD, SYMBOL_TO_ID, SYMBOLS

RTVC_EXAMPLE = "Dr. Smith paid $3.50 on the 1st of May, 1995."
RTVC_EXAMPLE_CLEANED = (
    "doctor smith paid three dollars, fifty cents on the first of may, nineteen ninety-five."
)


# --------------------------------------------------------------------------- symbols


def test_symbol_table_is_the_rtvc_table() -> None:
    assert len(SYMBOLS) == 66
    assert "".join(SYMBOLS) == (
        "_~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!'\"(),-.:;? "
    )
    assert (PAD, EOS) == ("_", "~")
    assert SYMBOL_TO_ID["_"] == 0
    assert SYMBOL_TO_ID["~"] == 1
    assert SYMBOL_TO_ID["A"] == 2
    assert SYMBOL_TO_ID["Z"] == 27
    assert SYMBOL_TO_ID["a"] == 28
    assert SYMBOL_TO_ID["z"] == 53
    assert SYMBOL_TO_ID["!"] == 54
    assert SYMBOL_TO_ID["?"] == 64
    assert SYMBOL_TO_ID[" "] == 65
    assert all(SYMBOLS[i] == s for s, i in SYMBOL_TO_ID.items())


# --------------------------------------------------------------------------- RTVC reference


def test_measured_rtvc_example() -> None:
    assert english_cleaners(RTVC_EXAMPLE) == RTVC_EXAMPLE_CLEANED
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be dropped or warned
        encoded = encode_text(RTVC_EXAMPLE)
    assert encoded.cleaned == RTVC_EXAMPLE_CLEANED
    assert len(encoded.ids) == 88
    assert encoded.ids[-1] == 1
    assert encoded.ids[:6] == [31, 42, 30, 47, 42, 45]  # "doctor"
    assert encoded.ids == [SYMBOL_TO_ID[c] for c in RTVC_EXAMPLE_CLEANED] + [1]
    assert encoded.dropped == ()
    assert text_to_sequence(RTVC_EXAMPLE) == encoded.ids


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1995", "nineteen ninety-five"),
        ("2000", "two thousand"),
        ("2007", "two thousand seven"),
        ("1900", "nineteen hundred"),
        ("1905", "nineteen oh five"),
        ("2015", "twenty fifteen"),
        ("1100", "eleven hundred"),
        ("1000", "one thousand"),
        ("3000", "three thousand"),
        ("130", "one hundred thirty"),
        ("101", "one hundred one"),
        ("0", "zero"),
        ("1000000", "one million"),
        ("1,000,000", "one million"),
        ("1,234,567", "one million, two hundred thirty-four thousand, five hundred sixty-seven"),
    ],
)
def test_years_and_cardinals(text: str, expected: str) -> None:
    assert normalize_numbers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1st", "first"),
        ("2nd", "second"),
        ("3rd", "third"),
        ("23rd", "twenty-third"),
        ("11th", "eleventh"),
        ("100th", "one hundredth"),
    ],
)
def test_ordinals(text: str, expected: str) -> None:
    assert normalize_numbers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1", "one dollar"),
        ("$5", "five dollars"),
        ("$0", "zero dollars"),
        ("$0.00", "zero dollars"),
        ("$0.01", "one cent"),
        ("$0.50", "fifty cents"),
        ("$1.01", "one dollar, one cent"),
        ("$3.50", "three dollars, fifty cents"),
        ("$1,000", "one thousand dollars"),
    ],
)
def test_dollars(text: str, expected: str) -> None:
    assert normalize_numbers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.14", "three point fourteen"),
        ("0.5", "zero point five"),
        ("version 2.0", "version two point zero"),
    ],
)
def test_decimals(text: str, expected: str) -> None:
    assert normalize_numbers(text) == expected


def test_huge_number_is_read_digit_by_digit_instead_of_crashing() -> None:
    assert normalize_numbers("1" + "0" * 40) == "one" + " zero" * 40


# --------------------------------------------------------------------------- cleaners


def test_pounds_fixed_compared_to_rtvc() -> None:
    cleaned = english_cleaners("£1,000,000")
    assert "one million pounds" in cleaned
    assert "ps" not in cleaned
    assert english_cleaners("It costs £1.") == "it costs one pound."
    assert english_cleaners("£2.50") == "two pounds, fifty pence"
    assert english_cleaners("Prices in £ here") == "prices in pounds here"


def test_euros_percent_and_ampersand() -> None:
    assert english_cleaners("€5") == "five euros"
    assert english_cleaners("€1") == "one euro"
    assert english_cleaners("€3.50") == "three euros, fifty cents"
    assert english_cleaners("It costs 5 €.") == "it costs five euros."
    assert "eur" not in english_cleaners("€20").replace("euros", "")
    assert english_cleaners("50% off") == "fifty percent off"
    assert english_cleaners("12.5%.") == "twelve point five percent."
    assert english_cleaners("Tom & Jerry") == "tom and jerry"
    assert english_cleaners("A&B") == "a and b"


@pytest.mark.parametrize(("abbreviation", "expansion"), ABBREVIATIONS)
def test_every_abbreviation(abbreviation: str, expansion: str) -> None:
    assert english_cleaners(f"Hello {abbreviation.capitalize()}. Brown") == f"hello {expansion} brown"
    assert english_cleaners(f"{abbreviation.upper()}. x") == f"{expansion} x"
    # Without the period it is a normal word.
    assert english_cleaners(f"{abbreviation} x") == f"{abbreviation} x"


def test_abbreviation_table_matches_rtvc() -> None:
    assert dict(ABBREVIATIONS) == {
        "mrs": "misess", "mr": "mister", "dr": "doctor", "st": "saint", "co": "company",
        "jr": "junior", "maj": "major", "gen": "general", "drs": "doctors", "rev": "reverend",
        "lt": "lieutenant", "hon": "honorable", "sgt": "sergeant", "capt": "captain",
        "esq": "esquire", "ltd": "limited", "col": "colonel", "ft": "fort",
    }  # fmt: skip
    assert english_cleaners("Mrs. and Mr. and Drs.") == "misess and mister and doctors"


def test_basic_and_transliteration_cleaners() -> None:
    assert basic_cleaners("Hello \t  World\n") == "hello world "
    assert basic_cleaners("Café 5") == "café 5"
    assert transliteration_cleaners("Café  Über 5") == "cafe uber 5"
    assert set(CLEANERS) == {"basic_cleaners", "transliteration_cleaners", "english_cleaners"}


# --------------------------------------------------------------------------- encoding


def test_braces_are_read_as_text_with_warning() -> None:
    with pytest.warns(TextWarning, match="ARPAbet"):
        encoded = encode_text("Turn {left} now.")
    assert encoded.cleaned == "turn left now."
    assert sequence_to_text(encoded.ids) == "turn left now."
    assert encoded.dropped == ()


def test_unknown_characters_are_dropped_reported_and_warned() -> None:
    with pytest.warns(TextWarning, match="Dropped 3") as record:
        encoded = encode_text("a_b~c*d*", cleaner_names=("basic_cleaners",))
    assert len([w for w in record if issubclass(w.category, TextWarning)]) == 1
    assert "'*'" in str(record[0].message)
    assert encoded.dropped == ("_", "~", "*")
    assert encoded.ids == [28, 29, 30, 31, 1]
    assert encoded.cleaned == "a_b~c*d*"


def test_non_ascii_dropped_with_basic_cleaners() -> None:
    with pytest.warns(TextWarning, match="é"):
        encoded = encode_text("café", "basic_cleaners")
    assert encoded.dropped == ("é",)
    assert sequence_to_text(encoded.ids) == "caf"


def test_encoded_text_is_frozen_and_stripped() -> None:
    encoded = encode_text("  Hi!  ")
    assert isinstance(encoded, EncodedText)
    assert encoded.ids == [35, 36, 54, 1]
    with pytest.raises(AttributeError):
        encoded.cleaned = "x"  # type: ignore[misc]


def test_unknown_cleaner_name() -> None:
    with pytest.raises(TextError, match="Unknown text cleaner 'nope'"):
        encode_text("hi", ("nope",))


def test_sequence_to_text_round_trip() -> None:
    text = "hello, world! it's (really) \"fine\": yes-no; ok?"
    ids = text_to_sequence(text, ["basic_cleaners"])
    assert ids[-1] == 1
    assert sequence_to_text(ids) == text
    assert sequence_to_text([0, 0] + ids + [0, 0]) == text
    assert sequence_to_text([2, 27]) == "AZ"
    with pytest.raises(TextError, match="66"):
        sequence_to_text([66])


# --------------------------------------------------------------------------- splitting


def test_split_sentences_basic_punctuation() -> None:
    assert split_sentences("One. Two! Three? Four; five.") == [
        "One.", "Two!", "Three?", "Four;", "five.",
    ]  # fmt: skip


def test_split_sentences_keeps_abbreviations_numbers_and_initials() -> None:
    text = "Dr. Smith met Mr. and Mrs. Jones at St. Paul. They paid $3.50 each. J. R. R. Tolkien wrote it."
    assert split_sentences(text) == [
        "Dr. Smith met Mr. and Mrs. Jones at St. Paul.",
        "They paid $3.50 each.",
        "J. R. R. Tolkien wrote it.",
    ]


def test_split_sentences_on_newlines() -> None:
    assert split_sentences("first line\nsecond line. third\n\n  \nlast") == [
        "first line", "second line.", "third", "last",
    ]  # fmt: skip


def test_split_sentences_closing_quotes_stay_with_sentence() -> None:
    assert split_sentences('He said "stop." Then he left.') == ['He said "stop."', "Then he left."]


def test_split_sentences_caps_long_sentences() -> None:
    clause = "this is a rather long clause with several words in it"
    sentence = ", ".join([clause] * 8) + "."
    pieces = split_sentences(sentence, max_chars=120)
    assert len(pieces) > 1
    assert all(len(p) <= 120 for p in pieces)
    assert all(p.endswith((",", ".")) for p in pieces)  # split at commas first
    assert " ".join(pieces) == sentence

    no_commas = " ".join(["word"] * 100)
    pieces = split_sentences(no_commas, max_chars=50)
    assert all(0 < len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == no_commas

    pieces = split_sentences("x" * 450, max_chars=200)
    assert [len(p) for p in pieces] == [200, 200, 50]


def test_split_sentences_default_cap_is_200() -> None:
    pieces = split_sentences(" ".join(["syllable"] * 80))
    assert all(len(p) <= 200 for p in pieces)
    assert len(pieces) == 4


def test_split_sentences_keeps_letterless_fragments_with_neighbour() -> None:
    assert split_sentences("Hello! 🙂") == ["Hello! 🙂"]
    assert split_sentences("Hi. ... !!! Bye.") == ["Hi. ... !!!", "Bye."]
    assert split_sentences("... Hello.") == ["... Hello."]
    assert split_sentences("") == []


def test_split_sentences_rejects_bad_max_chars() -> None:
    with pytest.raises(TextError):
        split_sentences("hi", max_chars=0)


# --------------------------------------------------------------------------- prepare_utterances


def test_prepare_utterances_splits_lines_and_sentences() -> None:
    assert prepare_utterances("Hello there. How are you?\n\nFine, Dr. Who.\n") == [
        "Hello there.", "How are you?", "Fine, Dr. Who.",
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_prepare_utterances_empty(text: str) -> None:
    with pytest.raises(TextError, match=r"^The text is empty: type at least one word\.$"):
        prepare_utterances(text)


def test_prepare_utterances_too_long() -> None:
    with pytest.raises(TextError) as info:
        prepare_utterances("a" * 30, max_total_chars=20)
    assert str(info.value) == (
        "The text has 30 characters; the limit is 20. Split it into several files/runs."
    )
    with pytest.raises(TextError, match="20001 characters; the limit is 20000"):
        prepare_utterances("b" * 20001)


@pytest.mark.parametrize("text", ["🙂🙂", "!!! ???", "Hello.\n🙂"])
def test_prepare_utterances_nothing_speakable(text: str) -> None:
    with pytest.raises(TextError, match="no letters") as info:
        prepare_utterances(text)
    assert "\n" not in str(info.value)


def test_prepare_utterances_cyrillic_is_transliterated_with_warning() -> None:
    with pytest.warns(TextWarning, match="not English") as record:
        pieces = prepare_utterances("Привет, как дела?")
    assert pieces == ["Привет, как дела?"]
    assert "privet, kak dela?" in str(record[0].message)
    assert encode_text(pieces[0]).cleaned == "privet, kak dela?"


def test_prepare_utterances_accented_english_is_not_foreign() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_utterances("The café serves crème brûlée.") == [
            "The café serves crème brûlée."
        ]
