"""Synthesizer kinds by name: :func:`load` builds whichever kind a checkpoint holds, importing only that kind.

Examples
--------
>>> SYNTHESIZERS.names()
('tacotron', 'duration')
"""

from __future__ import annotations

from pathlib import Path

import torch

from synthesizer.base import MelSynthesizer
from utils.checkpoints import load_checkpoint_file
from utils.model_kinds import KindRegistry

#: RTVC's files and our Tacotron files store no ``architecture``: they are Tacotrons.
SYNTHESIZERS = KindRegistry("synthesizer", {"tacotron": "synthesizer.inference:Synthesizer",
                                            "duration": "synthesizer.duration.inference:DurationSynthesizer"},
                            default="tacotron")


def kind_class(kind: str) -> type[MelSynthesizer]:
    """The class of ``kind``, its module imported now."""
    return SYNTHESIZERS.kind_class(kind)


def load(path: str | Path, device: str | torch.device = "cpu") -> MelSynthesizer:
    """The synthesizer of a checkpoint file, read once.

    Raises :class:`~utils.checkpoints.CheckpointError` (one sentence) for missing, damaged or other files.
    """
    checkpoint = load_checkpoint_file(path, "synthesizer")
    kind = SYNTHESIZERS.checkpoint_kind(checkpoint, path)
    return kind_class(kind).from_checkpoint(path, device, checkpoint)  # type: ignore[attr-defined]
