"""Spell out numbers, amounts of money and ordinals in English words, as RTVC's ``numbers.py``.

The rules and the ``inflect`` calls give RTVC's output (inflect 5.3.0 and 7.x alike). Differences, all
where RTVC gave wrong text or crashed: ``£`` and ``€`` amounts are read (RTVC quirk 21,
docs/rtvc-quirks.md), with pence and cents after a decimal point, and integers beyond inflect's range
(>= 10**36) are read digit by digit.

>>> normalize_numbers("$3.50 on the 1st of May, 1995")
'three dollars, fifty cents on the first of May, nineteen ninety-five'
>>> normalize_numbers("£1,000,000")
'one million pounds'
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pragma: no cover - typing only
    import inflect

__all__ = ["normalize_numbers", "expand_currency"]


class _Currency(NamedTuple):
    unit: str
    units: str
    subunit: str
    subunits: str


# Dollars must keep RTVC's exact pattern (no space after "$") for identical
# output; pounds and euros are new, so "£ 5" / "€ 5" are accepted as well.
_CURRENCIES: tuple[tuple[re.Pattern[str], _Currency], ...] = (
    (re.compile(r"£\s?([0-9.,]*[0-9]+)"), _Currency("pound", "pounds", "penny", "pence")),
    (re.compile(r"€\s?([0-9.,]*[0-9]+)"), _Currency("euro", "euros", "cent", "cents")),
    (re.compile(r"\$([0-9.,]*[0-9]+)"), _Currency("dollar", "dollars", "cent", "cents")),
)

_COMMA_NUMBER_RE = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL_NUMBER_RE = re.compile(r"([0-9]+\.[0-9]+)")
_ORDINAL_RE = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER_RE = re.compile(r"[0-9]+")

_DIGIT_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)


@functools.lru_cache(maxsize=1)
def _engine() -> "inflect.engine":
    # Importing inflect pulls in typeguard & co.; only pay for it when text is
    # actually normalised, and build the engine once.
    import inflect

    return inflect.engine()


def _spell_digits(digits: str) -> str:
    return " ".join(_DIGIT_WORDS[int(d)] for d in digits)


def _expand_amount(amount: str, currency: _Currency) -> str:
    # Digits are left in place on purpose: the generic number pass that runs
    # afterwards spells them, exactly as RTVC's dollar rule relied on.
    parts = amount.replace(",", "").split(".")
    if len(parts) > 2:
        return f"{amount} {currency.units}"
    whole = int(parts[0]) if parts[0] else 0
    # RTVC reads the digits after the point as an integer count of cents
    # ("$3.5" -> "five cents"); kept for output compatibility.
    fraction = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    whole_words = f"{whole} {currency.unit if whole == 1 else currency.units}"
    fraction_words = f"{fraction} {currency.subunit if fraction == 1 else currency.subunits}"
    if whole and fraction:
        return f"{whole_words}, {fraction_words}"
    if whole:
        return whole_words
    if fraction:
        return fraction_words
    return f"zero {currency.units}"


def expand_currency(text: str) -> str:
    """Rewrite ``£N``, ``€N`` and ``$N`` amounts as "N unit(s), M subunit(s)", numbers still as digits.

    >>> expand_currency("£1,000,000 or €1 or $0.01 or $0")
    '1000000 pounds or 1 euro or 1 cent or zero dollars'
    """
    for pattern, currency in _CURRENCIES:
        text = pattern.sub(lambda m, c=currency: _expand_amount(m.group(1), c), text)
    return text


def _cardinal(number: str | int, **kwargs: object) -> str:
    try:
        return _engine().number_to_words(number, **kwargs)
    except Exception:  # noqa: BLE001 - inflect raises its own range errors
        # inflect stops at 10**36; reading the digits beats crashing synthesis.
        return _spell_digits(re.sub(r"[^0-9]", "", str(number)))


def _expand_ordinal(match: re.Match[str]) -> str:
    return _cardinal(match.group(0))


def _expand_number(match: re.Match[str]) -> str:
    digits = match.group(0)
    if len(digits) > 36:
        # Also avoids Python's int() digit limit on absurd inputs.
        return _spell_digits(digits)
    num = int(digits)
    if 1000 < num < 3000:
        # Read as a year, the most common meaning in narrated text.
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + _cardinal(num % 100)
        if num % 100 == 0:
            return _cardinal(num // 100) + " hundred"
        return _cardinal(num, andword="", zero="oh", group=2).replace(", ", " ")
    return _cardinal(num, andword="")


def normalize_numbers(text: str) -> str:
    """Spell out every number in ``text``: commas, currency, decimals, ordinals (lower-case suffixes),
    then integers, 1001-2999 read as years.

    >>> normalize_numbers("130 and 1000000")
    'one hundred thirty and one million'
    >>> normalize_numbers("1900, 1905, 2000, 2007")
    'nineteen hundred, nineteen oh five, two thousand, two thousand seven'
    >>> normalize_numbers("3.14 and the 23rd")
    'three point fourteen and the twenty-third'
    """
    text = _COMMA_NUMBER_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = expand_currency(text)
    text = _DECIMAL_NUMBER_RE.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL_RE.sub(_expand_ordinal, text)
    text = _NUMBER_RE.sub(_expand_number, text)
    return text
