"""Speaker-consistency loss of the iSTFT vocoder: GE2E embeddings of output and target should agree
(docs/vocoder.md).

>>> from encoder.hparams import EncoderHParams
>>> from encoder.model import build_speaker_encoder
>>> torch.manual_seed(0) is not None
True
>>> hp = EncoderHParams(hidden_size=8, embedding_size=4, num_layers=1)
>>> loss = SpeakerConsistencyLoss(build_speaker_encoder(hp), hp, preemphasis=0.97)
>>> target = torch.randn(2, 4000) * 0.1
>>> abs(float(loss(target, target))) < 1e-4
True
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from encoder.hparams import EncoderHParams
from encoder.model import SpeakerEncoder

#: Segments whose target is quieter than this (mostly silence) carry no voice to compare.
MIN_SPEECH_DBFS = -55.0
#: Largest gain of the encoder's volume normalisation (its ``increase_only`` rule never lowers).
MAX_GAIN_DB = 40.0


def deemphasis_fft(emphasised: torch.Tensor, coefficient: float) -> torch.Tensor:
    """Differentiable inverse of pre-emphasis on ``(B, L)`` signals (zero initial state), in the frequency
    domain.

    >>> x = torch.tensor([[1.0, 0.5, 0.25, 0.0]])
    >>> [round(v, 4) for v in deemphasis_fft(x, 0.5)[0].tolist()]
    [1.0, 1.0, 0.75, 0.375]
    """
    length = emphasised.shape[-1]
    tail = math.ceil(math.log(1e-7) / math.log(coefficient)) if 0 < coefficient < 1 else 1
    size = length + tail
    spectrum = torch.fft.rfft(emphasised, n=size)  # (B, size // 2 + 1)
    omega = torch.arange(spectrum.shape[-1], device=emphasised.device, dtype=emphasised.dtype) * (2 * torch.pi / size)
    response = 1.0 - coefficient * torch.polar(torch.ones_like(omega), -omega)  # (F,)
    return torch.fft.irfft(spectrum / response, n=size)[..., :length]


class EncoderFrontEnd(nn.Module):
    """Torch twin of :func:`encoder.audio.wav_to_mel_spectrogram`: ``(B, L)`` → ``(B, frames, 40)`` power mels."""

    def __init__(self, hparams: EncoderHParams) -> None:
        super().__init__()
        import librosa

        self.n_fft, self.hop = hparams.mel_n_fft, hparams.mel_hop_length
        basis = librosa.filters.mel(sr=hparams.sample_rate, n_fft=self.n_fft, n_mels=hparams.mel_n_channels)
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)  # (40, F)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                              return_complex=True)  # (B, F, frames)
        power = spectrum.real.square() + spectrum.imag.square()
        return torch.matmul(self.mel_basis, power).transpose(1, 2)  # (B, frames, 40)


class SpeakerConsistencyLoss(nn.Module):
    """``1 - cos(GE2E(output), GE2E(target))`` over segments with speech; the encoder is frozen and
    ``forward`` takes signals pre-emphasised with ``preemphasis``."""

    def __init__(self, encoder: SpeakerEncoder, hparams: EncoderHParams, preemphasis: float) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.front = EncoderFrontEnd(hparams)
        self.target_dbfs = hparams.audio_norm_target_dbfs
        self.preemphasis = preemphasis

    def train(self, mode: bool = True) -> SpeakerConsistencyLoss:
        super().train(mode)
        self.encoder.eval()  # frozen: always in inference mode
        return self

    @classmethod
    def from_checkpoint(cls, path: str | Path, preemphasis: float, sample_rate: int,
                        device: str | torch.device = "cpu") -> SpeakerConsistencyLoss:
        """Build from an encoder file; ``ValueError`` when its sample rate is not the vocoder's."""
        from encoder.inference import Encoder

        encoder = Encoder.from_checkpoint(path, device)
        if encoder.sample_rate != sample_rate:
            raise ValueError(f"The speaker encoder '{path}' works at {encoder.sample_rate} Hz, "
                             f"the vocoder at {sample_rate} Hz.")
        return cls(encoder.model, encoder.hparams, preemphasis).to(device)

    def forward(self, target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            plain_target = deemphasis_fft(target.float(), self.preemphasis)  # (B, L)
            level_db = 10 * torch.log10(plain_target.square().mean(dim=1).clamp_min(1e-10))  # (B,)
            speech = level_db > MIN_SPEECH_DBFS
            # The encoder's preprocessing raises quiet audio to its target level; one gain per
            # segment, from the target, so that a wrong output level still counts.
            gain_db = (self.target_dbfs - level_db).clamp(0.0, MAX_GAIN_DB)
            gain = torch.pow(10.0, gain_db / 20)[:, None]  # (B, 1)
            if not bool(speech.any()):
                return output.new_zeros(())
            target_embedding = self.encoder(self.front(plain_target[speech] * gain[speech]))  # (S, E)
        plain_output = deemphasis_fft(output.float()[speech], self.preemphasis) * gain[speech]  # (S, L)
        output_embedding = self.encoder(self.front(plain_output))  # (S, E)
        cosine = torch.nn.functional.cosine_similarity(output_embedding, target_embedding, dim=1, eps=1e-6)
        return (1.0 - cosine).mean()
