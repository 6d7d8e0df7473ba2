"""WaveRNN vocoder hyperparameters; defaults are RTVC's ``vocoder/hparams.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from utils.hparams import Check, HParams, OneOf, Range, Rule, positive_float, positive_int, width, layer_count
from utils.signal_contract import SIGNAL, MelSignal


def _check_upsample_factors(factors: Any, hparams: "VocoderHParams") -> str | None:
    # The upsampling network stretches each mel frame to hop_length samples: the factors are that hop.
    if not isinstance(factors, tuple) or not factors or \
            not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in factors):
        return f"a non-empty list of integers of at least 1 whose product is hop_length ({hparams.hop_length})"
    if math.prod(factors) != hparams.hop_length:
        return f"integers whose product is hop_length ({hparams.hop_length}), but they multiply to {math.prod(factors)}"
    return None


@dataclass(frozen=True)
class VocoderHParams(HParams):
    """WaveRNN (fatchord variant) sizes, signal conventions and generation settings.

    >>> hp = VocoderHParams()
    >>> hp.voc_mode, hp.bits, hp.n_classes, hp.voc_upsample_factors
    ('RAW', 9, 512, (5, 5, 8))
    """

    # Signal: the mel of :data:`utils.signal_contract.SIGNAL`, under RTVC's vocoder names (saved in
    # checkpoints): hop_length is its hop_size, mel_max_abs_value its max_abs_value, apply_preemphasis
    # its preemphasize.
    sample_rate: int = SIGNAL.sample_rate
    hop_length: int = SIGNAL.hop_size
    num_mels: int = SIGNAL.num_mels
    mel_max_abs_value: float = SIGNAL.max_abs_value
    preemphasis: float = SIGNAL.preemphasis
    apply_preemphasis: bool = SIGNAL.preemphasize

    # Model
    voc_mode: str = "RAW"  # "RAW" (softmax over 2**bits classes) or "MOL" (mixture of logistics)
    bits: int = 9
    mu_law: bool = True
    voc_upsample_factors: tuple[int, ...] = (5, 5, 8)
    voc_rnn_dims: int = 512
    voc_fc_dims: int = 512
    voc_compute_dims: int = 128
    voc_res_out_dims: int = 128
    voc_res_blocks: int = 10
    voc_pad: int = 2

    # Training
    voc_batch_size: int = 100
    voc_lr: float = 1e-4
    voc_seq_len: int = 1000
    voc_gen_at_checkpoint: int = 5

    # Generation
    voc_gen_batched: bool = True
    voc_target: int = 8000
    voc_overlap: int = 800  # RTVC's infer_waveform default (its training previews use 400)
    fade_out_samples: int = 20 * SIGNAL.hop_size  # RTVC fades the last 20 hops out

    @property
    def n_classes(self) -> int:
        """Output width of the last layer: 2**bits classes (RAW) or 30 mixture parameters (MOL)."""
        return 2**self.bits if self.voc_mode == "RAW" else 30

    #: Allowed values, checked on construction (see :class:`utils.hparams.HParams`).
    RULES: ClassVar[Mapping[str, Rule]] = {
        "sample_rate": MelSignal.RULES["sample_rate"],
        "hop_length": MelSignal.RULES["hop_size"],
        "num_mels": MelSignal.RULES["num_mels"],
        "mel_max_abs_value": MelSignal.RULES["max_abs_value"],
        "preemphasis": MelSignal.RULES["preemphasis"],
        "voc_mode": OneOf(("RAW", "MOL")),
        # RAW's softmax has 2**bits classes (2 at the least); beyond 16 bits the output layer explodes.
        "bits": Range(2, 16, integer=True),
        "voc_upsample_factors": Check(_check_upsample_factors),
        "voc_rnn_dims": width(),
        "voc_fc_dims": width(),
        "voc_compute_dims": width(),
        "voc_res_out_dims": width(),
        "voc_res_blocks": layer_count(),
        "voc_pad": layer_count(0),
        "voc_batch_size": positive_int(),
        "voc_lr": positive_float(),
        "voc_seq_len": positive_int(),
        "voc_gen_at_checkpoint": positive_int(0),
        "voc_target": positive_int(),
        "voc_overlap": positive_int(0),
        "fade_out_samples": positive_int(0),
    }
