"""What every vocoder kind shares: the check of the mel it is given.

Examples
--------
>>> validate_mel(np.zeros((80, 3)), 80).shape
(80, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


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
