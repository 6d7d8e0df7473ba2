"""Text front-end of the synthesizer: cleaning, symbol ids and sentence splitting.

RTVC's cleaners and 66-symbol table, so ordinary text gives RTVC's ids; where RTVC dropped text
silently (RTVC quirk 21, docs/rtvc-quirks.md), this module speaks it or warns.

>>> text_to_sequence("Hi!")
[35, 36, 54, 1]
>>> sequence_to_text([35, 36, 54, 1])
'hi!'
>>> prepare_utterances("Dr. Who arrived. He left!")
['Dr. Who arrived.', 'He left!']
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from synthesizer.text.cleaners import (
    CLEANERS,
    basic_cleaners,
    english_cleaners,
    transliteration_cleaners,
)
from synthesizer.text.symbols import EOS, NUM_SYMBOLS, PAD, SYMBOL_TO_ID, SYMBOLS
from utils.errors import UserError

__all__ = [
    "CLEANERS",
    "EOS",
    "PAD",
    "SYMBOLS",
    "SYMBOL_TO_ID",
    "EncodedText",
    "TextError",
    "TextWarning",
    "basic_cleaners",
    "clean_text",
    "encode_text",
    "english_cleaners",
    "prepare_utterances",
    "sequence_to_text",
    "split_sentences",
    "text_to_sequence",
    "transliteration_cleaners",
]

_PAD_ID: int = SYMBOL_TO_ID[PAD]
_EOS_ID: int = SYMBOL_TO_ID[EOS]

_BRACED_RE = re.compile(r"\{[^{}]*\}")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PREVIEW_CHARS = 60


class TextWarning(UserWarning):
    """Input text was changed in a way the user should know about."""


class TextError(UserError, ValueError):
    """Input text cannot be synthesized; the message is one line for the UI."""


@dataclass(frozen=True)
class EncodedText:
    """Result of :func:`encode_text`: ``ids`` (ending with EOS, 1), the ``cleaned`` text and the distinct
    characters that had no symbol and were ``dropped``."""

    ids: list[int]
    cleaned: str
    dropped: tuple[str, ...]


def _preview(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _PREVIEW_CHARS:
        text = text[: _PREVIEW_CHARS - 1] + "…"
    return repr(text)


def _resolve_cleaners(cleaner_names: str | Iterable[str]) -> list[Callable[[str], str]]:
    # A bare string would otherwise be iterated character by character.
    names = (cleaner_names,) if isinstance(cleaner_names, str) else tuple(cleaner_names)
    functions = []
    for name in names:
        if name not in CLEANERS:
            raise TextError(f"Unknown text cleaner {name!r}; choose from {', '.join(CLEANERS)}.")
        functions.append(CLEANERS[name])
    return functions


def _unbrace(text: str) -> tuple[str, bool]:
    if not _BRACED_RE.search(text):
        return text, False
    return text.replace("{", "").replace("}", ""), True


def clean_text(text: str, cleaner_names: str | Iterable[str] = ("english_cleaners",)) -> str:
    """Run the named cleaners (keys of :data:`CLEANERS`) over ``text``; :class:`TextError` for an unknown one.

    >>> clean_text("It's 5 o'clock, Mr. Jones.")
    "it's five o'clock, mister jones."
    """
    for cleaner in _resolve_cleaners(cleaner_names):
        text = cleaner(text)
    return text


def _encode(text: str, cleaner_names: str | Iterable[str], stacklevel: int) -> EncodedText:
    text, had_braces = _unbrace(text.strip())
    if had_braces:
        warnings.warn(
            "ARPAbet in {braces} is not supported; the braces were removed and "
            "their content was read as ordinary text.",
            TextWarning,
            stacklevel=stacklevel,
        )
    cleaned = clean_text(text, cleaner_names)
    ids: list[int] = []
    dropped: dict[str, None] = {}  # ordered set
    for char in cleaned:
        symbol_id = SYMBOL_TO_ID.get(char)
        # Pad and EOS are in the table but typed by a user they would corrupt
        # the sequence (EOS mid-text, pad masked out by the attention).
        if symbol_id is None or symbol_id in (_PAD_ID, _EOS_ID):
            dropped[char] = None
        else:
            ids.append(symbol_id)
    ids.append(_EOS_ID)
    if dropped:
        names = " ".join(repr(c) for c in dropped)
        warnings.warn(
            f"Dropped {len(dropped)} character(s) the synthesizer cannot speak: {names}.",
            TextWarning,
            stacklevel=stacklevel,
        )
    return EncodedText(ids=ids, cleaned=cleaned, dropped=tuple(dropped))


def encode_text(
    text: str, cleaner_names: str | Iterable[str] = ("english_cleaners",)
) -> EncodedText:
    """Symbol ids of one utterance, reporting what was lost.

    Unlike RTVC, ``{...}`` is not ARPAbet (the table has none): the braces go, their content is spoken and a
    :class:`TextWarning` says so. Characters without a symbol (including ``_`` and ``~``) are dropped and
    reported in one :class:`TextWarning`.

    >>> enc = encode_text("Hello, world.")
    >>> enc.ids[:5], enc.ids[-1], enc.cleaned, enc.dropped
    ([35, 32, 39, 39, 42], 1, 'hello, world.', ())
    """
    return _encode(text, cleaner_names, stacklevel=3)


def text_to_sequence(
    text: str, cleaner_names: str | Iterable[str] = ("english_cleaners",)
) -> list[int]:
    """``encode_text(...).ids``.

    >>> text_to_sequence("a b")
    [28, 65, 29, 1]
    """
    return _encode(text, cleaner_names, stacklevel=3).ids


def sequence_to_text(ids: Iterable[int]) -> str:
    """Symbol ids back to text, skipping pad and EOS; :class:`TextError` for an id outside the table.

    >>> sequence_to_text([0, 35, 36, 54, 1, 0])
    'hi!'
    """
    chars = []
    for raw in ids:
        symbol_id = int(raw)
        if not 0 <= symbol_id < NUM_SYMBOLS:
            raise TextError(f"Symbol id {symbol_id} is outside the table (0-{NUM_SYMBOLS - 1}).")
        if symbol_id not in (_PAD_ID, _EOS_ID):
            chars.append(SYMBOLS[symbol_id])
    return "".join(chars)


# --------------------------------------------------------------------------- #
# Sentence splitting
# --------------------------------------------------------------------------- #

# Words after which a period does not end a sentence. Deliberately a little
# conservative: a missed split only makes a piece longer (and length is capped
# anyway), while a wrong split breaks the prosody of a name like "Dr. Smith".
_NO_SPLIT_WORDS: frozenset[str] = frozenset(
    {
        "mr", "mrs", "ms", "dr", "drs", "st", "jr", "sr", "prof", "rev", "hon",
        "gen", "maj", "col", "capt", "lt", "sgt", "esq", "ft", "mt", "vs", "co",
        "ltd", "fig", "approx",
    }
)
# Sentence-final punctuation, with closing quotes/brackets, before a space or
# the end of the line. A period between digits ("3.50") never matches.
_BOUNDARY_RE = re.compile(r"[.!?;]+[\"')\]»”’]*(?=\s|$)")
_CLAUSE_RE = re.compile(r"(?<=[,;:])\s+")
_LEADING_OPENERS = "\"'([«“‘"


def _is_abbreviation(before: str) -> bool:
    """Whether the word just before a single period makes it a non-boundary."""
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip(_LEADING_OPENERS)
    if word.lower() in _NO_SPLIT_WORDS:
        return True
    # Initials ("J. R. R.") - but not the pronoun, which often ends a sentence.
    if len(word) == 1 and word.isupper() and word != "I":
        return True
    # Dotted abbreviations such as "e.g." or "U.S.".
    return "." in word and not any(c.isdigit() for c in word)


def _split_line(line: str) -> list[str]:
    sentences = []
    start = 0
    for match in _BOUNDARY_RE.finditer(line):
        if match.group().rstrip("\"')]»”’") == "." and _is_abbreviation(line[start : match.start()]):
            continue
        sentences.append(line[start : match.end()].strip())
        start = match.end()
    sentences.append(line[start:].strip())
    return _attach_fragments([s for s in sentences if s])


def _attach_fragments(sentences: list[str]) -> list[str]:
    """Join fragments with nothing to read ("...", "!!!", an emoji) to a neighbour."""
    merged: list[str] = []
    pending = ""  # letterless fragments before the first readable sentence
    for sentence in sentences:
        if any(c.isalnum() for c in sentence):
            merged.append(f"{pending} {sentence}" if pending else sentence)
            pending = ""
        elif merged:
            merged[-1] = f"{merged[-1]} {sentence}"
        else:
            pending = f"{pending} {sentence}" if pending else sentence
    if pending:
        merged.append(pending)
    return merged


def _split_words(text: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > max_chars:
            # A single "word" longer than the limit (e.g. a URL) is cut hard.
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= max_chars:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _split_long(sentence: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for clause in _CLAUSE_RE.split(sentence):
        candidate = f"{current} {clause}" if current else clause
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            pieces.append(current)
            current = ""
        if len(clause) <= max_chars:
            current = clause
        else:
            pieces.extend(_split_words(clause, max_chars))
    if current:
        pieces.append(current)
    return pieces


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Split a paragraph into stripped sentences of at most ``max_chars`` characters.

    Splits after ``.``, ``!``, ``?`` and ``;`` followed by a space, and at newlines, but not after common
    abbreviations, initials, dotted abbreviations or inside numbers. A sentence still too long is split at
    commas, semicolons and colons, then between words.

    >>> split_sentences("Mr. Smith paid $3.50. Did J. R. R. Tolkien? Yes!")
    ['Mr. Smith paid $3.50.', 'Did J. R. R. Tolkien?', 'Yes!']
    >>> split_sentences("one, two, three", max_chars=9)
    ['one, two,', 'three']
    """
    if max_chars < 1:
        raise TextError(f"max_chars must be at least 1, got {max_chars}.")
    pieces: list[str] = []
    for line in text.splitlines():
        for sentence in _split_line(line):
            if len(sentence) <= max_chars:
                pieces.append(sentence)
            else:
                pieces.extend(_split_long(sentence, max_chars))
    return [p for p in (p.strip() for p in pieces) if p]


