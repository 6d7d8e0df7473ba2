"""The signal contract in torch: pre-emphasis, STFT, mel in [-4, 4], its amplitude prior, iSTFT.

Follows :mod:`utils.mel` exactly. The vocoder predicts the spectrum of the pre-emphasised
signal, so :meth:`SpectralFrontEnd.istft` returns pre-emphasised audio and :func:`deemphasis` undoes it.

>>> import numpy as np, torch
>>> from utils.mel import melspectrogram
>>> from utils.signal_contract import SIGNAL as hp
>>> front = SpectralFrontEnd(hp)
>>> wav = np.random.default_rng(0).normal(0, 0.1, 4000).astype(np.float32)
>>> mel = front.mel_from_wave(torch.from_numpy(wav)[None])[0]     # (80, 21)
>>> bool(np.abs(mel.numpy() - melspectrogram(wav, hp)).max() < 1e-3)
True
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.mel import inverse_mel_basis, mel_basis
from utils.signal_contract import MelSignal

# Longer pieces are de-emphasised by scipy (a second to import, then faster than Python's loop).
DEEMPHASIS_LOOP_SAMPLES = 1 << 20


def preemphasis(wav: torch.Tensor, coefficient: float, history: torch.Tensor | None = None) -> torch.Tensor:
    """``y[n] = x[n] − k·x[n−1]`` along the last axis; ``history`` is ``x[−1]`` (zero when None).

    >>> preemphasis(torch.tensor([1.0, 1.0, 1.0]), 0.5)
    tensor([1.0000, 0.5000, 0.5000])
    """
    previous = torch.zeros_like(wav[..., :1]) if history is None else history[..., None].to(wav.dtype)
    return wav - coefficient * torch.cat([previous, wav[..., :-1]], dim=-1)


def deemphasis(wav: np.ndarray, coefficient: float, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`preemphasis` on a 1-D piece; ``(audio, state)`` to continue a stream.

    >>> out, state = deemphasis(np.array([1.0, 0.5]), 0.5)
    >>> out.tolist(), deemphasis(np.array([0.5]), 0.5, state)[0].tolist()
    ([1.0, 1.0], [1.0])
    """
    wav = np.asarray(wav, dtype=np.float64)
    zi = np.zeros(1) if state is None else state
    if len(wav) > DEEMPHASIS_LOOP_SAMPLES or "scipy.signal" in sys.modules:
        from scipy import signal as scipy_signal

        return scipy_signal.lfilter([1.0], [1.0, -coefficient], wav, zi=zi)
    return deemphasis_loop(wav, coefficient, zi)


