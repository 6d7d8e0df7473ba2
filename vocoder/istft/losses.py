"""Training losses of the iSTFT vocoder, in float32 on the pre-emphasised signal.

APNet's amplitude, anti-wrapped phase and STFT-consistency losses, a log-mel L1 and a multi-resolution
STFT loss.

>>> hp = ISTFTHParams(channels=16, num_blocks=1)
>>> from vocoder.istft.model import build_istft_vocoder
>>> model = build_istft_vocoder(hp)
>>> wav = torch.randn(2, 3201) * 0.1
>>> total, parts = compute_losses(model, wav, hp)
>>> sorted(parts) == sorted(LOSS_NAMES) and bool(torch.isfinite(total))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vocoder.istft.discriminator import SpectrogramDiscriminator, generator_losses
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.model import ISTFTVocoderNet
from vocoder.istft.spectral import anti_wrap, preemphasis
from vocoder.istft.speaker_loss import SpeakerConsistencyLoss

LOSS_NAMES = ("amplitude", "phase_ip", "phase_gd", "phase_iaf", "consistency", "mel", "multi_resolution")


def phase_losses(predicted: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(IP, GD, IAF) anti-wrapped phase losses of two phases ``(B, F, T)``."""
    ip = anti_wrap(predicted - target).mean()
    gd = anti_wrap(torch.diff(predicted, dim=1) - torch.diff(target, dim=1)).mean()  # along frequency
    iaf = anti_wrap(torch.diff(predicted, dim=2) - torch.diff(target, dim=2)).mean()  # along time
    return ip, gd, iaf


_WINDOWS: dict[tuple[int, str], torch.Tensor] = {}


def _hann(size: int, device: torch.device) -> torch.Tensor:
    # A tiny per-process cache of constant windows (not model state).
    key = (size, str(device))
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(size, device=device)
    return _WINDOWS[key]


def multi_resolution_stft_loss(output: torch.Tensor, target: torch.Tensor,
                               resolutions: tuple[tuple[int, int, int], ...]) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + log-magnitude L1 between ``(B, L)`` signals."""
    total = output.new_zeros(())
    for n_fft, hop, win in resolutions:
        window = _hann(win, output.device)
        out = torch.stft(output, n_fft, hop, win, window=window, return_complex=True).abs()  # (B, F, T)
        ref = torch.stft(target, n_fft, hop, win, window=window, return_complex=True).abs()
        convergence = torch.linalg.norm(ref - out) / torch.linalg.norm(ref).clamp_min(1e-7)
        log_magnitude = F.l1_loss(torch.log(out.clamp_min(1e-5)), torch.log(ref.clamp_min(1e-5)))
        total = total + convergence + log_magnitude
    return total / max(1, len(resolutions))


def compute_losses(model: ISTFTVocoderNet, segment: torch.Tensor, hparams: ISTFTHParams,
                   mel: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    total, parts, _ = losses_and_signals(model, segment, hparams, mel)
    return total, parts


def losses_and_signals(model: ISTFTVocoderNet, segment: torch.Tensor, hparams: ISTFTHParams,
                       mel: torch.Tensor | None = None, discriminator: SpectrogramDiscriminator | None = None,
                       speaker: SpeakerConsistencyLoss | None = None,
                       ) -> tuple[torch.Tensor, dict[str, float], tuple[torch.Tensor, torch.Tensor]]:
    """``(total, parts, (target, output))`` of a batch: the weighted loss, its unweighted parts and the
    ``(B, L)`` pre-emphasised signals.

    ``segment (B, 1 + L)`` is plain audio whose first sample is only pre-emphasis history. ``mel`` defaults
    to the segment's own (copy-synthesis). A ``discriminator`` adds the adversarial and feature-matching
    losses, a ``speaker`` model the speaker-consistency loss."""
    front = getattr(model, "module", model).front  # DDP wraps the model under .module
    signal = hparams.signal
    emphasised = preemphasis(segment[:, 1:].float(), signal.preemphasis, segment[:, 0])  # (B, L)
    length = emphasised.shape[1]
    with torch.no_grad():
        target_spectrum = front.stft(emphasised)  # (B, F, T)
        target_magnitude = target_spectrum.abs()
        if mel is None:
            mel = front.mel_from_magnitude(target_magnitude)  # (B, M, T): exactly the synthesizer's mel
        target_log_amplitude = torch.log(target_magnitude.clamp_min(front.min_amplitude))
        target_phase = torch.angle(target_spectrum)
        target_log_mel = torch.log(torch.matmul(front.mel_basis, target_magnitude).clamp_min(front.min_amplitude))

    log_amplitude, phase = model(mel)  # (B, F, T) each, float32
    amplitude = torch.exp(log_amplitude.clamp(max=6.0))
    spectrum = torch.polar(amplitude, phase)  # (B, F, T)
    output = front.istft(spectrum, length)  # (B, L) pre-emphasised
    resynthesised = front.stft(output)  # (B, F, T)

    parts_t = {
        "amplitude": F.mse_loss(log_amplitude, target_log_amplitude),
        "consistency": (torch.view_as_real(spectrum) - torch.view_as_real(resynthesised)).square().mean()
        + (torch.view_as_real(resynthesised) - torch.view_as_real(target_spectrum)).abs().mean(),
        "mel": F.l1_loss(torch.log(torch.matmul(front.mel_basis, resynthesised.abs()).clamp_min(front.min_amplitude)),
                         target_log_mel),
        "multi_resolution": multi_resolution_stft_loss(output, emphasised, hparams.mr_resolutions),
    }
    parts_t["phase_ip"], parts_t["phase_gd"], parts_t["phase_iaf"] = phase_losses(phase, target_phase)
    weights = {
        "amplitude": hparams.w_amplitude, "phase_ip": hparams.w_phase_ip, "phase_gd": hparams.w_phase_gd,
        "phase_iaf": hparams.w_phase_iaf, "consistency": hparams.w_consistency, "mel": hparams.w_mel,
        "multi_resolution": hparams.w_multi_resolution,
    }
    if discriminator is not None:
        parts_t["adversarial"], parts_t["feature_matching"] = generator_losses(discriminator, emphasised, output)
        weights["adversarial"], weights["feature_matching"] = hparams.w_adversarial, hparams.w_feature_matching
    if speaker is not None:
        parts_t["speaker"], weights["speaker"] = speaker(emphasised, output), hparams.w_speaker
    total = sum(weights[name] * value for name, value in parts_t.items())
    return total, {name: float(value.detach()) for name, value in parts_t.items()}, (emphasised, output)
