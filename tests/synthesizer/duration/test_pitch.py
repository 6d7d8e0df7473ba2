"""synthesizer.duration.pitch: YIN F0 on real espeak-ng speech at two pitches, silence, the F0 files."""

from __future__ import annotations

import numpy as np
import soundfile

from synthesizer.duration.pitch import PITCH_FOLDER, continuous_log_f0, estimate_f0, main, pitch_file_name
from tests.synthesizer.test_data import spoken_utterances, unit_vector, write_synthesizer_layout


def median_f0(path) -> float:
    return median_f0_of(*soundfile.read(path, dtype="float32"))


def median_f0_of(wav: np.ndarray, rate: int) -> float:
    f0 = estimate_f0(wav, rate, 200, 1 + len(wav) // 200)
    return float(np.median(f0[f0 > 0]))


def test_f0_follows_the_speaker_pitch(espeak, tmp_path):
    low = median_f0(espeak(tmp_path / "low.wav", "Where were you a year ago?", pitch=20))
    high = median_f0(espeak(tmp_path / "high.wav", "Where were you a year ago?", pitch=80))
    assert 60 < low < high < 300 and 12 * np.log2(high / low) > 4


def test_mains_hum_does_not_pull_the_f0_down(espeak, tmp_path):
    """60 Hz hum as loud as in some LibriSpeech recordings made YIN find hum and voice together (~61 Hz)."""
    wav, rate = soundfile.read(espeak(tmp_path / "voice.wav", "Where were you a year ago?", pitch=70), dtype="float32")
    clean = median_f0_of(wav, rate)
    # 6 dB below the voice's RMS, about as loud as in LibriSpeech speaker 1737's recordings
    level = 0.5 * np.sqrt(2 * np.mean(wav**2))
    hum = level * np.sin(2 * np.pi * 60 * np.arange(len(wav)) / rate).astype(np.float32)
    assert abs(12 * np.log2(median_f0_of(wav + hum, rate) / clean)) < 1


def test_silence_and_noise_are_unvoiced():
    assert not estimate_f0(np.zeros(16000, np.float32), 16000, 200, 81).any()
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    assert (estimate_f0(noise, 16000, 200, 81) > 0).mean() < 0.1


def test_unvoiced_frames_are_interpolated():
    contour = continuous_log_f0(np.array([0, 0, 100, 0, 0, 200, 0], np.float32))
    assert np.allclose(np.exp(contour), [100, 100, 100, 125.99, 158.74, 200, 200], rtol=1e-3)
    assert np.allclose(np.exp(continuous_log_f0(np.zeros(3, np.float32))), 150)


def test_cli_writes_one_contour_per_utterance_and_refuses_a_folder_without_train_txt(espeak, tmp_path, capsys):
    syn = write_synthesizer_layout(tmp_path / "syn", spoken_utterances(tmp_path / "wav", espeak, ["Hello there."]),
                                   unit_vector(0))
    assert main([str(syn)]) == 0
    from synthesizer.metadata import read_train_txt

    [entry] = read_train_txt(syn / "train.txt")
    f0 = np.load(syn / PITCH_FOLDER / pitch_file_name(entry.mel_name))
    assert f0.shape == (entry.n_frames,) and (f0 > 0).mean() > 0.2
    assert main([str(tmp_path / "nothing")]) == 1
    assert "has no train.txt" in capsys.readouterr().err
