"""The optional spectrogram discriminator: it learns to tell speech from its smoothed copy, and its
losses reach the generator."""

from __future__ import annotations

import numpy as np
import torch

from tests.vocoder.istft.conftest import small_model
from vocoder.istft.discriminator import SpectrogramDiscriminator, discriminator_loss, generator_losses
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.losses import losses_and_signals

RESOLUTIONS = ((512, 128, 512), (256, 64, 256))


def smoothed(wav: torch.Tensor) -> torch.Tensor:
    """Speech with its spectral detail blurred away (a moving average: a duller spectrum)."""
    kernel = torch.ones(1, 1, 9) / 9
    return torch.nn.functional.conv1d(wav[:, None], kernel, padding=4)[:, 0]


def test_learns_to_tell_speech_from_a_smoothed_copy(speech_clip):
    torch.manual_seed(0)
    real = torch.from_numpy(speech_clip[:8000].copy())[None].repeat(2, 1)  # (2, L)
    fake = smoothed(real)
    disc = SpectrogramDiscriminator(8, RESOLUTIONS)
    optimizer = torch.optim.Adam(disc.parameters(), lr=3e-3)
    with torch.no_grad():
        first = float(discriminator_loss(disc, real, fake))
    for _ in range(250):
        loss = discriminator_loss(disc, real, fake)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        real_scores, _ = disc(real)
        fake_scores, _ = disc(fake)
    real_means = [round(float(r.mean()), 2) for r in real_scores]
    fake_means = [round(float(f.mean()), 2) for f in fake_scores]
    last = float(loss.detach())
    print(f"discriminator loss {first:.3f} -> {last:.3f}; scores real {real_means}, smoothed {fake_means}")
    assert last < 0.25 * first
    assert all(r > f + 0.3 for r, f in zip(real_means, fake_means))


def test_generator_losses_vanish_for_real_audio_and_send_gradients_to_the_fake(speech_clip):
    torch.manual_seed(0)
    real = torch.from_numpy(speech_clip[:8000].copy())[None]
    disc = SpectrogramDiscriminator(8, RESOLUTIONS)
    _, matching_of_real = generator_losses(disc, real, real.clone())
    fake = smoothed(real).requires_grad_()
    adversarial, matching = generator_losses(disc, real, fake)
    (adversarial + matching).backward()
    assert float(matching_of_real.detach()) == 0.0 and float(matching.detach()) > 0.0
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0.0
    # Frozen, as the trainer keeps it during the generator's pass: the same gradient reaches the
    # audio, and none is computed for the discriminator's weights.
    frozen_fake = fake.detach().clone().requires_grad_()
    disc.zero_grad(set_to_none=True)
    disc.requires_grad_(False)
    sum(generator_losses(disc, real, frozen_fake)).backward()
    assert torch.allclose(frozen_fake.grad, fake.grad, atol=1e-6)
    assert all(p.grad is None for p in disc.parameters())


def test_adversarial_terms_join_the_loss_only_with_a_discriminator(speech_clip):
    hp = ISTFTHParams(channels=16, num_blocks=1, w_adversarial=1.0, w_feature_matching=2.0)
    model = small_model(channels=16, num_blocks=1)
    segment = torch.from_numpy(np.concatenate([[0.0], speech_clip[:8000]]).astype(np.float32))[None]
    disc = SpectrogramDiscriminator(8, RESOLUTIONS)
    with torch.no_grad():
        plain, plain_parts, _ = losses_and_signals(model, segment, hp)
        full, parts, (target, output) = losses_and_signals(model, segment, hp, discriminator=disc)
    assert "adversarial" not in plain_parts and {"adversarial", "feature_matching"} <= set(parts)
    expected = plain + parts["adversarial"] + 2.0 * parts["feature_matching"]
    assert torch.allclose(full, expected, rtol=1e-5)
    assert target.shape == output.shape == (1, 8000)
