"""Random training segments: length, the pre-emphasis history sample, errors on unusable folders."""

from __future__ import annotations

import numpy as np
import pytest

from synthesizer.metadata import TrainEntry, write_train_txt
from utils.training import TrainingError
from vocoder.istft.data import SegmentDataset
from vocoder.istft.hparams import ISTFTHParams


def make_folder(root, lengths):
    (root / "audio").mkdir()
    entries = []
    for number, n in enumerate(lengths):
        np.save(root / "audio" / f"audio-u{number}.npy", np.arange(n, dtype=np.float32))
        entries.append(TrainEntry.from_basename(f"u{number}", n, 1 + n // 200, "text"))
    write_train_txt(root / "train.txt", entries)
    return root


def test_segments_carry_their_history_sample(tmp_path):
    hp = ISTFTHParams(segment_frames=4)
    data = SegmentDataset.from_folder(make_folder(tmp_path, [800, 5000, 100]), hp)
    assert len(data) == 2  # the 100-sample utterance is shorter than one segment
    np.random.seed(0)
    exact = data[0].numpy()  # the only window of an 800-sample utterance starts at 0
    assert exact.shape == (801,) and exact[0] == 0.0 and np.array_equal(exact[1:], np.arange(800))
    for _ in range(20):
        window = data[1].numpy()
        assert window.shape == (801,)
        if window[1] > 0:  # a window inside the utterance: the sample before it is its history
            assert np.array_equal(np.diff(window), np.ones(800))


def test_unusable_folders_are_one_line_errors(tmp_path):
    with pytest.raises(TrainingError, match="train.txt"):
        SegmentDataset.from_folder(tmp_path, ISTFTHParams())
    with pytest.raises(TrainingError, match="no utterance"):
        SegmentDataset.from_folder(make_folder(tmp_path, [100]), ISTFTHParams())
