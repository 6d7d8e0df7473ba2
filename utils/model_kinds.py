"""Model kinds by name, each imported only when used: what :mod:`synthesizer.registry` and
:mod:`vocoder.registry` share.

Examples
--------
>>> kinds = KindRegistry("vocoder", {"wavernn": "vocoder.inference:WaveRNNVocoder"}, "wavernn")
>>> kinds.checkpoint_kind({"model_state": {}}, "v.pt")
'wavernn'
>>> kinds.checkpoint_kind({"model_type": "encoder"}, "v.pt")
Traceback (most recent call last):
...
utils.checkpoints.CheckpointError: The vocoder checkpoint 'v.pt' is an encoder checkpoint, not a vocoder checkpoint.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from utils.checkpoints import CheckpointError


def with_article(noun: str) -> str:
    """``"an iSTFT"``, ``"a WaveRNN"``: how messages name a kind or a model."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


@dataclass(frozen=True)
class KindRegistry:
    """The kinds of one model family, keyed by the ``architecture`` their checkpoints store."""

    family: str  # "synthesizer" or "vocoder", as error messages name the files
    kinds: Mapping[str, str]  # kind → "module:Class"
    default: str  # the kind of files without an ``architecture`` entry (RTVC's)
    fileless: tuple[str, ...] = ()  # kinds built by name, with no checkpoint

    def names(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    def needs_file(self, kind: str) -> bool:
        return kind not in self.fileless

    def require(self, kind: str) -> str:
        """``kind``, or a one-line ``ValueError`` naming the kinds there are."""
        if kind not in self.kinds:
            raise ValueError(f"Unknown {self.family} {kind!r}: choose {', '.join(map(repr, self.kinds))}.")
        return kind

    def kind_class(self, kind: str) -> type:
        """The class of ``kind``, importing its module now."""
        module, _, name = self.kinds[self.require(kind)].partition(":")
        return getattr(importlib.import_module(module), name)

    def checkpoint_kind(self, checkpoint: Mapping[str, Any], path: str | Path) -> str:
        """The kind a checkpoint's contents hold, or a one-line :class:`CheckpointError`."""
        stored = checkpoint.get("model_type")
        if isinstance(stored, str) and stored != self.family:  # another model's file: say so, not "unknown kind"
            raise CheckpointError(f"The {self.family} checkpoint '{path}' is {with_article(stored)} checkpoint, not a "
                                  f"{self.family} checkpoint.")
        kind = checkpoint.get("architecture", self.default)
        readable = [name for name in self.kinds if self.needs_file(name)]
        if kind not in readable:
            raise CheckpointError(f"The {self.family} checkpoint '{path}' has an unknown architecture {kind!r} "
                                  f"(this version reads {', '.join(readable)}).")
        return kind
