"""encoder.audio against references computed here from librosa/numpy primitives and RTVC's documented rules."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
import soundfile

from encoder.audio import (
    binary_dilation,
    moving_average,
    normalize_volume,
    preprocess_wav,
    smooth_voice_flags,
    trim_long_silences,
    voice_activity_mask,
    wav_to_mel_spectrogram,
)
from encoder.hparams import EncoderHParams
from utils.audio_io import load_audio

HP = EncoderHParams()


def dbfs(wav: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(wav, dtype=np.float64))))


def make_signal(n_samples: int, seed: int = 0) -> np.ndarray:
    """Noise plus two tones: energy in many mel bands, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000
    wav = 0.05 * rng.standard_normal(n_samples) + 0.3 * np.sin(2 * np.pi * 200 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    return wav.astype(np.float32)


def strip_silence(wav: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    voiced = np.flatnonzero(np.abs(wav) > threshold)
    return wav[voiced[0] : voiced[-1] + 1]


def longest_zero_run(wav: np.ndarray) -> int:
    best = current = 0
    for is_zero in wav == 0:
        current = current + 1 if is_zero else 0
        best = max(best, current)
    return best


# --------------------------------------------------------------------------------------------------
# Mel spectrogram
# --------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:n_fft=400 is too large")
@pytest.mark.parametrize("n_samples", [16000, 16077, 400, 159])
def test_mel_matches_librosa_reference(n_samples):
    wav = make_signal(n_samples)
    power = np.abs(librosa.stft(wav, n_fft=400, hop_length=160, center=True, pad_mode="constant")) ** 2
    reference = (librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) @ power).T  # (T, 40)

    mel = wav_to_mel_spectrogram(wav, HP)
    assert mel.dtype == np.float32
    assert mel.shape == (1 + n_samples // 160, 40)  # time-major, centred frames
    np.testing.assert_allclose(mel, reference, rtol=1e-4, atol=1e-6 * reference.max())


def test_mel_is_power_not_db():
    wav = make_signal(8000, seed=1)
    mel = wav_to_mel_spectrogram(wav)
    assert (mel >= 0).all()
    assert mel.max() > 1.0  # a log/dB spectrogram of this signal would be mostly negative or far larger
    np.testing.assert_allclose(wav_to_mel_spectrogram(2 * wav), 4 * mel, rtol=1e-4, atol=1e-7)
    # Zero in, zero out (no log floor).
    assert not wav_to_mel_spectrogram(np.zeros(1600, np.float32)).any()


# --------------------------------------------------------------------------------------------------
# Loudness
# --------------------------------------------------------------------------------------------------
def test_quiet_audio_is_raised_to_minus_30_dbfs():
    quiet = make_signal(16000) * 0.01
    assert dbfs(quiet) < -45
    raised = normalize_volume(quiet, -30, increase_only=True)
    assert dbfs(raised) == pytest.approx(-30, abs=0.01)
    np.testing.assert_allclose(raised / quiet, raised[0] / quiet[0], rtol=1e-5)  # a pure gain, no clipping


def test_loud_audio_is_untouched_with_increase_only():
    loud = make_signal(16000)
    assert dbfs(loud) > -30
    assert np.array_equal(normalize_volume(loud, -30, increase_only=True), loud)
    lowered = normalize_volume(loud, -30, decrease_only=True)
    assert dbfs(lowered) == pytest.approx(-30, abs=0.01)
    with pytest.raises(ValueError):
        normalize_volume(loud, -30, increase_only=True, decrease_only=True)


def test_digital_silence_is_returned_unchanged_without_nan():
    silence = np.zeros(16000, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # RTVC divides by zero here (log10(0))
        out = normalize_volume(silence, -30, increase_only=True)
        empty = normalize_volume(np.zeros(0, np.float32), -30, increase_only=True)
    assert np.array_equal(out, silence) and not np.isnan(out).any() and empty.size == 0


# --------------------------------------------------------------------------------------------------
# VAD smoothing
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", range(1, 12))
def test_binary_dilation_equals_scipys(width):
    from scipy.ndimage import binary_dilation as scipy_dilation

    rng = np.random.default_rng(width)
    for _ in range(50):
        mask = rng.random(int(rng.integers(1, 40))) < rng.random() * 0.5
        np.testing.assert_array_equal(binary_dilation(mask, width), scipy_dilation(mask, np.ones(width)))


@pytest.mark.parametrize("width", [8, 5, 1])
def test_moving_average_equals_convolution_with_rtvc_padding(width):
    values = np.random.default_rng(width).random(50)
    padded = np.concatenate([np.zeros((width - 1) // 2), values, np.zeros(width // 2)])
    expected = np.convolve(padded, np.ones(width) / width, mode="valid")
    result = moving_average(values, width)
    assert result.shape == values.shape
    np.testing.assert_allclose(result, expected, atol=1e-12)


def test_exactly_half_voiced_rounds_to_false():
    # Four voiced windows: every 8-window average sees at most 4/8 = 0.5, which rounds half-to-even to 0.
    four = np.zeros(40)
    four[20:24] = 1
    assert moving_average(four, 8).max() == 0.5
    assert not smooth_voice_flags(four, HP).any()
    # Five voiced windows: averages of 5/8 at positions 20..23, then dilated by 3 windows on each side.
    five = np.zeros(40)
    five[20:25] = 1
    kept = smooth_voice_flags(five, HP)
    assert np.flatnonzero(kept).tolist() == list(range(17, 27))


@pytest.mark.parametrize("gap", range(0, 13))
def test_pauses_up_to_150_ms_survive_and_longer_ones_are_cut(gap):
    # RTVC's smoothing (voiced needs >= 5 of 8) then dilation by 3 windows: between two voiced stretches,
    # pauses of up to 5 windows (150 ms) stay whole; longer ones keep 2 windows after the speech
    # and 3 windows before the next speech (the smoothing window is not symmetric: 3 before, 4 after).
    flags = np.concatenate([np.ones(10), np.zeros(gap), np.ones(10)])
    kept = smooth_voice_flags(flags, HP)
    assert kept[:10].all() and kept[10 + gap :].all()
    if gap <= 5:
        assert kept.all()
    else:
        assert np.flatnonzero(~kept).tolist() == list(range(12, 7 + gap))


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory, espeak):
    """Two espeak-ng sentences at 16 kHz with their leading/trailing silence removed."""
    folder = tmp_path_factory.mktemp("vad")
    first = espeak(folder / "one.wav", "The quick brown fox jumps over the lazy dog.")
    second = espeak(folder / "two.wav", "Then it ran back into the forest to sleep.")
    return strip_silence(load_audio(first, 16000)), strip_silence(load_audio(second, 16000))


def test_vad_cuts_a_two_second_pause(two_sentences):
    first, second = two_sentences
    wav = np.concatenate([first, np.zeros(32000, np.float32), second])
    trimmed = trim_long_silences(wav, HP)
    assert len(wav) - len(trimmed) >= 1.5 * 16000
    # The speech itself is kept whole: what is left of the pause is the 150 ms of margins.
    assert len(first) + len(second) <= len(trimmed) + 480 <= len(first) + len(second) + 0.4 * 16000
    mask = voice_activity_mask(wav, HP)
    assert mask[: len(first)].all() and mask[len(first) + 32000 : len(mask)].all()


def test_vad_keeps_a_100_ms_pause(two_sentences):
    first, second = two_sentences
    wav = np.concatenate([first, np.zeros(1600, np.float32), second])
    mask = voice_activity_mask(wav, HP)
    assert len(mask) == len(wav) // 480 * 480  # the partial last window is dropped, as RTVC
    assert mask[len(first) : len(first) + 1600].all()
    trimmed = trim_long_silences(wav, HP)
    assert len(wav) - len(trimmed) < 0.05 * 16000
    assert longest_zero_run(trimmed) >= 1600  # the pause is still there, in one piece


# --------------------------------------------------------------------------------------------------
# Full preprocessing
# --------------------------------------------------------------------------------------------------
def test_preprocess_from_44k_file_and_from_array(espeak, tmp_path):
    path = espeak(tmp_path / "hifi.wav", "Preprocessing must give the same result from a file or an array.", rate=44100)
    raw, rate = soundfile.read(path, dtype="float32")
    assert rate == 44100
    from_path = preprocess_wav(path)
    from_array = preprocess_wav(raw, source_sr=44100)
    assert from_path.dtype == np.float32 and from_array.dtype == np.float32
    np.testing.assert_array_equal(from_path, from_array)

    resampled = librosa.resample(raw, orig_sr=44100, target_sr=16000, res_type="kaiser_best")  # RTVC's resampler
    untouched = preprocess_wav(raw, source_sr=44100, normalize=False, trim_silence=False)
    np.testing.assert_allclose(untouched, resampled, atol=1e-6)
    # Trimming only removes audio (espeak-ng's trailing silence here), never adds any.
    assert 0.5 * len(resampled) < len(from_path) < len(resampled)
    # A 16 kHz array needs no source rate.
    np.testing.assert_array_equal(preprocess_wav(resampled), preprocess_wav(resampled, source_sr=16000))


def test_preprocess_raises_quiet_speech(two_sentences):
    first, _ = two_sentences
    quiet = first * 0.005
    out = preprocess_wav(quiet, trim_silence=False)
    assert dbfs(out) == pytest.approx(-30, abs=0.01)
    loud = preprocess_wav(first, trim_silence=False)
    assert np.array_equal(loud, first) if dbfs(first) > -30 else dbfs(loud) == pytest.approx(-30, abs=0.01)