def _non_ascii_majority(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    foreign = sum(1 for c in letters if not c.isascii())
    return 2 * foreign > len(letters)


def prepare_utterances(
    text: str, max_chars: int = 200, max_total_chars: int = 20000
) -> list[str]:
    """Validate user text and split it (:func:`split_sentences`) into raw pieces the synthesizer can speak.

    :class:`TextError` when the text is empty or too long or a piece has no letter; transliterated non-Latin
    text is accepted with a :class:`TextWarning`.

    >>> prepare_utterances("First line. Second sentence!\\n\\nThird line")
    ['First line.', 'Second sentence!', 'Third line']
    >>> prepare_utterances("   ")
    Traceback (most recent call last):
        ...
    synthesizer.text.TextError: The text is empty: type at least one word.
    """
    stripped = text.strip()
    if not stripped:
        raise TextError("The text is empty: type at least one word.")
    if len(stripped) > max_total_chars:
        raise TextError(
            f"The text has {len(stripped)} characters; the limit is {max_total_chars}. "
            "Split it into several files/runs."
        )

    pieces = split_sentences(stripped, max_chars)
    foreign: list[tuple[str, str]] = []
    for piece in pieces:
        cleaned = english_cleaners(_unbrace(piece)[0]).strip()
        if not any(c in _ASCII_LETTERS for c in cleaned):
            raise TextError(
                f"Nothing to speak in {_preview(piece)}: it has no letters after cleaning "
                "(only emoji, symbols or punctuation); remove it or write it out in words."
            )
        if _non_ascii_majority(piece):
            foreign.append((piece, cleaned))

    if foreign:
        piece, cleaned = foreign[0]
        more = f" ({len(foreign) - 1} more piece(s) likewise)" if len(foreign) > 1 else ""
        warnings.warn(
            f"The text {_preview(piece)} is not English; it was transliterated to "
            f"{_preview(cleaned)} and will sound foreign{more}.",
            TextWarning,
            stacklevel=2,
        )
    return pieces
