"""Shared helpers of the iSTFT vocoder tests: a small model and a short real (espeak-ng) clip."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from synthesizer.audio import load_wav
from synthesizer.hparams import SynthesizerHParams
from synthesizer.metadata import TrainEntry, write_train_txt
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.model import ISTFTVocoderNet, build_istft_vocoder

SMALL = dict(channels=32, num_blocks=2)


def small_model(seed: int = 0, **changes) -> ISTFTVocoderNet:
    torch.manual_seed(seed)
    return build_istft_vocoder(ISTFTHParams(**{**SMALL, **changes})).eval()


def synth_mel(frames: int, seed: int = 0) -> np.ndarray:
    """A mel in the synthesizer's [-4, 4] range."""
    return np.random.default_rng(seed).uniform(-4.0, 4.0, size=(80, frames)).astype(np.float32)


@pytest.fixture(scope="session")
def speech_clip(espeak, tmp_path_factory) -> np.ndarray:
    """About 1 s of espeak-ng speech at 16 kHz, peak-normalised like the training data."""
    path = espeak(tmp_path_factory.mktemp("istft") / "clip.wav", "Hello there, my friend.", speed=190)
    return load_wav(path, SynthesizerHParams())


@pytest.fixture
def syn_dir(tmp_path, speech_clip):
    """A synthesizer data folder (train.txt + audio/) of three shifted copies of the clip."""
    root = tmp_path / "syn"
    (root / "audio").mkdir(parents=True)
    entries = []
    for number in range(3):
        wav = np.roll(speech_clip, 1000 * number)
        np.save(root / "audio" / f"audio-u{number}.npy", wav)
        entries.append(TrainEntry.from_basename(f"u{number}", len(wav), 1 + len(wav) // 200, "hello"))
    write_train_txt(root / "train.txt", entries)
    return root
