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

import warnings
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
    return mel_filterbank(hparams.sample_rate, hparams.n_fft, hparams.num_mels, hparams.fmin, hparams.fmax)


# librosa's filterbank, window and STFT in NumPy, the same numbers without importing librosa (which
# brings scipy.signal and numba: seconds of start-up). tests/utils/test_mel.py compares them.

def _hz_to_mel(frequencies: float | np.ndarray) -> np.ndarray:
    """Slaney's mel scale, as ``librosa.hz_to_mel(htk=False)``."""
    frequencies = np.asanyarray(frequencies)
    f_sp = 200.0 / 3
    mels = (frequencies - 0.0) / f_sp
    min_log_hz = 1000.0
    min_log_mel = (min_log_hz - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if frequencies.ndim:
        log_t = frequencies >= min_log_hz
        mels[log_t] = min_log_mel + np.log(frequencies[log_t] / min_log_hz) / logstep
    elif frequencies >= min_log_hz:
        mels = min_log_mel + np.log(frequencies / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`, as ``librosa.mel_to_hz(htk=False)`` of an array."""
    f_sp = 200.0 / 3
    freqs = 0.0 + f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = (min_log_hz - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)``: Slaney
    scale and area normalisation, float32 ``(n_mels, 1 + n_fft // 2)``."""
    if fmax is None:
        fmax = float(sample_rate) / 2
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn(
            "Empty filters detected in mel frequency basis. Some channels will produce empty responses. "
            "Try increasing your sampling rate (and fmax) or reducing n_mels.",
            stacklevel=2,
        )
    return weights


def hann_window(length: int) -> np.ndarray:
    """The periodic Hann window, ``scipy.signal.get_window("hann", length)``, computed as scipy does."""
    if length <= 1:
        return np.ones(length)
    fac = np.linspace(-np.pi, np.pi, length + 1, dtype=np.float64)
    window = np.zeros(length + 1, dtype=np.float64)
    for k, a in enumerate(np.asarray([0.5, 1.0 - 0.5], dtype=np.float64)):
        window += a * np.cos(k * fac)
    return window[:-1]


def centered_stft(y: np.ndarray, n_fft: int, hop_length: int, win_length: int | None = None) -> np.ndarray:
    """``librosa.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=True,
    pad_mode="constant")`` of a 1-D waveform: ``(1 + n_fft // 2, 1 + len(y) // hop_length)``, complex64
    for float32 input."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)):
        raise ValueError("Audio buffer is not finite everywhere (or not floating-point)")
    win_length = n_fft if win_length is None else win_length
    window = hann_window(win_length)
    if win_length < n_fft:  # librosa's pad_center
        left = (n_fft - win_length) // 2
        window = np.pad(window, (left, n_fft - win_length - left))
    if n_fft > y.shape[-1]:
        warnings.warn(f"n_fft={n_fft} is too large for input signal of length={y.shape[-1]}", stacklevel=2)
    padded = np.pad(y, (n_fft // 2, n_fft // 2), mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length].T  # (n_fft, T)
    complex_dtype = np.complex64 if y.dtype == np.float32 else np.complex128
    spectrum = np.zeros((1 + n_fft // 2, frames.shape[1]), dtype=complex_dtype, order="F")
    spectrum[:] = np.fft.rfft(window[:, np.newaxis] * frames, axis=-2)
    return spectrum


@lru_cache(maxsize=8)
def inverse_mel_basis(hparams: MelSignal) -> np.ndarray:
    return np.linalg.pinv(mel_basis(hparams))


def stft(wav: np.ndarray, hparams: MelSignal) -> np.ndarray:
    return centered_stft(np.asarray(wav, dtype=np.float32), hparams.n_fft, hparams.hop_size, hparams.win_size)


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
