"""The NumPy stand-ins that keep librosa, scipy.signal and numba off the clone path give the libraries'
numbers bit for bit (utils.resampling, utils.mel, encoder.audio, vocoder.istft.spectral.deemphasis)."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")
scipy_signal = pytest.importorskip("scipy.signal")
pytest.importorskip("resampy")

from encoder.audio import wav_to_mel_spectrogram  # noqa: E402
from encoder.hparams import EncoderHParams  # noqa: E402
from utils import resampling  # noqa: E402
from utils.audio_io import resample  # noqa: E402
from utils.mel import centered_stft, hann_window, mel_basis, mel_filterbank  # noqa: E402
from utils.signal_contract import SIGNAL  # noqa: E402
from vocoder.istft.spectral import deemphasis, deemphasis_loop  # noqa: E402


def _speechlike(n: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    wav = 0.3 * np.sin(2 * np.pi * 0.013 * t) * np.sin(2 * np.pi * 0.0004 * t) + rng.normal(0, 0.05, n)
    return wav.astype(dtype)


@pytest.mark.parametrize(("source", "target", "n"), [
    (22050, 16000, 60512), (44100, 16000, 30001), (48000, 16000, 48000), (8000, 16000, 8003),
    (16000, 22050, 16000), (24000, 16000, 7), (11025, 16000, 500),
])
def test_kaiser_best_resample_is_librosas(source, target, n):
    x = _speechlike(n, seed=n)
    expected = librosa.resample(x, orig_sr=source, target_sr=target, res_type="kaiser_best")
    ours = resampling.kaiser_best_resample(x, source, target)
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def test_kaiser_best_resample_keeps_float64():
    x = _speechlike(20000, dtype=np.float64)
    np.testing.assert_array_equal(resampling.kaiser_best_resample(x, 44100, 16000),
                                  librosa.resample(x, orig_sr=44100, target_sr=16000, res_type="kaiser_best"))


def test_audio_io_resample_is_rtvcs_with_and_without_the_numpy_path(monkeypatch):
    x = _speechlike(30000, seed=3)
    expected = librosa.resample(x, orig_sr=44100, target_sr=16000, res_type="kaiser_best").astype(np.float32)
    np.testing.assert_array_equal(resample(x, 44100, 16000), expected)
    monkeypatch.setattr(resampling, "MAX_NUMPY_WORK", 0)  # long inputs go through librosa + resampy
    np.testing.assert_array_equal(resample(x, 44100, 16000), expected)


def test_resample_still_refuses_non_finite_audio():
    x = _speechlike(5000)
    x[10] = np.nan
    with pytest.raises(Exception, match="finite"):
        resample(x, 22050, 16000)


@pytest.mark.parametrize("length", [1, 2, 3, 400, 511, 800, 1024])
def test_hann_window_is_scipys(length):
    np.testing.assert_array_equal(hann_window(length), scipy_signal.get_window("hann", length, fftbins=True))


@pytest.mark.parametrize(("rate", "n_fft", "n_mels", "fmin", "fmax"), [
    (16000, 400, 40, 0.0, None), (16000, 800, 80, 55, 7600), (22050, 1024, 80, 0, 8000), (24000, 1024, 100, 0.0, None),
])
def test_mel_filterbank_is_librosas(rate, n_fft, n_mels, fmin, fmax):
    expected = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ours = mel_filterbank(rate, n_fft, n_mels, fmin, fmax)
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(mel_basis(SIGNAL), librosa.filters.mel(
        sr=SIGNAL.sample_rate, n_fft=SIGNAL.n_fft, n_mels=SIGNAL.num_mels, fmin=SIGNAL.fmin, fmax=SIGNAL.fmax))


@pytest.mark.parametrize("n", [16000, 1234, 300, 5000])
@pytest.mark.parametrize(("n_fft", "hop", "win"), [(400, 160, None), (800, 200, 800), (1024, 256, 800)])
def test_centered_stft_is_librosas(n, n_fft, hop, win):
    for dtype in (np.float32, np.float64):
        y = _speechlike(n, seed=n, dtype=dtype)
        with pytest.warns(UserWarning, match="too large") if n < n_fft else contextlib.nullcontext():
            ours = centered_stft(y, n_fft, hop, win)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's own "n_fft is too large"
            expected = librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, center=True,
                                    pad_mode="constant")
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("n", [16000, 43_917, 401])
def test_encoder_mel_is_librosas_melspectrogram(n):
    wav = _speechlike(n, seed=n)
    hp = EncoderHParams()
    expected = librosa.feature.melspectrogram(y=wav, sr=hp.sample_rate, n_fft=hp.mel_n_fft,
                                              hop_length=hp.mel_hop_length, n_mels=hp.mel_n_channels, power=2.0,
                                              center=True, pad_mode="constant").astype(np.float32).T
    np.testing.assert_array_equal(wav_to_mel_spectrogram(wav, hp), expected)


def test_deemphasis_is_scipys_lfilter_and_streams():
    x = _speechlike(40000, dtype=np.float64)
    expected, expected_state = scipy_signal.lfilter([1.0], [1.0, -0.97], x, zi=np.zeros(1))
    ours, state = deemphasis_loop(x, 0.97, np.zeros(1))
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_array_equal(state, expected_state)
    first, state = deemphasis_loop(x[:1000], 0.97, np.zeros(1))
    second, _ = deemphasis(x[1000:], 0.97, state)
    np.testing.assert_array_equal(np.concatenate([first, second]), expected)
    empty, kept = deemphasis_loop(np.zeros(0), 0.97, np.array([0.5]))
    assert empty.shape == (0,) and kept.tolist() == [0.5]

