"""The network: shapes, output length, the amplitude prior at initialisation, size."""

from __future__ import annotations

import io

import torch

from tests.vocoder.istft.conftest import small_model
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.model import build_istft_vocoder


def test_shapes_and_output_length():
    model = small_model()
    mel = torch.rand(2, 80, 13) * 8 - 4
    log_amplitude, phase = model(mel)
    assert log_amplitude.shape == phase.shape == (2, 401, 13)
    assert log_amplitude.dtype == phase.dtype == torch.float32
    assert float(phase.detach().abs().max()) <= torch.pi + 1e-6
    assert model.spectrum(mel).shape == (2, 401, 13)
    assert model.waveform(mel).shape == (2, 12 * 200)


def test_untrained_amplitude_is_the_mel_prior():
    model = small_model()
    mel = torch.rand(1, 80, 9) * 8 - 4
    log_amplitude, _ = model(mel)
    assert torch.allclose(log_amplitude, model.front.log_amplitude_prior(mel))


def test_frames_are_independent_beyond_the_receptive_field():
    model = small_model()
    hp = model.hparams
    mel = torch.rand(1, 80, 80) * 8 - 4
    changed = mel.clone()
    changed[..., -1] = 0.0
    a, b = model(mel)[1], model(changed)[1]
    reach = hp.receptive_frames
    assert torch.equal(a[..., : 79 - reach], b[..., : 79 - reach])
    assert not torch.equal(a[..., 79 - reach:], b[..., 79 - reach:])


def test_default_size_fits_the_file_budget():
    model = build_istft_vocoder(ISTFTHParams())
    weights = sum(p.numel() for p in model.parameters())
    assert 2_500_000 < weights < 4_000_000
    buffer = io.BytesIO()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, buffer)
    assert buffer.tell() < 15 * 2**20
    assert "front.mel_basis" not in model.state_dict()  # derived constants are not stored


def test_bf16_backbone_runs_and_stays_close():
    model = small_model()
    mel = torch.rand(1, 80, 10) * 8 - 4
    reference, _ = model(mel)
    model.bf16 = True
    approx, _ = model(mel)
    assert approx.dtype == torch.float32
    assert torch.allclose(approx, reference, atol=0.1)
