"""Fast WaveRNN generation: short batched folds with warm-up and crossfade, a lean sample loop, bf16.

Same model and output conventions as :meth:`vocoder.model.WaveRNN.generate` (RTVC's exact algorithm),
several times faster, without RTVC's random draws. Design and measurements: docs/vocoder.md.

>>> from vocoder.hparams import VocoderHParams
>>> from vocoder.model import build_wavernn
>>> hp = VocoderHParams(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16,
...                     voc_res_blocks=1)
>>> fast = FastWaveRNNGenerator(build_wavernn(hp), dtype=torch.float32)
>>> wav = fast.generate(torch.zeros(1, 80, 30), generator=torch.Generator().manual_seed(0))
>>> wav.shape, wav.dtype
((5800,), dtype('float32'))
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from utils.checkpoints import NonFiniteOutputError, non_finite_message
from utils.packed_linear import PackedLinear, onednn_bf16_supported
from utils.mel import inv_preemphasis
from vocoder.audio import decode_mu_law
from vocoder.model import ProgressCallback, UpsampleNetwork, WaveRNN


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 where matrix products in bf16 are fast (CUDA, CPUs with native bf16), float32 otherwise."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and onednn_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` in place as ``2·sigmoid(2x) - 1``: 2.4 times faster than ``torch.tanh`` on 2 AMD EPYC cores."""
    return torch.sigmoid_(x.mul_(2.0)).mul_(2.0).sub_(1.0)


