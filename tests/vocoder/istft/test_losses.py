"""The training losses: finite, zero where they should be, and gradients reach every weight."""

from __future__ import annotations

import math

import torch

from tests.vocoder.istft.conftest import small_model
from vocoder.istft.losses import LOSS_NAMES, compute_losses, multi_resolution_stft_loss, phase_losses


def test_phase_losses_ignore_whole_turns_and_see_shifts():
    torch.manual_seed(0)
    phase = (torch.rand(2, 401, 8) * 2 - 1) * math.pi
    ip, gd, iaf = phase_losses(phase + 2 * math.pi, phase)
    assert max(float(ip), float(gd), float(iaf)) < 1e-5
    ip, gd, iaf = phase_losses(phase + 0.5, phase)
    # A constant shift has no group-delay or instantaneous-frequency error.
    assert abs(float(ip) - 0.5) < 1e-5 and float(gd) < 1e-5 and float(iaf) < 1e-5


def test_multi_resolution_loss_is_zero_for_identical_signals():
    wav = torch.randn(2, 4000) * 0.1
    resolutions = ((512, 128, 512), (256, 64, 256))
    assert float(multi_resolution_stft_loss(wav, wav, resolutions)) < 1e-6
    assert float(multi_resolution_stft_loss(wav * 0.5, wav, resolutions)) > 0.5


def test_all_losses_are_finite_and_train_every_weight():
    model = small_model().train()
    segment = torch.randn(2, 1 + 20 * 200) * 0.1
    total, parts = compute_losses(model, segment, model.hparams)
    assert set(parts) == set(LOSS_NAMES)
    assert all(math.isfinite(value) for value in parts.values()) and torch.isfinite(total)
    total.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
