"""Synthesizer training data: the on-disk layout, collation for r, and the errors users see.

Also home of the helpers the synthesizer trainer tests share: they write RTVC's preprocessed layout
(``train.txt`` + ``mels/`` + ``audio/`` + ``embeds/``) from real waveforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.mel import melspectrogram
from synthesizer.data import (
    SynthesizerCollator,
    SynthesizerDataset,
    SynthesizerItem,
    LengthBucketedBatches,
    build_loader,
    padded_length,
)
from synthesizer.hparams import SynthesizerHParams
from synthesizer.metadata import TrainEntry, write_train_txt
from synthesizer.text import text_to_sequence
from utils.distributed import DistributedContext
from utils.training import TrainingError

SENTENCES = (
    "The cat sat on the mat.",
    "A big dog ran home.",
    "She sells sea shells.",
    "We like green apples.",
    "Open the red door.",
    "Birds fly in the sky.",
)

#: Letters of the synthetic "tone speech" and how long each one sounds.
TONE_LETTERS = "abdefhkmor"
TONE_SECONDS = 0.05  # exactly 4 mel frames (hop 200 at 16 kHz)


# ----------------------------------------------------------------------------------------------
# Shared helpers


def unit_vector(seed: int, size: int = 256) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=size).astype(np.float32)
    return vector / np.linalg.norm(vector)


def write_synthesizer_layout(
    root: Path,
    utterances: Sequence[tuple[str, np.ndarray]],
    embeddings: Sequence[np.ndarray] | np.ndarray,
    hparams: SynthesizerHParams | None = None,
) -> Path:
    """Write RTVC's synthesizer layout for ``(text, 16 kHz wave)`` pairs and return ``root``.

    Mels come from the real front-end (:func:`utils.mel.melspectrogram`) and are stored as
    (T, 80) float32, waves as 1-D float32, one embedding per utterance (or one for all).
    """
    hparams = hparams or SynthesizerHParams()
    for folder in ("mels", "audio", "embeds"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (text, wav) in enumerate(utterances):
        wav = np.asarray(wav, dtype=np.float32)
        mel = melspectrogram(wav, hparams)  # (80, T)
        entry = TrainEntry.from_basename(f"utt{index:03d}", len(wav), mel.shape[1], text)
        np.save(root / "mels" / entry.mel_name, mel.T.astype(np.float32))
        np.save(root / "audio" / entry.audio_name, wav)
        embedding = embeddings if isinstance(embeddings, np.ndarray) and embeddings.ndim == 1 else embeddings[index]
        np.save(root / "embeds" / entry.embed_name, np.asarray(embedding, dtype=np.float32))
        entries.append(entry)
    write_train_txt(root / "train.txt", entries)
    return root


def spoken_utterances(folder: Path, speak, sentences: Sequence[str] = SENTENCES) -> list[tuple[str, np.ndarray]]:
    """espeak-ng speech of each sentence, silence-trimmed and peak-normalised like the preprocessing."""
    import librosa
    import soundfile

    utterances = []
    for index, text in enumerate(sentences):
        path = speak(folder / f"sentence{index}.wav", text, speed=200)
        wav, _ = soundfile.read(path, dtype="float32")
        wav, _ = librosa.effects.trim(wav, top_db=40)
        utterances.append((text, (wav / np.abs(wav).max() * 0.9).astype(np.float32)))
    return utterances


def tone_utterances(n_utterances: int, n_letters: int, seed: int = 1) -> list[tuple[str, np.ndarray]]:
    """Random letter strings rendered as "tone speech": each letter is its own 50 ms two-tone chord.

    Every letter lasts exactly 4 frames, so the correct alignment is known (a straight diagonal) and
    random strings cannot be memorised without reading the text.
    """
    rate = 16000
    time = np.arange(int(TONE_SECONDS * rate)) / rate
    window = np.hanning(len(time))
    chords = [window * (np.sin(2 * np.pi * (250 + 120 * k) * time) + 0.7 * np.sin(2 * np.pi * (1500 + 450 * k) * time))
              for k in range(len(TONE_LETTERS))]
    rng = np.random.default_rng(seed)
    utterances = []
    for _ in range(n_utterances):
        letters = rng.integers(0, len(TONE_LETTERS), n_letters)
        wav = np.concatenate([chords[k] for k in letters])
        text = "".join(TONE_LETTERS[k] for k in letters)
        utterances.append((text, (wav / np.abs(wav).max() * 0.9).astype(np.float32)))
    return utterances


def item(ids: list[int], mel: np.ndarray, embedding: list[float], index: int = 0) -> SynthesizerItem:
    return SynthesizerItem(torch.tensor(ids), torch.tensor(mel, dtype=torch.float32),
                           torch.tensor(embedding, dtype=torch.float32), index)


# ----------------------------------------------------------------------------------------------
# Collation


def test_collate_pads_ids_mels_and_builds_stop_targets_and_mask_by_hand():
    short = item([30, 1], np.full((2, 2), 1.0), [1.0, 0.0], index=7)
    long = item([40, 41, 42, 1], np.arange(10, dtype=np.float32).reshape(2, 5), [0.0, 1.0], index=3)
    batch = SynthesizerCollator(r=3, pad_value=-4.0)([short, long])

    assert batch.texts.dtype == torch.int64
    assert batch.texts.tolist() == [[30, 1, 0, 0], [40, 41, 42, 1]]
    assert batch.text_lengths.tolist() == [2, 4]
    assert batch.mel_lengths.tolist() == [2, 5]
    # max frames 5, + 1 = 6, already a multiple of r = 3
    assert batch.mels.shape == (2, 2, 6)
    assert batch.mels[0].tolist() == [[1.0, 1.0, -4.0, -4.0, -4.0, -4.0]] * 2
    assert batch.mels[1].tolist() == [[0, 1, 2, 3, 4, -4.0], [5, 6, 7, 8, 9, -4.0]]
    assert batch.frame_mask.tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]]
    assert batch.stop_targets.tolist() == [[0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]]
    assert batch.embeddings.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert batch.indices.tolist() == [7, 3]


@pytest.mark.parametrize("max_frames, r, expected", [(5, 1, 6), (5, 2, 6), (6, 2, 8), (6, 4, 8), (7, 4, 8), (8, 4, 12)])
def test_padded_length_leaves_at_least_one_padding_frame_and_is_a_multiple_of_r(max_frames, r, expected):
    assert padded_length(max_frames, r) == expected


def test_collate_rounds_up_to_r_with_the_given_pad_value():
    batch = SynthesizerCollator(r=4, pad_value=0.0)([item([5, 1], np.ones((3, 6)), [1.0])])
    assert batch.mels.shape == (1, 3, 8)
    assert batch.mels[0, :, 6:].eq(0.0).all()
    assert batch.stop_targets[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


# ----------------------------------------------------------------------------------------------
# Dataset on disk


@pytest.fixture(scope="module")
def tone_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tone_data")
    utterances = tone_utterances(5, 6)
    return write_synthesizer_layout(root, utterances, [unit_vector(i) for i in range(5)])


def test_dataset_items_match_the_files_and_the_text_front_end(tone_dir):
    dataset = SynthesizerDataset(tone_dir, SynthesizerHParams())
    assert len(dataset) == 5
    text_ids, mel, embedding, index = dataset[2]
    entry = dataset.entries[2]
    assert index == 2
    assert text_ids.dtype == torch.int64 and text_ids.tolist() == text_to_sequence(entry.text)
    assert text_ids[-1] == 1  # EOS
    stored = np.load(tone_dir / "mels" / entry.mel_name)  # (T, 80) on disk
    assert mel.dtype == torch.float32 and mel.shape == (80, stored.shape[0]) == (80, entry.n_frames)
    np.testing.assert_array_equal(mel.numpy(), stored.T)
    np.testing.assert_array_equal(embedding.numpy(), unit_vector(2))


def test_dataset_skips_lines_without_frames(tmp_path, tone_dir):
    import shutil

    root = tmp_path / "syn"
    shutil.copytree(tone_dir, root)
    lines = (root / "train.txt").read_text().splitlines()
    fields = lines[0].split("|")
    fields[4] = "0"
    (root / "train.txt").write_text("\n".join(["|".join(fields), *lines[1:]]) + "\n")
    dataset = SynthesizerDataset(root, SynthesizerHParams())
    assert len(dataset) == 4
    assert all(entry.n_frames > 0 for entry in dataset.entries)


def test_missing_embeddings_give_one_error_with_the_count_the_first_and_the_fix(tmp_path, tone_dir):
    import shutil

    root = tmp_path / "syn"
    shutil.copytree(tone_dir, root)
    for path in sorted((root / "embeds").glob("*.npy"))[1:4]:
        path.unlink()
    with pytest.raises(TrainingError) as caught:
        SynthesizerDataset(root, SynthesizerHParams())
    message = str(caught.value)
    assert "3 embedding file(s)" in message
    assert "embed-utt001.npy" in message
    assert "embeddings" in message and "\n" not in message


@pytest.mark.parametrize("problem, expected", [
    ("no_folder", "does not exist"),
    ("no_train_txt", "has no train.txt"),
    ("empty_train_txt", "lists no utterance"),
    ("wrong_embedding_size", "speaker_embedding_size"),
])
def test_unusable_data_folders_raise_one_sentence(tmp_path, tone_dir, problem, expected):
    import shutil

    root = tmp_path / "syn"
    if problem != "no_folder":
        shutil.copytree(tone_dir, root)
    if problem == "no_train_txt":
        (root / "train.txt").unlink()
    elif problem == "empty_train_txt":
        (root / "train.txt").write_text("")
    hparams = (SynthesizerHParams(speaker_embedding_size=64) if problem == "wrong_embedding_size"
               else SynthesizerHParams())
    with pytest.raises(TrainingError, match=expected) as caught:
        SynthesizerDataset(root, hparams)
    assert "\n" not in str(caught.value)


def test_loader_splits_each_epoch_between_ranks_and_reshuffles(tone_dir):
    dataset = SynthesizerDataset(tone_dir, SynthesizerHParams())
    seen = []
    for rank in (0, 1):
        loader, sampler = build_loader(dataset, r=2, batch_size=2, context=DistributedContext(rank=rank, world_size=2),
                                       seed=3, num_workers=0)
        sampler.set_epoch(0)
        batches = list(loader)
        assert all(batch.mels.shape[2] % 2 == 0 for batch in batches)
        seen.append([int(i) for batch in batches for i in batch.indices])
    assert len(seen[0]) == len(seen[1]) == 3  # 5 items padded to 6 so both ranks take as many steps
    assert set(seen[0]) | set(seen[1]) == set(range(5))

    loader, sampler = build_loader(dataset, r=2, batch_size=5, context=DistributedContext(), seed=3, num_workers=0)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        orders.append([int(i) for batch in loader for i in batch.indices])
    assert orders[0] == orders[2] != orders[1]
    assert sorted(orders[1]) == list(range(5))


def test_length_bucketing_covers_every_item_once_in_batches_of_similar_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 600, size=200).tolist()
    batches_sampler = LengthBucketedBatches(list(rng.permutation(200)), lengths, batch_size=8, window_batches=5)
    batches = list(batches_sampler)
    assert len(batches) == len(batches_sampler) == 25
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    random_spread = np.mean([np.ptp([lengths[i] for i in rng.choice(200, 8, replace=False)]) for _ in range(200)])
    assert spread < 0.3 * random_spread


def test_bucketed_loader_reshuffles_per_epoch_and_splits_between_ranks(tone_dir):
    dataset = SynthesizerDataset(tone_dir, SynthesizerHParams())
    seen = []
    for rank in (0, 1):
        loader, sampler = build_loader(dataset, r=2, batch_size=2, context=DistributedContext(rank=rank, world_size=2),
                                       seed=3, num_workers=0, bucket_by_length=True)
        sampler.set_epoch(0)
        seen.append([int(i) for batch in loader for i in batch.indices])
    assert set(seen[0]) | set(seen[1]) == set(range(5))
    loader, sampler = build_loader(dataset, r=2, batch_size=2, context=DistributedContext(), seed=3, num_workers=0,
                                   bucket_by_length=True)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        orders.append([int(i) for batch in loader for i in batch.indices])
    assert orders[0] == orders[2] and sorted(orders[1]) == list(range(5))
