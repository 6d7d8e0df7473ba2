"""GE2E speaker encoder: 3-layer LSTM over 40-band power mels, ReLU, L2-normalised embedding; the state
dict equals RTVC's ``encoder.pt``.

>>> import torch
>>> from encoder.hparams import EncoderHParams
>>> model = SpeakerEncoder(EncoderHParams(hidden_size=32, embedding_size=16, num_layers=1))
>>> model(torch.rand(3, 160, 40)).shape
torch.Size([3, 16])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from encoder.hparams import EncoderHParams


class SpeakerEncoder(nn.Module):
    """LSTM speaker encoder with the GE2E similarity scale and bias as parameters."""

    def __init__(self, hparams: EncoderHParams) -> None:
        super().__init__()
        self.hparams = hparams
        self.lstm = nn.LSTM(
            input_size=hparams.mel_n_channels,
            hidden_size=hparams.hidden_size,
            num_layers=hparams.num_layers,
            batch_first=True,
        )
        self.linear = nn.Linear(hparams.hidden_size, hparams.embedding_size)
        # GE2E's learnable affine map of cosine similarities (w > 0 and b), initial values from the paper.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, n_frames, n_mels)`` power mels -> ``(batch, embedding_size)`` unit-norm embeddings."""
        _, (hidden, _) = self.lstm(frames)  # hidden: (num_layers, B, H)
        raw = F.relu(self.linear(hidden[-1]))  # (B, E)
        return raw / (torch.norm(raw, dim=1, keepdim=True) + 1e-5)

    def similarity_matrix(self, embeds: torch.Tensor) -> torch.Tensor:
        """GE2E scaled cosines ``(N, M, N)`` of ``(N, M, E)`` embeddings against each speaker's centroid,
        which excludes the utterance itself for its own speaker."""
        n_speakers, n_utterances, _ = embeds.shape
        inclusive = embeds.mean(dim=1, keepdim=True)  # (N, 1, E)
        inclusive = inclusive / (torch.norm(inclusive, dim=2, keepdim=True) + 1e-5)
        exclusive = (embeds.sum(dim=1, keepdim=True) - embeds) / (n_utterances - 1)  # (N, M, E)
        exclusive = exclusive / (torch.norm(exclusive, dim=2, keepdim=True) + 1e-5)

        similarity = torch.einsum("nme,ke->nmk", embeds, inclusive[:, 0])  # (N, M, N)
        own = torch.einsum("nme,nme->nm", embeds, exclusive)  # (N, M)
        speaker_index = torch.arange(n_speakers, device=embeds.device)
        similarity[speaker_index, :, speaker_index] = own
        return similarity * self.similarity_weight + self.similarity_bias

    def loss(self, embeds: torch.Tensor) -> torch.Tensor:
        n_speakers, n_utterances, _ = embeds.shape
        similarity = self.similarity_matrix(embeds).reshape(n_speakers * n_utterances, n_speakers)
        target = torch.arange(n_speakers, device=embeds.device).repeat_interleave(n_utterances)
        return F.cross_entropy(similarity, target)


def build_speaker_encoder(hparams: EncoderHParams) -> SpeakerEncoder:
    return SpeakerEncoder(hparams)
