"""Typed hyperparameter dataclasses that round-trip through checkpoints and JSON.

Every model package defines one frozen dataclass deriving from :class:`HParams` whose defaults are
RTVC's values. Our own checkpoints store ``hparams.to_dict()`` so a file always rebuilds its own model;
RTVC's published files carry no hyperparameters and therefore load with the defaults.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Tiny(HParams):
...     width: int = 4
...     factors: tuple[int, ...] = (2, 2)
>>> Tiny.from_dict({"width": 8, "factors": [3, 3]})
Tiny(width=8, factors=(3, 3))
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T", bound="HParams")


class HParamsError(ValueError):
    """Raised when stored hyperparameters do not fit the dataclass."""


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
    """Base class: conversion to and from plain dictionaries and JSON files."""

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
                converted[f.name] = _to_tuples(value) if isinstance(default, tuple) or isinstance(value, list) else value
        return cls(**converted)

    def replace(self: T, **changes: Any) -> T:
        """Copy with some fields changed (validated like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def save_json(self, path: str | Path) -> None:
        """Write the hyperparameters as pretty JSON (kept next to checkpoints for people to read)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load_json(cls: type[T], path: str | Path) -> T:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
