"""WaveRNN vocoder (fatchord variant), state-dict compatible with RTVC's ``vocoder.pt`` (docs/vocoder.md).

>>> from vocoder.hparams import VocoderHParams
>>> hp = VocoderHParams(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16,
...                     voc_res_blocks=1)
>>> model = build_wavernn(hp)
>>> mel = torch.zeros(1, 80, 3)
>>> wav = model.generate(mel, batched=False, generator=torch.Generator().manual_seed(0))
>>> wav.shape, wav.dtype
((400,), dtype('float32'))
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.checkpoints import NonFiniteOutputError, non_finite_message
from utils.progress import ProgressCallback
from utils.mel import inv_preemphasis
from vocoder.audio import decode_mu_law
from vocoder.distribution import sample_from_discretized_mix_logistic
from vocoder.hparams import VocoderHParams


class ResBlock(nn.Module):
    """``x + BN(conv2(ReLU(BN(conv1(x)))))`` with 1x1 convolutions.

    >>> ResBlock(8)(torch.zeros(2, 8, 5)).shape
    torch.Size([2, 8, 5])
    """

    def __init__(self, dims: int) -> None:
        super().__init__()
        # Attribute order fixes the state_dict order: conv1, conv2, batch_norm1, batch_norm2.
        self.conv1 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.batch_norm1 = nn.BatchNorm1d(dims)
        self.batch_norm2 = nn.BatchNorm1d(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x  # (B, C, T)
        x = F.relu(self.batch_norm1(self.conv1(x)))
        x = self.batch_norm2(self.conv2(x))
        return x + residual


class MelResNet(nn.Module):
    """Mel context network for the auxiliary features; its unpadded first convolution consumes ``2·pad``
    frames.

    >>> MelResNet(res_blocks=2, in_dims=80, compute_dims=16, res_out_dims=8, pad=2)(torch.zeros(1, 80, 9)).shape
    torch.Size([1, 8, 5])
    """

    def __init__(self, res_blocks: int, in_dims: int, compute_dims: int, res_out_dims: int, pad: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(in_dims, compute_dims, kernel_size=2 * pad + 1, bias=False)
        self.batch_norm = nn.BatchNorm1d(compute_dims)
        self.layers = nn.ModuleList(ResBlock(compute_dims) for _ in range(res_blocks))
        self.conv_out = nn.Conv1d(compute_dims, res_out_dims, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.batch_norm(self.conv_in(x)))  # (B, compute, F - 2·pad)
        for layer in self.layers:
            x = layer(x)
        return self.conv_out(x)  # (B, res_out, F - 2·pad)


class Stretch2d(nn.Module):
    """Nearest-neighbour upsampling of the last two axes.

    >>> Stretch2d(x_scale=2, y_scale=1)(torch.tensor([[[[1.0, 2.0]]]])).tolist()
    [[[[1.0, 1.0, 2.0, 2.0]]]]
    """

    def __init__(self, x_scale: int, y_scale: int) -> None:
        super().__init__()
        self.x_scale = x_scale
        self.y_scale = y_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.y_scale, dim=2).repeat_interleave(self.x_scale, dim=3)

    def extra_repr(self) -> str:
        return f"x_scale={self.x_scale}, y_scale={self.y_scale}"


class UpsampleNetwork(nn.Module):
    """Mel frames to sample rate: a smoothed mel stream and the MelResNet auxiliary stream.

    >>> net = UpsampleNetwork(80, (5, 5, 8), compute_dims=16, res_blocks=1, res_out_dims=8, pad=2)
    >>> mels, aux = net(torch.zeros(1, 80, 7))
    >>> mels.shape, aux.shape
    (torch.Size([1, 600, 80]), torch.Size([1, 600, 8]))
    """

    def __init__(
        self,
        feat_dims: int,
        upsample_scales: tuple[int, ...],
        compute_dims: int,
        res_blocks: int,
        res_out_dims: int,
        pad: int,
    ) -> None:
        super().__init__()
        total_scale = math.prod(upsample_scales)
        self.indent = pad * total_scale  # samples belonging to the 2·pad context frames, cropped off
        self.resnet = MelResNet(res_blocks, feat_dims, compute_dims, res_out_dims, pad)
        self.resnet_stretch = Stretch2d(total_scale, 1)
        self.up_layers = nn.ModuleList()
        for scale in upsample_scales:
            width = 2 * scale + 1
            conv = nn.Conv2d(1, 1, kernel_size=(1, width), padding=(0, scale), bias=False)
            # A moving average over the stretched frames: a smooth, trainable interpolation.
            nn.init.constant_(conv.weight, 1.0 / width)
            self.up_layers.append(Stretch2d(scale, 1))
            self.up_layers.append(conv)

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mels (B, 80, F)`` -> ``(mels (B, L, 80), aux (B, L, res_out))`` with ``L = (F - 2·pad)·hop``."""
        aux = self.resnet(mels).unsqueeze(1)  # (B, 1, res_out, F - 2·pad)
        aux = self.resnet_stretch(aux).squeeze(1)  # (B, res_out, L)
        m = mels.unsqueeze(1)  # (B, 1, 80, F)
        for layer in self.up_layers:
            m = layer(m)  # (B, 1, 80, F·hop) at the end
        m = m.squeeze(1)
        m = m[:, :, self.indent : m.size(-1) - self.indent]  # (B, 80, L)
        return m.transpose(1, 2), aux.transpose(1, 2)


