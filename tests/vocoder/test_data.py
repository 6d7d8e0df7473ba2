"""Vocoder training data: labels, windows, padding of short items, sharding; plus the helpers that build
real on-disk synthesizer/vocoder folders for the other vocoder tests."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.mel import melspectrogram
from synthesizer.hparams import SynthesizerHParams
from synthesizer.metadata import TrainEntry, read_train_txt, write_train_txt
from utils.audio_io import load_audio
from utils.distributed import DistributedContext
from utils.training import TrainingError
from vocoder.data import (
    VocoderCollate,
    VocoderData,
    VocoderDataset,
    crop_window,
    make_data_loader,
    max_window_offset,
    pad_to_window,
    prepare_wave,
    quantize,
    read_entries,
    window_frames,
)
from vocoder.hparams import VocoderHParams

# ---------------------------------------------------------------------------------------------- helpers

TINY_VOCODER = dict(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16, voc_res_blocks=1,
                    voc_batch_size=4, voc_seq_len=400)
SENTENCES = (
    ("utt_a", "The quick brown fox jumps over the lazy dog.", 40),
    ("utt_b", "Please call Stella and ask her to bring these things.", 60),
    ("utt_c", "Hello world, this is a short test.", 50),
)


def write_synthesizer_folder(syn_dir: Path, utterances: list[tuple[str, np.ndarray, str]],
                             seed: int = 0) -> list[TrainEntry]:
    """RTVC's synthesizer layout for ``(basename, wav, text)`` items: real mels, audio, random unit embeddings."""
    hparams = SynthesizerHParams()
    for folder in ("mels", "audio", "embeds"):
        (syn_dir / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for basename, wav, text in utterances:
        mel = melspectrogram(wav, hparams)  # (80, T)
        entry = TrainEntry.from_basename(basename, len(wav), mel.shape[1], text)
        np.save(syn_dir / "mels" / entry.mel_name, mel.T.astype(np.float32))
        np.save(syn_dir / "audio" / entry.audio_name, wav.astype(np.float32))
        embedding = rng.normal(size=hparams.speaker_embedding_size).astype(np.float32)
        np.save(syn_dir / "embeds" / entry.embed_name, embedding / np.linalg.norm(embedding))
        entries.append(entry)
    write_train_txt(syn_dir / "train.txt", entries)
    return entries


def espeak_utterances(folder: Path, speak) -> list[tuple[str, np.ndarray, str]]:
    """The :data:`SENTENCES` spoken by espeak-ng, 16 kHz, peak-normalised to 0.9 like RTVC's preprocessing."""
    utterances = []
    for basename, text, pitch in SENTENCES:
        wav = load_audio(speak(folder / f"{basename}.wav", text, pitch=pitch), 16000)
        utterances.append((basename, (wav / np.abs(wav).max() * 0.9).astype(np.float32), text))
    return utterances


def copy_as_gta(syn_dir: Path, voc_dir: Path) -> None:
    """A vocoder folder whose "GTA" mels are the ground-truth mels (the layout is what matters here)."""
    (voc_dir / "mels_gta").mkdir(parents=True, exist_ok=True)
    entries = read_train_txt(syn_dir / "train.txt")
    for entry in entries:
        (voc_dir / "mels_gta" / entry.mel_name).write_bytes((syn_dir / "mels" / entry.mel_name).read_bytes())
    write_train_txt(voc_dir / "synthesized.txt", entries)


@pytest.fixture(scope="session")
def speech_dataset_root(tmp_path_factory, espeak) -> Path:
    """``<root>/SV2TTS/{synthesizer,vocoder}`` built from espeak-ng speech (shared: do not modify)."""
    root = tmp_path_factory.mktemp("vocoder_speech")
    syn_dir = root / "SV2TTS" / "synthesizer"
    write_synthesizer_folder(syn_dir, espeak_utterances(root / "wavs", espeak))
    copy_as_gta(syn_dir, root / "SV2TTS" / "vocoder")
    return root


def mu_law_by_hand(x: float, mu: int = 512) -> int:
    m = mu - 1
    f = math.copysign(math.log(1 + m * abs(x)) / math.log(1 + m), x)
    return math.floor((f + 1) / 2 * m + 0.5)


# ---------------------------------------------------------------------------------------------- tests


def test_labels_are_mu_law_of_the_pre_emphasised_wave(speech_dataset_root: Path) -> None:
    hp = VocoderHParams(**TINY_VOCODER)
    sv2tts = speech_dataset_root / "SV2TTS"
    data = VocoderData.locate(sv2tts / "synthesizer", sv2tts / "vocoder")
    dataset = VocoderDataset.from_data(data, hp)
    mel, labels = dataset[0]
    wav = np.load(data.audio_dir / dataset.entries[0].audio_name).astype(np.float64)
    n_frames = dataset.entries[0].n_frames

    assert n_frames == 1 + len(wav) // 200
    assert mel.shape == (80, n_frames) and mel.dtype == np.float32
    stored = np.load(data.mel_dir / dataset.entries[0].mel_name)
    np.testing.assert_allclose(mel, stored.T / 4.0)
    assert labels.shape == (n_frames * 200,) and labels.dtype == np.int64
    for n in (0, 1, 5000, 12345, len(wav) - 1):
        emphasised = wav[n] - 0.97 * (wav[n - 1] if n else 0.0)
        assert labels[n] == mu_law_by_hand(min(max(emphasised, -1.0), 1.0)), n
    # past the recorded samples (the last frame is part padding) the label is that of silence
    assert (labels[len(wav):] == mu_law_by_hand(0.0)).all()
    assert labels.min() >= 0 and labels.max() <= 511 and len(np.unique(labels)) > 100


def test_window_starts_at_offset_plus_pad_hops() -> None:
    hp = VocoderHParams(voc_seq_len=400)  # 2 frames generated + 2·2 context frames
    mel = np.arange(30, dtype=np.float32)[None].repeat(80, axis=0)  # frame index as value
    labels = np.arange(30 * 200)  # sample index as value
    assert window_frames(hp) == 6
    for offset in (0, 7, max_window_offset(30, hp)):
        mel_window, label_window = crop_window(mel, labels, offset, hp)
        assert mel_window[0].tolist() == list(range(offset, offset + 6))
        assert label_window[0] == (offset + 2) * 200 and len(label_window) == 401
    assert max_window_offset(30, hp) == 24  # the last 6 frames: labels end at sample 28·200 + 1 <= 6000
    with pytest.raises(ValueError):
        crop_window(mel, labels, 25, hp)


def test_collate_pairs_previous_and_next_samples() -> None:
    hp = VocoderHParams(voc_seq_len=400)
    labels = np.random.default_rng(1).integers(0, 512, 20 * 200)
    mel = np.random.default_rng(2).uniform(-1, 1, (80, 20)).astype(np.float32)
    rng = np.random.default_rng(3)
    offset = int(np.random.default_rng(3).integers(0, max_window_offset(20, hp) + 1))  # the draw the collate makes
    x, y, mels = VocoderCollate(hp, rng)([(mel, labels)])
    start = (offset + 2) * 200
    np.testing.assert_array_equal(mels[0].numpy(), mel[:, offset : offset + 6])
    np.testing.assert_array_equal(y[0].numpy(), labels[start + 1 : start + 401])
    np.testing.assert_allclose(x[0].numpy(), 2 * labels[start : start + 400] / 511 - 1, atol=1e-6)
    assert x.dtype == torch.float32 and y.dtype == torch.int64


def test_every_valid_offset_is_drawn_and_short_items_are_padded() -> None:
    hp = VocoderHParams()  # 1000-sample windows: 9 frames
    collate = VocoderCollate(hp, np.random.default_rng(0))
    seen = {collate._offset(12) for _ in range(400)}
    assert seen == {0, 1, 2, 3}  # RTVC drew from [0, T - 15): nothing at all for T = 12

    hp_small = VocoderHParams(**TINY_VOCODER)
    mel = np.zeros((80, 3), np.float32)  # 3 frames < 6-frame window: RTVC's collate crashed (quirk 30)
    padded_mel, padded_labels = pad_to_window(mel, np.full(600, 300), hp_small)
    assert padded_mel.shape == (80, 6) and (padded_mel[:, 3:] == -1).all()
    assert padded_labels.shape == (1200,) and (padded_labels[600:] == 256).all()
    x, y, mels = VocoderCollate(hp_small, np.random.default_rng(0))([(padded_mel, padded_labels)])
    assert mels.shape == (1, 80, 6) and y.shape == (1, 400)


def test_mol_targets_are_floats() -> None:
    hp = VocoderHParams(voc_mode="MOL", voc_seq_len=400)
    wav = np.sin(np.linspace(0, 60, 10 * 200))
    labels = quantize(prepare_wave(wav, 10, hp), hp)
    assert labels.max() <= 65535 and labels.min() >= 0
    x, y, _ = VocoderCollate(hp, np.random.default_rng(0))([(np.zeros((80, 10), np.float32), labels)])
    assert y.dtype == torch.float32 and float(y.abs().max()) <= 1.0
    np.testing.assert_allclose(y[0, :-1].numpy(), x[0, 1:].numpy(), atol=1e-6)


def test_missing_files_are_skipped_with_a_warning_and_bad_layouts_fail(tmp_path: Path,
                                                                       speech_dataset_root: Path) -> None:
    syn_dir = tmp_path / "synthesizer"
    wav = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    write_synthesizer_folder(syn_dir, [("a", wav, "one"), ("b", wav, "two")])
    (syn_dir / "audio" / "audio-b.npy").unlink()
    hp = VocoderHParams(**TINY_VOCODER)
    data = VocoderData.locate(syn_dir, tmp_path / "vocoder", ground_truth=True)
    with pytest.warns(UserWarning, match="1 of 2 utterances"):
        entries = read_entries(data, hp)
    assert [entry.basename for entry in entries] == ["a"]

    with pytest.raises(TrainingError, match="synthesized.txt' does not exist; run python -m vocoder.preprocess"):
        VocoderData.locate(syn_dir, tmp_path / "vocoder")
    with pytest.raises(TrainingError, match="does not exist"):
        VocoderData.locate(tmp_path / "nowhere", tmp_path / "vocoder", ground_truth=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingError, match=r"expects \(frames, 40\)"):
            read_entries(data, hp.replace(num_mels=40))
    (syn_dir / "audio" / "audio-a.npy").unlink()
    with pytest.warns(UserWarning), pytest.raises(TrainingError, match="no usable utterance"):
        read_entries(data, hp)


def test_loader_shards_the_data_over_ranks(speech_dataset_root: Path) -> None:
    hp = VocoderHParams(**{**TINY_VOCODER, "voc_batch_size": 1})
    sv2tts = speech_dataset_root / "SV2TTS"
    data = VocoderData.locate(sv2tts / "synthesizer", sv2tts / "vocoder")
    dataset = VocoderDataset.from_data(data, hp)
    seen = []
    for rank in (0, 1):
        context = DistributedContext(rank=rank, world_size=2)
        loader = make_data_loader(dataset, hp, context, epoch=3, seed=0)
        assert loader.sampler.epoch == 3
        seen.append(list(loader.sampler))
        x, y, mels = next(iter(loader))
        assert x.shape == (1, 400) and mels.shape == (1, 80, 6)
    assert len(seen[0]) == len(seen[1]) == 2  # 3 items padded to 4 by the sampler
    assert set(seen[0]) | set(seen[1]) == {0, 1, 2}
    single = make_data_loader(dataset, hp.replace(voc_batch_size=8), DistributedContext(), epoch=0)
    batches = list(single)
    assert len(batches) == 1 and batches[0][0].shape == (3, 400)  # smaller than a batch: still one batch
