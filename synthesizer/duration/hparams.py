"""Hyperparameters of the phoneme duration synthesizer (saved in its checkpoints); its mel format is
:data:`utils.signal_contract.SIGNAL`, not repeated here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from synthesizer.hparams import SynthesizerHParams, _cleaner_names
from utils.hparams import MAX_MELS, Check, HParams, OneOf, Range, Rule, positive_float, positive_int, width
from utils.signal_contract import SIGNAL


#: Bounds of ``max_frames`` (and of the training clips' ``max_mel_frames``): 1 s and 6 min 15 s of mel frames.
MIN_FRAMES, MAX_FRAMES = SIGNAL.sample_rate // SIGNAL.hop_size, 30_000


def _odd(value: int, _hparams: "DurationHParams") -> str | None:
    # Odd kernels with padding k // 2 keep every sequence's length.
    return None if value % 2 == 1 else "an odd number"


def _conv_stack_rules(name: str) -> dict[str, Rule]:
    return {f"{name}_channels": Range(1, 4096, integer=True), f"{name}_layers": Range(1, 64, integer=True),
            f"{name}_kernel": Check(_odd)}


@dataclass(frozen=True)
class DurationHParams(HParams):
    """Sizes, training schedule and inference settings.

    >>> hp = DurationHParams()
    >>> hp.num_mels, hp.encoder_channels, hp.mel.hop_size
    (80, 192, 200)
    """

    num_mels: int = SIGNAL.num_mels
    speaker_embedding_size: int = 256
    cleaner_names: tuple[str, ...] = ("english_cleaners",)

    # Text encoder: residual convolutions over phonemes
    encoder_channels: int = 192
    encoder_layers: int = 6
    encoder_kernel: int = 5
    dropout: float = 0.1
    # Duration predictor (on the detached encoder output)
    duration_channels: int = 192
    duration_layers: int = 2
    duration_kernel: int = 3
    # Frame decoder: ConvNeXt blocks at frame rate
    decoder_channels: int = 192
    decoder_layers: int = 8
    decoder_kernel: int = 7
    decoder_expansion: int = 3
    # Variance adaptor (FastSpeech 2): per-phoneme log F0 and energy, predicted from the detached
    # encoder output and the speaker, added to the encoder states the decoder reads. Off in older files.
    variance_adaptor: bool = False
    variance_channels: int = 192
    variance_layers: int = 2
    variance_kernel: int = 3
    # Flow-matching post-net (0 layers: none, the regression decoder's mel is the output).
    flow_layers: int = 0
    flow_channels: int = 192
    flow_kernel: int = 7
    flow_expansion: int = 3
    flow_noise_scale: float = 0.5  # std of the noise the flow starts from, in mel units (about the residual's)
    flow_sigma_min: float = 1e-4

    # Training
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    lr_decay_half_life: int = 20_000  # steps; the rate halves every this many steps after warm-up
    weight_decay: float = 0.01
    clip_grad_norm: float = 1.0
    batch_frames: int = 6000  # mel frames per batch (batches are built from similar lengths)
    max_batch_items: int = 48
    max_mel_frames: int = 2000
    prior_loss_weight: float = 1.0
    duration_loss_weight: float = 1.0
    # Beta-binomial diagonal prior added to the alignment search early on (RAD-TTS style), fading to 0.
    alignment_prior_steps: int = 3000
    eval_interval: int = 500
    variance_loss_weight: float = 0.5
    # Exponential moving average of the weights (0: none); checkpoints keep it as "ema_state" and
    # `python -m utils.export_model --ema` ships it.
    ema_decay: float = 0.0
    flow_loss_weight: float = 1.0

    # Inference
    min_phoneme_frames: int = 1  # frames given to each non-blank symbol at the least
    max_frames: int = 3000
    flow_steps: int = 6  # Euler steps of the flow post-net
    flow_temperature: float = 0.667  # scales the starting noise: 0 gives the flow's mean path

    RULES: ClassVar[Mapping[str, Rule]] = {
        "num_mels": Range(1, MAX_MELS, integer=True),
        "speaker_embedding_size": width(),
        "cleaner_names": OneOf(_cleaner_names),
        **_conv_stack_rules("encoder"),
        "dropout": Range(0, 1, high_inclusive=False),
        **_conv_stack_rules("duration"),
        **_conv_stack_rules("decoder"),
        "decoder_expansion": Range(1, 16, integer=True),
        **_conv_stack_rules("variance"),
        "flow_layers": Range(0, 64, integer=True),
        "flow_channels": Range(1, 4096, integer=True),
        "flow_kernel": Check(_odd),
        "flow_expansion": Range(1, 16, integer=True),
        "flow_noise_scale": Range(0, 10, low_inclusive=False),
        "flow_sigma_min": Range(0, 0.1),
        "learning_rate": positive_float(),
        "warmup_steps": positive_int(1),
        "lr_decay_half_life": positive_int(1),
        "weight_decay": Range(0, 1),
        "clip_grad_norm": positive_float(),
        "batch_frames": Range(1, 100 * MAX_FRAMES, integer=True),
        "max_batch_items": Range(1, 4096, integer=True),
        "max_mel_frames": Range(1, MAX_FRAMES, integer=True),
        "prior_loss_weight": Range(0),
        "duration_loss_weight": Range(0),
        "alignment_prior_steps": positive_int(0),
        "eval_interval": positive_int(),
        "variance_loss_weight": Range(0, 100),
        "ema_decay": Range(0, 1, high_inclusive=False),
        "flow_loss_weight": Range(0, 100),
        "min_phoneme_frames": positive_int(0),
        # At least 1 s, at most 6 min 15 s: a file with max_frames=1 spoke 0 s, and the frame path of a
        # sentence is (symbols x max_frames) floats.
        "max_frames": Range(MIN_FRAMES, MAX_FRAMES, integer=True),
        "flow_steps": Range(1, 100, integer=True),
        "flow_temperature": Range(0, 2),
    }

    @property
    def mel(self) -> SynthesizerHParams:
        """The signal contract: sample rate, hop, mel bands and range of the mels this model makes."""
        return SynthesizerHParams(num_mels=self.num_mels)
