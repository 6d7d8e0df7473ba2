"""The iSTFT vocoder network: a ConvNeXt-1D backbone at frame rate, an amplitude head and a phase head.

The log amplitude is the mel's pseudo-inverse amplitude plus a learned residual (zero at start, so an
untrained model gives Griffin-Lim's amplitude); the phase is ``atan2`` of two linear outputs (APNet).
The spectrum is that of the pre-emphasised waveform.

>>> hp = ISTFTHParams(channels=32, num_blocks=2)
>>> model = build_istft_vocoder(hp)
>>> mel = torch.zeros(1, 80, 10)
>>> log_amplitude, phase = model(mel)
>>> tuple(log_amplitude.shape), tuple(phase.shape)
((1, 401, 10), (1, 401, 10))
>>> tuple(model.waveform(mel).shape)  # pre-emphasised, (T − 1)·hop samples
(1, 1800)
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.spectral import SpectralFrontEnd


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k) → LayerNorm → Linear C→eC → GELU → Linear eC→C → layer scale → residual."""

    def __init__(self, channels: int, kernel_size: int, expansion: int, layer_scale_init: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.expand = nn.Linear(channels, expansion * channels)
        self.act = nn.GELU()
        self.project = nn.Linear(expansion * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T)
        h = self.depthwise(x).transpose(1, 2)  # (B, T, C): LayerNorm and Linear act on the last axis
        h = self.project(self.act(self.expand(self.norm(h))))  # (B, T, C)
        return x + (self.scale * h).transpose(1, 2)  # (B, C, T)


class ISTFTVocoderNet(nn.Module):
    """Mel -> (log amplitude, phase) of the pre-emphasised STFT; :meth:`waveform` adds the iSTFT."""

    def __init__(self, hparams: ISTFTHParams) -> None:
        super().__init__()
        self.hparams = hparams
        signal = hparams.signal
        self.front = SpectralFrontEnd(signal)
        c, n_bins = hparams.channels, hparams.n_bins
        self.input_conv = nn.Conv1d(signal.num_mels, c, hparams.input_kernel_size,
                                    padding=hparams.input_kernel_size // 2)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(c, hparams.kernel_size, hparams.expansion, hparams.layer_scale_init)
            for _ in range(hparams.num_blocks)
        )
        self.final_norm = nn.LayerNorm(c, eps=1e-6)
        self.amplitude_head = nn.Linear(c, n_bins)
        self.phase_real = nn.Linear(c, n_bins)
        self.phase_imag = nn.Linear(c, n_bins)
        # Zero residual at the start: the amplitude is the mel's own pseudo-inverse until trained.
        nn.init.zeros_(self.amplitude_head.weight)
        nn.init.zeros_(self.amplitude_head.bias)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.bf16 = False  # autocast the backbone to bfloat16 on the CPU (set by trainer and inference)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.bf16 and device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_amplitude, phase)``, each ``(B, F, T)`` float32, for a mel ``(B, M, T)`` in [−4, 4]."""
        mel = mel.float()
        prior = self.front.log_amplitude_prior(mel)  # (B, F, T)
        with self._autocast(mel.device):
            x = self.input_conv(mel / self.hparams.signal.max_abs_value)  # (B, C, T); inputs in [−1, 1]
            for block in self.blocks:
                x = block(x)
            h = self.final_norm(x.transpose(1, 2))  # (B, T, C)
            residual = self.amplitude_head(h)  # (B, T, F)
            real, imag = self.phase_real(h), self.phase_imag(h)  # (B, T, F) each
        log_amplitude = prior + residual.float().transpose(1, 2)  # (B, F, T)
        # atan2 in float32: bf16 would quantise the phase to about 1/100 rad steps.
        phase = torch.atan2(imag.float(), real.float()).transpose(1, 2)  # (B, F, T)
        return log_amplitude, phase

    def spectrum(self, mel: torch.Tensor, contrast: float = 1.0) -> torch.Tensor:
        """Complex spectrum ``(B, F, T)`` of the pre-emphasised waveform.

        ``contrast`` above 1 scales each frame's log amplitude about its mean, deepening the formant and harmonic
        valleys a smoothed mel has lost (frame by frame, so streaming is unaffected)."""
        log_amplitude, phase = self(mel)
        if contrast != 1.0:
            frame_mean = log_amplitude.mean(dim=1, keepdim=True)  # (B, 1, T)
            log_amplitude = frame_mean + contrast * (log_amplitude - frame_mean)
        # Cap the amplitude (e^6 ≈ 400 ≫ any real bin of audio in [−1, 1]) so a bad step cannot overflow.
        amplitude = torch.exp(log_amplitude.clamp(max=6.0))
        return torch.polar(amplitude, phase)

    def waveform(self, mel: torch.Tensor, contrast: float = 1.0) -> torch.Tensor:
        """Pre-emphasised audio ``(B, (T − 1)·hop)`` for a mel ``(B, M, T)`` (``contrast``: see :meth:`spectrum`)."""
        length = (mel.shape[-1] - 1) * self.hparams.signal.hop_size
        return self.front.istft(self.spectrum(mel, contrast), length)


def build_istft_vocoder(hparams: ISTFTHParams) -> ISTFTVocoderNet:
    return ISTFTVocoderNet(hparams)
