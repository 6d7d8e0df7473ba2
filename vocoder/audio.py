"""Signal conventions of the WaveRNN vocoder: class labels and mu-law companding.

The formulas are RTVC's (``vocoder/audio.py``) so that the published ``vocoder.pt`` sees exactly the
values it was trained on:

* ``label_2_float(x, bits) = 2x / (2**bits - 1) - 1`` maps class labels to [-1, 1];
* ``encode_mu_law`` compands with ``mu' = mu - 1`` and quantises to integer labels ``0 .. mu - 1``;
* ``decode_mu_law`` expands back (optionally starting from labels);
* pre-emphasis (:func:`utils.mel.preemphasis`) is applied to training targets, its inverse to
  generated audio.

The helpers accept NumPy arrays or torch tensors and answer in the same kind.

Examples
--------
>>> import numpy as np
>>> x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
>>> labels = encode_mu_law(x, mu=512)
>>> labels.tolist()
[0, 28, 256, 483, 511]
>>> bool(np.allclose(decode_mu_law(labels, mu=512), x, atol=0.01))
True
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch


ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def _is_tensor(x: object) -> bool:
    return isinstance(x, torch.Tensor)


def label_2_float(x: ArrayLike, bits: int) -> ArrayLike:
    """Map class labels ``0 .. 2**bits - 1`` linearly onto [-1, 1].

    Parameters
    ----------
    x
        Labels (integers or floats), NumPy array or tensor.
    bits
        Label resolution; 9 bits give 512 classes.

    Returns
    -------
    Floats ``2x / (2**bits - 1) - 1`` (a floating tensor for tensor input).

    Examples
    --------
    >>> label_2_float(np.array([0, 511]), bits=9).tolist()
    [-1.0, 1.0]
    """
    if _is_tensor(x) and not x.is_floating_point():
        x = x.float()  # integer tensors would otherwise be divided with integer promotion rules
    return 2 * x / (2**bits - 1.0) - 1.0


def float_2_label(x: ArrayLike, bits: int) -> ArrayLike:
    """Inverse of :func:`label_2_float`, clipped to ``[0, 2**bits - 1]``; values are not rounded.

    Examples
    --------
    >>> float_2_label(np.array([-1.0, 0.0, 1.0, 2.0]), bits=9).tolist()
    [0.0, 255.5, 511.0, 511.0]
    """
    x = (x + 1.0) * (2**bits - 1) / 2
    if _is_tensor(x):
        return x.clamp(0, 2**bits - 1)
    return np.clip(x, 0, 2**bits - 1)


def encode_mu_law(x: ArrayLike, mu: int) -> ArrayLike:
    """Mu-law compand floats in [-1, 1] and quantise them to integer labels ``0 .. mu - 1``.

    With ``m = mu - 1``: ``f = sign(x) ln(1 + m|x|) / ln(1 + m)`` and ``label = floor((f + 1) / 2 * m + 0.5)``.

    Parameters
    ----------
    x
        Waveform in [-1, 1], NumPy array or tensor.
    mu
        Number of classes (RTVC trains with ``mu = 2**9 = 512``).

    Returns
    -------
    ``int64`` labels (``torch.long`` for tensor input).

    Examples
    --------
    >>> encode_mu_law(np.array([-1.0, 0.0, 1.0]), mu=512).tolist()
    [0, 256, 511]
    """
    m = mu - 1
    if _is_tensor(x):
        x = x if x.is_floating_point() else x.float()
        companded = torch.sign(x) * torch.log(1 + m * torch.abs(x)) / np.log(1 + m)
        return torch.floor((companded + 1) / 2 * m + 0.5).long()
    x = np.asarray(x)
    # log(1 + .) rather than log1p keeps RTVC's rounding, which matters at the .5 label boundaries
    companded = np.sign(x) * np.log(1 + m * np.abs(x)) / np.log(1 + m)
    return np.floor((companded + 1) / 2 * m + 0.5).astype(np.int64)


def decode_mu_law(y: ArrayLike, mu: int, from_labels: bool = True) -> ArrayLike:
    """Expand mu-law values back to a linear waveform in [-1, 1].

    Parameters
    ----------
    y
        Labels ``0 .. mu - 1`` when ``from_labels``; otherwise companded floats in [-1, 1]
        (what the RAW WaveRNN generates).
    mu
        Number of classes used for encoding.
    from_labels
        Convert labels to floats with :func:`label_2_float` first.

    Returns
    -------
    ``sign(y) / m * ((1 + m)**|y| - 1)`` with ``m = mu - 1``.

    Examples
    --------
    >>> decode_mu_law(np.array([-1.0, 0.0, 1.0]), mu=512, from_labels=False).tolist()
    [-1.0, 0.0, 1.0]
    """
    m = mu - 1
    if from_labels:
        # label_2_float with bits = log2(mu), written with mu so non-power-of-two mu works too
        if _is_tensor(y) and not y.is_floating_point():
            y = y.float()
        y = 2 * y / m - 1.0
    if _is_tensor(y):
        return torch.sign(y) / m * ((1 + m) ** torch.abs(y) - 1)
    y = np.asarray(y)
    return np.sign(y) / m * ((1 + m) ** np.abs(y) - 1)

