"""utils.mel against a reference mel computed here from scipy/librosa primitives, and Griffin-Lim
checked by re-analysing its output."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile
from scipy.signal import lfilter

from synthesizer.audio import load_wav
from utils.mel import inv_preemphasis, melspectrogram, preemphasis
from vocoder.griffin_lim import inv_mel_spectrogram
from synthesizer.hparams import SynthesizerHParams
from tests.conftest import DATASETS_DIR
from utils.audio_io import load_audio

HP = SynthesizerHParams()
LJSPEECH_CLIP = DATASETS_DIR / "LJSpeech-mini" / "wavs" / "LJ001-0001.wav"


def reference_mel(wav: np.ndarray) -> np.ndarray:
    """RTVC's synthesizer mel, step by step (float64 throughout)."""
    emphasized = lfilter([1, -0.97], [1], np.asarray(wav, dtype=np.float64))
    magnitude = np.abs(librosa.stft(emphasized, n_fft=800, hop_length=200, win_length=800, center=True,
                                    pad_mode="constant"))
    mel = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) @ magnitude
    db = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def noisy_tones(n_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000
    wav = 0.2 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t) + 0.02 * rng.standard_normal(n_samples)
    return wav.astype(np.float32)


@pytest.fixture(scope="module")
def speech(request, tmp_path_factory) -> np.ndarray:
    """About 3 s of real speech at 16 kHz: LJSpeech-mini, or espeak-ng when the datasets are absent."""
    if LJSPEECH_CLIP.is_file():
        return load_audio(LJSPEECH_CLIP, 16000)[: 3 * 16000]
    speak = request.getfixturevalue("espeak")  # skips when espeak-ng / sox are missing too
    path = speak(tmp_path_factory.mktemp("speech") / "speech.wav",
                 "Printing, in the only sense with which we are at present concerned.")
    return load_audio(path, 16000)[: 3 * 16000]


# --------------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_samples", [16000, 16123, 800, 3210])
def test_mel_matches_reference(n_samples):
    wav = noisy_tones(n_samples)
    mel = melspectrogram(wav, HP)
    assert mel.dtype == np.float32
    assert mel.shape == (80, 1 + n_samples // 200)
    np.testing.assert_allclose(mel, reference_mel(wav), atol=1e-3, rtol=0)


def test_mel_of_real_speech_matches_reference(speech):
    mel = melspectrogram(speech)
    reference = reference_mel(speech)
    assert mel.shape == reference.shape == (80, 1 + len(speech) // 200)
    np.testing.assert_allclose(mel, reference, atol=1e-3, rtol=0)
    assert mel.min() >= -4 and mel.max() <= 4 and mel.std() > 0.5  # a varied, in-range picture


def test_mel_leaves_the_waveform_alone():
    wav = noisy_tones(4000)
    copy = wav.copy()
    melspectrogram(wav)
    np.testing.assert_array_equal(wav, copy)  # pre-emphasis only feeds the STFT


def test_silence_is_minus_four():
    mel = melspectrogram(np.zeros(8000, np.float32))
    assert mel.shape == (80, 41)
    assert (mel == -4).all()


def test_loud_tone_goes_above_zero():
    t = np.arange(16000) / 16000
    mel = melspectrogram((0.9 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert mel.max() > 0 and mel.max() <= 4
    # The loudest band is the one around 1 kHz.
    centres = librosa.mel_frequencies(n_mels=82, fmin=55, fmax=7600)[1:-1]
    loudest = int(np.argmax(mel[:, 40]))
    assert abs(centres[loudest] - 1000) < 100


# --------------------------------------------------------------------------------------------------
# Pre-emphasis
# --------------------------------------------------------------------------------------------------
def test_preemphasis_formula_and_round_trip():
    wav = np.random.default_rng(3).standard_normal(1000)
    emphasized = preemphasis(wav, 0.97)
    assert emphasized[0] == wav[0]
    np.testing.assert_allclose(emphasized[1:], wav[1:] - 0.97 * wav[:-1], atol=1e-12)
    np.testing.assert_allclose(inv_preemphasis(emphasized, 0.97), wav, atol=1e-9)
    np.testing.assert_allclose(preemphasis(inv_preemphasis(wav, 0.97), 0.97), wav, atol=1e-9)
    assert preemphasis(wav, 0.97, enabled=False) is wav and inv_preemphasis(wav, 0.97, enabled=False) is wav
    impulse = np.zeros(50)
    impulse[0] = 1.0
    np.testing.assert_allclose(inv_preemphasis(impulse, 0.5), 0.5 ** np.arange(50), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Griffin-Lim
# --------------------------------------------------------------------------------------------------
def test_griffin_lim_length_dtype_and_determinism(speech):
    mel = melspectrogram(speech[:16000])
    first = inv_mel_spectrogram(mel, rng=np.random.default_rng(7), n_iters=10)
    again = inv_mel_spectrogram(mel, rng=np.random.default_rng(7), n_iters=10)
    other = inv_mel_spectrogram(mel, rng=np.random.default_rng(8), n_iters=10)
    assert first.dtype == np.float32 and first.shape == ((mel.shape[1] - 1) * 200,)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.isfinite(first).all()


def test_griffin_lim_reconstructs_the_mel(speech):
    mel = melspectrogram(speech)
    wav = inv_mel_spectrogram(mel, rng=np.random.default_rng(0))  # RTVC's settings: 60 iterations, power 1.5
    assert len(wav) == (mel.shape[1] - 1) * 200
    again = melspectrogram(wav)
    assert again.shape == mel.shape  # 1 + ((T - 1) * 200) // 200 frames
    error = np.abs(again - mel).mean()
    assert error < 1.0, error  # measured 0.60 on LJSpeech, 0.54 on espeak-ng (power 1.5 sharpens on purpose)
    # The iterations are what recover the phase: random phase alone is clearly worse.
    random_phase = melspectrogram(inv_mel_spectrogram(mel, rng=np.random.default_rng(0), n_iters=0))
    assert np.abs(random_phase - mel).mean() > error + 0.1


def test_griffin_lim_inverts_the_mel_scale_exactly_without_sharpening(speech):
    # With power 1 nothing is distorted on purpose, so the inverse chain (denormalise, +20 dB, amplitude,
    # pseudo-inverse mel basis, de-emphasis) must bring back nearly the same mel.
    hparams = SynthesizerHParams(power=1.0)
    mel = melspectrogram(speech, hparams)
    again = melspectrogram(inv_mel_spectrogram(mel, hparams, rng=np.random.default_rng(0)), hparams)
    error = np.abs(again - mel).mean()
    assert error < 0.2, error  # measured 0.09 on LJSpeech
    assert np.corrcoef(mel.ravel(), again.ravel())[0, 1] > 0.98


def test_griffin_lim_edge_cases():
    assert inv_mel_spectrogram(np.full((80, 1), -4.0)).shape == (0,)
    with pytest.raises(ValueError, match="80"):
        inv_mel_spectrogram(np.zeros((40, 10)))
    silence = inv_mel_spectrogram(np.full((80, 11), -4.0), rng=np.random.default_rng(0), n_iters=4)
    assert silence.shape == (2000,) and np.abs(silence).max() < 1e-2


def test_load_wav_peak_normalises(tmp_path):
    path = tmp_path / "quiet.wav"
    soundfile.write(path, 0.2 * noisy_tones(22050) / np.abs(noisy_tones(22050)).max(), 22050)
    wav = load_wav(path, HP)
    assert wav.dtype == np.float32 and len(wav) == 16000
    assert np.abs(wav).max() == pytest.approx(0.9, abs=1e-6)
