"""An optional multi-resolution spectrogram discriminator for fine-tuning the iSTFT vocoder, with
least-squares GAN and feature-matching losses (why: docs/vocoder.md).

>>> torch.manual_seed(0) is not None
True
>>> disc = SpectrogramDiscriminator(channels=4, resolutions=((256, 64, 256),))
>>> real, fake = torch.randn(2, 3200) * 0.1, torch.randn(2, 3200) * 0.01
>>> scores, features = disc(real)
>>> len(scores), scores[0].shape[0], len(features[0])
(1, 2, 4)
>>> d_loss = discriminator_loss(disc, real, fake)
>>> adversarial, matching = generator_losses(disc, real, fake)
>>> all(bool(torch.isfinite(v)) for v in (d_loss, adversarial, matching))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

#: Slope of the leaky ReLUs between the discriminator's convolutions (HiFi-GAN's value).
LEAKY_SLOPE = 0.1


class _ResolutionDiscriminator(nn.Module):

    def __init__(self, channels: int, n_fft: int, hop: int, win: int) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        self.register_buffer("window", torch.hann_window(win), persistent=False)
        # Kernels are (frequency, time); strides halve frequency first, then both axes.
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (7, 3), stride=(2, 1), padding=(3, 1))),
            weight_norm(nn.Conv2d(channels, channels, (7, 3), stride=(2, 2), padding=(3, 1))),
            weight_norm(nn.Conv2d(channels, channels, (7, 3), stride=(2, 2), padding=(3, 1))),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.output = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # wav: (B, L) → scores (B, F', T') and the feature maps of every hidden layer
        magnitude = torch.stft(wav.float(), self.n_fft, self.hop, self.win, window=self.window,
                               return_complex=True).abs()  # (B, F, T)
        x = torch.log(magnitude.clamp_min(1e-5)).unsqueeze(1)  # (B, 1, F, T)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
            features.append(x)
        return self.output(x).flatten(1), features


class SpectrogramDiscriminator(nn.Module):
    """One small 2-D CNN of width ``channels`` per STFT resolution ``(n_fft, hop, win)``."""

    def __init__(self, channels: int, resolutions: tuple[tuple[int, int, int], ...]) -> None:
        super().__init__()
        self.resolutions = nn.ModuleList(_ResolutionDiscriminator(channels, *r) for r in resolutions)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Scores ``[(B, N_r)]`` and feature maps ``[[(B, C, F', T')]]``, one entry per resolution."""
        scores, features = [], []
        for resolution in self.resolutions:
            score, feature = resolution(wav)
            scores.append(score)
            features.append(feature)
        return scores, features


def discriminator_loss(discriminator: SpectrogramDiscriminator, real: torch.Tensor,
                       fake: torch.Tensor) -> torch.Tensor:
    """Least-squares loss pushing scores of ``real`` to 1 and of (detached) ``fake`` to 0."""
    real_scores, _ = discriminator(real)
    fake_scores, _ = discriminator(fake)
    total = sum((1 - r).square().mean() + f.square().mean() for r, f in zip(real_scores, fake_scores))
    return total / len(real_scores)


def generator_losses(discriminator: SpectrogramDiscriminator, real: torch.Tensor,
                     fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(adversarial, feature_matching)`` of the generator's ``fake`` against ``real``."""
    with torch.no_grad():
        _, real_features = discriminator(real)
    fake_scores, fake_features = discriminator(fake)
    adversarial = sum((1 - f).square().mean() for f in fake_scores) / len(fake_scores)
    matching = sum(F.l1_loss(f, r) for per_fake, per_real in zip(fake_features, real_features)
                   for f, r in zip(per_fake, per_real))
    matching = matching / sum(len(per_fake) for per_fake in fake_features)
    return adversarial, matching
