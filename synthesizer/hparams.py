"""Synthesizer (Tacotron) hyperparameters; defaults are RTVC's ``synthesizer/hparams.py``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from utils.hparams import (
    Check, OneOf, Range, Rule, layer_count, positive_float, positive_int, probability, width,
)
from utils.signal_contract import MelSignal

#: What one ``tts_schedule`` row holds.
SCHEDULE_ROW = "[r, learning_rate, until_step, batch_size]"


def schedule_problem(rows: Any, max_r: int = 20) -> str | None:
    """What is wrong with ``tts_schedule`` rows ``(r, learning_rate, until_step, batch_size)``, or None:
    the one definition of a valid schedule.

    >>> schedule_problem([(2, 1e-3, 20_000, 12)]) is None
    True
    >>> schedule_problem([(2, 1e-3, 10, 4), (2, 1e-4, 10, 4)])
    "row 2: until_step 10 must be larger than the previous row's 10"
    """
    if not isinstance(rows, Sequence) or isinstance(rows, str):
        return f"it is not a list of rows {SCHEDULE_ROW}"
    if not rows:
        return f"it is empty; give at least one row {SCHEDULE_ROW}"
    previous_until = None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != 4:
            shown = list(row) if isinstance(row, Sequence) and not isinstance(row, str) else row
            return f"row {number} ({shown}) must be {SCHEDULE_ROW}"
        r, lr, until, batch = row
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in (r, until, batch)) \
                or not isinstance(lr, (int, float)) or isinstance(lr, bool):
            return f"row {number} ({list(row)}) needs integers r, until_step, batch_size and a number learning_rate"
        if not 1 <= r <= max_r:
            return f"row {number}: r must be between 1 and {max_r} (max_r), not {r}"
        if not math.isfinite(lr) or not lr > 0:
            return f"row {number}: the learning rate must be positive and finite, not {lr}"
        if batch < 1:
            return f"row {number}: the batch size must be at least 1, not {batch}"
        if until < 1:
            return f"row {number}: until_step must be positive, not {until}"
        if previous_until is not None and until <= previous_until:
            return f"row {number}: until_step {until} must be larger than the previous row's {previous_until}"
        previous_until = until
    return None


def _check_schedule(rows: Any, hparams: "SynthesizerHParams") -> str | None:
    problem = schedule_problem(rows, hparams.max_r)
    return None if problem is None else f"a list of rows {SCHEDULE_ROW} with increasing until_step ({problem})"


def _cleaner_names() -> tuple[str, ...]:
    from synthesizer.text.cleaners import CLEANERS  # imported when checked: the registry stays the one list

    return tuple(CLEANERS)


@dataclass(frozen=True)
class SynthesizerHParams(MelSignal):
    """Signal processing (from :class:`utils.signal_contract.MelSignal`), Tacotron sizes, training schedule
    and SV2TTS settings.

    >>> hp = SynthesizerHParams()
    >>> hp.num_mels, hp.hop_size, hp.tts_schedule[0]
    (80, 200, (2, 0.001, 20000, 12))
    >>> hp.replace(tts_lstm_dims=256).tts_lstm_dims
    256
    """

    # Griffin-Lim (RTVC's inversion of the mel)
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

    #: Allowed values, checked on construction (see :class:`utils.hparams.HParams`). Field order
    #: matters for the cross-field checks: max_r comes before tts_schedule.
    RULES: ClassVar[Mapping[str, Rule]] = {
        **MelSignal.RULES,
        "power": positive_float(),
        "griffin_lim_iters": positive_int(),
        "tts_embed_dims": width(),
        "tts_encoder_dims": width(),
        "tts_decoder_dims": width(),
        "tts_postnet_dims": width(),
        "tts_encoder_K": layer_count(),
        "tts_lstm_dims": width(),
        "tts_postnet_K": layer_count(),
        "tts_num_highways": layer_count(0),
        # p = 1 zeroes the pre-net (and its 1/(1-p) scale is infinite).
        "tts_dropout": Range(0, 1, high_inclusive=False),
        "tts_cleaner_names": OneOf(_cleaner_names),
        "tts_stop_threshold": Range(),
        "max_r": layer_count(),
        "tts_schedule": Check(_check_schedule),
        "tts_clip_grad_norm": positive_float(),
        "tts_guided_attention_weight": Range(low=0),
        "tts_guided_attention_sigma": positive_float(),
        "tts_feed_predictions": probability(),
        "tts_eval_interval": positive_int(0),
        "tts_eval_num_samples": positive_int(0),
        "max_mel_frames": positive_int(),
        "rescaling_max": Range(0, 1, low_inclusive=False),
        "synthesis_batch_size": positive_int(),
        "speaker_embedding_size": width(),
        "silence_min_duration_split": Range(low=0),
        "utterance_min_duration": Range(low=0),
        "max_decoder_steps": positive_int(),
    }