def fold_with_overlap(x: torch.Tensor, target: int, overlap: int) -> torch.Tensor:
    """Cut ``x (1, L, C)`` into chunks ``(n_folds, target + 2·overlap, C)`` generated as one batch.

    Chunk ``i`` starts at ``i·(target + overlap)``; the end is zero-padded. As RTVC, except that a sequence
    no longer than ``overlap`` gives one chunk instead of none.

    >>> fold_with_overlap(torch.zeros(1, 40_000, 3), target=8000, overlap=800).shape
    torch.Size([5, 9600, 3])
    """
    if target <= 0 or overlap < 0:
        raise ValueError(f"target must be > 0 and overlap >= 0, got target={target}, overlap={overlap}")
    if x.dim() != 3 or x.size(0) != 1:
        raise ValueError(f"fold_with_overlap expects a (1, L, C) tensor, got {tuple(x.shape)}")
    total_len = x.size(1)
    stride = target + overlap
    n_folds = max(1, math.ceil((total_len - overlap) / stride))
    needed = n_folds * stride + overlap
    x = F.pad(x, (0, 0, 0, needed - total_len))  # (1, needed, C), zeros after
    folded = x.unfold(1, target + 2 * overlap, stride)  # (1, n_folds, C, target + 2·overlap)
    return folded.squeeze(0).transpose(1, 2).contiguous()  # (n_folds, target + 2·overlap, C)


