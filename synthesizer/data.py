"""Synthesizer training data: ``<syn_dir>/train.txt``, ``mels/`` and ``embeds/`` as Tacotron batches.

Layout and padding: docs/synthesizer.md.

>>> import torch
>>> items = [SynthesizerItem(torch.tensor([30, 31, 1]), torch.zeros(2, 3), torch.ones(4), 0),
...          SynthesizerItem(torch.tensor([40, 1]), torch.ones(2, 1), torch.ones(4), 1)]
>>> batch = SynthesizerCollator(r=2, pad_value=-4.0)(items)
>>> batch.texts.tolist(), batch.mels.shape
([[30, 31, 1], [40, 1, 0]], torch.Size([2, 2, 4]))
>>> batch.frame_mask.tolist(), batch.stop_targets.tolist()
([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from synthesizer.hparams import SynthesizerHParams
from synthesizer.text import TextWarning, encode_text
from utils.distributed import DistributedContext
from utils.training import TrainingError, worker_init_fn

#: What to run when the embeddings are missing (named in the error message).
EMBEDDINGS_HINT = "compute the speaker embeddings first (the embeddings step of python -m synthesizer.preprocess)"


class SynthesizerItem(NamedTuple):

    text_ids: Tensor  # (Tc,) int64, ends with EOS (id 1)
    mel: Tensor  # (num_mels, T) float32
    embedding: Tensor  # (speaker_embedding_size,) float32
    index: int  # position in the dataset


class SynthesizerBatch(NamedTuple):
    """A padded batch; ``T`` is a multiple of ``r`` and larger than every item's frame count."""

    texts: Tensor  # (B, Tc) int64, padded with 0
    text_lengths: Tensor  # (B,) int64, EOS included
    mels: Tensor  # (B, num_mels, T) float32, padded with the silence value
    mel_lengths: Tensor  # (B,) int64, real frames
    frame_mask: Tensor  # (B, T) float32, 1 for real frames
    stop_targets: Tensor  # (B, T) float32, 1 from the last real frame on
    embeddings: Tensor  # (B, speaker_embedding_size) float32
    indices: Tensor  # (B,) int64 dataset positions

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SynthesizerBatch:
        return SynthesizerBatch(*(tensor.to(device, non_blocking=non_blocking) for tensor in self))


def padded_length(max_frames: int, r: int) -> int:
    """RTVC's target length: ``max_frames + 1`` rounded up to a multiple of ``r``.

    >>> padded_length(6, 2), padded_length(7, 2), padded_length(7, 1), padded_length(5, 3)
    (8, 8, 8, 6)
    """
    return int(math.ceil((max_frames + 1) / r) * r)


class SynthesizerCollator:
    """Pad :class:`SynthesizerItem` s into a :class:`SynthesizerBatch` for ``r``; mels with ``pad_value``.

    A class so DataLoader workers can pickle it."""

    def __init__(self, r: int, pad_value: float) -> None:
        if r < 1:
            raise ValueError(f"r must be at least 1, not {r}")
        self.r = int(r)
        self.pad_value = float(pad_value)

    def __call__(self, items: Sequence[SynthesizerItem]) -> SynthesizerBatch:
        if not items:
            raise ValueError("cannot collate an empty batch")
        text_lengths = torch.tensor([len(item.text_ids) for item in items], dtype=torch.int64)  # (B,)
        mel_lengths = torch.tensor([item.mel.shape[1] for item in items], dtype=torch.int64)  # (B,)
        n_mels = items[0].mel.shape[0]
        n_frames = padded_length(int(mel_lengths.max()), self.r)

        texts = torch.zeros(len(items), int(text_lengths.max()), dtype=torch.int64)  # (B, Tc)
        mels = torch.full((len(items), n_mels, n_frames), self.pad_value, dtype=torch.float32)  # (B, M, T)
        for row, item in enumerate(items):
            texts[row, : len(item.text_ids)] = item.text_ids
            mels[row, :, : item.mel.shape[1]] = item.mel

        frame_index = torch.arange(n_frames).unsqueeze(0)  # (1, T)
        frame_mask = (frame_index < mel_lengths.unsqueeze(1)).to(torch.float32)  # (B, T)
        stop_targets = (frame_index >= mel_lengths.unsqueeze(1) - 1).to(torch.float32)  # (B, T)
        embeddings = torch.stack([item.embedding for item in items]).to(torch.float32)  # (B, S)
        indices = torch.tensor([item.index for item in items], dtype=torch.int64)
        return SynthesizerBatch(texts, text_lengths, mels, mel_lengths, frame_mask, stop_targets, embeddings, indices)


def mel_pad_value(hparams: SynthesizerHParams) -> float:
    return -hparams.max_abs_value if hparams.symmetric_mels else 0.0


