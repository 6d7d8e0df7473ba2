"""Objective distances between a vocoded waveform and its source, for tests and benchmarks.

>>> rng = np.random.default_rng(0)
>>> wav = rng.normal(0, 0.1, 16000).astype(np.float32)
>>> spectral_distance(wav, wav)
0.0
>>> spectral_distance(wav, 0.5 * wav) > 5.0  # halving the level is about 6 dB everywhere
True
"""

from __future__ import annotations

import numpy as np
from scipy import signal as scipy_signal

#: (n_fft, hop) pairs: the multi-resolution STFT loss's geometries.
RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))

#: Magnitude floor (−80 dB below a full-scale sinusoid's bin) so silence does not dominate the mean.
FLOOR = 1e-4


def spectral_distance(reference: np.ndarray, estimate: np.ndarray,
                      resolutions: tuple[tuple[int, int], ...] = RESOLUTIONS) -> float:
    """Multi-resolution log-spectral distance in dB: mean ``|20·log10 |X| − 20·log10 |Y||`` over bins,
    frames and resolutions (magnitudes floored at :data:`FLOOR`). Phase-blind, level-sensitive.

    Both signals are cut to the shorter length. Lower is better; 0 for identical signals.
    """
    n = min(len(reference), len(estimate))
    reference = np.asarray(reference[:n], dtype=np.float64)
    estimate = np.asarray(estimate[:n], dtype=np.float64)
    distances = []
    for n_fft, hop in resolutions:
        if n < n_fft:
            continue
        spectra = [np.abs(scipy_signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, boundary=None,
                                            padded=False)[2]) for x in (reference, estimate)]
        db = [20 * np.log10(np.maximum(s * n_fft / 2, FLOOR)) for s in spectra]  # undo scipy's 1/sum(window) scale
        distances.append(float(np.mean(np.abs(db[0] - db[1]))))
    if not distances:
        raise ValueError(f"the signals are too short ({n} samples) for a spectral distance")
    return float(np.mean(distances))