def crossfade_windows(overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """RTVC's fade-in and fade-out envelopes over ``overlap`` samples (the first half of the fade-in silent).

    >>> fade_in, fade_out = crossfade_windows(4)
    >>> fade_in.tolist(), fade_out.tolist()
    ([0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0])
    """
    silence_len = overlap // 2
    fade_len = overlap - silence_len
    t = np.linspace(-1.0, 1.0, fade_len, dtype=np.float64)
    silence = np.zeros(silence_len, dtype=np.float64)
    fade_in = np.concatenate([silence, np.sqrt(0.5 * (1.0 + t))])
    fade_out = np.concatenate([np.sqrt(0.5 * (1.0 - t)), silence])
    return fade_in, fade_out


def xfade_and_unfold(y: np.ndarray, overlap: int) -> np.ndarray:
    """Crossfade generated chunks ``(n_folds, target + 2·overlap)`` back into one float64 signal.

    >>> xfade_and_unfold(np.ones((2, 10)), overlap=4).tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    """
    y = np.array(y, dtype=np.float64)  # a copy: the envelopes are applied in place
    n_folds, length = y.shape
    target = length - 2 * overlap
    stride = target + overlap
    if overlap > 0:
        fade_in, fade_out = crossfade_windows(overlap)
        y[:, :overlap] *= fade_in
        y[:, length - overlap :] *= fade_out
    unfolded = np.zeros(n_folds * stride + overlap, dtype=np.float64)
    for i in range(n_folds):  # sequential adds, in RTVC's order, so sums round identically
        unfolded[i * stride : i * stride + length] += y[i]
    return unfolded


def _gru_cell(gru: nn.GRU, consume_global_rng: bool) -> nn.GRUCell:
    """A GRUCell sharing ``gru``'s weights; consumes the global RNG as RTVC does (docs/vocoder.md)."""
    device = None if consume_global_rng else "meta"
    cell = nn.GRUCell(gru.input_size, gru.hidden_size, device=device)
    cell.weight_ih = gru.weight_ih_l0
    cell.weight_hh = gru.weight_hh_l0
    cell.bias_ih = gru.bias_ih_l0
    cell.bias_hh = gru.bias_hh_l0
    return cell


class WaveRNN(nn.Module):
    """Autoregressive WaveRNN conditioned on mels (RAW softmax or MOL output); default hparams give RTVC's.

    >>> model = WaveRNN(VocoderHParams())
    >>> next(iter(model.state_dict()))
    'step'
    """

    def __init__(self, hparams: VocoderHParams) -> None:
        super().__init__()
        self.hparams = hparams
        self.mode = hparams.voc_mode
        self.n_classes = hparams.n_classes
        self.pad = hparams.voc_pad
        self.rnn_dims = hparams.voc_rnn_dims
        self.aux_dims = hparams.voc_res_out_dims // 4
        self.hop_length = hparams.hop_length
        self.sample_rate = hparams.sample_rate

        # A Parameter (not a buffer) as in RTVC: it is an entry of model.parameters() and of Adam's state.
        self.step = nn.Parameter(torch.zeros(1, dtype=torch.long), requires_grad=False)
        self.upsample = UpsampleNetwork(
            hparams.num_mels,
            tuple(hparams.voc_upsample_factors),
            hparams.voc_compute_dims,
            hparams.voc_res_blocks,
            hparams.voc_res_out_dims,
            hparams.voc_pad,
        )
        rnn, fc, aux = hparams.voc_rnn_dims, hparams.voc_fc_dims, self.aux_dims
        self.I = nn.Linear(hparams.num_mels + aux + 1, rnn)
        self.rnn1 = nn.GRU(rnn, rnn, batch_first=True)
        self.rnn2 = nn.GRU(rnn + aux, rnn, batch_first=True)
        self.fc1 = nn.Linear(rnn + aux, fc)
        self.fc2 = nn.Linear(fc + aux, fc)
        self.fc3 = nn.Linear(fc, self.n_classes)

    @property
    def device(self) -> torch.device:
        return self.I.weight.device

    def _split_aux(self, aux: torch.Tensor) -> list[torch.Tensor]:
        d = self.aux_dims
        return [aux[..., d * i : d * (i + 1)] for i in range(4)]  # 4 × (..., aux_dims)

    def forward(self, x: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass; increments ``step`` like RTVC.

        ``x (B, L)`` are the previous samples in [-1, 1], ``mels (B, num_mels, F)`` include ``2·pad`` context
        frames. Returns logits ``(B, L, n_classes)`` (RAW) or mixture parameters ``(B, L, 30)`` (MOL).

        >>> hp = VocoderHParams(voc_rnn_dims=16, voc_fc_dims=16, voc_compute_dims=8, voc_res_out_dims=8,
        ...                     voc_res_blocks=1)
        >>> WaveRNN(hp)(torch.zeros(2, 400), torch.zeros(2, 80, 6)).shape
        torch.Size([2, 400, 512])
        """
        if mels.dim() != 3 or mels.size(-1) <= 2 * self.pad:
            raise ValueError(
                f"mels must be (B, {self.hparams.num_mels}, F) with F > {2 * self.pad} context frames, "
                f"got {tuple(mels.shape)}"
            )
        expected = (mels.size(-1) - 2 * self.pad) * self.hop_length
        if x.shape != (mels.size(0), expected):
            raise ValueError(
                f"x must be (B, (F - {2 * self.pad})·{self.hop_length}) = ({mels.size(0)}, {expected}) "
                f"for mels of shape {tuple(mels.shape)}, got {tuple(x.shape)}"
            )
        with torch.no_grad():
            self.step += 1

        batch = x.size(0)
        h1 = x.new_zeros(1, batch, self.rnn_dims)
        h2 = x.new_zeros(1, batch, self.rnn_dims)
        mels, aux = self.upsample(mels)  # (B, L, 80), (B, L, res_out)
        a1, a2, a3, a4 = self._split_aux(aux)  # (B, L, aux) each

        x = self.I(torch.cat([x.unsqueeze(-1), mels, a1], dim=2))  # (B, L, rnn)
        res = x
        x, _ = self.rnn1(x, h1)
        x = x + res
        res = x
        x, _ = self.rnn2(torch.cat([x, a2], dim=2), h2)
        x = x + res
        x = F.relu(self.fc1(torch.cat([x, a3], dim=2)))  # (B, L, fc)
        x = F.relu(self.fc2(torch.cat([x, a4], dim=2)))  # (B, L, fc)
        return self.fc3(x)  # (B, L, n_classes)

    def generate(
        self,
        mels: torch.Tensor,
        batched: bool = True,
        target: int = 8000,
        overlap: int = 800,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Generate a waveform sample by sample: RTVC's algorithm, without its short-mel crash.

        ``mels`` is ``(1, num_mels, T)`` in [-1, 1] (synthesizer mels / 4). ``batched`` folds the sequence
        (:func:`fold_with_overlap`); ``progress_callback(i, seq_len, batch_size, gen_rate_khz)`` runs every 100
        steps and at the end; ``generator=None`` samples from torch's global RNG, as RTVC. Returns ``(T - 1)·hop``
        float32 samples ending in a linear fade-out; ``ValueError`` for a bad shape or chunk geometry.

        >>> hp = VocoderHParams(voc_rnn_dims=16, voc_fc_dims=16, voc_compute_dims=8, voc_res_out_dims=8,
        ...                     voc_res_blocks=1)
        >>> model = WaveRNN(hp)
        >>> wav = model.generate(torch.zeros(1, 80, 1))  # one frame: nothing to return, no crash
        >>> wav.shape
        (0,)
        """
        num_mels = self.hparams.num_mels
        if mels.dim() != 3 or mels.size(0) != 1 or mels.size(1) != num_mels:
            raise ValueError(f"mels must have shape (1, {num_mels}, T), got {tuple(mels.shape)}")
        if mels.size(-1) == 0:
            raise ValueError("Cannot vocode an empty mel spectrogram (0 frames); at least 1 frame is needed.")
        if batched and (target <= 0 or overlap < 0):
            raise ValueError(f"target must be > 0 and overlap >= 0, got target={target}, overlap={overlap}")

        wave_len = (mels.size(-1) - 1) * self.hop_length
        if wave_len == 0:
            return np.zeros(0, dtype=np.float32)  # one frame holds no complete hop: nothing to generate

        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                samples = self._generate_samples(mels, batched, target, overlap, progress_callback, generator)
        finally:
            self.train(was_training)  # RTVC left the model in train mode (its bug 17)

        if batched:
            output = xfade_and_unfold(samples, overlap)  # (n_folds·(target + overlap) + overlap,)
        else:
            output = samples[0]  # (T·hop,)
        if self.mode == "RAW" and self.hparams.mu_law:
            output = decode_mu_law(output, self.n_classes, from_labels=False)
        if self.hparams.apply_preemphasis:
            output = inv_preemphasis(output, self.hparams.preemphasis)
        output = np.array(output[:wave_len], dtype=np.float64)
        # A linear fade-out avoids a click at the end; RTVC crashed when fewer samples than the fade existed.
        fade_len = min(self.hparams.fade_out_samples, len(output))
        if fade_len > 0:
            output[len(output) - fade_len :] *= np.linspace(1.0, 0.0, fade_len)
        return output.astype(np.float32)

    def _generate_samples(
        self,
        mels: torch.Tensor,
        batched: bool,
        target: int,
        overlap: int,
        progress_callback: ProgressCallback | None,
        generator: torch.Generator | None,
    ) -> np.ndarray:
        device = self.device
        start = time.perf_counter()
        rnn1 = _gru_cell(self.rnn1, consume_global_rng=generator is None)
        rnn2 = _gru_cell(self.rnn2, consume_global_rng=generator is None)

        mels = mels.to(device=device, dtype=torch.float32)
        # Zero frames (0, not the silence value -1) give the ResNet its context at both ends, as in RTVC.
        mels = F.pad(mels, (self.pad, self.pad))  # (1, 80, T + 2·pad)
        mels, aux = self.upsample(mels)  # (1, T·hop, 80), (1, T·hop, res_out)
        if batched:
            mels = fold_with_overlap(mels, target, overlap)  # (n_folds, target + 2·overlap, 80)
            aux = fold_with_overlap(aux, target, overlap)  # (n_folds, target + 2·overlap, res_out)
        batch, seq_len, _ = mels.shape
        aux_split = [a.contiguous() for a in self._split_aux(aux)]  # 4 × (batch, seq_len, aux)

        h1 = torch.zeros(batch, self.rnn_dims, device=device)
        h2 = torch.zeros(batch, self.rnn_dims, device=device)
        x = torch.zeros(batch, 1, device=device)  # previous sample
        output = torch.empty(batch, seq_len, device=device)
        # RAW label -> float value, computed with the same float32 operations as RTVC's per-step formula.
        label_values = 2 * torch.arange(self.n_classes, device=device).float() / (self.n_classes - 1.0) - 1.0
        # Functional calls with the layers' own weights: the same kernels as the modules, less overhead per step.
        inp, fc1, fc2, fc3 = self.I, self.fc1, self.fc2, self.fc3
        for i in range(seq_len):
            m_t = mels[:, i, :]  # (batch, 80)
            a1_t, a2_t, a3_t, a4_t = (a[:, i, :] for a in aux_split)  # (batch, aux) each
            x = F.linear(torch.cat([x, m_t, a1_t], dim=1), inp.weight, inp.bias)  # (batch, rnn)
            h1 = rnn1.forward(x, h1)
            x = x + h1
            h2 = rnn2.forward(torch.cat([x, a2_t], dim=1), h2)
            x = x + h2
            x = F.relu(F.linear(torch.cat([x, a3_t], dim=1), fc1.weight, fc1.bias))  # (batch, fc)
            x = F.relu(F.linear(torch.cat([x, a4_t], dim=1), fc2.weight, fc2.bias))  # (batch, fc)
            logits = F.linear(x, fc3.weight, fc3.bias)  # (batch, n_classes)
            if i % 100 == 0 and not (bool(torch.isfinite(logits).all()) and bool(torch.isfinite(h2).all())):
                # Damaged weights: NaN from the first step on (the hidden states keep it). Checked every
                # 100 steps, before sampling, which would crash (RAW) or draw noise (MOL) from it.
                raise NonFiniteOutputError(non_finite_message("vocoder", "samples", None))

            if self.mode == "MOL":
                x = sample_from_discretized_mix_logistic(logits.unsqueeze(-1), generator=generator)  # (batch, 1)
            else:
                posterior = F.softmax(logits, dim=1)
                # Categorical(posterior).sample() renormalises then draws one multinomial sample; doing the
                # same keeps draws bit-identical to RTVC for a given global seed.
                posterior = posterior / posterior.sum(-1, keepdim=True)
                label = torch.multinomial(posterior, 1, replacement=True, generator=generator)  # (batch, 1)
                x = label_values[label]  # (batch, 1), mu-law domain
            output[:, i] = x[:, 0]

            if progress_callback is not None and i % 100 == 0:
                gen_rate = (i + 1) / max(time.perf_counter() - start, 1e-9) * batch / 1000
                progress_callback(i, seq_len, batch, gen_rate)
        if progress_callback is not None:
            gen_rate = seq_len / max(time.perf_counter() - start, 1e-9) * batch / 1000
            progress_callback(seq_len, seq_len, batch, gen_rate)
        return output.cpu().numpy().astype(np.float64)


def build_wavernn(hparams: VocoderHParams) -> WaveRNN:
    """A freshly initialised :class:`WaveRNN` (the checkpoint loader's ``build``).

    >>> sum(p.numel() for p in build_wavernn(VocoderHParams()).parameters() if p.requires_grad)
    4480935
    """
    return WaveRNN(hparams)
