"""The model-free vocoder: phase reconstruction with Griffin-Lim (:func:`synthesizer.audio.inv_mel_spectrogram`).

Examples
--------
>>> GriffinLimVocoder(n_iters=8).sample_rate
16000
>>> GriffinLimVocoder(exact_rtvc=True).settings
GriffinLimSettings(power=1.5, momentum=0.0, n_iters=60)
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from utils.progress import ProgressCallback
from vocoder.base import validate_mel

if TYPE_CHECKING:
    from synthesizer.hparams import SynthesizerHParams


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
    """Griffin-Lim with the tuned fast settings (:data:`synthesizer.audio.TUNED_GRIFFIN_LIM`: power 1.2,
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
        from synthesizer.audio import TUNED_GRIFFIN_LIM, GriffinLimSettings
        from synthesizer.hparams import SynthesizerHParams

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
        # Imported here: the synthesizer's audio module brings scipy.signal, which a neural clone never needs.
        from synthesizer.audio import inv_mel_spectrogram

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
