"""Building blocks of the duration synthesizer: masked convolutions over ``(B, C, T)`` sequences."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """``(B, T)`` True where ``t < lengths[b]``."""
    max_length = int(lengths.max()) if max_length is None else max_length
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a ``(B, C, T)`` tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ConvBlock(nn.Module):
    """Pre-norm residual convolution: ``x + dropout(relu(conv(norm(x))))``, padding kept at zero."""

    def __init__(self, channels: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = ChannelNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, C, T), mask (B, 1, T)
        return (x + self.dropout(F.relu(self.conv(self.norm(x) * mask)))) * mask


class ConditionedConvNeXtBlock(nn.Module):
    """ConvNeXt block with a conditioning vector (the speaker) added at its input, masked to the sequence."""

    def __init__(self, channels: int, kernel: int, expansion: int, speaker_size: int) -> None:
        super().__init__()
        self.speaker = nn.Linear(speaker_size, channels)
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Linear(channels, expansion * channels)
        self.project = nn.Linear(expansion * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (B, C, T), speaker (B, E), mask (B, 1, T)
        h = (x + self.speaker(speaker)[:, :, None]) * mask
        h = self.depthwise(h).transpose(1, 2)  # (B, T, C)
        h = self.project(F.gelu(self.expand(self.norm(h))))
        return (x + (self.scale * h).transpose(1, 2)) * mask
