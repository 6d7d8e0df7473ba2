"""The phoneme duration synthesizer network.

::

    ids ─ embedding ─(+ speaker)─ conv encoder ─┬─ mean head ──────── μ      (B, 80, S)
                                                ├─ duration head ──── log(1 + frames)  (B, S)
                                                └─ expand by durations ─(+ speaker)─ ConvNeXt decoder ─ + μ ─ mel

In training the durations come from monotonic alignment search of the target mel against μ
(:func:`synthesizer.duration.alignment.maximum_path`); at inference, from the duration head.
All layers are convolutions, so a sentence costs one pass, not one pass per frame.

Examples
--------
>>> import torch
>>> from synthesizer.duration.hparams import DurationHParams
>>> hp = DurationHParams(encoder_channels=16, duration_channels=16, decoder_channels=16, decoder_layers=1)
>>> model = DurationSynthesizerModel(hp, n_symbols=10)
>>> out = model.infer(torch.tensor([[0, 3, 0, 4, 0]]), torch.tensor([5]), torch.ones(1, 256) / 16)
>>> out.mel.shape[:2], out.durations.shape
(torch.Size([1, 80]), torch.Size([1, 5]))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synthesizer.duration.alignment import beta_binomial_log_prior, maximum_path
from synthesizer.duration.hparams import DurationHParams


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


class ConvNeXtBlock(nn.Module):
    """Depthwise conv → norm → pointwise MLP with layer scale; the speaker enters every block."""

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


@dataclass
class SynthesizerOutput:
    """Model outputs; ``path`` is the ``(B, S, T)`` symbol-to-frame alignment used."""

    mel: torch.Tensor  # (B, 80, T)
    means: torch.Tensor  # (B, 80, T): μ expanded along the path
    log_durations: torch.Tensor  # (B, S): the duration head's prediction
    durations: torch.Tensor  # (B, S): frames per symbol along the path
    path: torch.Tensor  # (B, S, T)
    frame_lengths: torch.Tensor  # (B,)


class DurationSynthesizerModel(nn.Module):
    """Text encoder, duration head and frame decoder (see the module docstring).

    Parameters
    ----------
    hparams
        Sizes.
    n_symbols
        Size of the phoneme symbol table (id 0 is the blank, also used as padding).
    """

    def __init__(self, hparams: DurationHParams, n_symbols: int) -> None:
        super().__init__()
        self.hparams = hparams
        c, e = hparams.encoder_channels, hparams.speaker_embedding_size
        self.embedding = nn.Embedding(n_symbols, c)
        self.encoder_speaker = nn.Linear(e, c)
        self.encoder = nn.ModuleList(ConvBlock(c, hparams.encoder_kernel, hparams.dropout)
                                     for _ in range(hparams.encoder_layers))
        self.encoder_norm = ChannelNorm(c)
        self.mean_head = nn.Conv1d(c, hparams.num_mels, 1)
        d = hparams.duration_channels
        self.duration_in = nn.Conv1d(c, d, 1)
        self.duration_speaker = nn.Linear(e, d)
        self.duration_layers = nn.ModuleList(ConvBlock(d, hparams.duration_kernel, hparams.dropout)
                                             for _ in range(hparams.duration_layers))
        self.duration_head = nn.Conv1d(d, 1, 1)
        k = hparams.decoder_channels
        self.decoder_in = nn.Conv1d(c, k, 1)
        self.decoder = nn.ModuleList(ConvNeXtBlock(k, hparams.decoder_kernel, hparams.decoder_expansion, e)
                                     for _ in range(hparams.decoder_layers))
        self.decoder_norm = ChannelNorm(k)
        self.decoder_out = nn.Conv1d(k, hparams.num_mels, 1)
        nn.init.zeros_(self.decoder_out.weight)  # starts as "mel = μ", so early training shapes μ
        nn.init.zeros_(self.decoder_out.bias)
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor,
               speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder states ``(B, C, S)``, means ``(B, 80, S)``, log durations ``(B, S)`` and the mask ``(B, 1, S)``."""
        mask = sequence_mask(lengths, ids.shape[1])[:, None, :].to(speaker.dtype)  # (B, 1, S)
        h = (self.embedding(ids).transpose(1, 2) + self.encoder_speaker(speaker)[:, :, None]) * mask
        for block in self.encoder:
            h = block(h, mask)
        h = self.encoder_norm(h) * mask
        means = self.mean_head(h) * mask
        # The duration head learns from the alignment, not the other way round.
        d = (self.duration_in(h.detach()) + self.duration_speaker(speaker)[:, :, None]) * mask
        for block in self.duration_layers:
            d = block(d, mask)
        log_durations = (self.duration_head(d) * mask)[:, 0]
        return h, means, log_durations, mask

    def decode(self, states: torch.Tensor, means: torch.Tensor, speaker: torch.Tensor,
               frame_mask: torch.Tensor) -> torch.Tensor:
        """Mel ``(B, 80, T)`` from frame-rate encoder states and means, ``frame_mask`` ``(B, 1, T)``."""
        x = self.decoder_in(states) * frame_mask
        for block in self.decoder:
            x = block(x, speaker, frame_mask)
        return (means + self.decoder_out(self.decoder_norm(x))) * frame_mask

    @staticmethod
    def alignment_score(means: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """``(B, S, T)`` Gaussian log-likelihood (unit variance, per mel band) of each frame under each symbol."""
        # -0.5·|y - μ|² expanded so that no (B, S, T, 80) tensor is built.
        cross = torch.einsum("bcs,bct->bst", means, mels)
        return cross - 0.5 * (means**2).sum(1)[:, :, None] - 0.5 * (mels**2).sum(1)[:, None, :]

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor, mels: torch.Tensor,
                frame_lengths: torch.Tensor, prior_weight: float = 0.0) -> SynthesizerOutput:
        """Teacher-forced pass: align ``mels`` ``(B, 80, T)`` to the text, then decode along that path."""
        states, means, log_durations, mask = self.encode(ids, lengths, speaker)
        with torch.no_grad():
            score = self.alignment_score(means.float(), mels.float())  # (B, S, T)
            if prior_weight > 0:
                prior = torch.zeros_like(score)
                for b, (n_symbols, n_frames) in enumerate(zip(lengths.tolist(), frame_lengths.tolist())):
                    prior[b, :n_symbols, :n_frames] = torch.from_numpy(beta_binomial_log_prior(n_symbols, n_frames))
                score = score + prior_weight * prior
            path = torch.from_numpy(maximum_path(score.cpu().numpy(), lengths.cpu().numpy(),
                                                 frame_lengths.cpu().numpy())).to(means.device)
        frame_mask = sequence_mask(frame_lengths, mels.shape[2])[:, None, :].to(states.dtype)
        expanded_means = torch.bmm(means, path.to(means.dtype))  # (B, 80, T)
        mel = self.decode(torch.bmm(states, path.to(states.dtype)), expanded_means, speaker, frame_mask)
        return SynthesizerOutput(mel, expanded_means, log_durations, path.sum(2), path, frame_lengths)

    @torch.no_grad()
    def infer(self, ids: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor,
              speaking_rate: float = 1.0) -> SynthesizerOutput:
        """Free-running synthesis; ``speaking_rate`` 1.25 speaks 25 % faster (durations divided by it)."""
        states, means, log_durations, mask = self.encode(ids, lengths, speaker)
        durations = torch.clamp(torch.exp(log_durations) - 1, min=0) / speaking_rate  # (B, S)
        durations = torch.round(durations) * mask[:, 0]
        nonblank = (ids != 0) & mask[:, 0].bool()
        durations = torch.where(nonblank, durations.clamp(min=self.hparams.min_phoneme_frames), durations)
        frame_lengths = durations.sum(1).long().clamp(min=1, max=self.hparams.max_frames)  # (B,)
        path = durations_to_path(durations.long(), int(frame_lengths.max()))  # (B, S, T)
        frame_mask = sequence_mask(frame_lengths)[:, None, :].to(states.dtype)
        expanded_means = torch.bmm(means, path)
        mel = self.decode(torch.bmm(states, path), expanded_means, speaker, frame_mask)
        return SynthesizerOutput(mel, expanded_means, log_durations, durations, path, frame_lengths)


def durations_to_path(durations: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``(B, S)`` integer frames per symbol → ``(B, S, n_frames)`` 0/1 path (frames past the end dropped).

    Examples
    --------
    >>> durations_to_path(torch.tensor([[1, 0, 2]]), 3)[0].int().tolist()
    [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    """
    ends = torch.cumsum(durations, dim=1)  # (B, S)
    starts = ends - durations
    t = torch.arange(n_frames, device=durations.device)[None, None, :]
    return ((t >= starts[:, :, None]) & (t < ends[:, :, None])).float()


def count_parameters(model: nn.Module) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
