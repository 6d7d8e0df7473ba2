"""The model-free vocoder: phase reconstruction with Griffin-Lim (:func:`inv_mel_spectrogram`).

Examples
--------
>>> GriffinLimVocoder(n_iters=8).sample_rate
16000
>>> GriffinLimVocoder(exact_rtvc=True).settings
GriffinLimSettings(power=1.5, momentum=0.0, n_iters=60)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np
import torch

from synthesizer.hparams import SynthesizerHParams
from utils.mel import db_to_amp, denormalize, inv_preemphasis, mel_to_linear
from utils.progress import ProgressCallback
from vocoder.base import validate_mel


@dataclass(frozen=True)
class GriffinLimSettings:
    """How a mel is inverted: magnitude exponent, momentum (fast Griffin-Lim) and iterations.

    RTVC raises the magnitude to 1.5 and runs 60 plain iterations. Measured on held-out LibriSpeech
    speakers' ground-truth mels (GE2E cosine of the result to its source; README, "Griffin-Lim"),
    the exponent costs most of the voice: 0.80 at 1.5 against 0.95 at 1.0, and with momentum 0.99
    (Perraudin et al. 2013) 32 iterations match 60 plain ones. Over-smoothed mels (what a synthesizer
    makes) prefer a somewhat larger exponent, hence 1.2.
    """

    power: float
    momentum: float
    n_iters: int

    @classmethod
    def rtvc(cls, hparams: SynthesizerHParams | None = None) -> "GriffinLimSettings":
        """RTVC's exact settings (from the hyperparameters: power 1.5, 60 iterations, no momentum)."""
        hparams = hparams or SynthesizerHParams()
        return cls(hparams.power, 0.0, hparams.griffin_lim_iters)


#: The default of the Griffin-Lim vocoder (``--griffin_lim_rtvc`` restores :meth:`GriffinLimSettings.rtvc`).
TUNED_GRIFFIN_LIM = GriffinLimSettings(power=1.2, momentum=0.99, n_iters=32)


def griffin_lim(magnitude: np.ndarray, hparams: SynthesizerHParams, n_iters: int | None = None,
                rng: np.random.Generator | None = None, length: int | None = None,
                momentum: float = 0.0) -> np.ndarray:
    """Griffin-Lim from a random initial phase; ``momentum`` 0 is RTVC's plain algorithm.

    librosa's implementation with ``momentum=0`` performs the same iterations (``n_iters`` STFTs and
    ``n_iters + 1`` inverse STFTs) and accepts a seeded generator, so it is used instead of a loop here.
    """
    import librosa

    with warnings.catch_warnings():
        # Mels of a frame or two are legal (short words); librosa warns that n_fft exceeds the signal.
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        return librosa.griffinlim(
            magnitude, n_iter=hparams.griffin_lim_iters if n_iters is None else n_iters,
            hop_length=hparams.hop_size, win_length=hparams.win_size, n_fft=hparams.n_fft, center=True,
            pad_mode="constant", momentum=momentum, init="random", random_state=rng, length=length,
        )


def inv_mel_spectrogram(mel: np.ndarray, hparams: SynthesizerHParams | None = None, *, n_iters: int | None = None,
                        rng: np.random.Generator | None = None,
                        settings: GriffinLimSettings | None = None) -> np.ndarray:
    """Waveform from a normalised mel ``(num_mels, T)`` with Griffin-Lim; ``(T − 1) · hop`` float32 samples.

    ``settings`` default to RTVC's (:meth:`GriffinLimSettings.rtvc`); ``n_iters`` overrides their count.
    """
    hparams = hparams or SynthesizerHParams()
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[0] != hparams.num_mels:
        raise ValueError(f"expected a mel spectrogram of shape ({hparams.num_mels}, frames), got {mel.shape}")
    settings = settings or GriffinLimSettings.rtvc(hparams)
    mel_db = denormalize(mel, hparams) if hparams.signal_normalization else mel
    magnitude = mel_to_linear(db_to_amp(mel_db + hparams.ref_level_db), hparams) ** settings.power
    length = max(0, (mel.shape[1] - 1) * hparams.hop_size)
    if length == 0:
        return np.zeros(0, dtype=np.float32)
    wav = griffin_lim(magnitude, hparams, settings.n_iters if n_iters is None else n_iters, rng, length,
                      settings.momentum)
    return inv_preemphasis(wav, hparams.preemphasis, hparams.preemphasize).astype(np.float32)


def numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A NumPy generator seeded from torch's, so ``torch`` seeds also fix Griffin-Lim's random phase."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def fit_length(wav: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad to ``length`` samples so every vocoder returns the same duration."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if len(wav) >= length:
        return wav[:length].copy()
    return np.pad(wav, (0, length - len(wav)))


class GriffinLimVocoder:
    """Griffin-Lim with the tuned fast settings (:data:`TUNED_GRIFFIN_LIM`: power 1.2,
    momentum 0.99, 32 iterations), or RTVC's (``exact_rtvc``: power 1.5, 60 plain iterations).

    ``synth_hparams`` are the signal settings of the synthesizer whose mels are inverted (default RTVC's);
    ``n_iters`` overrides the settings' iteration count.
    """

    kind = "griffinlim"
    title = "Griffin-Lim"
    time_share = 0.2
    streams = False

    def __init__(self, synth_hparams: SynthesizerHParams | None = None, n_iters: int | None = None,
                 exact_rtvc: bool = False) -> None:
        hparams = synth_hparams if synth_hparams is not None else SynthesizerHParams()
        settings = GriffinLimSettings.rtvc(hparams) if exact_rtvc else TUNED_GRIFFIN_LIM
        if n_iters is not None:
            if n_iters < 1:
                raise ValueError(f"n_iters must be at least 1, got {n_iters}")
            settings = replace(settings, n_iters=n_iters)
        self.hparams = hparams
        self.settings = settings
        self.exact = exact_rtvc

    @classmethod
    def for_signal(cls, synth_hparams: SynthesizerHParams | None, exact: bool = False) -> GriffinLimVocoder:
        """The registry's constructor of a kind without a checkpoint."""
        return cls(synth_hparams, exact_rtvc=exact)

    @property
    def sample_rate(self) -> int:
        return self.hparams.sample_rate

    def use_synthesized_mels(self) -> None:
        """Nothing to set up: Griffin-Lim treats every mel alike."""

    def vocode(self, mel: np.ndarray, *, progress_callback: ProgressCallback | None = None,
               generator: torch.Generator | None = None) -> np.ndarray:
        """Invert a synthesizer mel ``(num_mels, T)`` in [-4, 4] to ``(T - 1)·hop`` float32 samples.

        ``progress_callback`` gets ``(0, n_iters, 1, 0.0)`` before and ``(n_iters, n_iters, 1, rate_khz)`` after.
        """
        array = validate_mel(mel, self.hparams.num_mels)
        n_iters = self.settings.n_iters
        length = (array.shape[1] - 1) * self.hparams.hop_size
        if progress_callback is not None:
            progress_callback(0, n_iters, 1, 0.0)
        start = time.perf_counter()
        wav = inv_mel_spectrogram(array, self.hparams, rng=numpy_rng(generator), settings=self.settings)
        if not np.isfinite(wav).all():
            raise ValueError("Griffin-Lim produced non-finite audio from this mel spectrogram.")
        if progress_callback is not None:
            rate = length / max(time.perf_counter() - start, 1e-9) / 1000
            progress_callback(n_iters, n_iters, 1, rate)
        return fit_length(wav, length)

    def vocode_batch(self, mels: Sequence[np.ndarray], *, progress_callback: ProgressCallback | None = None,
                     seed: int | None = None) -> list[np.ndarray]:
        """One mel at a time, mel ``i`` with the seed ``seed + i``."""
        return [self.vocode(mel, progress_callback=progress_callback,
                            generator=None if seed is None else torch.Generator().manual_seed(seed + index))
                for index, mel in enumerate(mels)]

    def vocode_stream(self, mel: np.ndarray, *, progress_callback: ProgressCallback | None = None,
                      generator: torch.Generator | None = None) -> Iterator[np.ndarray]:
        """The whole waveform at once (Griffin-Lim needs every frame)."""
        yield self.vocode(mel, progress_callback=progress_callback, generator=generator)
