"""Training data of the iSTFT vocoder: random waveform segments of the synthesizer's training set, with
the synthesizer's GTA mels when given (docs/vocoder.md).

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
from utils.errors import REASON_LIMIT, one_line
from utils.training import TrainingError
from vocoder.istft.hparams import ISTFTHParams


#: Frames a GTA mel may differ from its audio's (the trainer pads or crops that much at the end).
GTA_FRAME_TOLERANCE = 2


def check_gta_mel(path: Path, n_frames: int, num_mels: int) -> None:
    """:class:`TrainingError` (one line) for a GTA mel that is not a finite ``(n_frames, num_mels)`` float
    array, checked before training."""
    try:
        mel = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise TrainingError(f"The GTA mel '{path}' is not a NumPy array file ({one_line(error, REASON_LIMIT)}); "
                            "write it again with python -m vocoder.preprocess.") from None
    expected = f"({n_frames}, {num_mels}) frames by mel bands"
    if mel.ndim != 2 or not np.issubdtype(mel.dtype, np.floating):
        raise TrainingError(f"The GTA mel '{path}' is a {mel.dtype} array of shape {mel.shape}, not {expected}.")
    if mel.shape[1] != num_mels and mel.shape[0] == num_mels:
        raise TrainingError(f"The GTA mel '{path}' has shape {mel.shape}: it is transposed (expected {expected}).")
    if mel.shape[1] != num_mels or abs(mel.shape[0] - n_frames) > GTA_FRAME_TOLERANCE:
        raise TrainingError(f"The GTA mel '{path}' has shape {mel.shape}, not {expected} like its audio; "
                            "write it again with python -m vocoder.preprocess and this synthesizer.")
    if not np.isfinite(mel).all():
        raise TrainingError(f"The GTA mel '{path}' holds NaN or infinite values; the synthesizer that wrote it "
                            "is damaged.")


class SegmentDataset(Dataset):
    """Random ``1 + segment_frames·hop``-sample windows of 1-D float32 ``.npy`` audio, one per utterance
    and epoch."""

    def __init__(self, audio_paths: list[Path], hparams: ISTFTHParams, mel_paths: list[Path] | None = None) -> None:
        self.audio_paths = list(audio_paths)
        self.mel_paths = None if mel_paths is None else list(mel_paths)
        self.hop = hparams.signal.hop_size
        self.frames = hparams.segment_frames
        self.length = hparams.segment_frames * hparams.signal.hop_size

    @classmethod
    def from_folder(cls, syn_dir: str | Path, hparams: ISTFTHParams, min_samples: int | None = None,
                    gta_dir: str | Path | None = None) -> SegmentDataset:
        """Every utterance of ``<syn_dir>/train.txt`` (of ``<gta_dir>/synthesized.txt`` with GTA mels)
        at least ``min_samples`` long (default one segment)."""
        syn_dir = Path(syn_dir)
        listing = syn_dir / "train.txt" if gta_dir is None else Path(gta_dir) / "synthesized.txt"
        if gta_dir is not None and not listing.is_file():
            raise TrainingError(f"'{listing}' does not exist; write the GTA mels first with python -m "
                                f"vocoder.preprocess <datasets_root> -s <synthesizer.pt> -o {gta_dir}.")
        try:
            entries = read_train_txt(listing)
        except MetadataError as error:
            raise TrainingError(str(error)) from None
        length = hparams.segment_frames * hparams.signal.hop_size
        needed = length if min_samples is None else min_samples
        entries = [entry for entry in entries if entry.n_samples >= needed]
        paths = [syn_dir / "audio" / entry.audio_name for entry in entries]
        if not paths:
            raise TrainingError(f"'{listing}' lists no utterance of at least {needed} samples.")
        mel_paths = None if gta_dir is None else [Path(gta_dir) / "mels_gta" / entry.mel_name for entry in entries]
        for path in paths[:50] + (mel_paths or [])[:50]:
            if not path.exists():
                raise TrainingError(f"The file '{path}' listed in '{listing}' does not exist.")
        for entry, mel_path in zip(entries, mel_paths or []):
            check_gta_mel(mel_path, entry.n_frames, hparams.signal.num_mels)
        return cls(paths, hparams, mel_paths)

    def __len__(self) -> int:
        return len(self.audio_paths)

    def load(self, index: int) -> np.ndarray:
        return np.load(self.audio_paths[index]).astype(np.float32)

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        wav = np.load(self.audio_paths[index], mmap_mode="r")  # only the window is read
        if self.mel_paths is not None:
            return self._gta_item(wav, np.load(self.mel_paths[index], mmap_mode="r"))
        start = np.random.randint(0, max(0, len(wav) - self.length) + 1)
        return self._window(wav, start)

    def _window(self, wav: np.ndarray, start: int) -> torch.Tensor:
        window = np.zeros(self.length + 1, dtype=np.float32)  # (1 + L,): history sample, then the segment
        piece = np.asarray(wav[max(0, start - 1): start + self.length], dtype=np.float32)
        offset = 1 if start == 0 else 0
        window[offset: offset + len(piece)] = piece[: len(window) - offset]
        return torch.from_numpy(window)

    def _gta_item(self, wav: np.ndarray, gta: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # Frame k of a mel is centred on sample k·hop, so a segment starting at frame j is analysed
        # into frames j … j + segment_frames of the utterance's mel.
        last_start = min((len(wav) - self.length) // self.hop, len(gta) - 1 - self.frames)
        first = np.random.randint(0, max(0, last_start) + 1)
        mel = np.full((self.frames + 1, gta.shape[1]), -4.0, dtype=np.float32)  # silence where the mel ends
        piece = np.asarray(gta[first: first + self.frames + 1], dtype=np.float32)
        mel[: len(piece)] = piece
        return self._window(wav, first * self.hop), torch.from_numpy(mel.T.copy())  # (1 + L,), (num_mels, 1 + frames)
