"""Hyperparameters of the iSTFT vocoder; the signal contract itself is :data:`utils.signal_contract.SIGNAL`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from utils.hparams import (
    MAX_FFT,
    MAX_LAYERS,
    Check,
    HParams,
    Range,
    Rule,
    positive_float,
    positive_int,
    probability,
    width,
    layer_count,
)
from utils.signal_contract import SIGNAL, MelSignal


def _odd_kernel(value: int, _hparams: "ISTFTHParams") -> str | None:
    # Odd kernels keep the convolutions centred (padding k // 2 keeps every length).
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LAYERS or value % 2 == 0:
        return f"an odd integer between 1 and {MAX_LAYERS}"
    return None


def _resolutions(value: object, _hparams: "ISTFTHParams") -> str | None:
    # Each (n_fft, hop, window) must describe an STFT torch can run: hop and window within the FFT.
    def fits(triple: object) -> bool:
        return (isinstance(triple, tuple) and len(triple) == 3
                and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_FFT for n in triple)
                and triple[1] <= triple[2] <= triple[0])

    if isinstance(value, tuple) and value and all(fits(triple) for triple in value):
        return None
    return f"a non-empty list of [n_fft, hop, window] with 1 <= hop <= window <= n_fft <= {MAX_FFT}"


#: A loss weight: 0 turns the term off; NaN, infinities and negative weights train nothing useful.
_WEIGHT = Range(low=0)


@dataclass(frozen=True)
class ISTFTHParams(HParams):
    """Sizes, loss weights and schedule of the frame-rate vocoder; the signal is the shared contract.

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

    RULES: ClassVar[Mapping[str, Rule]] = {
        "channels": width(),
        "num_blocks": layer_count(0),
        "kernel_size": Check(_odd_kernel),
        "expansion": Range(1, 16, integer=True),
        "layer_scale_init": Range(),
        "input_kernel_size": Check(_odd_kernel),
        "segment_frames": Range(2, 100_000, integer=True),
        "batch_size": Range(1, 4096, integer=True),
        "gta_batch_fraction": probability(),
        "learning_rate": positive_float(),
        "weight_decay": Range(0, 1),
        "adam_betas": Range(0, 1, high_inclusive=False),
        "warmup_steps": positive_int(0),
        "decay_steps": positive_int(1),
        "lr_min_ratio": probability(),
        "clip_grad_norm": positive_float(),
        "w_amplitude": _WEIGHT,
        "w_phase_ip": _WEIGHT,
        "w_phase_gd": _WEIGHT,
        "w_phase_iaf": _WEIGHT,
        "w_consistency": _WEIGHT,
        "w_mel": _WEIGHT,
        "w_multi_resolution": _WEIGHT,
        "mr_resolutions": Check(_resolutions),
        "w_adversarial": _WEIGHT,
        "w_feature_matching": _WEIGHT,
        "discriminator_channels": Range(1, 1024, integer=True),
        "w_speaker": _WEIGHT,
    }

    @property
    def signal(self) -> MelSignal:
        return SIGNAL

    @property
    def n_bins(self) -> int:
        """Frequency bins of the predicted spectrum (``n_fft // 2 + 1``)."""
        return self.signal.n_fft // 2 + 1

    @property
    def adversarial(self) -> bool:
        return self.w_adversarial > 0

    @property
    def speaker_consistency(self) -> bool:
        return self.w_speaker > 0

    @property
    def receptive_frames(self) -> int:
        """How many mel frames on each side influence one output frame (the input conv and the blocks)."""
        return self.input_kernel_size // 2 + self.num_blocks * (self.kernel_size // 2)
