"""Vocoder kinds by name: :func:`load` builds whichever kind a checkpoint holds, importing only that kind.

Examples
--------
>>> VOCODERS.names()
('wavernn', 'istft', 'griffinlim')
>>> build("griffinlim").kind, needs_file("griffinlim"), needs_file("istft")
('griffinlim', False, True)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from utils.checkpoints import CheckpointError, load_checkpoint_file
from utils.model_kinds import KindRegistry
from vocoder.base import MelVocoder

if TYPE_CHECKING:
    from synthesizer.hparams import SynthesizerHParams

#: RTVC's files and our WaveRNN files store no ``architecture``: they are WaveRNN.
VOCODERS = KindRegistry("vocoder", {"wavernn": "vocoder.inference:WaveRNNVocoder",
                                    "istft": "vocoder.istft.inference:ISTFTVocoder",
                                    "griffinlim": "vocoder.griffin_lim:GriffinLimVocoder"},
                        default="wavernn", fileless=("griffinlim",))
#: The kind of RTVC's published vocoder, which ``--download`` fetches.
RTVC_VOCODER = VOCODERS.default


def names() -> tuple[str, ...]:
    return VOCODERS.names()


def needs_file(kind: str) -> bool:
    return VOCODERS.needs_file(kind)


def published_by_rtvc(kind: str) -> bool:
    """Whether ``--download`` can fetch a file of this kind (RTVC published a WaveRNN only)."""
    return kind == RTVC_VOCODER


def kind_class(kind: str) -> type[MelVocoder]:
    """The class of ``kind`` (its module imported now), for its class-level facts such as ``time_share``."""
    return VOCODERS.kind_class(kind)


def load(path: str | Path, device: str | torch.device = "cpu", *, exact: bool | None = None,
         synthesized_mels: bool = False) -> MelVocoder:
    """The vocoder of a checkpoint file, read once; ``exact`` and ``synthesized_mels`` as in :func:`build`.

    Raises :class:`~utils.checkpoints.CheckpointError` (one sentence) for missing, damaged or other files.
    """
    checkpoint = load_checkpoint_file(path, "vocoder")
    vocoder = kind_class(VOCODERS.checkpoint_kind(checkpoint, path)).from_checkpoint(  # type: ignore[attr-defined]
        path, device, checkpoint=checkpoint)
    if exact is not None:
        vocoder.exact = exact
    if synthesized_mels:
        vocoder.use_synthesized_mels()
    return vocoder


def build(kind: str, synth_hparams: SynthesizerHParams | None = None, *, exact: bool = False) -> MelVocoder:
    """A vocoder that needs no file (Griffin-Lim) for the mels of ``synth_hparams``; ``exact`` for RTVC's settings."""
    if needs_file(kind):
        raise ValueError(f"The {kind} vocoder needs a checkpoint: load it with vocoder.registry.load.")
    return kind_class(kind).for_signal(synth_hparams, exact=exact)  # type: ignore[attr-defined]


def file_kind(path: str | Path) -> str:
    """The kind a vocoder file holds, read without loading the model.

    Raises :class:`~utils.checkpoints.CheckpointError` when the file is missing, not a checkpoint or
    another model's.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - old formats cannot be memory-mapped; the full reader explains failures
        checkpoint = load_checkpoint_file(path, "vocoder")
    if not isinstance(checkpoint, dict):
        return VOCODERS.default  # loading it says what is wrong
    return VOCODERS.checkpoint_kind(checkpoint, path)


def vocoder_kind(path: Path | None) -> str:
    """``"griffinlim"`` without a file, else the kind the file holds (``"wavernn"`` when it cannot be read:
    loading it then says what is wrong). Cached per file version, as the toolbox asks often."""
    if path is None:
        return VOCODERS.fileless[0]
    path = Path(path)
    return _cached_file_kind(path, path.stat().st_mtime_ns if path.exists() else 0)


@functools.lru_cache(maxsize=32)
def _cached_file_kind(path: Path, modified_ns: int) -> str:
    try:
        return file_kind(path)
    except CheckpointError:
        return VOCODERS.default
