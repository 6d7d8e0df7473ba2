"""What every vocoder kind shares: the protocol the pipeline uses and the check of the mel it is given.

Examples
--------
>>> validate_mel(np.zeros((80, 3)), 80).shape
(80, 3)
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from utils.progress import ProgressCallback


def validate_mel(mel: Any, num_mels: int) -> np.ndarray:
    """Return ``mel`` as a float32 ``(num_mels, T)`` array, or raise one readable ``ValueError``.

    Examples
    --------
    >>> validate_mel(np.zeros((80, 3)), 80).shape
    (80, 3)
    >>> validate_mel(np.zeros((3, 80)), 80)
    Traceback (most recent call last):
    ...
    ValueError: The mel spectrogram must have shape (80, T) (mel bands first), but it has shape (3, 80).
    """
    if isinstance(mel, torch.Tensor):
        mel = mel.detach().cpu().numpy()
    try:
        array = np.asarray(mel, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"The mel spectrogram must be a numeric array, not {type(mel).__name__}.") from None
    if array.ndim != 2 or array.shape[0] != num_mels:
        raise ValueError(
            f"The mel spectrogram must have shape ({num_mels}, T) (mel bands first), "
            f"but it has shape {tuple(array.shape)}."
        )
    if array.shape[1] == 0:
        raise ValueError("The mel spectrogram has 0 frames; at least 1 frame is needed to vocode.")
    if not np.isfinite(array).all():
        raise ValueError("The mel spectrogram contains NaN or infinite values.")
    return array


@runtime_checkable
class MelVocoder(Protocol):
    """Mel → waveform, as :class:`~pipeline.ClonePipeline` uses every vocoder kind.

    Every method takes the synthesizer's ``(num_mels, T)`` mel in [-4, 4] and returns float32 audio of
    ``(T - 1)·hop`` samples; ``generator`` seeds the kinds that sample (the others ignore it).
    """

    kind: str  # the registry's name for it (the checkpoint's ``architecture``)
    title: str  # how messages name it
    exact: bool  # RTVC's exact algorithm instead of the faster one, where the kind has two
    # Fraction of a clone's time this vocoder takes on a CPU (the toolbox splits its progress bar by it).
    time_share: float

    @property
    def sample_rate(self) -> int: ...

    @property
    def streams(self) -> bool: ...  # vocode_stream yields audio before the whole mel is done

    def use_synthesized_mels(self) -> None: ...  # set up for a synthesizer's (smoothed) mels, not recorded ones

    def vocode(self, mel: np.ndarray, *, progress_callback: ProgressCallback | None = None,
               generator: torch.Generator | None = None) -> np.ndarray: ...

    def vocode_batch(self, mels: Sequence[np.ndarray], *, progress_callback: ProgressCallback | None = None,
                     seed: int | None = None) -> list[np.ndarray]: ...  # mel i seeded by seed + i, or all by seed

    def vocode_stream(self, mel: np.ndarray, *, progress_callback: ProgressCallback | None = None,
                      generator: torch.Generator | None = None) -> Iterator[np.ndarray]: ...