def stretch_and_smooth(x: torch.Tensor, scale: int, weight: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour stretch by ``scale`` then a ``(1, 2·scale + 1)`` convolution with ``weight``,
    computed per output phase: ``(B, C, F)`` -> ``(B, C, F·scale)``, equal to
    :class:`~vocoder.model.UpsampleNetwork`'s stretch and convolution up to rounding.

    >>> y = stretch_and_smooth(torch.tensor([[[0.0, 5.0, 0.0]]]), 2, torch.full((5,), 0.2))
    >>> [round(v, 4) for v in y.flatten().tolist()]
    [1.0, 2.0, 2.0, 2.0, 2.0, 1.0]
    """
    taps = weight.reshape(-1).to(x.dtype)
    if taps.numel() != 2 * scale + 1:
        raise ValueError(f"expected {2 * scale + 1} taps for scale {scale}, got {taps.numel()}")
    prefix = torch.cat([taps.new_zeros(1), torch.cumsum(taps, 0)])  # prefix[k] = Σ taps[:k]
    phase = torch.arange(scale, device=x.device)

    def tap_sum(first: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
        return prefix[stop.clamp(0, 2 * scale + 1)] - prefix[first.clamp(0, 2 * scale + 1)]

    # Output phase p takes taps (d + 1)·scale - p <= j < (d + 2)·scale - p from frame n + d.
    before, same, after = (tap_sum((d + 1) * scale - phase, (d + 2) * scale - phase) for d in (-1, 0, 1))
    padded = F.pad(x, (1, 1))  # (B, C, F + 2): zero frames outside, as the convolution's zero padding
    out = padded[..., :-2, None] * before + padded[..., 1:-1, None] * same + padded[..., 2:, None] * after
    return out.flatten(-2)  # (B, C, F, scale) -> (B, C, F·scale)


def upsample_conditioning(net: UpsampleNetwork, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`~vocoder.model.UpsampleNetwork`'s forward pass with :func:`stretch_and_smooth`:
    ``mels (B, 80, F)`` -> ``(mels (B, L, 80), aux (B, L, res_out))``."""
    aux = net.resnet(mels)  # (B, res_out, F - 2·pad)
    aux = aux.repeat_interleave(net.resnet_stretch.x_scale, dim=2)  # (B, res_out, L)
    m = mels
    for stretch, conv in zip(net.up_layers[0::2], net.up_layers[1::2]):
        m = stretch_and_smooth(m, stretch.x_scale, conv.weight)
    m = m[:, :, net.indent : m.size(-1) - net.indent]  # (B, 80, L)
    return m.transpose(1, 2), aux.transpose(1, 2)


@dataclass(frozen=True)
class _Fold:
    sentence: int  # index of the sentence the fold belongs to
    start: int  # first sample (in the sentence) the fold's RNN sees
    length: int  # samples it generates (<= steps of the loop); the rest of the loop is padding
    keep_from: int  # samples before this (relative to start) are warm-up, not output


class FastWaveRNNGenerator:
    """Fast, approximately equivalent generation with a RAW-mode :class:`~vocoder.model.WaveRNN`.

    The weights are copied when the generator is built (build a new one after they change); generation runs
    on the model's device. ``target``, ``crossfade`` and ``warmup`` size the folds in samples;
    ``dtype=None`` picks bf16 where it is fast; audio shorter than ``min_batch`` folds is cut into about
    ``min_batch`` folds of at least ``min_target`` samples; ``stream_*`` are :meth:`generate_stream`'s;
    ``max_batch_seconds`` bounds :meth:`generate_batch`'s memory (about 30 MB per second of audio with RTVC's
    model). See docs/vocoder.md."""

    def __init__(
        self,
        model: WaveRNN,
        *,
        target: int = 2000,
        crossfade: int = 200,
        warmup: int = 400,
        dtype: torch.dtype | None = None,
        block: int = 8,
        min_batch: int = 48,
        min_target: int = 600,
        stream_warmup: int = 200,
        stream_crossfade: int = 100,
        stream_margin: float = 1.2,
        max_batch_seconds: float = 30.0,
    ) -> None:
        if model.mode != "RAW":
            raise ValueError("FastWaveRNNGenerator supports RAW (softmax) WaveRNNs only; use WaveRNN.generate for MOL")
        if target <= 0 or crossfade < 0 or warmup < 0 or block <= 0:
            raise ValueError(
                f"need target > 0, crossfade >= 0, warmup >= 0 and block > 0, got target={target}, "
                f"crossfade={crossfade}, warmup={warmup}, block={block}"
            )
        if crossfade > target:
            raise ValueError(f"crossfade ({crossfade}) cannot exceed target ({target})")
        self.model = model
        self.hparams = model.hparams
        self.target, self.crossfade, self.warmup, self.block = target, crossfade, warmup, block
        self.min_batch, self.min_target = max(1, min_batch), max(1, min_target)
        if stream_warmup < 0 or stream_crossfade < 0 or stream_margin <= 0:
            raise ValueError(f"need stream_warmup >= 0, stream_crossfade >= 0 and stream_margin > 0, got "
                             f"{stream_warmup}, {stream_crossfade} and {stream_margin}")
        self.stream_warmup, self.stream_crossfade, self.stream_margin = stream_warmup, stream_crossfade, stream_margin
        if max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be positive, got {max_batch_seconds}")
        self.max_batch_seconds = max_batch_seconds
        self._step_seconds: dict[int, float] = {}  # measured loop step time per batch size
        self.device = model.device
        self.dtype = default_dtype(self.device) if dtype is None else dtype
        if self.dtype not in (torch.bfloat16, torch.float32, torch.float16):
            raise ValueError(f"dtype must be torch.bfloat16, torch.float16 or torch.float32, got {self.dtype}")
        self._prepare_weights()

    # -- Weights -----------------------------------------------------------------------------------
    def _prepare_weights(self) -> None:
        m = self.model
        rnn, aux_dims, n_mels = m.rnn_dims, m.aux_dims, self.hparams.num_mels
        with torch.no_grad():
            d = torch.float64  # compose in double precision, round once
            W_I, b_I = m.I.weight.to(d), m.I.bias.to(d)  # (rnn, 1 + mels + aux)
            w_x, W_Im, W_Ia = W_I[:, 0], W_I[:, 1 : 1 + n_mels], W_I[:, 1 + n_mels :]
            W_ih1, b_ih1 = m.rnn1.weight_ih_l0.to(d), m.rnn1.bias_ih_l0.to(d)
            W_ih2, b_ih2 = m.rnn2.weight_ih_l0.to(d), m.rnn2.bias_ih_l0.to(d)
            W_ih2x, W_ih2a = W_ih2[:, :rnn], W_ih2[:, rnn:]
            W_fc1, b_fc1 = m.fc1.weight.to(d), m.fc1.bias.to(d)
            W_fc1x, W_fc1a = W_fc1[:, :rnn], W_fc1[:, rnn:]
            W_fc2, b_fc2 = m.fc2.weight.to(d), m.fc2.bias.to(d)
            W_fc2x, W_fc2a = W_fc2[:, : m.fc2.in_features - aux_dims], W_fc2[:, m.fc2.in_features - aux_dims :]

            # Conditioning c = [mel (80), aux (4·aux_dims)] -> the loop-independent parts of
            #   g1 = W_ih1·I + b_ih1,  g2 = W_ih2x·I + W_ih2a·a2 + b_ih2,  f1 = W_fc1x·I + W_fc1a·a3 + b_fc1,
            #   f2 = W_fc2a·a4 + b_fc2,  with I = W_Im·mel + W_Ia·a1 + b_I (its previous-sample term apart).
            fc = W_fc2.size(0)

            def zeros(rows: int) -> torch.Tensor:
                return torch.zeros(rows, aux_dims, dtype=d, device=W_I.device)

            parts, biases, x_terms = [], [], []
            for W_from_I, b_extra, aux_index, W_aux in (
                (W_ih1, b_ih1, None, None),
                (W_ih2x, b_ih2, 1, W_ih2a),
                (W_fc1x, b_fc1, 2, W_fc1a),
                (None, b_fc2, 3, W_fc2a),
            ):
                rows = W_from_I.size(0) if W_from_I is not None else fc
                blocks = [torch.zeros(rows, n_mels, dtype=d, device=W_I.device)] + [zeros(rows) for _ in range(4)]
                bias = b_extra.clone()
                x_term = torch.zeros(rows, dtype=d, device=W_I.device)
                if W_from_I is not None:
                    blocks[0] = W_from_I @ W_Im
                    blocks[1] = W_from_I @ W_Ia
                    bias = bias + W_from_I @ b_I
                    x_term = W_from_I @ w_x
                if aux_index is not None:
                    blocks[1 + aux_index] = blocks[1 + aux_index] + W_aux
                parts.append(torch.cat(blocks, dim=1))
                biases.append(bias)
                x_terms.append(x_term)
            self._sizes = [p.size(0) for p in parts]  # 3·rnn, 3·rnn, fc, fc
            cond_w = torch.cat(parts, dim=0)  # (Σ sizes, mels + 4·aux)
            cond_b = torch.cat(biases)
            # The conditioning product runs on large batches: in bf16 too when the loop does.
            cond_dtype = self.dtype
            self._cond = PackedLinear(cond_w.float(), cond_b.float(), cond_dtype, 4096)
            self._x_term = torch.cat(x_terms[:3]).float()  # (3·rnn + 3·rnn + fc,) previous-sample terms

            dt = self.dtype
            self._hh1 = PackedLinear(m.rnn1.weight_hh_l0, m.rnn1.bias_hh_l0, dt, 64)
            self._hh2 = PackedLinear(m.rnn2.weight_hh_l0, m.rnn2.bias_hh_l0, dt, 64)
            self._ih2 = PackedLinear(W_ih2x.float(), None, dt, 64)
            self._fc1 = PackedLinear(W_fc1x.float(), None, dt, 64)
            self._fc2 = PackedLinear(W_fc2x.float(), None, dt, 64)
            self._fc3 = PackedLinear(m.fc3.weight, m.fc3.bias, dt, 64)
            n = m.n_classes
            self._label_values = (2 * torch.arange(n, device=self.device).float() / (n - 1.0) - 1.0)

    # -- Public API --------------------------------------------------------------------------------
    def generate(
        self,
        mels: torch.Tensor,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Waveform of ``(T - 1)·hop`` float32 samples for ``mels (1, num_mels, T)`` in [-1, 1] (already /4).

        ``progress_callback`` is called as ``(i, steps, batch, gen_rate_khz)`` every 100 steps and at the end."""
        num_mels = self.hparams.num_mels
        if mels.dim() != 3 or mels.size(0) != 1 or mels.size(1) != num_mels:
            raise ValueError(f"mels must have shape (1, {num_mels}, T), got {tuple(mels.shape)}")
        return self.generate_batch([mels[0]], progress_callback, generator)[0]

    def generate_batch(
        self,
        mels: list[torch.Tensor],
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> list[np.ndarray]:
        """Several sentences at once (their folds share one batch): a list of ``(num_mels, T_i)`` mels -> waveforms."""
        num_mels = self.hparams.num_mels
        for mel in mels:
            if mel.dim() != 2 or mel.size(0) != num_mels:
                raise ValueError(f"each mel must have shape ({num_mels}, T), got {tuple(mel.shape)}")
            if mel.size(1) == 0:
                raise ValueError("Cannot vocode an empty mel spectrogram (0 frames); at least 1 frame is needed.")
        hop = self.hparams.hop_length
        lengths = [(mel.size(1) - 1) * hop for mel in mels]
        outputs: list[np.ndarray] = [np.zeros(0, dtype=np.float32) for _ in mels]
        active = [i for i, n in enumerate(lengths) if n > 0]
        if not active:
            return outputs
        groups = self._groups([lengths[i] for i in active])
        plans = [self._plan([lengths[active[j]] for j in group]) for group in groups]
        total_steps = sum(steps for steps, _ in plans)
        was_training = self.model.training
        self.model.eval()
        try:
            done_steps = 0
            for group, (steps, folds) in zip(groups, plans):
                callback = progress_callback
                if progress_callback is not None and len(groups) > 1:
                    # One progress scale over all groups: steps done so far, of all groups' steps.
                    def callback(i: int, _: int, batch: int, rate: float, offset: int = done_steps) -> None:
                        progress_callback(offset + i, total_steps, batch, rate)
                with torch.inference_mode():
                    conds = [self._conditioning(mels[active[j]], lengths[active[j]]) for j in group]  # (L_i, C) each
                    labels = self._run(conds, steps, folds, callback, generator)  # (B, steps) int
                values = self._label_values[labels.to(self.device)].double().cpu().numpy()  # (B, steps)
                for k, j in enumerate(group):
                    mine = [(b, f) for b, f in enumerate(folds) if f.sentence == k]
                    outputs[active[j]] = self._assemble(values, mine, lengths[active[j]])
                done_steps += steps
        finally:
            self.model.train(was_training)
        return outputs

    def _groups(self, lengths: list[int]) -> list[list[int]]:
        """Consecutive sentences in groups of at most ``max_batch_seconds`` of audio (a longer one alone)."""
        limit = max(1, int(self.max_batch_seconds * self.hparams.sample_rate))
        groups: list[list[int]] = []
        total = limit + 1
        for index, length in enumerate(lengths):
            if total + length > limit:
                groups.append([])
                total = 0
            groups[-1].append(index)
            total += length
        return groups

    def generate_stream(
        self,
        mel: torch.Tensor,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
        sample_rate: int | None = None,
    ) -> Iterator[np.ndarray]:
        """The waveform of ``mel (num_mels, T)`` in pieces, each yielded once final; together they equal
        :meth:`generate`'s length and conventions. Folds grow along the sentence so each is ready before playback
        at ``sample_rate`` reaches it (docs/vocoder.md).

        >>> from vocoder.hparams import VocoderHParams
        >>> from vocoder.model import build_wavernn
        >>> hp = VocoderHParams(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16,
        ...                     voc_res_blocks=1)
        >>> fast = FastWaveRNNGenerator(build_wavernn(hp), dtype=torch.float32)
        >>> pieces = list(fast.generate_stream(torch.zeros(80, 100), generator=torch.Generator().manual_seed(0)))
        >>> sum(len(p) for p in pieces)
        19800
        """
        num_mels = self.hparams.num_mels
        if mel.dim() != 2 or mel.size(0) != num_mels:
            raise ValueError(f"mel must have shape ({num_mels}, T), got {tuple(mel.shape)}")
        if mel.size(1) == 0:
            raise ValueError("Cannot vocode an empty mel spectrogram (0 frames); at least 1 frame is needed.")
        length = (mel.size(1) - 1) * self.hparams.hop_length
        if length == 0:
            return
        rate = self.hparams.sample_rate if sample_rate is None else sample_rate
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                folds = self.plan_stream(length, rate)
                cond = self._conditioning(mel, length)
                steps = max(f.length for f in folds)
                assembler = _Assembler(self, length, self.stream_crossfade)
                done_folds = 0
                for labels, done in self._loop([cond], steps, folds, progress_callback, generator):
                    pieces = []
                    while done_folds < len(folds) and folds[done_folds].length <= done:
                        fold = folds[done_folds]
                        column = labels[: fold.length, done_folds].to("cpu")
                        values = self._label_values.cpu()[column].double().numpy()
                        pieces.append(assembler.add(values, fold, last=done_folds == len(folds) - 1))
                        done_folds += 1
                    if pieces:
                        yield np.concatenate(pieces)
        finally:
            self.model.train(was_training)

    def plan_stream(self, length: int, sample_rate: int | None = None) -> list[_Fold]:
        """Folds (one batch row each, in output order) for :meth:`generate_stream` of ``length`` samples."""
        rate = self.hparams.sample_rate if sample_rate is None else sample_rate
        best: tuple[float, list[_Fold]] | None = None
        for rows in (self.min_batch, self.min_batch * 4 // 3, self.min_batch * 2):
            if length > rows * self.target:
                continue  # cannot fit at any first step (folds are at most ``target`` long)
            seconds = self.step_seconds(rows) * self.stream_margin
            folds = self._stream_folds(length, rows, rate * seconds)
            first = folds[0].length * seconds
            if len(folds) <= rows and (best is None or first < best[0]):
                best = (first, folds)
        if best is None:  # very long audio: folds of ``target``, as many as it takes, in one batch
            return self._stream_folds(length, 1, float(length))
        return best[1]

    def _stream_folds(self, length: int, rows: int, samples_per_step: float) -> list[_Fold]:
        w_max, x = self.stream_warmup, self.stream_crossfade
        min_stride = max(x, 32)

        def build(first_step: int, max_folds: int = rows) -> list[_Fold] | None:
            folds: list[_Fold] = []
            begin = 0
            while len(folds) < max_folds:
                warmup = min(w_max, begin)
                stride = min(self.target, int(first_step + begin / samples_per_step) - warmup - x)
                if stride < min_stride:
                    return None
                start = begin - warmup
                if begin + stride + x >= length:
                    folds.append(_Fold(0, start, length - start, warmup))
                    return folds
                folds.append(_Fold(0, start, warmup + stride + x, warmup))
                begin += stride
            return None

        low, high = min_stride + x, length + x
        plan = build(high)
        if plan is None:  # too long for the rows even at full length: folds of ``target``, one batch
            plan = build(high, max_folds=length)
            assert plan is not None
            return plan
        while low < high:  # the smallest first step that works (more room never needs more folds)
            middle = (low + high) // 2
            candidate = build(middle)
            if candidate is None:
                low = middle + 1
            else:
                high, plan = middle, candidate
        return plan

    def step_seconds(self, batch: int) -> float:
        """Measured seconds per loop step at ``batch`` rows (median of four blocks on silence, cached)."""
        if batch not in self._step_seconds:
            mel = torch.zeros(self.hparams.num_mels, 2, device=self.device)
            with torch.inference_mode():
                cond = self._conditioning(mel, self.hparams.hop_length)
                steps = 5 * self.block
                folds = [_Fold(0, 0, self.hparams.hop_length, 0)] * batch
                loop = self._loop([cond], steps, folds, None, torch.Generator(self.device).manual_seed(0))
                next(loop)  # the first block pays for lazy initialisation
                block_seconds = []
                start = time.perf_counter()
                for _ in loop:
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    now = time.perf_counter()
                    block_seconds.append(now - start)
                    start = now
                self._step_seconds[batch] = float(np.median(block_seconds)) / self.block
        return self._step_seconds[batch]

    # -- Internals ---------------------------------------------------------------------------------
    def _conditioning(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        """Upsampled ``[mel, aux]`` for the first ``length`` samples: ``(length, num_mels + res_out)``."""
        model = self.model
        mel = mel.to(device=self.device, dtype=torch.float32).unsqueeze(0)
        mel = F.pad(mel, (model.pad, model.pad))  # zero frames for the ResNet context, as in RTVC
        up_mel, aux = upsample_conditioning(model.upsample, mel)  # (1, T·hop, mels), (1, T·hop, res_out)
        return torch.cat([up_mel[0, :length], aux[0, :length]], dim=1)

    def _plan(self, lengths: list[int]) -> tuple[int, list[_Fold]]:
        """Loop length and the folds of every sentence (layout: docs/vocoder.md)."""
        w, x = self.warmup, self.crossfade
        stride = self.target
        total = sum(lengths)
        if total / stride < self.min_batch:
            # Short audio: more, shorter folds cost little more per step (the weights are read anyway).
            stride = min(stride, max(self.min_target, x, math.ceil(total / self.min_batch)))
        if len(lengths) == 1:
            n = max(1, math.ceil((lengths[0] - x) / stride))
            stride = max(x, math.ceil((lengths[0] - x) / n)) if n > 1 else stride
        folds: list[_Fold] = []
        steps = 0
        for j, total in enumerate(lengths):
            n = max(1, math.ceil((total - x) / stride))
            for k in range(n):
                begin = k * stride  # first output sample of the fold (crossfade with the previous one)
                start = max(0, begin - w)
                end = total if k == n - 1 else min(total, begin + stride + x)
                folds.append(_Fold(j, start, end - start, begin - start))
                steps = max(steps, end - start)
        return steps, folds

    def _run(self, *loop_args: Any) -> torch.Tensor:
        """Run :meth:`_loop` (same arguments) to the end: the labels ``(B, steps)``."""
        loop = self._loop(*loop_args)
        labels = None
        for labels, _ in loop:
            pass
        assert labels is not None
        return labels.t().cpu()  # (B, steps)

    def _loop(
        self,
        conds: list[torch.Tensor],
        steps: int,
        folds: list[_Fold],
        progress_callback: ProgressCallback | None,
        generator: torch.Generator | None,
    ) -> Iterator[tuple[torch.Tensor, int]]:
        """Yields ``(labels (steps, B), steps done)`` after every block; row ``b`` runs fold ``b``."""
        device, dt = self.device, self.dtype
        batch = len(folds)
        rnn = self.model.rnn_dims
        # All conditioning rows in one table, plus a zero row that padding steps point to.
        offsets = np.cumsum([0] + [c.size(0) for c in conds])
        table = torch.cat(conds + [conds[0].new_zeros(1, conds[0].size(1))])  # (ΣL + 1, C)
        zero_row = table.size(0) - 1
        t = torch.arange(steps, device=device)
        starts = torch.tensor([offsets[f.sentence] + f.start for f in folds], device=device)
        valid = torch.tensor([f.length for f in folds], device=device)
        index = torch.where(t[None, :] < valid[:, None], starts[:, None] + t[None, :], zero_row)  # (B, steps)
        index = index.t().contiguous()  # (steps, B)

        s1, s2, s3, _ = self._sizes
        h1 = torch.zeros(batch, rnn, device=device)
        h2 = torch.zeros(batch, rnn, device=device)
        x = torch.zeros(batch, 1, device=device)
        labels = torch.empty(steps, batch, dtype=torch.int64, device=device)
        x_term = self._x_term.unsqueeze(0)  # (1, Σ)
        h1b, h2b = h1.to(dt), h2.to(dt)
        lv = self._label_values.unsqueeze(1)  # (n_classes, 1)
        top = self.model.n_classes - 1
        rng_device = generator.device if generator is not None else device  # a CPU generator may drive CUDA
        hh1, hh2, ih2, fc1, fc2, fc3 = self._hh1, self._hh2, self._ih2, self._fc1, self._fc2, self._fc3
        start_time = time.perf_counter()
        for b0 in range(0, steps, self.block):
            k = min(self.block, steps - b0)
            cond = table[index[b0 : b0 + k].reshape(-1)]  # (k·B, C)
            pre = self._cond(cond.to(dt)).view(k, batch, -1)  # (k, B, Σ sizes) in dt
            g_pre = pre[..., : s1 + s2 + s3].float()  # terms that also get the previous sample's contribution
            f2_pre = pre[..., s1 + s2 + s3 :].contiguous()  # fc2's conditioning term, in dt
            # One uniform number per fold and step: inverse-CDF sampling of the categorical posterior.
            uniform = torch.rand(k, batch, 1, generator=generator, device=rng_device).to(device)
            for i in range(k):
                g = torch.addcmul(g_pre[i], x, x_term)  # (B, 3r + 3r + fc), float32
                gh1 = hh1(h1b).float()  # recurrent products in dt, gate math in float32
                gh2 = hh2(h2b).float()
                # GRU 1: gates from the precomputed input terms and the recurrent product
                rz = gh1[:, : 2 * rnn].add_(g[:, : 2 * rnn]).sigmoid_()
                n = _tanh_(torch.addcmul(g[:, 2 * rnn : s1], rz[:, :rnn], gh1[:, 2 * rnn :]))
                h1 = torch.lerp(n, h1, rz[:, rnn:])
                h1b = h1.to(dt)
                g2 = ih2(h1b).float().add_(g[:, s1 : s1 + s2])
                rz = gh2[:, : 2 * rnn].add_(g2[:, : 2 * rnn]).sigmoid_()
                n = _tanh_(torch.addcmul(g2[:, 2 * rnn :], rz[:, :rnn], gh2[:, 2 * rnn :]))
                h2 = torch.lerp(n, h2, rz[:, rnn:])
                h2b = h2.to(dt)
                # fc1 -> fc2 -> fc3 stay in dt, with the conditioning terms added inside the products
                f = torch.relu_(fc1.add(torch.add(h1, h2).to(dt), g[:, s1 + s2 :].to(dt)))
                f = torch.relu_(fc2.add(f, f2_pre[i]))
                logits = fc3(f)
                cdf = torch.cumsum(torch.softmax(logits, dim=1, dtype=torch.float32), dim=1)  # (B, n_classes)
                label = torch.searchsorted(cdf, uniform[i]).clamp_max_(top)  # (B, 1); rounding may pass the top
                labels[b0 + i] = label[:, 0]
                x = lv[label[:, 0]]  # (B, 1)
                step = b0 + i
                if progress_callback is not None and step % 100 == 0:
                    rate = (step + 1) * batch / max(time.perf_counter() - start_time, 1e-9) / 1000
                    progress_callback(step, steps, batch, rate)
            # Damaged weights give NaN logits or hidden states at every step, and inverse-CDF
            # sampling turns NaN into a valid label: without this check they would become "audio".
            # Once per block (the hidden states keep a NaN), so the loop pays for one reduction in k steps.
            if not (bool(torch.isfinite(logits).all()) and bool(torch.isfinite(h2).all())):
                raise NonFiniteOutputError(non_finite_message("vocoder", "samples", None))
            if b0 + k < steps:
                yield labels, b0 + k
        if progress_callback is not None:
            rate = steps * batch / max(time.perf_counter() - start_time, 1e-9) / 1000
            progress_callback(steps, steps, batch, rate)
        yield labels, steps

    def _assemble(self, values: np.ndarray, folds: list[tuple[int, _Fold]], length: int) -> np.ndarray:
        """Decode each fold, de-emphasise it from its own start, crossfade neighbours, fade out the end."""
        assembler = _Assembler(self, length)
        pieces = [assembler.add(values[b], fold, last=k == len(folds) - 1) for k, (b, fold) in enumerate(folds)]
        return np.concatenate(pieces) if pieces else np.zeros(length, dtype=np.float32)


class _Assembler:
    """Turns the folds of one sentence, in output order, into final audio as they complete."""

    def __init__(self, owner: FastWaveRNNGenerator, length: int, crossfade: int | None = None) -> None:
        self.hparams, self.n_classes = owner.hparams, owner.model.n_classes
        self.crossfade_len = owner.crossfade if crossfade is None else crossfade
        self.length = length
        self.position = 0  # samples returned so far; the held-back tail starts here
        self.tail: np.ndarray | None = None  # the previous fold's last samples, unmixed
        self.previous: tuple[int, np.ndarray] | None = None  # (first sample, de-emphasised samples) of the last fold
        fade = min(self.hparams.fade_out_samples, length)
        self.fade_from = length - fade
        self.fade = np.linspace(1.0, 0.0, fade) if fade > 0 else np.zeros(0)

    def add(self, values: np.ndarray, fold: _Fold, last: bool) -> np.ndarray:
        """Final float32 samples made available by ``fold`` (its label values); ``last`` flushes the tail."""
        hp = self.hparams
        y = np.asarray(values[: fold.length], dtype=np.float64)
        if hp.mu_law:
            y = decode_mu_law(y, self.n_classes, from_labels=False)
        if hp.apply_preemphasis:
            y = inv_preemphasis(y, hp.preemphasis)
            if self.previous is not None and self.previous[0] < fold.start <= self.previous[0] + len(self.previous[1]):
                # The filter's state before this fold is the previous fold's output there: continue from it
                # (a linear filter: add the decaying response to that state) instead of from silence.
                state = self.previous[1][fold.start - 1 - self.previous[0]]
                y = y + state * hp.preemphasis ** np.arange(1, len(y) + 1)
            self.previous = (fold.start, y)
        y = y[fold.keep_from :]  # drop the warm-up
        begin = fold.start + fold.keep_from
        if begin != self.position:
            raise ValueError(f"fold output starts at {begin}, expected {self.position}: folds must come in order")
        mixed = y
        if self.tail is not None:
            n = min(len(self.tail), len(y))
            mixed = y.copy()
            mixed[:n] = _crossfade(self.tail[:n], y[:n])
        if last or self.crossfade_len == 0:
            final, self.tail = mixed, None
        else:
            keep = min(self.crossfade_len, len(y))
            final, self.tail = mixed[: len(y) - keep], y[len(y) - keep :]
        end = self.position + len(final)
        if end > self.fade_from:
            first = max(self.position, self.fade_from)
            final = final.copy()
            final[first - self.position :] *= self.fade[first - self.fade_from : end - self.fade_from]
        self.position = end
        return final.astype(np.float32)


def _crossfade(outgoing: np.ndarray, incoming: np.ndarray) -> np.ndarray:
    """Mix ``a`` and ``b`` over their common span with a linear ramp, the gain corrected for their
    correlation so that neither identical nor uncorrelated signals dip.

    >>> _crossfade(np.ones(5), np.ones(5)).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    n = len(outgoing)
    if n == 0:
        return outgoing.copy()
    w = (np.arange(n, dtype=np.float64) + 0.5) / n
    energy = math.sqrt(float(np.dot(outgoing, outgoing)) * float(np.dot(incoming, incoming)))
    rho = float(np.dot(outgoing, incoming)) / energy if energy > 0 else 1.0
    rho = min(max(rho, 0.0), 1.0)
    gain = 1.0 / np.sqrt(w * w + (1 - w) * (1 - w) + 2 * rho * w * (1 - w))
    return gain * ((1 - w) * outgoing + w * incoming)