class SynthesizerDataset(Dataset):
    """The utterances of ``<syn_dir>/train.txt`` that have frames, with their mels and embeddings.

    :class:`TrainingError` when files are missing or of the wrong size."""

    def __init__(self, syn_dir: str | Path, hparams: SynthesizerHParams) -> None:
        from synthesizer.metadata import read_train_txt  # the preprocessing's reader of RTVC's format

        self.root = Path(syn_dir)
        self.hparams = hparams
        if not self.root.is_dir():
            raise TrainingError(f"The synthesizer data folder '{self.root}' does not exist.")
        metadata = self.root / "train.txt"
        if not metadata.is_file():
            raise TrainingError(
                f"The synthesizer data folder '{self.root}' has no train.txt; preprocess a dataset into it first "
                "(python -m synthesizer.preprocess)."
            )
        try:
            entries = read_train_txt(metadata)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise TrainingError(f"Cannot read '{metadata}': {error}") from None
        self.entries = [entry for entry in entries if int(entry.n_frames) > 0]
        if not self.entries:
            raise TrainingError(f"'{metadata}' lists no utterance with mel frames; "
                                f"preprocess a dataset into '{self.root}'.")
        self.mels_dir = self.root / "mels"
        self.embeds_dir = self.root / "embeds"
        self._check_files(metadata)
        self._check_first_item()

    def _check_files(self, metadata: Path) -> None:
        missing = [path for entry in self.entries
                   for path in (self.mels_dir / entry.mel_name, self.embeds_dir / entry.embed_name)
                   if not path.is_file()]
        if not missing:
            return
        missing_embeds = [path for path in missing if path.parent == self.embeds_dir]
        what = "embedding" if len(missing_embeds) == len(missing) else "mel or embedding"
        hint = EMBEDDINGS_HINT if what == "embedding" else "preprocess the dataset again"
        raise TrainingError(
            f"{len(missing)} {what} file(s) listed in '{metadata}' are missing (first: '{missing[0]}'); {hint}."
        )

    def _check_first_item(self) -> None:
        item = self[0]
        entry = self.entries[0]
        if item.mel.shape[0] != self.hparams.num_mels:
            raise TrainingError(
                f"The mel '{self.mels_dir / entry.mel_name}' has {item.mel.shape[0]} bands but num_mels is "
                f"{self.hparams.num_mels}; mels are stored as (frames, {self.hparams.num_mels}) arrays."
            )
        if item.embedding.shape != (self.hparams.speaker_embedding_size,):
            raise TrainingError(
                f"The embedding '{self.embeds_dir / entry.embed_name}' has shape {tuple(item.embedding.shape)} "
                f"but speaker_embedding_size is {self.hparams.speaker_embedding_size}."
            )

    def __len__(self) -> int:
        return len(self.entries)

    def text_ids(self, index: int) -> Tensor:
        with warnings.catch_warnings():
            # A corpus has many texts with an odd character; one warning per item would flood the log.
            warnings.simplefilter("ignore", TextWarning)
            ids = encode_text(self.entries[index].text, self.hparams.tts_cleaner_names).ids
        return torch.tensor(ids, dtype=torch.int64)

    def __getitem__(self, index: int) -> SynthesizerItem:
        entry = self.entries[index]
        mel_path = self.mels_dir / entry.mel_name
        embed_path = self.embeds_dir / entry.embed_name
        try:
            mel = np.load(mel_path)  # (T, num_mels), RTVC's on-disk orientation
            embedding = np.load(embed_path)  # (S,)
        except (OSError, ValueError) as error:
            raise TrainingError(f"Cannot read '{mel_path}' or '{embed_path}': {error}") from None
        if mel.ndim != 2:
            raise TrainingError(f"The mel '{mel_path}' has shape {mel.shape}; expected (frames, num_mels).")
        mel_tensor = torch.from_numpy(np.ascontiguousarray(mel.T, dtype=np.float32))  # (num_mels, T)
        embed_tensor = torch.from_numpy(np.asarray(embedding, dtype=np.float32).reshape(-1))  # (S,)
        return SynthesizerItem(self.text_ids(index), mel_tensor, embed_tensor, index)


class LengthBucketedBatches:
    """Batches of similar-length utterances from a sampler's shuffled order (docs/synthesizer.md).

    >>> import torch
    >>> lengths = [5, 100, 6, 90, 7, 95, 8, 99]
    >>> batches = list(LengthBucketedBatches(list(range(8)), lengths, batch_size=2, window_batches=4))
    >>> sorted(sorted(lengths[i] for i in batch) for batch in batches)
    [[5, 6], [7, 8], [90, 95], [99, 100]]
    """

    def __init__(self, sampler, lengths, batch_size: int, window_batches: int = 16, seed: int = 0) -> None:
        self.sampler = sampler
        self.lengths = lengths
        self.batch_size = batch_size
        self.window = batch_size * window_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        full, rest = divmod(n, self.window)
        return full * (self.window // self.batch_size) + -(-rest // self.batch_size)

    def __iter__(self):
        order = list(self.sampler)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        for start in range(0, len(order), self.window):
            window = sorted(order[start:start + self.window], key=lambda index: self.lengths[index])
            batches = [window[i:i + self.batch_size] for i in range(0, len(window), self.batch_size)]
            for position in torch.randperm(len(batches), generator=generator).tolist():
                yield batches[position]


def build_loader(
    dataset: SynthesizerDataset,
    r: int,
    batch_size: int,
    context: DistributedContext,
    *,
    seed: int,
    num_workers: int = 2,
    bucket_by_length: bool = False,
) -> tuple[DataLoader, DistributedSampler | LengthBucketedBatches]:
    """Shuffled loader of padded batches for ``r``, each rank reading its share of every epoch.

    Call ``sampler.set_epoch(epoch)`` before each epoch; ``seed`` must be the same on every rank."""
    sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank,
                                 shuffle=True, seed=seed, drop_last=False)
    workers = {"num_workers": num_workers, "worker_init_fn": worker_init_fn if num_workers > 0 else None,
               "persistent_workers": num_workers > 0, "pin_memory": context.device.type == "cuda",
               "collate_fn": SynthesizerCollator(r, mel_pad_value(dataset.hparams))}
    if bucket_by_length:
        lengths = [int(entry.n_frames) for entry in dataset.entries]
        batches = LengthBucketedBatches(sampler, lengths, batch_size, seed=seed)
        return DataLoader(dataset, batch_sampler=batches, **workers), batches
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=False, **workers), sampler
