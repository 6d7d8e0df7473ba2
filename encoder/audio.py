"""Speaker-encoder audio front-end, identical to RTVC's: 16 kHz, loudness, VAD trim, 40-band power mels
(no log: RTVC quirk 1, docs/rtvc-quirks.md).

>>> import numpy as np
>>> from encoder.hparams import EncoderHParams
>>> hp = EncoderHParams()
>>> wav = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
>>> wav_to_mel_spectrogram(wav, hp).shape  # 1 + 16000 // 160 frames, 40 bands
(101, 40)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from encoder.hparams import EncoderHParams
from utils.audio_io import AudioError, AudioWarning, load_audio_with_rate, resample
from utils.mel import centered_stft, mel_filterbank

INT16_MAX = (2**15) - 1


def normalize_volume(wav: np.ndarray, target_dbfs: float, increase_only: bool = False,
                     decrease_only: bool = False) -> np.ndarray:
    """Scale ``wav`` to a mean power of ``target_dbfs``; digital silence is returned unchanged (RTVC quirk 2,
    docs/rtvc-quirks.md)."""
    if increase_only and decrease_only:
        raise ValueError("increase_only and decrease_only cannot both be set")
    mean_power = float(np.mean(np.square(wav, dtype=np.float64))) if wav.size else 0.0
    if mean_power <= 0.0:
        return wav
    change_db = target_dbfs - 10 * np.log10(mean_power)
    if (change_db < 0 and increase_only) or (change_db > 0 and decrease_only):
        return wav
    return (wav * (10 ** (change_db / 20))).astype(np.float32)


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average with zero padding ((width-1)//2 before, width//2 after), as RTVC."""
    padded = np.concatenate((np.zeros((width - 1) // 2), values, np.zeros(width // 2)))
    cumulative = np.cumsum(padded, dtype=float)
    cumulative[width:] = cumulative[width:] - cumulative[:-width]
    return cumulative[width - 1:] / width


def voice_activity_mask(wav: np.ndarray, hparams: EncoderHParams) -> np.ndarray:
    """Per-sample speech mask of a 16 kHz waveform, without the tail short of a 30 ms window (RTVC quirk 3,
    docs/rtvc-quirks.md)."""
    import webrtcvad

    window = hparams.vad_window_samples
    n_windows = len(wav) // window
    if n_windows == 0:
        return np.zeros(0, dtype=bool)
    samples = wav[: n_windows * window]
    # Same bytes as struct.pack("<…h"), without building a Python tuple of every sample.
    pcm = np.round(np.clip(samples, -1, 1) * INT16_MAX).astype("<i2").tobytes()
    detector = webrtcvad.Vad(mode=3)
    flags = np.array(
        [
            detector.is_speech(pcm[start * 2 : (start + window) * 2], sample_rate=hparams.sample_rate)
            for start in range(0, len(samples), window)
        ],
        dtype=float,
    )
    return np.repeat(smooth_voice_flags(flags, hparams), window)


def smooth_voice_flags(flags: np.ndarray, hparams: EncoderHParams) -> np.ndarray:
    """Per-window VAD decisions -> keep mask, as RTVC: moving average of 8, half-to-even rounding
    (RTVC quirk 3, docs/rtvc-quirks.md), then dilation. Pauses up to 150 ms survive whole; longer ones keep
    2 windows after speech and 3 before."""
    smoothed = np.round(moving_average(np.asarray(flags, dtype=float), hparams.vad_moving_average_width))
    return binary_dilation(smoothed.astype(bool), hparams.vad_max_silence_length + 1)


def binary_dilation(mask: np.ndarray, width: int) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, np.ones(width))`` for a 1-D mask, without importing scipy (a second).

    >>> binary_dilation(np.array([0, 0, 1, 0, 0, 0], bool), 3).astype(int).tolist()
    [0, 1, 1, 1, 0, 0]
    """
    after = width // 2  # scipy's origin: an even window reaches one further back than forward
    before = width - 1 - after
    counts = np.concatenate([[0], np.cumsum(mask)])  # (n + 1,)
    index = np.arange(len(mask))
    return counts[np.clip(index + after + 1, 0, len(mask))] - counts[np.clip(index - before, 0, len(mask))] > 0


def trim_long_silences(wav: np.ndarray, hparams: EncoderHParams) -> np.ndarray:
    """Remove silences longer than ``vad_max_silence_length`` windows (webrtcvad, mode 3)."""
    mask = voice_activity_mask(wav, hparams)
    return wav[: len(mask)][mask]


def webrtcvad_available() -> bool:
    try:
        import webrtcvad  # noqa: F401
    except ImportError:
        return False
    return True


def preprocess_wav(
    wav_or_path: np.ndarray | str | Path,
    source_sr: int | None = None,
    hparams: EncoderHParams | None = None,
    *,
    normalize: bool = True,
    trim_silence: bool = True,
) -> np.ndarray:
    """Resample to 16 kHz, raise loudness to -30 dBFS and trim silences; float32, never longer than the
    input. ``source_sr=None`` means an array is already at 16 kHz."""
    hparams = hparams or EncoderHParams()
    if isinstance(wav_or_path, (str, Path)):
        wav, source_sr = load_audio_with_rate(wav_or_path, None)
    else:
        wav = np.asarray(wav_or_path, dtype=np.float32)
    if source_sr is not None and source_sr != hparams.sample_rate:
        wav = resample(wav, source_sr, hparams.sample_rate)
    if normalize:
        wav = normalize_volume(wav, hparams.audio_norm_target_dbfs, increase_only=True)
    if trim_silence:
        if webrtcvad_available():
            wav = trim_long_silences(wav, hparams)
        else:
            warnings.warn("webrtcvad is not installed: silences are not trimmed.", AudioWarning, stacklevel=2)
    return wav


def wav_to_mel_spectrogram(wav: np.ndarray, hparams: EncoderHParams | None = None) -> np.ndarray:
    """40-band *power* mel spectrogram, time-major ``(frames, 40)`` float32; frames = 1 + len // 160."""
    hparams = hparams or EncoderHParams()
    # librosa.feature.melspectrogram(y, sr, n_fft, hop_length, n_mels, power=2.0, center=True,
    # pad_mode="constant") step by step in NumPy: importing librosa costs more than the whole clone.
    spectrum = centered_stft(np.asarray(wav, dtype=np.float32), hparams.mel_n_fft, hparams.mel_hop_length)
    power = np.abs(spectrum) ** 2.0  # (201, frames)
    basis = mel_filterbank(hparams.sample_rate, hparams.mel_n_fft, hparams.mel_n_channels)
    mel = np.einsum("...ft,mf->...mt", power, basis, optimize=True)  # (40, frames), as librosa
    return mel.astype(np.float32).T


def require_speech(wav: np.ndarray, name: str, hparams: EncoderHParams, min_seconds: float = 0.3) -> np.ndarray:
    seconds = len(wav) / hparams.sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{name} has no usable speech ({seconds:.2f} s left after removing silence).")
    return wav