def deemphasis_loop(wav: np.ndarray, coefficient: float, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.lfilter([1], [1, -coefficient], wav, zi=zi)`` step by step (y = x + z, z = k·y, in
    float64: the same numbers) without importing scipy.signal, which costs more start-up than this loop
    takes on a minute of audio."""
    out = [0.0] * len(wav)
    delay = float(np.asarray(zi, dtype=np.float64).reshape(-1)[0])
    for n, sample in enumerate(np.asarray(wav, dtype=np.float64).tolist()):
        delay = sample + delay
        out[n] = delay
        delay = coefficient * delay
    return np.array(out, dtype=np.float64), np.array([delay], dtype=np.float64)


class SpectralFrontEnd(nn.Module):
    """Mel analysis, amplitude prior, STFT and iSTFT with the synthesizer's geometry.

    Its buffers derive from the signal settings and are not stored in checkpoints."""

    def __init__(self, hparams: MelSignal) -> None:
        super().__init__()
        if not (hparams.signal_normalization and hparams.symmetric_mels):
            raise ValueError("the iSTFT vocoder needs the synthesizer's symmetric normalised mels")
        self.hparams = hparams
        self.n_fft, self.hop, self.win = hparams.n_fft, hparams.hop_size, hparams.win_size
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis(hparams)).float(), persistent=False)  # (M, F)
        self.register_buffer("inverse_basis", torch.from_numpy(inverse_mel_basis(hparams)).float(),
                             persistent=False)  # (F, M)
        # scipy's "hann" with fftbins=True, as librosa; made on the CPU even while the model is sized on the
        # meta device (utils.checkpoints), where torch computes it through torch._dynamo (seconds to import).
        window = torch.hann_window(self.win, periodic=True, device="cpu")
        if self.win < self.n_fft:  # librosa centres a shorter window inside the FFT frame
            left = (self.n_fft - self.win) // 2
            window = F.pad(window, (left, self.n_fft - self.win - left))
        self.register_buffer("window", window, persistent=False)  # (n_fft,)
        self.min_amplitude = 10.0 ** (hparams.min_level_db / 20.0)  # 1e-5 at −100 dB

    # -- analysis ---------------------------------------------------------------------------------

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """Complex spectrum ``(B, F, 1 + L // hop)`` of ``(B, L)`` audio, centred and zero padded."""
        return torch.stft(wav.float(), self.n_fft, self.hop, self.n_fft, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)

    def mel_from_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``(B, M, T)`` in [−max_abs, max_abs] from a linear magnitude ``(B, F, T)``."""
        hp = self.hparams
        mel_amplitude = torch.matmul(self.mel_basis, magnitude)  # (M, F) @ (B, F, T) -> (B, M, T)
        db = 20.0 * torch.log10(mel_amplitude.clamp_min(self.min_amplitude)) - hp.ref_level_db
        scaled = (db - hp.min_level_db) / (-hp.min_level_db)
        mel = 2.0 * hp.max_abs_value * scaled - hp.max_abs_value
        if hp.allow_clipping_in_normalization:
            mel = mel.clamp(-hp.max_abs_value, hp.max_abs_value)
        return mel

    def mel_from_wave(self, wav: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        """The synthesizer's mel ``(B, M, 1 + L // hop)`` of plain ``(B, L)`` audio (pre-emphasis inside)."""
        emphasised = preemphasis(wav.float(), self.hparams.preemphasis, history) if self.hparams.preemphasize else wav
        return self.mel_from_magnitude(self.stft(emphasised).abs())

    def log_amplitude_prior(self, mel: torch.Tensor) -> torch.Tensor:
        """``log`` of the mel's pseudo-inverse amplitude ``(B, F, T)``: Griffin-Lim's starting estimate,
        which the network only has to correct."""
        hp = self.hparams
        clipped = mel.float().clamp(-hp.max_abs_value, hp.max_abs_value)
        db = (clipped + hp.max_abs_value) / (2 * hp.max_abs_value) * (-hp.min_level_db) + hp.min_level_db
        mel_amplitude = torch.pow(10.0, (db + hp.ref_level_db) * 0.05)  # (B, M, T)
        linear = torch.matmul(self.inverse_basis, mel_amplitude)  # (F, M) @ (B, M, T) -> (B, F, T)
        return torch.log(linear.clamp_min(self.min_amplitude))

    # -- synthesis --------------------------------------------------------------------------------

    def istft(self, spectrum: torch.Tensor, length: int) -> torch.Tensor:
        """Pre-emphasised audio ``(B, length)`` from a complex spectrum ``(B, F, T)`` (centred frames)."""
        return torch.istft(spectrum, self.n_fft, self.hop, self.n_fft, window=self.window, center=True,
                           length=length)

    def overlap_add(self, spectrum: torch.Tensor, first_frame: int, start: int, end: int) -> torch.Tensor:
        """Samples ``[start, end)`` of the centred iSTFT from frames ``first_frame ...`` (``spectrum (F, n)``).

        Equals that slice of :meth:`istft` when every frame overlapping the range is given (two frames of
        margin on each side); streaming relies on it."""
        n_frames = spectrum.shape[-1]
        frames = torch.fft.irfft(spectrum, n=self.n_fft, dim=0) * self.window[:, None]  # (n_fft, n)
        # Frame t covers samples [t·hop − n_fft/2, t·hop + n_fft/2) of the output (centred frames).
        origin = first_frame * self.hop - self.n_fft // 2
        total = (n_frames - 1) * self.hop + self.n_fft
        stacked = torch.stack([frames, self.window[:, None].square().expand_as(frames)])  # (2, n_fft, n)
        folded = F.fold(stacked, output_size=(1, total), kernel_size=(1, self.n_fft), stride=(1, self.hop))
        signal_sum, envelope = folded[0, 0, 0], folded[1, 0, 0]  # (total,) each
        lo, hi = start - origin, end - origin
        if lo < 0 or hi > total:
            raise ValueError("overlap_add was not given the frames covering the requested samples")
        return signal_sum[lo:hi] / envelope[lo:hi].clamp_min(1e-11)


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """APNet's anti-wrapping function ``|x − 2π·round(x / 2π)|``: phase distance modulo 2π, in [0, π]."""
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))
