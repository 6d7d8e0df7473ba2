"""Typed hyperparameter dataclasses that round-trip through checkpoints and JSON, with range checks.

Defaults are RTVC's; why and how: docs/design.md.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Tiny(HParams):
...     width: int = 4
...     factors: tuple[int, ...] = (2, 2)
>>> Tiny.from_dict({"width": 8, "factors": [3, 3]})
Tiny(width=8, factors=(3, 3))

Allowed values are declared once per class in ``RULES`` (field name → :class:`Rule`) and checked on every
construction, whichever way the object is made (defaults, ``from_dict``, a checkpoint, ``--hparams``):

>>> @dataclass(frozen=True)
... class Checked(HParams):
...     width: int = 4
...     dropout: float = 0.5
...     RULES: ClassVar[dict[str, Rule]] = {"width": Range(low=1, integer=True), "dropout": Range(0, 1)}
>>> for values in ({"width": 0}, {"dropout": float("nan")}):
...     try:
...         Checked.from_dict(values)
...     except HParamsError as error:
...         print(error)
width must be at least 1, not 0
dropout must be between 0 and 1, not nan
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

from utils.errors import UserError

T = TypeVar("T", bound="HParams")


class HParamsError(UserError, ValueError):
    """Raised when stored hyperparameters do not fit the dataclass (unknown key, wrong type, out of range)."""


# ----------------------------------------------------------------------------------------------
# Rules: what values a field accepts. Declarative, so that every field's range is stated in one
# table next to its class and checked by one function, instead of by ifs spread over the trainers.


class Rule:
    """The allowed values of one field; subclasses say how to check and how to describe them."""

    def problem(self, value: Any, hparams: "HParams") -> str | None:
        """``None`` when ``value`` is allowed, else the end of the sentence "<name> must be …"."""
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Range(Rule):
    """A finite number (an integer with ``integer=True``) within optional bounds; tuples item by item.

    >>> Range(0, 1, high_inclusive=False).describe()
    'at least 0 and below 1'
    >>> Range(low=0, low_inclusive=False).problem(float("inf"), None)
    'above 0 and finite'
    """

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    integer: bool = False

    def describe(self) -> str:
        low = high = ""
        if self.low is not None:
            low = f"{'at least' if self.low_inclusive else 'above'} {_number_text(self.low)}"
        if self.high is not None:
            high = f"{'at most' if self.high_inclusive else 'below'} {_number_text(self.high)}"
        if low and high and self.low_inclusive and self.high_inclusive:
            text = f"between {_number_text(self.low)} and {_number_text(self.high)}"
        else:
            text = " and ".join(part for part in (low, high) if part) or "a number"
        if not self.integer and (self.low is None or self.high is None):
            text += " and finite" if text != "a number" else ""
            text = "a finite number" if text == "a number" else text
        return text

    def problem(self, value: Any, hparams: "HParams") -> str | None:
        if isinstance(value, tuple):
            for item in value:
                problem = self.problem(item, hparams)
                if problem is not None:
                    return f"a list of values each {problem}"
            return None
        if self.integer and not _is_integer(value):
            return "an integer" + ("" if self.low is None and self.high is None else f" {self.describe()}")
        if not _is_number(value) or not math.isfinite(value):
            return self.describe()
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return self.describe()
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return self.describe()
        return None


@dataclass(frozen=True)
class OneOf(Rule):
    """One of a fixed set of values (or of what a callable returns); tuples item by item.

    >>> OneOf(("RAW", "MOL")).problem("raw", None)
    'one of RAW, MOL'
    """

    choices: tuple[Any, ...] | Callable[[], Iterable[Any]]

    def allowed(self) -> tuple[Any, ...]:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def problem(self, value: Any, hparams: "HParams") -> str | None:
        allowed = self.allowed()
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, bool) or item not in allowed:
                names = ", ".join(map(str, allowed))
                return f"a list of names from {names}" if isinstance(value, tuple) else f"one of {names}"
        return None


@dataclass(frozen=True)
class Check(Rule):
    """Any other rule: ``check(value, hparams)`` returns ``None`` or what the value must be."""

    check: Callable[[Any, Any], str | None]

    def problem(self, value: Any, hparams: "HParams") -> str | None:
        return self.check(value, hparams)


# Upper bounds for sizes. Far above any real model (RTVC's widest layer is 1,024; the largest numbers of
# layers, kernel widths or reduction factors are 16), they exist so that a stored or typed value such as
# hidden_size=10**7 is refused in one line instead of allocating gigabytes (or ending in the OOM killer)
# before anything can compare it with the data or the weights.
#: Widest layer or embedding accepted.
MAX_WIDTH = 16_384
#: Most layers, blocks, kernel taps or decoder frames per step accepted.
MAX_LAYERS = 256
#: Most mel bands accepted.
MAX_MELS = 1_024
#: Longest FFT, window or hop, in samples.
MAX_FFT = 65_536
#: Highest sample rate accepted, in Hz.
MAX_SAMPLE_RATE = 384_000


def width() -> Range:
    """A layer, embedding or channel size."""
    return Range(1, MAX_WIDTH, integer=True)


def layer_count(low: int = 1) -> Range:
    """A number of layers, blocks or kernel taps."""
    return Range(low, MAX_LAYERS, integer=True)


def positive_int(low: int = 1) -> Range:
    return Range(low=low, integer=True)


def positive_float() -> Range:
    return Range(low=0, low_inclusive=False)


def probability() -> Range:
    return Range(0, 1)


def _to_tuples(value: Any) -> Any:
    # JSON and some pickles turn tuples into lists; dataclasses here use tuples so they stay hashable.
    if isinstance(value, list):
        return tuple(_to_tuples(item) for item in value)
    return value


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(item) for item in value]
    return value


@dataclasses.dataclass(frozen=True)
class HParams:
    """Base class: plain-dict and JSON round trips, and the checks of the subclass's ``RULES``."""

    RULES: ClassVar[Mapping[str, Rule]] = {}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """:class:`HParamsError` for the first field out of range, e.g. ``num_layers must be at least 1, not 0``."""
        for f in dataclasses.fields(self):
            rule = self.RULES.get(f.name)
            if rule is None:
                continue
            value = getattr(self, f.name)
            problem = rule.problem(value, self)
            if problem is not None:
                raise HParamsError(f"{f.name} must be {problem}, not {_to_plain(value)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of builtin types (lists instead of tuples), safe for ``weights_only`` loads."""
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], values: Mapping[str, Any]) -> T:
        """Build from a mapping; unknown keys are an error so that typos never pass silently."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise HParamsError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        converted = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                default = f.default if f.default is not dataclasses.MISSING else None
                value = values[f.name]
                tuple_valued = isinstance(default, tuple) or isinstance(value, list)
                converted[f.name] = _to_tuples(value) if tuple_valued else value
        return cls(**converted)

    def replace(self: T, **changes: Any) -> T:
        return type(self).from_dict({**self.to_dict(), **changes})

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
