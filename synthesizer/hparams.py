"""Synthesizer (Tacotron) hyperparameters; defaults are RTVC's ``synthesizer/hparams.py``."""

from __future__ import annotations

from dataclasses import dataclass

from utils.hparams import HParams


@dataclass(frozen=True)
class SynthesizerHParams(HParams):
    """Signal processing, Tacotron sizes, training schedule and SV2TTS settings.

    ``tts_schedule`` rows are ``(r, learning_rate, until_step, batch_size)``.

    Examples
    --------
    >>> hp = SynthesizerHParams()
    >>> hp.num_mels, hp.hop_size, hp.tts_schedule[0]
    (80, 200, (2, 0.001, 20000, 12))
    >>> hp.replace(tts_lstm_dims=256).tts_lstm_dims
    256
    """

    # Signal processing
    sample_rate: int = 16000
    n_fft: int = 800
    num_mels: int = 80
    hop_size: int = 200
    win_size: int = 800
    fmin: int = 55
    fmax: int = 7600
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0
    preemphasis: float = 0.97
    preemphasize: bool = True
    signal_normalization: bool = True
    allow_clipping_in_normalization: bool = True
    symmetric_mels: bool = True
    power: float = 1.5
    griffin_lim_iters: int = 60

    # Tacotron
    tts_embed_dims: int = 512
    tts_encoder_dims: int = 256
    tts_decoder_dims: int = 128
    tts_postnet_dims: int = 512
    tts_encoder_K: int = 5
    tts_lstm_dims: int = 1024
    tts_postnet_K: int = 5
    tts_num_highways: int = 4
    tts_dropout: float = 0.5
    tts_cleaner_names: tuple[str, ...] = ("english_cleaners",)
    tts_stop_threshold: float = -3.4
    max_r: int = 20  # width of the mel projection; r <= max_r frames are kept per decoder step

    # Training
    tts_schedule: tuple[tuple[int, float, int, int], ...] = (
        (2, 1e-3, 20_000, 12),
        (2, 5e-4, 40_000, 12),
        (2, 2e-4, 80_000, 12),
        (2, 1e-4, 160_000, 12),
        (2, 3e-5, 320_000, 12),
        (2, 1e-5, 640_000, 12),
    )
    tts_clip_grad_norm: float = 1.0
    # Guided attention (Tachibana et al. 2017): a penalty on attention far from the diagonal, added to
    # the loss with this weight. 0 keeps RTVC's recipe; about 1-10 makes small models align in far
    # fewer steps. It only changes training, not the checkpoint format.
    tts_guided_attention_weight: float = 0.0
    tts_guided_attention_sigma: float = 0.2
    # True: padded characters get no attention in training, as at inference (generate). False keeps
    # RTVC's training computation, where they get some (energies multiplied by 0, not masked).
    tts_mask_padding: bool = False
    # Batch utterances of similar length together (less padding, faster steps); False: RTVC's random batches.
    tts_bucket_by_length: bool = False
    # Scheduled sampling: probability per decoder step of feeding back the model's own prediction
    # instead of the target frame (0: RTVC's teacher forcing). Helps free-running synthesis.
    tts_feed_predictions: float = 0.0
    tts_eval_interval: int = 500
    tts_eval_num_samples: int = 1

    # Data
    max_mel_frames: int = 900
    rescale: bool = True
    rescaling_max: float = 0.9
    synthesis_batch_size: int = 16
    clip_mels_length: bool = True
    trim_silence: bool = True

    # SV2TTS
    speaker_embedding_size: int = 256
    silence_min_duration_split: float = 0.4
    utterance_min_duration: float = 1.6
    max_decoder_steps: int = 2000  # frames; RTVC's generate() limit (25 s)
