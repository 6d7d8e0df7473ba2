"""Loading audio for the synthesizer (its rate and peak level); the mel itself is :mod:`utils.mel`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthesizer.hparams import SynthesizerHParams
from utils.audio_io import load_audio


def load_wav(path: str | Path, hparams: SynthesizerHParams) -> np.ndarray:
    """Load at the synthesizer's rate and peak-normalise to ``rescaling_max`` (as RTVC's toolbox and training)."""
    wav = load_audio(path, hparams.sample_rate)
    if hparams.rescale:
        wav = wav / np.abs(wav).max() * hparams.rescaling_max
    return wav.astype(np.float32)
