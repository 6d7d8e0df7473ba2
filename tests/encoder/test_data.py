"""encoder.data: the preprocessed layout, RTVC's RandomCycler, crops, batches and per-rank/worker streams.

The corpora here are real ``.npy`` files in the real layout whose values encode where they come from
(``frames[t, c] = utterance id · 1000 + t``), so a crop can be traced back to its file and start.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.data import (
    RandomCycler,
    SpeakerBatchDrawer,
    SpeakerBatchStream,
    SpeakerCorpus,
    crop_bounds,
    make_batch_loader,
    projection_set,
    read_sources,
    scan_speaker,
)
from encoder.hparams import EncoderHParams
from utils.training import TrainingError

HP = EncoderHParams(hidden_size=8, embedding_size=8, num_layers=1, speakers_per_batch=3, utterances_per_speaker=2)


def traceable_frames(utterance_id: int, n_frames: int, n_mels: int = 40) -> np.ndarray:
    """``(n_frames, n_mels)`` float32 with ``[t, c] = utterance_id * 1000 + t``."""
    rows = utterance_id * 1000 + np.arange(n_frames, dtype=np.float32)
    return np.repeat(rows[:, None], n_mels, axis=1)


def write_speaker(root: Path, name: str, lengths: list[int], first_id: int, sources: bool = True) -> list[int]:
    """A speaker folder with one utterance per length; returns the utterance ids."""
    folder = root / name
    folder.mkdir(parents=True)
    ids, lines = [], []
    for offset, length in enumerate(lengths):
        utterance_id = first_id + offset
        np.save(folder / f"utt_{utterance_id:03d}.npy", traceable_frames(utterance_id, length))
        lines.append(f"utt_{utterance_id:03d}.npy,/corpus/{name}/take, {offset}.flac")
        ids.append(utterance_id)
    if sources:
        (folder / "_sources.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


@pytest.fixture
def corpus_root(tmp_path: Path) -> Path:
    """5 usable speakers (2–4 utterances of 160–400 frames); one has no _sources.txt."""
    root = tmp_path / "SV2TTS" / "encoder"
    write_speaker(root, "spk_a", [160, 200, 400], 0)
    write_speaker(root, "spk_b", [300, 170], 10)
    write_speaker(root, "spk_c", [250, 250, 161, 380], 20)
    write_speaker(root, "spk_d", [190, 220], 30, sources=False)
    write_speaker(root, "spk_e", [500, 165], 40)
    return root


def trace(crop: np.ndarray) -> tuple[int, int]:
    """``(utterance id, start frame)`` of a traceable crop."""
    value = int(crop[0, 0])
    return value // 1000, value % 1000


# --------------------------------------------------------------------------------------------------
# _sources.txt and scanning
# --------------------------------------------------------------------------------------------------
def test_read_sources_splits_on_first_comma_and_deduplicates(tmp_path):
    path = tmp_path / "_sources.txt"
    path.write_text("a.npy,/data/Smith, John/a.flac\n\nb.npy,/b.wav\na.npy,/again.wav\nc.npy\n", encoding="utf-8")
    assert read_sources(path) == [("a.npy", "/data/Smith, John/a.flac"), ("b.npy", "/b.wav"), ("c.npy", None)]


def test_scan_keeps_only_usable_utterances(tmp_path):
    ids = write_speaker(tmp_path, "spk", [159, 160, 300], 0)
    folder = tmp_path / "spk"
    np.save(folder / "synth_mel.npy", np.zeros((400, 80), np.float32))  # a synthesizer mel: wrong band count
    np.save(folder / "ints.npy", np.zeros((400, 40), np.int64))
    (folder / "broken.npy").write_bytes(b"not numpy")
    lines = (folder / "_sources.txt").read_text().splitlines()
    lines += ["synth_mel.npy,/x.wav", "ints.npy,/y.wav", "broken.npy,/z.wav", "gone.npy,/w.wav"]
    (folder / "_sources.txt").write_text("\n".join(lines) + "\n")
    scan = scan_speaker(folder, HP)
    assert [u.frames_path.name for u in scan.usable] == [f"utt_{ids[1]:03d}.npy", f"utt_{ids[2]:03d}.npy"]
    assert [u.n_frames for u in scan.usable] == [160, 300]
    assert scan.usable[0].source == "/corpus/spk/take, 1.flac"  # comma inside the path survives
    assert (scan.too_short, scan.wrong_shape, scan.unreadable, scan.missing) == (1, 2, 1, 1)


def test_corpus_lists_speakers_with_enough_utterances(corpus_root):
    write_speaker(corpus_root, "spk_small", [400, 100], 50)  # one usable utterance < utterances_per_speaker
    corpus = SpeakerCorpus.load(corpus_root, HP)
    assert [s.name for s in corpus.speakers] == ["spk_a", "spk_b", "spk_c", "spk_d", "spk_e"]
    assert [len(s.utterances) for s in corpus.speakers] == [3, 2, 4, 2, 2]
    assert corpus.n_utterances == 13 and corpus.n_folders == 6
    assert corpus.n_small_speakers == 1 and corpus.n_too_short == 1
    assert corpus.summary() == (f"5 speakers, 13 utterances in '{corpus_root}' (skipped 1 speaker folders with "
                                "too few utterances, 1 utterances shorter than 1.6 s)")


@pytest.mark.parametrize("layout, expected", [
    ("missing", "does not exist (run python -m encoder.preprocess first)"),
    ("file", "is a file, not a folder of speaker folders"),
    ("empty", "has no speaker sub-folders"),
    ("no_npy", "has 2 sub-folders but no preprocessed utterances"),
    ("one_speaker", "Only 1 speaker(s)"),
])
def test_unusable_data_folders_raise_one_sentence(tmp_path, layout, expected):
    root = tmp_path / "encoder"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        root.mkdir()
    elif layout == "no_npy":
        (root / "a").mkdir(parents=True)
        (root / "b").mkdir()
    elif layout == "one_speaker":
        write_speaker(root, "only", [200, 200], 0)
    with pytest.raises(TrainingError) as raised:
        SpeakerCorpus.load(root, HP)
    message = str(raised.value)
    assert expected in message and "\n" not in message
    if layout == "one_speaker":
        assert "GE2E needs at least 2" in message


def test_too_few_speakers_suggests_a_batch_size(corpus_root):
    with pytest.raises(TrainingError) as raised:
        SpeakerCorpus.load(corpus_root, HP.replace(speakers_per_batch=64))
    assert str(raised.value) == (
        f"Only 5 speaker(s) in '{corpus_root}' have at least 2 utterances of 160 frames or more, fewer than "
        "speakers_per_batch=64; add speakers or pass --hparams speakers_per_batch=5."
    )


# --------------------------------------------------------------------------------------------------
# RandomCycler and crops
# --------------------------------------------------------------------------------------------------
def test_cycler_is_fair_every_cycle():
    items = list("abcdefg")
    cycler = RandomCycler(items, np.random.default_rng(3))
    draws = []
    for count in [3, 5, 2, 4, 6, 1, 7, 7, 1, 6, 4, 3]:  # 49 draws = 7 cycles, cut across calls
        draws.extend(cycler.sample(count))
    assert len(draws) == 49
    for cycle in range(7):
        assert sorted(draws[7 * cycle:7 * cycle + 7]) == items  # each item exactly once per cycle
    orders = {tuple(draws[7 * cycle:7 * cycle + 7]) for cycle in range(7)}
    assert len(orders) > 1  # reshuffled between cycles


def test_cycler_never_repeats_inside_one_draw():
    cycler = RandomCycler(range(5), np.random.default_rng(0))
    for _ in range(200):
        assert len(set(cycler.sample(4))) == 4  # cycle boundaries fall inside most of these draws
    counts = Counter(cycler.sample(5 * 40))  # larger than the item count: whole cycles
    assert set(counts.values()) == {40}


def test_cycler_edge_cases():
    assert RandomCycler(["only"], np.random.default_rng(0)).sample(3) == ["only"] * 3
    assert RandomCycler([1, 2], np.random.default_rng(0)).sample(0) == []
    with pytest.raises(ValueError):
        RandomCycler([], np.random.default_rng(0))
    first = RandomCycler(range(10), np.random.default_rng(7)).sample(25)
    assert first == RandomCycler(range(10), np.random.default_rng(7)).sample(25)  # seeded = reproducible


def test_crop_bounds_cover_every_valid_start():
    rng = np.random.default_rng(0)
    starts = [crop_bounds(163, 160, rng) for _ in range(400)]
    assert set(starts) == {0, 1, 2, 3}  # the last valid start (T − 160) included
    assert crop_bounds(160, 160, rng) == 0
    with pytest.raises(ValueError):
        crop_bounds(159, 160, rng)


# --------------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------------
def test_batch_shape_order_and_crops(corpus_root):
    corpus = SpeakerCorpus.load(corpus_root, HP)
    lengths = {u.frames_path.stem: u.n_frames for s in corpus.speakers for u in s.utterances}
    owner = {u.frames_path.stem: s.name for s in corpus.speakers for u in s.utterances}
    drawer = SpeakerBatchDrawer(corpus.speakers, 3, 2, 160, np.random.default_rng(1))
    seen_starts = Counter()
    for _ in range(30):
        batch = drawer.draw()
        assert batch.frames.shape == (6, 160, 40) and batch.frames.dtype == np.float32
        assert len(set(batch.speakers)) == 3  # no speaker twice in a batch
        for row in range(6):
            utterance_id, start = trace(batch.frames[row])
            stem = f"utt_{utterance_id:03d}"
            assert owner[stem] == batch.speakers[row // 2]  # speaker-major: 2 consecutive rows per speaker
            assert batch.utterances[row].frames_path.stem == stem and batch.starts[row] == start
            assert 0 <= start <= lengths[stem] - 160
            expected = traceable_frames(utterance_id, lengths[stem])[start:start + 160]
            np.testing.assert_array_equal(batch.frames[row], expected)  # the whole window, contiguous
            seen_starts[stem] += start > 0
        for j in range(3):  # the two utterances of a speaker are different files
            assert batch.utterances[2 * j] != batch.utterances[2 * j + 1]
    assert seen_starts["utt_040"] > 0  # the 500-frame utterance is cropped at varying places


def test_stream_differs_per_worker_and_rank_and_is_reproducible(corpus_root):
    speakers = SpeakerCorpus.load(corpus_root, HP).speakers

    def first_batches(rank: int, workers: int, start_step: int = 0, count: int = 4) -> list[torch.Tensor]:
        stream = SpeakerBatchStream(speakers, 3, 2, 160, seed=5, rank=rank, start_step=start_step)
        iterator = iter(make_batch_loader(stream, num_workers=workers))
        batches = [next(iterator) for _ in range(count)]
        del iterator
        return batches

    two_workers = first_batches(rank=0, workers=2)
    assert all(batch.shape == (6, 160, 40) and batch.dtype == torch.float32 for batch in two_workers)
    # Batches alternate between the workers; each worker has its own stream.
    assert not torch.equal(two_workers[0], two_workers[1])
    single = first_batches(rank=0, workers=0)
    assert torch.equal(single[0], two_workers[0])  # worker 0 draws what the main process would
    assert torch.equal(single[1], first_batches(rank=0, workers=0)[1])  # same seed → same batches
    assert not torch.equal(single[0], first_batches(rank=1, workers=0)[0])  # ranks draw differently
    assert not torch.equal(single[0], first_batches(rank=0, workers=0, start_step=100)[0])  # resume ≠ replay


def test_projection_set_is_fixed(corpus_root):
    speakers = SpeakerCorpus.load(corpus_root, HP).speakers
    frames, labels = projection_set(list(reversed(speakers)), n_speakers=2, n_utterances=2, n_frames=160)
    assert labels == ["spk_a", "spk_a", "spk_b", "spk_b"]
    assert frames.shape == (4, 160, 40)
    # Centre crops of the first utterances: utt 0 (160 frames) from 0, utt 1 (200) from 20, utt 10 (300) from 70.
    assert [trace(crop) for crop in frames] == [(0, 0), (1, 20), (10, 70), (11, 5)]
    again, _ = projection_set(speakers, 2, 2, 160)
    np.testing.assert_array_equal(frames, again)

