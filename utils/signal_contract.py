"""The signal contract between the models: sample rate, STFT geometry, mel bands, dB range, pre-emphasis.

:class:`MelSignal` is the mel the synthesizers predict and the vocoders invert, with RTVC's values and
field names (checkpoints store them); the speaker encoder shares only the rate.

>>> SIGNAL.sample_rate, SIGNAL.hop_size, SIGNAL.num_mels, SIGNAL.hop_seconds
(16000, 200, 80, 0.0125)
>>> MelSignal(fmax=9000)
Traceback (most recent call last):
...
utils.hparams.HParamsError: fmax must be above fmin (55) and at most half the sample rate (8000), not 9000
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from utils.hparams import MAX_FFT, MAX_MELS, MAX_SAMPLE_RATE, Check, HParams, Range, Rule, positive_float

#: The rate every model reads and writes, in Hz.
SAMPLE_RATE = 16_000

#: The speaker encoder's mel front-end (RTVC's ``encoder/params_data.py``).
ENCODER_WINDOW_MS = 25
ENCODER_STEP_MS = 10
ENCODER_NUM_MELS = 40


def _check_fmax(fmax: Any, signal: "MelSignal") -> str | None:
    # The mel filterbank has nothing to put above Nyquist, and an empty band range has no filters.
    nyquist = signal.sample_rate / 2
    if not isinstance(fmax, (int, float)) or isinstance(fmax, bool) or not signal.fmin < fmax <= nyquist:
        return f"above fmin ({signal.fmin}) and at most half the sample rate ({nyquist:g})"
    return None


def _check_win_size(win_size: Any, signal: "MelSignal") -> str | None:
    # The STFT zero-pads each window to n_fft; it cannot cut a longer window down.
    if not isinstance(win_size, int) or isinstance(win_size, bool) or not 1 <= win_size <= signal.n_fft:
        return f"an integer between 1 and n_fft ({signal.n_fft})"
    return None


@dataclass(frozen=True)
class MelSignal(HParams):
    """How a waveform becomes the normalised mel (computed by :mod:`utils.mel`)."""

    sample_rate: int = SAMPLE_RATE
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

    #: Allowed values. Field order matters for the cross-field checks: n_fft, sample_rate and fmin come first.
    RULES: ClassVar[Mapping[str, Rule]] = {
        # Below 1 kHz a 10 ms hop is under 10 samples; no speech corpus is sampled that low.
        "sample_rate": Range(1000, MAX_SAMPLE_RATE, integer=True),
        "n_fft": Range(1, MAX_FFT, integer=True),
        "num_mels": Range(1, MAX_MELS, integer=True),
        "hop_size": Range(1, MAX_FFT, integer=True),
        "win_size": Check(_check_win_size),
        "fmin": Range(low=0),
        "fmax": Check(_check_fmax),
        "min_level_db": Range(high=0, high_inclusive=False),  # the dB floor divides: 0 would divide by 0
        "ref_level_db": Range(),
        "max_abs_value": positive_float(),
        "preemphasis": Range(0, 1, high_inclusive=False),
    }

    @property
    def hop_seconds(self) -> float:
        return self.hop_size / self.sample_rate


#: The signal of RTVC's published models and of ours.
SIGNAL = MelSignal()
