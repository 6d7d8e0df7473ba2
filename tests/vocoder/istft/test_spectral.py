"""The torch front-end against utils.mel: same mel, exact STFT/iSTFT round trip, streaming overlap-add."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesizer.hparams import SynthesizerHParams
from utils.mel import db_to_amp, denormalize, inv_preemphasis, mel_to_linear, melspectrogram
from utils.mel import preemphasis as np_preemphasis
from vocoder.istft.spectral import SpectralFrontEnd, anti_wrap, deemphasis, preemphasis

HP = SynthesizerHParams()


@pytest.fixture(scope="module")
def front() -> SpectralFrontEnd:
    return SpectralFrontEnd(HP)


def test_mel_matches_the_synthesizer_front_end(front, speech_clip):
    ours = front.mel_from_wave(torch.from_numpy(speech_clip)[None])[0].numpy()  # (80, T)
    reference = melspectrogram(speech_clip, HP)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 2e-3


def test_true_amplitude_and_phase_reconstruct_the_signal(front, speech_clip):
    hop = HP.hop_size
    wav = speech_clip[: (len(speech_clip) // hop) * hop]  # (T − 1)·hop samples, as the vocoder returns
    emphasised = torch.from_numpy(np_preemphasis(wav, HP.preemphasis).astype(np.float32))[None]
    spectrum = front.stft(emphasised)  # (1, F, T)
    rebuilt = torch.polar(torch.log(spectrum.abs().clamp_min(1e-12)).exp(), torch.angle(spectrum))
    out = front.istft(rebuilt, length=(spectrum.shape[-1] - 1) * hop)[0].numpy()
    plain, _ = deemphasis(out, HP.preemphasis)
    assert len(plain) == len(wav)
    assert np.abs(plain - wav).max() < 1e-3


def test_overlap_add_equals_the_istft_slice(front):
    torch.manual_seed(0)
    frames = 12
    spectrum = torch.polar(torch.rand(1, 401, frames), torch.rand(1, 401, frames) * 6.28)
    length = (frames - 1) * HP.hop_size
    full = front.istft(spectrum, length)[0]
    for start, end in ((0, 200), (600, 1400), (2000, length)):
        first = max(0, start // HP.hop_size - 2)
        last = min(frames, -(-end // HP.hop_size) + 3)
        piece = front.overlap_add(spectrum[0, :, first:last], first, start, end)
        assert torch.allclose(piece, full[start:end], atol=1e-5)
    with pytest.raises(ValueError):
        front.overlap_add(spectrum[0, :, 5:6], 5, 0, 200)


def test_amplitude_prior_is_the_griffin_lim_starting_point(front):
    mel = np.random.default_rng(1).uniform(-4, 4, (80, 7)).astype(np.float32)
    ours = front.log_amplitude_prior(torch.from_numpy(mel)[None])[0].numpy()  # (401, 7)
    reference = mel_to_linear(db_to_amp(denormalize(mel.astype(np.float64), HP) + HP.ref_level_db), HP)
    assert np.allclose(ours, np.log(np.maximum(reference, 1e-5)), atol=1e-3)


def test_emphasis_filters_are_inverse_and_stream():
    wav = np.random.default_rng(2).normal(0, 0.1, 1000).astype(np.float32)
    emphasised = preemphasis(torch.from_numpy(wav), HP.preemphasis).numpy()
    assert np.allclose(emphasised, np_preemphasis(wav, HP.preemphasis), atol=1e-6)
    whole, _ = deemphasis(emphasised, HP.preemphasis)
    assert np.allclose(whole, inv_preemphasis(emphasised, HP.preemphasis), atol=1e-9)
    first, state = deemphasis(emphasised[:300], HP.preemphasis)
    second, _ = deemphasis(emphasised[300:], HP.preemphasis, state)
    assert np.allclose(np.concatenate([first, second]), whole, atol=1e-9)


def test_anti_wrap_measures_phase_modulo_two_pi():
    x = torch.tensor([0.0, 2 * np.pi, np.pi - 0.1, -np.pi + 0.1, 3 * np.pi])
    assert torch.allclose(anti_wrap(x), torch.tensor([0.0, 0.0, np.pi - 0.1, np.pi - 0.1, np.pi]), atol=1e-5)


def test_front_end_refuses_unnormalised_mels():
    with pytest.raises(ValueError, match="symmetric"):
        SpectralFrontEnd(HP.replace(symmetric_mels=False))
