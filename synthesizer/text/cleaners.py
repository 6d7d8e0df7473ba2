"""Text cleaners: raw input to the synthesizer's character set, with RTVC's names and behaviour.

Differences from RTVC's ``english_cleaners``: currency is expanded before transliteration (RTVC quirk
21, docs/rtvc-quirks.md) and ``%`` and ``&`` are read instead of dropped.

>>> english_cleaners("Dr. Smith paid $3.50 on the 1st of May, 1995.")
'doctor smith paid three dollars, fifty cents on the first of may, nineteen ninety-five.'
"""

from __future__ import annotations

import re
from collections.abc import Callable

from unidecode import unidecode

from synthesizer.text.numbers import expand_currency, normalize_numbers

__all__ = [
    "ABBREVIATIONS",
    "basic_cleaners",
    "transliteration_cleaners",
    "english_cleaners",
    "expand_abbreviations",
    "collapse_whitespace",
]

_WHITESPACE_RE = re.compile(r"\s+")

#: (abbreviation, expansion) pairs, matched case-insensitively when followed by
#: a period. "mrs" precedes "mr" so that the longer form wins.
ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("mrs", "misess"),
    ("mr", "mister"),
    ("dr", "doctor"),
    ("st", "saint"),
    ("co", "company"),
    ("jr", "junior"),
    ("maj", "major"),
    ("gen", "general"),
    ("drs", "doctors"),
    ("rev", "reverend"),
    ("lt", "lieutenant"),
    ("hon", "honorable"),
    ("sgt", "sergeant"),
    ("capt", "captain"),
    ("esq", "esquire"),
    ("ltd", "limited"),
    ("col", "colonel"),
    ("ft", "fort"),
)

_ABBREVIATION_RES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"\b{abbr}\.", re.IGNORECASE), word) for abbr, word in ABBREVIATIONS
)

# Symbols read as a word. A currency sign with no amount next to it would
# otherwise be transliterated to "PS"/"EUR" and read as letters; "%" and "&"
# are not in the symbol table and RTVC silently dropped them.
_SPOKEN_SYMBOLS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (symbol, re.compile(rf"\s*{re.escape(symbol)}(\s*)"), word)
    for symbol, word in (("£", "pounds"), ("€", "euros"), ("%", "percent"), ("&", "and"))
)


def _speak_symbol(match: re.Match[str], word: str) -> str:
    following = match.string[match.end() : match.end() + 1]
    # Keep "50%." tight but never glue the word to the next one ("50%off").
    separator = " " if match.group(1) or following.isalnum() else ""
    return f" {word}{separator}"


def _speak_symbols(text: str, symbols: str) -> str:
    for symbol, pattern, word in _SPOKEN_SYMBOLS:
        if symbol in symbols:
            text = pattern.sub(lambda m, w=word: _speak_symbol(m, w), text)
    return text


def collapse_whitespace(text: str) -> str:
    """Replace every run of whitespace with a single space.

    >>> collapse_whitespace("a \\t b\\n\\nc")
    'a b c'
    """
    return _WHITESPACE_RE.sub(" ", text)


def expand_abbreviations(text: str) -> str:
    """Expand the abbreviations of :data:`ABBREVIATIONS` (they need a period).

    >>> expand_abbreviations("mr. and mrs. smith of st. paul")
    'mister and misess smith of saint paul'
    """
    for pattern, word in _ABBREVIATION_RES:
        text = pattern.sub(word, text)
    return text


def _keep_edges(original: str, cleaned: str) -> str:
    # Our extra expansions may add spaces at the ends ("& co" -> " and co");
    # only keep edge spaces that RTVC's own steps would also have produced.
    if not original[:1].isspace():
        cleaned = cleaned.lstrip()
    if not original[-1:].isspace():
        cleaned = cleaned.rstrip()
    return cleaned


def basic_cleaners(text: str) -> str:
    """Lower-case and collapse whitespace; no transliteration (ASCII-only languages).

    >>> basic_cleaners("Hello   World")
    'hello world'
    """
    return collapse_whitespace(text.lower())


def transliteration_cleaners(text: str) -> str:
    """Transliterate to ASCII, lower-case and collapse whitespace.

    >>> transliteration_cleaners("Café  Über")
    'cafe uber'
    """
    return collapse_whitespace(unidecode(text).lower())


def english_cleaners(text: str) -> str:
    """The cleaner the pretrained English synthesizer was trained with.

    >>> english_cleaners("Mr. Brown owes £1,000,000 & 50% of €3.")
    'mister brown owes one million pounds and fifty percent of three euros.'
    """
    cleaned = expand_currency(text)
    cleaned = _speak_symbols(cleaned, "£€")
    cleaned = unidecode(cleaned)
    cleaned = cleaned.lower()
    # After Unidecode, so that full-width "％"/"＆" are read as well.
    cleaned = _speak_symbols(cleaned, "%&")
    cleaned = normalize_numbers(cleaned)
    cleaned = expand_abbreviations(cleaned)
    cleaned = collapse_whitespace(cleaned)
    if any(c in text for c in "£€%&％＆"):
        cleaned = _keep_edges(text, cleaned)
    return cleaned


#: Cleaner name (as used in ``hparams.tts_cleaner_names``) -> function.
CLEANERS: dict[str, Callable[[str], str]] = {
    "basic_cleaners": basic_cleaners,
    "transliteration_cleaners": transliteration_cleaners,
    "english_cleaners": english_cleaners,
}
