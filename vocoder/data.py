"""Training data of the WaveRNN vocoder: (mel, quantised waveform) pairs and random windows.

Layout and windowing: docs/vocoder.md.

>>> from vocoder.hparams import VocoderHParams
>>> hp = VocoderHParams(voc_seq_len=400)
>>> window_frames(hp), max_window_offset(12, hp)
(6, 6)
>>> mel, labels = np.zeros((80, 12), np.float32), np.arange(12 * 200)
>>> mel_window, label_window = crop_window(mel, labels, 3, hp)
>>> mel_window.shape, int(label_window[0]), label_window.shape
((80, 6), 1000, (401,))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from synthesizer.metadata import MetadataError, TrainEntry, read_train_txt
from utils.distributed import DistributedContext
from utils.training import TrainingError, worker_init_fn
from utils.mel import preemphasis
from vocoder.audio import encode_mu_law, float_2_label, label_2_float
from vocoder.hparams import VocoderHParams

#: Label resolution of the MOL mode's targets (RTVC: 16-bit audio).
MOL_BITS = 16


# ----------------------------------------------------------------------------------------------
# Where the data is


@dataclass(frozen=True)
class VocoderData:

    metadata: Path  # synthesized.txt (GTA) or train.txt (ground truth)
    mel_dir: Path  # mels_gta/ or mels/
    audio_dir: Path  # <syn_dir>/audio/
    ground_truth: bool

    @classmethod
    def locate(cls, syn_dir: str | Path, voc_dir: str | Path, ground_truth: bool = False) -> VocoderData:
        """The run's files, checked; :class:`TrainingError` names what is missing.

        >>> VocoderData.locate("/nowhere/synthesizer", "/nowhere/vocoder")
        Traceback (most recent call last):
        ...
        utils.training.TrainingError: The synthesizer data folder '/nowhere/synthesizer' does not exist; run python -m synthesizer.preprocess first (or pass --syn_dir).
        """  # noqa: E501 (a doctest's expected output is one line)
        syn_dir, voc_dir = Path(syn_dir), Path(voc_dir)
        if not syn_dir.is_dir():
            raise TrainingError(
                f"The synthesizer data folder '{syn_dir}' does not exist; run python -m synthesizer.preprocess "
                "first (or pass --syn_dir)."
            )
        if ground_truth:
            data = cls(syn_dir / "train.txt", syn_dir / "mels", syn_dir / "audio", True)
            hint = "run python -m synthesizer.preprocess first"
        else:
            data = cls(voc_dir / "synthesized.txt", voc_dir / "mels_gta", syn_dir / "audio", False)
            hint = "run python -m vocoder.preprocess first, or train on ground-truth mels with -g"
        for path, kind in ((data.metadata, "file"), (data.mel_dir, "folder"), (data.audio_dir, "folder")):
            if not (path.is_file() if kind == "file" else path.is_dir()):
                raise TrainingError(f"The {kind} '{path}' does not exist; {hint}.")
        return data


def read_entries(data: VocoderData, hparams: VocoderHParams) -> list[TrainEntry]:
    """The listed utterances with both files and at least one frame; missing files are skipped with one
    warning, nothing usable or mels of the wrong width is a :class:`TrainingError`."""
    try:
        entries = read_train_txt(data.metadata)
    except MetadataError as error:
        raise TrainingError(str(error)) from None
    usable, missing = [], []
    for entry in entries:
        if entry.n_frames <= 0:
            continue
        mel_path, audio_path = data.mel_dir / entry.mel_name, data.audio_dir / entry.audio_name
        if not mel_path.is_file():
            missing.append(mel_path)
        elif not audio_path.is_file():
            missing.append(audio_path)
        else:
            usable.append(entry)
    if missing:
        warnings.warn(
            f"{len(missing)} of {len(entries)} utterances listed in '{data.metadata}' are skipped because "
            f"a file is missing (first: '{missing[0]}').",
            stacklevel=2,
        )
    if not usable:
        raise TrainingError(f"'{data.metadata}' lists no usable utterance (it has {len(entries)} lines).")
    try:
        width = np.load(data.mel_dir / usable[0].mel_name, mmap_mode="r").shape
    except (OSError, ValueError) as error:
        raise TrainingError(f"Cannot read the mel '{data.mel_dir / usable[0].mel_name}': {error}.") from None
    if len(width) != 2 or width[1] != hparams.num_mels:
        raise TrainingError(
            f"The mel '{data.mel_dir / usable[0].mel_name}' has shape {tuple(width)}, but the vocoder expects "
            f"(frames, {hparams.num_mels})."
        )
    return usable


# ----------------------------------------------------------------------------------------------
# One utterance


def prepare_wave(wav: np.ndarray, n_frames: int, hparams: VocoderHParams) -> np.ndarray:
    """Target waveform: pre-emphasised, clipped to [-1, 1], exactly ``n_frames·hop`` samples.

    >>> hp = VocoderHParams()
    >>> wave = prepare_wave(np.full(450, 2.0), 3, hp)
    >>> wave.shape, float(wave.max()), float(wave[-1])
    ((600,), 1.0, 0.0)
    """
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if hparams.apply_preemphasis:
        wav = preemphasis(wav, hparams.preemphasis)
    wav = np.clip(wav, -1.0, 1.0)
    length = n_frames * hparams.hop_length
    if len(wav) < length:  # frames = 1 + N // hop, so the last frame is always partly padding
        wav = np.pad(wav, (0, length - len(wav)))
    return wav[:length]


def quantize(wav: np.ndarray, hparams: VocoderHParams) -> np.ndarray:
    """Integer labels of a [-1, 1] waveform: mu-law (RAW, RTVC's default), linear (RAW) or 16-bit (MOL).

    >>> quantize(np.array([-1.0, 0.0, 1.0]), VocoderHParams()).tolist()
    [0, 256, 511]
    >>> quantize(np.array([-1.0, 0.0, 1.0]), VocoderHParams(voc_mode="MOL")).tolist()
    [0, 32768, 65535]
    """
    if hparams.voc_mode == "MOL":
        return np.rint(float_2_label(wav, MOL_BITS)).astype(np.int64)
    if hparams.mu_law:
        return encode_mu_law(wav, mu=2**hparams.bits).astype(np.int64)
    return np.rint(float_2_label(wav, hparams.bits)).astype(np.int64)


def label_bits(hparams: VocoderHParams) -> int:
    return MOL_BITS if hparams.voc_mode == "MOL" else hparams.bits


class VocoderDataset(Dataset):
    """Whole utterances: ``(mel (num_mels, T) in about [-1, 1], labels (T·hop,) int64)``."""

    def __init__(self, entries: Sequence[TrainEntry], mel_dir: Path, audio_dir: Path, hparams: VocoderHParams) -> None:
        self.entries = list(entries)
        self.mel_dir, self.audio_dir = Path(mel_dir), Path(audio_dir)
        self.hparams = hparams

    @classmethod
    def from_data(cls, data: VocoderData, hparams: VocoderHParams) -> VocoderDataset:
        return cls(read_entries(data, hparams), data.mel_dir, data.audio_dir, hparams)

    def __len__(self) -> int:
        return len(self.entries)

    def load_mel(self, index: int) -> np.ndarray:
        """The stored ``(T, num_mels)`` mel, transposed and divided by 4."""
        mel = np.load(self.mel_dir / self.entries[index].mel_name)
        return np.ascontiguousarray(mel.T, dtype=np.float32) / np.float32(self.hparams.mel_max_abs_value)

    def load_audio(self, index: int) -> np.ndarray:
        return np.load(self.audio_dir / self.entries[index].audio_name).astype(np.float32).reshape(-1)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        mel = self.load_mel(index)  # (num_mels, T)
        labels = quantize(prepare_wave(self.load_audio(index), mel.shape[1], self.hparams), self.hparams)  # (T·hop,)
        return pad_to_window(mel, labels, self.hparams)


# ----------------------------------------------------------------------------------------------
# Windows


def window_frames(hparams: VocoderHParams) -> int:
    """Mel frames per training window: ``voc_seq_len / hop`` plus ``pad`` context frames on each side."""
    return hparams.voc_seq_len // hparams.hop_length + 2 * hparams.voc_pad


def max_window_offset(n_frames: int, hparams: VocoderHParams) -> int:
    """Largest frame offset whose window fits in ``n_frames`` (-1: none).

    >>> hp = VocoderHParams()  # 1000-sample windows: 9 frames
    >>> max_window_offset(9, hp), max_window_offset(8, hp), max_window_offset(100, hp)
    (0, -1, 91)
    """
    hop, pad = hparams.hop_length, hparams.voc_pad
    by_mel = n_frames - window_frames(hparams)
    by_labels = (n_frames * hop - hparams.voc_seq_len - 1) // hop - pad
    return min(by_mel, by_labels)


def pad_to_window(mel: np.ndarray, labels: np.ndarray, hparams: VocoderHParams) -> tuple[np.ndarray, np.ndarray]:
    """Pad an utterance too short for one window with silence at its end.

    >>> hp = VocoderHParams()
    >>> mel, labels = pad_to_window(np.zeros((80, 4), np.float32), np.zeros(800, np.int64), hp)
    >>> mel.shape, labels.shape, float(mel[0, -1]), int(labels[-1])
    ((80, 9), (1800,), -1.0, 256)
    """
    n_frames = mel.shape[1]
    needed = n_frames
    while max_window_offset(needed, hparams) < 0:
        needed += 1
    if needed == n_frames:
        return mel, labels
    mel = np.pad(mel, ((0, 0), (0, needed - n_frames)), constant_values=-1.0)
    silence = int(quantize(np.zeros(1), hparams)[0])
    labels = np.pad(labels, (0, needed * hparams.hop_length - len(labels)), constant_values=silence)
    return mel, labels


def crop_window(mel: np.ndarray, labels: np.ndarray, offset: int,
                hparams: VocoderHParams) -> tuple[np.ndarray, np.ndarray]:
    """The window at frame ``offset``: ``(mel (num_mels, window_frames), labels (voc_seq_len + 1,))``."""
    frames = window_frames(hparams)
    start = (offset + hparams.voc_pad) * hparams.hop_length
    mel_window = mel[:, offset : offset + frames]
    label_window = labels[start : start + hparams.voc_seq_len + 1]
    if mel_window.shape[1] != frames or len(label_window) != hparams.voc_seq_len + 1:
        raise ValueError(f"offset {offset} leaves no full window in an utterance of {mel.shape[1]} frames")
    return mel_window, label_window


class VocoderCollate:
    """Random windows as ``x (B, L)``, ``y (B, L)`` and ``mels (B, 80, L / hop + 2·pad)``, ``L = voc_seq_len``.

    >>> hp = VocoderHParams(voc_seq_len=400)
    >>> item = (np.zeros((80, 20), np.float32), np.full(20 * 200, 256))
    >>> x, y, mels = VocoderCollate(hp, np.random.default_rng(0))([item, item])
    >>> tuple(x.shape), tuple(y.shape), y.dtype, tuple(mels.shape)
    ((2, 400), (2, 400), torch.int64, (2, 80, 6))
    """

    def __init__(self, hparams: VocoderHParams, rng: np.random.Generator | None = None) -> None:
        self.hparams = hparams
        self.rng = rng

    def _offset(self, n_frames: int) -> int:
        high = max_window_offset(n_frames, self.hparams) + 1
        return int(self.rng.integers(0, high)) if self.rng is not None else int(np.random.randint(0, high))

    def __call__(self, batch: Sequence[tuple[np.ndarray, np.ndarray]]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hp = self.hparams
        windows = [crop_window(mel, labels, self._offset(mel.shape[1]), hp) for mel, labels in batch]
        mels = torch.from_numpy(np.stack([mel for mel, _ in windows]).astype(np.float32))  # (B, 80, F)
        labels = torch.from_numpy(np.stack([lab for _, lab in windows]).astype(np.int64))  # (B, L + 1)
        bits = label_bits(hp)
        x = label_2_float(labels[:, : hp.voc_seq_len].float(), bits)  # (B, L) previous samples
        y = labels[:, 1:]  # (B, L) next samples
        if hp.voc_mode == "MOL":
            y = label_2_float(y.float(), bits)
        return x, y, mels


def make_data_loader(
    dataset: VocoderDataset,
    hparams: VocoderHParams,
    context: DistributedContext,
    epoch: int,
    *,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    """One epoch's shuffled loader, sharded over ranks under DDP."""
    per_rank = -(-len(dataset) // context.world_size)
    drop_last = per_rank >= hparams.voc_batch_size
    sampler = None
    if context.is_distributed:
        sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True,
                                     seed=seed)
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=hparams.voc_batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=VocoderCollate(hparams),
        num_workers=num_workers,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        drop_last=drop_last,
        pin_memory=context.device.type == "cuda",
        persistent_workers=False,
    )
