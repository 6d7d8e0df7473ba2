"""The mel spectrogram both model families use, identical to RTVC's: pre-emphasis, STFT, Slaney mel basis,
symmetric dB normalisation, and their inverses. Every function takes a
:class:`utils.signal_contract.MelSignal` (the synthesizer's hyperparameters are one).

Forward: pre-emphasis 0.97 → STFT (800/200/800, centred, zero padded) → magnitude → Slaney mel basis
(55–7600 Hz) → 20·log10(max(1e-5, x)) − 20 dB → linear map of [−100, 0] dB onto [−4, 4] with clipping.
Silence therefore sits at −4. Griffin-Lim (:mod:`vocoder.griffin_lim`) runs the steps backwards.

Examples
--------
>>> wav = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
>>> mel = melspectrogram(wav, SIGNAL)
>>> mel.shape, bool(mel.min() >= -4 and mel.max() <= 4)
((80, 81), True)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from utils.signal_contract import SIGNAL, MelSignal


def preemphasis(wav: np.ndarray, coefficient: float, enabled: bool = True) -> np.ndarray:
    """y[n] = x[n] − k·x[n−1]: flattens the spectral tilt of speech before the STFT."""
    from scipy import signal  # imported when used: a clone with a neural vocoder never needs it

    return signal.lfilter([1, -coefficient], [1], wav) if enabled else wav


def inv_preemphasis(wav: np.ndarray, coefficient: float, enabled: bool = True) -> np.ndarray:
    """Inverse IIR filter of :func:`preemphasis`."""
    from scipy import signal

    return signal.lfilter([1], [1, -coefficient], wav) if enabled else wav


@lru_cache(maxsize=8)
def mel_basis(hparams: MelSignal) -> np.ndarray:
    """``(num_mels, n_fft // 2 + 1)`` Slaney-normalised mel filterbank."""
    import librosa

    return librosa.filters.mel(
        sr=hparams.sample_rate, n_fft=hparams.n_fft, n_mels=hparams.num_mels, fmin=hparams.fmin, fmax=hparams.fmax
    )


@lru_cache(maxsize=8)
def inverse_mel_basis(hparams: MelSignal) -> np.ndarray:
    return np.linalg.pinv(mel_basis(hparams))


def stft(wav: np.ndarray, hparams: MelSignal) -> np.ndarray:
    import librosa

    return librosa.stft(
        y=np.asarray(wav, dtype=np.float32), n_fft=hparams.n_fft, hop_length=hparams.hop_size,
        win_length=hparams.win_size, center=True, pad_mode="constant",
    )


def amp_to_db(x: np.ndarray, hparams: MelSignal) -> np.ndarray:
    min_level = np.exp(hparams.min_level_db / 20 * np.log(10))  # 1e-5 for −100 dB
    return 20 * np.log10(np.maximum(min_level, x))


def db_to_amp(x: np.ndarray) -> np.ndarray:
    return np.power(10.0, x * 0.05)


def normalize(spectrogram_db: np.ndarray, hparams: MelSignal) -> np.ndarray:
    """Map [min_level_db, 0] dB onto [−max_abs, max_abs] (symmetric) or [0, max_abs]."""
    scaled = (spectrogram_db - hparams.min_level_db) / (-hparams.min_level_db)
    if hparams.symmetric_mels:
        normalized = 2 * hparams.max_abs_value * scaled - hparams.max_abs_value
        low = -hparams.max_abs_value
    else:
        normalized = hparams.max_abs_value * scaled
        low = 0.0
    if hparams.allow_clipping_in_normalization:
        return np.clip(normalized, low, hparams.max_abs_value)
    return normalized


def denormalize(mel: np.ndarray, hparams: MelSignal) -> np.ndarray:
    """Inverse of :func:`normalize` (input clipped to the valid range first, as RTVC)."""
    if hparams.symmetric_mels:
        clipped = np.clip(mel, -hparams.max_abs_value, hparams.max_abs_value)
        scaled = (clipped + hparams.max_abs_value) / (2 * hparams.max_abs_value)
    else:
        scaled = np.clip(mel, 0, hparams.max_abs_value) / hparams.max_abs_value
    return scaled * (-hparams.min_level_db) + hparams.min_level_db


def melspectrogram(wav: np.ndarray, hparams: MelSignal = SIGNAL) -> np.ndarray:
    """Normalised mel spectrogram ``(num_mels, 1 + len(wav) // hop)`` float32 in [−4, 4].

    The waveform itself is not changed; pre-emphasis is applied only to the STFT input.
    """
    emphasized = preemphasis(wav, hparams.preemphasis, hparams.preemphasize)
    magnitude = np.abs(stft(emphasized, hparams))  # (n_fft/2+1, T)
    mel_db = amp_to_db(mel_basis(hparams) @ magnitude, hparams) - hparams.ref_level_db
    if hparams.signal_normalization:
        mel_db = normalize(mel_db, hparams)
    return mel_db.astype(np.float32)


def mel_to_linear(mel_amplitude: np.ndarray, hparams: MelSignal) -> np.ndarray:
    return np.maximum(1e-10, inverse_mel_basis(hparams) @ mel_amplitude)
