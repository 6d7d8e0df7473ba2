"""Training data of the iSTFT vocoder: random waveform segments of the synthesizer's training set.

Only ``train.txt`` and ``audio/audio-*.npy`` (plain 16 kHz audio, no pre-emphasis) of a synthesizer
data folder are read. The mel of each segment is computed in the training step from the segment
itself (:meth:`vocoder.istft.spectral.SpectralFrontEnd.mel_from_magnitude`), so input and target
always match exactly, and the saved mels are never needed.

Each item is ``1 + segment_frames·hop`` samples: one sample of pre-emphasis history (zero at the
start of an utterance), then the segment.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from synthesizer.metadata import TrainEntry, write_train_txt
>>> root = Path(tempfile.mkdtemp())
>>> (root / "audio").mkdir()
>>> np.save(root / "audio" / "audio-a.npy", np.ones(5000, np.float32))
>>> _ = write_train_txt(root / "train.txt", [TrainEntry.from_basename("a", 5000, 26, "hi")])
>>> data = SegmentDataset.from_folder(root, ISTFTHParams(segment_frames=10))
>>> len(data), tuple(data[0].shape)
(1, (2001,))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from synthesizer.metadata import MetadataError, read_train_txt
from utils.training import TrainingError
from vocoder.istft.hparams import ISTFTHParams


class SegmentDataset(Dataset):
    """Random ``1 + segment_frames·hop``-sample windows, one per utterance and epoch.

    Parameters
    ----------
    audio_paths
        ``.npy`` files of 1-D float32 audio.
    hparams
        ``segment_frames`` and the hop.
    """

    def __init__(self, audio_paths: list[Path], hparams: ISTFTHParams) -> None:
        self.audio_paths = list(audio_paths)
        self.length = hparams.segment_frames * hparams.signal.hop_size

    @classmethod
    def from_folder(cls, syn_dir: str | Path, hparams: ISTFTHParams, min_samples: int | None = None) -> SegmentDataset:
        """Every utterance of ``<syn_dir>/train.txt`` at least ``min_samples`` long (default one segment)."""
        syn_dir = Path(syn_dir)
        try:
            entries = read_train_txt(syn_dir / "train.txt")
        except MetadataError as error:
            raise TrainingError(str(error)) from None
        length = hparams.segment_frames * hparams.signal.hop_size
        needed = length if min_samples is None else min_samples
        paths = [syn_dir / "audio" / entry.audio_name for entry in entries if entry.n_samples >= needed]
        if not paths:
            raise TrainingError(f"'{syn_dir / 'train.txt'}' lists no utterance of at least {needed} samples.")
        missing = [path for path in paths[:50] if not path.exists()]
        if missing:
            raise TrainingError(f"The audio file '{missing[0]}' listed in train.txt does not exist.")
        return cls(paths, hparams)

    def __len__(self) -> int:
        return len(self.audio_paths)

    def load(self, index: int) -> np.ndarray:
        """The whole utterance ``(N,)`` float32."""
        return np.load(self.audio_paths[index]).astype(np.float32)

    def __getitem__(self, index: int) -> torch.Tensor:
        wav = np.load(self.audio_paths[index], mmap_mode="r")  # only the window is read
        start = np.random.randint(0, max(0, len(wav) - self.length) + 1)
        window = np.zeros(self.length + 1, dtype=np.float32)  # (1 + L,): history sample, then the segment
        piece = np.asarray(wav[max(0, start - 1): start + self.length], dtype=np.float32)
        offset = 1 if start == 0 else 0
        window[offset: offset + len(piece)] = piece[: len(window) - offset]
        return torch.from_numpy(window)
