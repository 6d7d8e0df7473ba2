"""Speaker-encoder hyperparameters; defaults are RTVC's (``encoder/params_data.py`` + ``params_model.py``).

The front-end's rate, windows and bands come from :mod:`utils.signal_contract`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

from utils.hparams import MAX_MELS, HParams, OneOf, Range, Rule, positive_float, positive_int, width, layer_count
from utils.signal_contract import ENCODER_NUM_MELS, ENCODER_STEP_MS, ENCODER_WINDOW_MS, SAMPLE_RATE, MelSignal


@dataclass(frozen=True)
class EncoderHParams(HParams):
    """GE2E speaker encoder: audio front-end, network sizes and training schedule.

    >>> hp = EncoderHParams()
    >>> hp.mel_n_fft, hp.mel_hop_length, hp.mel_n_channels
    (400, 160, 40)
    >>> EncoderHParams(hidden_size=64, num_layers=2).hidden_size
    64
    """

    # Audio front-end
    sample_rate: int = SAMPLE_RATE
    mel_window_length_ms: int = ENCODER_WINDOW_MS
    mel_window_step_ms: int = ENCODER_STEP_MS
    mel_n_channels: int = ENCODER_NUM_MELS
    partials_n_frames: int = 160  # 1.6 s windows for partial embeddings
    partials_min_coverage: float = 0.75
    partials_overlap: float = 0.5
    vad_window_length_ms: int = 30
    vad_moving_average_width: int = 8
    vad_max_silence_length: int = 6
    audio_norm_target_dbfs: float = -30.0

    # Network
    hidden_size: int = 256
    num_layers: int = 3
    embedding_size: int = 256

    # Training
    learning_rate_init: float = 1e-4
    speakers_per_batch: int = 64
    utterances_per_speaker: int = 10

    #: Allowed values, checked on construction (see :class:`utils.hparams.HParams`).
    RULES: ClassVar[Mapping[str, Rule]] = {
        "sample_rate": MelSignal.RULES["sample_rate"],
        "mel_window_length_ms": positive_int(),
        "mel_window_step_ms": positive_int(),
        "mel_n_channels": Range(1, MAX_MELS, integer=True),
        "partials_n_frames": Range(1, 100_000, integer=True),
        "partials_min_coverage": Range(0, 1, low_inclusive=False),
        "partials_overlap": Range(0, 1, high_inclusive=False),  # 1 would never advance
        "vad_window_length_ms": OneOf((10, 20, 30)),  # the only frame lengths webrtcvad accepts
        "vad_moving_average_width": positive_int(),
        "vad_max_silence_length": positive_int(0),
        "audio_norm_target_dbfs": Range(high=0),
        "hidden_size": width(),
        "num_layers": layer_count(),
        "embedding_size": width(),
        "learning_rate_init": positive_float(),
        # GE2E: a softmax over one speaker is trivial, and the own-speaker centroid leaves one utterance out.
        "speakers_per_batch": Range(2, 100_000, integer=True),
        "utterances_per_speaker": Range(2, 10_000, integer=True),
    }

    @property
    def mel_n_fft(self) -> int:
        return self.sample_rate * self.mel_window_length_ms // 1000

    @property
    def mel_hop_length(self) -> int:
        return self.sample_rate * self.mel_window_step_ms // 1000

    @property
    def vad_window_samples(self) -> int:
        return self.sample_rate * self.vad_window_length_ms // 1000
