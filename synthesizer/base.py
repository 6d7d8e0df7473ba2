"""What every synthesizer kind shares: the protocol the pipeline uses, its result, its warnings, and the
checks of its inputs. :mod:`synthesizer.registry` builds the kind a checkpoint holds.

Examples
--------
>>> check_pitch_shift("4")
4.0
>>> as_embedding_matrix(np.ones(4, np.float32), n_texts=2, size=4).shape
(2, 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from synthesizer.hparams import SynthesizerHParams
from utils.progress import ProgressCallback


class SynthesisWarning(UserWarning):
    """A text was synthesized, but the result is probably not what the user wanted."""


@dataclass
class SynthesisResult:
    """Output of :meth:`Synthesizer.synthesize`, one entry per input text, in input order.

    Attributes
    ----------
    mels
        ``(num_mels, T_i)`` float32 post-net mels in RTVC's ``[-4, 4]`` domain.
    alignments
        ``(decoder_steps_i, Tc_i)`` float32 attention weights over the item's own characters
        (steps up to the item's stop; all steps of its batch with ``exact_rtvc_batching``).
    stop_reached
        False where decoding hit ``max_steps`` before the item's stop token fired.
    dropped_characters
        Characters of the cleaned texts that have no symbol, in order of first appearance.
    """

    mels: list[np.ndarray]
    alignments: list[np.ndarray]
    stop_reached: list[bool]
    dropped_characters: tuple[str, ...]


MIN_SPEAKING_RATE, MAX_SPEAKING_RATE = 0.5, 2.0
MAX_PITCH_SHIFT = 12.0  # semitones, either way
MIN_ENERGY, MAX_ENERGY = 0.5, 2.0


def _check_range(value: float, low: float, high: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the {what} must be a number, not {value!r}") from None
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"the {what} must be between {low:g} and {high:g}, not {value}")
    return number


def check_pitch_shift(semitones: float) -> float:
    """The shift as a float, or a one-line ``ValueError`` outside [−12, 12] semitones."""
    return _check_range(semitones, -MAX_PITCH_SHIFT, MAX_PITCH_SHIFT, "pitch shift (semitones)")


def check_energy(factor: float) -> float:
    """The loudness factor as a float, or a one-line ``ValueError`` outside [0.5, 2]."""
    return _check_range(factor, MIN_ENERGY, MAX_ENERGY, "energy factor")


def check_speaking_rate(rate: float) -> float:
    """The rate as a float, or a one-line ``ValueError`` outside [0.5, 2] (or not a finite number)."""
    return _check_range(rate, MIN_SPEAKING_RATE, MAX_SPEAKING_RATE, "speaking rate")


def as_embedding_matrix(embeddings: Any, n_texts: int, size: int) -> np.ndarray:
    """One float32 row per text from a ``(size,)`` array, an ``(N, size)`` array or a list of rows."""
    if isinstance(embeddings, (list, tuple)) and embeddings and not np.isscalar(embeddings[0]):
        rows = [np.asarray(row.detach().cpu() if isinstance(row, torch.Tensor) else row) for row in embeddings]
        if any(row.shape != (size,) for row in rows):
            shapes = sorted({str(row.shape) for row in rows if row.shape != (size,)})
            raise ValueError(f"each speaker embedding must have shape ({size},), got {', '.join(shapes)}")
        matrix = np.stack(rows)
    else:
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().cpu()
        matrix = np.asarray(embeddings)
        if matrix.ndim == 1:
            matrix = matrix[None]
        if matrix.ndim != 2 or matrix.shape[1] != size:
            raise ValueError(f"speaker embeddings must have shape ({size},) or (N, {size}), got {matrix.shape}")
        if matrix.shape[0] == 1:
            matrix = np.repeat(matrix, n_texts, axis=0)  # one voice for every text
    if matrix.shape[0] != n_texts:
        raise ValueError(f"got {matrix.shape[0]} speaker embeddings for {n_texts} texts; "
                         "pass one per text or a single one")
    if not np.issubdtype(matrix.dtype, np.number) or not np.isfinite(matrix).all():
        raise ValueError("speaker embeddings contain NaN, infinite or non-numeric values")
    return matrix.astype(np.float32, copy=False)


def mel_level_offset(factor: float, max_abs_value: float, min_level_db: float) -> float:
    """How far a normalised mel (``[−max_abs_value, max_abs_value]`` over ``|min_level_db|`` dB) moves
    when the amplitude is scaled by ``factor``.

    >>> round(mel_level_offset(10.0, 4.0, -100.0), 6)
    1.6
    """
    return 20.0 * float(np.log10(factor)) * 2 * max_abs_value / -min_level_db


class GtaSource(Protocol):
    """A synthesizer's ground-truth-aligned mels of a data folder, for training vocoders on them."""

    entries: list  # the data folder's utterances (synthesizer.metadata.Entry), indexed by ``batches``
    hop_size: int
    sample_rate: int

    def batches(self, batches: list[list[int]]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """``(indices, mels)`` per batch of entry indices; each mel ``(T_i, num_mels)`` float32."""
        ...


@runtime_checkable
class MelSynthesizer(Protocol):
    """Text + voice → mels, as :class:`~pipeline.ClonePipeline` uses every synthesizer kind."""

    architecture: str  # the kind, as its checkpoint stores it
    reports_steps: bool  # ``step_callback`` hears every decoder step (else it is refused)
    converts: bool  # it can speak a recording's words with the recording's timing (voice conversion)

    @property
    def hparams(self) -> SynthesizerHParams: ...  # the signal contract of its mels

    @property
    def device(self) -> torch.device: ...

    def synthesize(self, texts: Sequence[str], embeddings: np.ndarray | Sequence[np.ndarray], *,
                   progress_callback: ProgressCallback | None = None, speaking_rate: float = 1.0,
                   pitch_shift: float = 0.0, energy: float = 1.0,
                   step_callback: Callable[..., None] | None = None) -> SynthesisResult: ...

    def gta_source(self, in_dir: Path, device: torch.device, num_workers: int = 0) -> GtaSource: ...
