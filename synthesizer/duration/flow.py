"""Conditional flow-matching post-net: samples the detail a regression decoder averages away
(docs/synthesizer.md).

>>> from synthesizer.duration.hparams import DurationHParams
>>> hp = DurationHParams(decoder_channels=16, flow_layers=1, flow_channels=16)
>>> flow = FlowPostNet(hp)
>>> mel, hidden, speaker = torch.zeros(2, 80, 30), torch.zeros(2, 16, 30), torch.ones(2, 256) / 16
>>> mask = torch.ones(2, 1, 30)
>>> flow.sample(mel, hidden, speaker, mask, steps=2, temperature=0.5).shape
torch.Size([2, 80, 30])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.layers import ChannelNorm, ConditionedConvNeXtBlock

TIME_FEATURES = 64


def time_features(t: torch.Tensor) -> torch.Tensor:
    """Sinusoidal features ``(B, 64)`` of flow times ``t`` ``(B,)`` in [0, 1]."""
    half = TIME_FEATURES // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None].float() * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class FlowPostNet(nn.Module):
    """Velocity field ``v(x_t, t | regression mel, hidden, speaker)`` and its sampler."""

    def __init__(self, hparams: DurationHParams) -> None:
        super().__init__()
        self.hparams = hparams
        width, conditioning = hparams.flow_channels, hparams.speaker_embedding_size + TIME_FEATURES
        self.time = nn.Sequential(nn.Linear(TIME_FEATURES, TIME_FEATURES), nn.SiLU(),
                                  nn.Linear(TIME_FEATURES, TIME_FEATURES))
        self.input = nn.Conv1d(2 * hparams.num_mels + hparams.decoder_channels, width, 1)
        self.blocks = nn.ModuleList(
            ConditionedConvNeXtBlock(width, hparams.flow_kernel, hparams.flow_expansion, conditioning)
            for _ in range(hparams.flow_layers))
        self.norm = ChannelNorm(width)
        self.output = nn.Conv1d(width, hparams.num_mels, 1)
        nn.init.zeros_(self.output.weight)  # starts as "no residual": the regression mel
        nn.init.zeros_(self.output.bias)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, mel: torch.Tensor, hidden: torch.Tensor,
                 speaker: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        conditioning = torch.cat([speaker, self.time(time_features(t).to(speaker.dtype))], dim=1)  # (B, E + 64)
        h = self.input(torch.cat([x, mel, hidden], dim=1)) * mask
        for block in self.blocks:
            h = block(h, conditioning, mask)
        return self.output(self.norm(h)) * mask

    def loss_terms(self, target: torch.Tensor, mel: torch.Tensor, hidden: torch.Tensor, speaker: torch.Tensor,
                   mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted and target velocities ``(B, 80, T)`` at a random time, for the real mel ``target``."""
        residual = target - mel
        noise = torch.randn_like(residual) * self.hparams.flow_noise_scale
        t = torch.rand(len(target), device=target.device, dtype=target.dtype)
        sigma_min = self.hparams.flow_sigma_min
        x = (1 - (1 - sigma_min) * t[:, None, None]) * noise + t[:, None, None] * residual
        goal = (residual - (1 - sigma_min) * noise) * mask
        return self.velocity(x, t, mel, hidden, speaker, mask), goal

    @torch.no_grad()
    def sample(self, mel: torch.Tensor, hidden: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor,
               steps: int, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Regression mel plus a sampled residual, ``steps`` Euler steps from noise × ``temperature``."""
        noise = torch.randn(mel.shape, generator=generator, device=mel.device, dtype=mel.dtype)
        x = noise * self.hparams.flow_noise_scale * temperature
        for step in range(steps):
            t = torch.full((len(mel),), step / steps, device=mel.device, dtype=mel.dtype)
            x = x + self.velocity(x, t, mel, hidden, speaker, mask) / steps
        return (mel + x) * mask
