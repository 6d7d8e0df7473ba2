"""The phoneme duration synthesizer network.

::

    ids ─ embedding ─(+ speaker)─ conv encoder ─┬─ mean head ──────── μ      (B, 80, S)
                                                ├─ duration head ──── log(1 + frames)  (B, S)
                                                ├─ variance head ──── log F0, energy   (B, 2, S)   (optional)
                                                └─ (+ pitch, energy) expand by durations ─(+ speaker)─
                                                   ConvNeXt decoder ─ + μ ─ mel ─ flow post-net (optional) ─ mel

In training the durations come from monotonic alignment search of the target mel against μ
(:func:`synthesizer.duration.alignment.maximum_path`), pitch and energy from the target averaged over
each phoneme's frames; at inference all three come from their heads. The flow post-net
(:mod:`synthesizer.duration.flow`) samples detail around the decoder's mel in a few Euler steps.
All layers are convolutions, so a sentence costs one pass per flow step, not one pass per frame.

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

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from synthesizer.base import mel_level_offset
from synthesizer.duration.alignment import beta_binomial_log_prior, maximum_path
from synthesizer.duration.flow import FlowPostNet
from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.layers import ChannelNorm, ConvBlock, ConvNeXtBlock, sequence_mask
from utils.signal_contract import SIGNAL

# Log F0 enters the network centred and scaled to about unit spread across voices.
LOG_F0_CENTRE = math.log(150.0)
LOG_F0_SCALE = 0.4


def pitch_shift_offset(semitones: float) -> float:
    """The change of the normalised per-phoneme pitch that raises F0 by ``semitones``."""
    return semitones * math.log(2.0) / 12.0 / LOG_F0_SCALE


def energy_offset(factor: float) -> float:
    """The change of a normalised mel (in mel units) that scales amplitude by ``factor``."""
    return mel_level_offset(factor, SIGNAL.max_abs_value, SIGNAL.min_level_db)


@dataclass(frozen=True)
class Prosody:
    """Inference-time prosody controls: durations ÷ ``speaking_rate``, F0 × 2^(semitones/12), amplitude × energy."""

    speaking_rate: float = 1.0
    pitch_shift: float = 0.0  # semitones
    energy: float = 1.0


def predict(states: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor, project: nn.Module,
            speaker_projection: nn.Module, layers: nn.ModuleList, head: nn.Module) -> torch.Tensor:
    """A per-symbol predictor's ``(B, K, S)`` output from encoder states ``(B, C, S)``. Its input is detached:
    it learns from the alignment and the targets, and does not shape the encoder."""
    x = (project(states.detach()) + speaker_projection(speaker)[:, :, None]) * mask
    for block in layers:
        x = block(x, mask)
    return head(x) * mask


@dataclass
class SynthesizerOutput:
    """Model outputs; ``path`` is the ``(B, S, T)`` symbol-to-frame alignment used."""

    mel: torch.Tensor  # (B, 80, T): the regression decoder's in training, the flow's sample at inference
    means: torch.Tensor  # (B, 80, T): μ expanded along the path
    log_durations: torch.Tensor  # (B, S): the duration head's prediction
    durations: torch.Tensor  # (B, S): frames per symbol along the path
    path: torch.Tensor  # (B, S, T)
    frame_lengths: torch.Tensor  # (B,)
    variance: torch.Tensor | None = None  # (B, 2, S): predicted normalised log F0 and energy per symbol
    variance_target: torch.Tensor | None = None  # (B, 2, S): the same from the target (training)
    flow_velocity: torch.Tensor | None = None  # (B, 80, T): the flow's predicted velocity (training)
    flow_goal: torch.Tensor | None = None  # (B, 80, T): its target (training)
    decoder_mel: torch.Tensor | None = None  # (B, 80, T): the regression decoder's mel before the flow (inference)


class DurationSynthesizerModel(nn.Module):
    """Text encoder, duration head, optional variance adaptor, frame decoder, optional flow post-net."""

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
        if hparams.variance_adaptor:
            v = hparams.variance_channels
            self.variance_in = nn.Conv1d(c, v, 1)
            self.variance_speaker = nn.Linear(e, v)
            self.variance_layers = nn.ModuleList(ConvBlock(v, hparams.variance_kernel, hparams.dropout)
                                                 for _ in range(hparams.variance_layers))
            self.variance_head = nn.Conv1d(v, 2, 1)
            self.variance_embedding = nn.Conv1d(2, c, 3, padding=1)
            nn.init.zeros_(self.variance_embedding.weight)  # a model started from one without it is unchanged
            nn.init.zeros_(self.variance_embedding.bias)
        k = hparams.decoder_channels
        self.decoder_in = nn.Conv1d(c, k, 1)
        self.decoder = nn.ModuleList(ConvNeXtBlock(k, hparams.decoder_kernel, hparams.decoder_expansion, e)
                                     for _ in range(hparams.decoder_layers))
        self.decoder_norm = ChannelNorm(k)
        self.decoder_out = nn.Conv1d(k, hparams.num_mels, 1)
        nn.init.zeros_(self.decoder_out.weight)  # starts as "mel = μ", so early training shapes μ
        nn.init.zeros_(self.decoder_out.bias)
        self.flow = FlowPostNet(hparams) if hparams.flow_layers > 0 else None
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
        log_durations = predict(h, speaker, mask, self.duration_in, self.duration_speaker, self.duration_layers,
                                self.duration_head)[:, 0]
        return h, means, log_durations, mask

    def predict_variance(self, states: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, 2, S)`` normalised log F0 and energy per symbol, from the detached encoder states."""
        return predict(states, speaker, mask, self.variance_in, self.variance_speaker, self.variance_layers,
                       self.variance_head)

    def add_variance(self, states: torch.Tensor, variance: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return states + self.variance_embedding(variance * mask) * mask

    def decode(self, states: torch.Tensor, means: torch.Tensor, speaker: torch.Tensor,
               frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel ``(B, 80, T)`` and the decoder's last features ``(B, K, T)`` from frame-rate states and means."""
        x = self.decoder_in(states) * frame_mask
        for block in self.decoder:
            x = block(x, speaker, frame_mask)
        hidden = self.decoder_norm(x)
        return (means + self.decoder_out(hidden)) * frame_mask, hidden * frame_mask

    @staticmethod
    def alignment_score(means: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """``(B, S, T)`` Gaussian log-likelihood (unit variance, per mel band) of each frame under each symbol."""
        # -0.5·|y - μ|² expanded so that no (B, S, T, 80) tensor is built.
        cross = torch.einsum("bcs,bct->bst", means, mels)
        return cross - 0.5 * (means**2).sum(1)[:, :, None] - 0.5 * (mels**2).sum(1)[:, None, :]

    @staticmethod
    def frame_variance(mels: torch.Tensor, log_f0: torch.Tensor | None) -> torch.Tensor:
        """``(B, 2, T)`` normalised log F0 (0 when unknown) and energy (mean over mel bands) per frame."""
        energy = mels.mean(1)  # (B, T)
        pitch = torch.zeros_like(energy) if log_f0 is None else (log_f0 - LOG_F0_CENTRE) / LOG_F0_SCALE
        return torch.stack([pitch, energy], dim=1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor, mels: torch.Tensor,
                frame_lengths: torch.Tensor, prior_weight: float = 0.0,
                log_f0: torch.Tensor | None = None) -> SynthesizerOutput:
        """Teacher-forced pass: align ``mels`` ``(B, 80, T)`` to the text, then decode along that path.

        ``log_f0`` ``(B, T)`` (continuous log F0 per frame) is what the variance adaptor learns.
        """
        output, _, _ = self._teacher_forced(ids, lengths, speaker, mels, frame_lengths, prior_weight, log_f0)
        return output

    @torch.no_grad()
    def ground_truth_aligned(self, ids: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor,
                             mels: torch.Tensor, frame_lengths: torch.Tensor, log_f0: torch.Tensor | None = None,
                             generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, 80, T)`` mels as inference makes them (flow sample included) along the real mel's timing.

        What a vocoder fine-tuned on this synthesizer's output trains on: the recording's alignment,
        pitch and energy, the synthesizer's own decoder and post-net.
        """
        output, hidden, frame_mask = self._teacher_forced(ids, lengths, speaker, mels, frame_lengths, 0.0, log_f0)
        if self.flow is None:
            return output.mel
        return self.flow.sample(output.mel, hidden, speaker, frame_mask, self.hparams.flow_steps,
                                self.hparams.flow_temperature, generator)

    def _teacher_forced(self, ids: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor, mels: torch.Tensor,
                        frame_lengths: torch.Tensor, prior_weight: float,
                        log_f0: torch.Tensor | None) -> tuple[SynthesizerOutput, torch.Tensor, torch.Tensor]:
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
        path = path.to(states.dtype)
        frame_mask = sequence_mask(frame_lengths, mels.shape[2])[:, None, :].to(states.dtype)
        variance = variance_target = None
        if self.hparams.variance_adaptor:
            with torch.no_grad():
                frames = self.frame_variance(mels, log_f0) * frame_mask  # (B, 2, T)
                variance_target = torch.bmm(frames, path.transpose(1, 2)) / path.sum(2)[:, None, :].clamp(min=1)
            variance = self.predict_variance(states, speaker, mask)
            states = self.add_variance(states, variance_target, mask)
        expanded_means = torch.bmm(means, path)  # (B, 80, T)
        mel, hidden = self.decode(torch.bmm(states, path), expanded_means, speaker, frame_mask)
        velocity = goal = None
        if self.flow is not None:
            velocity, goal = self.flow.loss_terms(mels, mel.detach(), hidden.detach(), speaker, frame_mask)
        output = SynthesizerOutput(mel, expanded_means, log_durations, path.sum(2), path, frame_lengths,
                                   variance, variance_target, velocity, goal)
        return output, hidden, frame_mask

    @torch.no_grad()
    def infer(self, ids: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor,
              prosody: Prosody = Prosody(), generator: torch.Generator | None = None,
              durations: torch.Tensor | None = None,
              variance_override: torch.Tensor | None = None,
              flow_temperature: float | None = None) -> SynthesizerOutput:
        """Free-running synthesis with the ``prosody`` controls; ``generator`` seeds the flow's noise.

        ``durations`` ``(B, S)`` (frames per symbol) replace the predicted ones (voice conversion: the
        source's timing; ``speaking_rate`` is then not applied); ``variance_override`` ``(B, 2, S)`` replaces the
        predicted normalised log F0 and energy where it is not NaN (the prosody offsets still apply);
        ``flow_temperature`` replaces the stored one.
        """
        states, means, log_durations, mask = self.encode(ids, lengths, speaker)
        if durations is None:
            durations = torch.clamp(torch.exp(log_durations) - 1, min=0) / prosody.speaking_rate  # (B, S)
            durations = torch.round(durations) * mask[:, 0]
            nonblank = (ids != 0) & mask[:, 0].bool()
            durations = torch.where(nonblank, durations.clamp(min=self.hparams.min_phoneme_frames), durations)
        else:
            durations = durations.to(states.dtype) * mask[:, 0]
        frame_lengths = durations.sum(1).long().clamp(min=1, max=self.hparams.max_frames)  # (B,)
        path = durations_to_path(durations.long(), int(frame_lengths.max())).to(states.dtype)  # (B, S, T)
        frame_mask = sequence_mask(frame_lengths)[:, None, :].to(states.dtype)
        variance = None
        if self.hparams.variance_adaptor:
            variance = self.predict_variance(states, speaker, mask)
            if variance_override is not None:
                variance = torch.where(torch.isnan(variance_override), variance, variance_override.to(variance.dtype))
            offset = torch.tensor([pitch_shift_offset(prosody.pitch_shift), 0.0], dtype=states.dtype,
                                  device=states.device)
            states = self.add_variance(states, variance + offset[None, :, None], mask)
        expanded_means = torch.bmm(means, path)
        decoder_mel, hidden = self.decode(torch.bmm(states, path), expanded_means, speaker, frame_mask)
        mel = decoder_mel
        if self.flow is not None:
            temperature = self.hparams.flow_temperature if flow_temperature is None else flow_temperature
            mel = self.flow.sample(decoder_mel, hidden, speaker, frame_mask, self.hparams.flow_steps, temperature,
                                   generator)
        if prosody.energy != 1.0:
            # A level shift of the output, exact in dB: the decoder's response to its energy input is learnt
            # and measured weaker than asked (model card), so the input keeps the predicted energy.
            limit = SIGNAL.max_abs_value
            mel = (mel + energy_offset(prosody.energy)).clamp(-limit, limit) * frame_mask
        return SynthesizerOutput(mel, expanded_means, log_durations, durations, path, frame_lengths, variance,
                                 decoder_mel=decoder_mel)


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
