"""WaveRNN vocoder hyperparameters; defaults are RTVC's ``vocoder/hparams.py``."""

from __future__ import annotations

from dataclasses import dataclass

from utils.hparams import HParams


@dataclass(frozen=True)
class VocoderHParams(HParams):
    """WaveRNN (fatchord variant) sizes, signal conventions and generation settings.

    Examples
    --------
    >>> hp = VocoderHParams()
    >>> hp.voc_mode, hp.bits, hp.n_classes, hp.voc_upsample_factors
    ('RAW', 9, 512, (5, 5, 8))
    """

    # Signal (shared with the synthesizer)
    sample_rate: int = 16000
    hop_length: int = 200
    num_mels: int = 80
    mel_max_abs_value: float = 4.0
    preemphasis: float = 0.97
    apply_preemphasis: bool = True

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
    fade_out_samples: int = 4000  # 20 hops

    @property
    def n_classes(self) -> int:
        """Output width of the last layer: 2**bits classes (RAW) or 30 mixture parameters (MOL)."""
        return 2**self.bits if self.voc_mode == "RAW" else 30

    def __post_init__(self) -> None:
        if self.voc_mode not in ("RAW", "MOL"):
            raise ValueError(f"voc_mode must be 'RAW' or 'MOL', not {self.voc_mode!r}")
        product = 1
        for factor in self.voc_upsample_factors:
            product *= factor
        if product != self.hop_length:
            raise ValueError(
                f"voc_upsample_factors {self.voc_upsample_factors} multiply to {product}, "
                f"but hop_length is {self.hop_length}"
            )
