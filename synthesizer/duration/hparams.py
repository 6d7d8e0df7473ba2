"""Hyperparameters of the phoneme duration synthesizer (saved in its checkpoints).

The mel format is not repeated here: it is the synthesizer's (:class:`synthesizer.hparams.SynthesizerHParams`),
so Griffin-Lim, the vocoders and the trainers read one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthesizer.hparams import SynthesizerHParams
from utils.hparams import HParams


@dataclass(frozen=True)
class DurationHParams(HParams):
    """Sizes, training schedule and inference settings.

    Examples
    --------
    >>> hp = DurationHParams()
    >>> hp.num_mels, hp.encoder_channels, hp.mel.hop_size
    (80, 192, 200)
    """

    num_mels: int = 80
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

    # Inference
    min_phoneme_frames: int = 1  # frames given to each non-blank symbol at the least
    max_frames: int = 3000

    @property
    def mel(self) -> SynthesizerHParams:
        """The signal contract: sample rate, hop, mel bands and range of the mels this model makes."""
        return SynthesizerHParams(num_mels=self.num_mels)

    def __post_init__(self) -> None:
        for name in ("num_mels", "speaker_embedding_size", "encoder_channels", "encoder_layers", "encoder_kernel",
                     "duration_channels", "duration_layers", "duration_kernel", "decoder_channels",
                     "decoder_layers", "decoder_kernel", "decoder_expansion", "batch_frames", "max_batch_items",
                     "max_mel_frames", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.encoder_kernel % 2 == 0 or self.decoder_kernel % 2 == 0 or self.duration_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd so that sequences keep their length")
