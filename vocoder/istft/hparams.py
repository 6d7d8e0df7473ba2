"""Hyperparameters of the iSTFT vocoder; the signal contract itself is :data:`utils.signal_contract.SIGNAL`."""

from __future__ import annotations

from dataclasses import dataclass

from utils.hparams import HParams
from utils.signal_contract import SIGNAL, MelSignal


@dataclass(frozen=True)
class ISTFTHParams(HParams):
    """Sizes, loss weights and schedule of the frame-rate vocoder.

    The STFT geometry, mel bands and dB mapping are not repeated here: they are the shared contract
    (:attr:`signal`), so the vocoder inverts exactly the mel the synthesizers predict.

    Examples
    --------
    >>> hp = ISTFTHParams()
    >>> hp.channels, hp.num_blocks, hp.n_bins, hp.signal.hop_size
    (256, 8, 401, 200)
    >>> hp.receptive_frames  # frames of context on each side of an output frame
    27
    >>> hp.adversarial  # plain regression training unless w_adversarial > 0
    False
    >>> hp.speaker_consistency  # no speaker encoder in the loss unless w_speaker > 0
    False
    """

    # Backbone
    channels: int = 256
    num_blocks: int = 8
    kernel_size: int = 7
    expansion: int = 3
    layer_scale_init: float = 0.1  # small residual branches at start: the amplitude prior dominates early
    input_kernel_size: int = 7

    # Training data
    segment_frames: int = 80  # output frames per training example (hop-sized steps)
    batch_size: int = 16
    # With --gta_dir: the share of batches fed the synthesizer's mels; the others are copy-synthesis
    # batches of the same segments (so that the vocoder keeps working on recorded speech's mels).
    gta_batch_fraction: float = 1.0

    # Optimiser and schedule (AdamW, linear warm-up, cosine decay to lr * lr_min_ratio)
    learning_rate: float = 8e-4
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.8, 0.99)
    warmup_steps: int = 300
    decay_steps: int = 30_000
    lr_min_ratio: float = 0.05
    clip_grad_norm: float = 10.0

    # Loss weights (APNet-like proportions)
    w_amplitude: float = 45.0
    w_phase_ip: float = 100.0
    w_phase_gd: float = 100.0
    w_phase_iaf: float = 100.0
    w_consistency: float = 20.0
    w_mel: float = 45.0
    w_multi_resolution: float = 5.0
    mr_resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (256, 64, 256))

    # Optional adversarial fine-tuning (vocoder.istft.discriminator): off while w_adversarial is 0.
    # The discriminator looks at the mr_resolutions spectrograms of the output.
    w_adversarial: float = 0.0
    w_feature_matching: float = 2.0
    discriminator_channels: int = 16

    # Optional speaker consistency (vocoder.istft.speaker_loss): 1 - cosine of the GE2E embeddings
    # of output and target segments, through the frozen speaker encoder; off while 0.
    w_speaker: float = 0.0

    @property
    def signal(self) -> MelSignal:
        """The signal settings (rate, STFT geometry, mel bands, dB mapping)."""
        return SIGNAL

    @property
    def n_bins(self) -> int:
        """Frequency bins of the predicted spectrum (``n_fft // 2 + 1``)."""
        return self.signal.n_fft // 2 + 1

    @property
    def adversarial(self) -> bool:
        """Whether training adds the spectrogram discriminator's losses."""
        return self.w_adversarial > 0

    @property
    def speaker_consistency(self) -> bool:
        """Whether training adds the speaker-consistency loss (it needs a speaker encoder)."""
        return self.w_speaker > 0

    @property
    def receptive_frames(self) -> int:
        """How many mel frames on each side influence one output frame (the input conv and the blocks)."""
        return self.input_kernel_size // 2 + self.num_blocks * (self.kernel_size // 2)

    def __post_init__(self) -> None:
        if self.channels < 1 or self.num_blocks < 0 or self.expansion < 1:
            raise ValueError("channels and expansion must be positive and num_blocks non-negative")
        if self.kernel_size % 2 == 0 or self.input_kernel_size % 2 == 0:
            raise ValueError("kernel sizes must be odd so that the convolutions stay centred")
        if not 0.0 <= self.gta_batch_fraction <= 1.0:
            raise ValueError("gta_batch_fraction must be between 0 and 1")
        if self.w_speaker < 0:
            raise ValueError("w_speaker must be non-negative")
        if self.w_adversarial < 0 or self.w_feature_matching < 0 or self.discriminator_channels < 1:
            raise ValueError("adversarial weights must be non-negative and discriminator_channels positive")
        if self.segment_frames < 2 or self.batch_size < 1:
            raise ValueError("segment_frames must be at least 2 and batch_size at least 1")
