"""Issue 18: window and batch hyperparameters are bounded by the data before any step, for the WaveRNN and
iSTFT vocoder trainers (voc_seq_len=1000000 padded every utterance to 62 s and grew to 21 GB)."""

from __future__ import annotations

import numpy as np
import pytest

from synthesizer.metadata import TrainEntry, write_train_txt
from tests.vocoder.test_data import speech_dataset_root  # noqa: F401 (fixture)
from tests.vocoder.test_train import train_args
from vocoder.istft.train import main as istft_main
from vocoder.train import main as wavernn_main

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_wavernn_window_longer_than_any_utterance_is_refused_before_training(speech_dataset_root, tmp_path, capsys):
    args = train_args(speech_dataset_root, tmp_path / "models", "big", "--max_steps", "1",
                      hparams=["voc_seq_len=1000000", "voc_batch_size=2"])
    assert wavernn_main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: voc_seq_len=1000000 samples (62.5 s) is longer than the "
                                               "longest utterance of the training data")
    assert not (tmp_path / "models" / "big" / "vocoder.pt").exists()


@pytest.fixture
def syn_dir(tmp_path):
    root = tmp_path / "syn"
    (root / "audio").mkdir(parents=True)
    entries = []
    rng = np.random.default_rng(0)
    for number in range(3):
        wav = (0.1 * rng.standard_normal(8000)).astype(np.float32)  # 0.5 s: 40 frames
        np.save(root / "audio" / f"audio-u{number}.npy", wav)
        entries.append(TrainEntry.from_basename(f"u{number}", len(wav), 1 + len(wav) // 200, "hello"))
    write_train_txt(root / "train.txt", entries)
    return root


@pytest.mark.parametrize("override, expected", [
    ("segment_frames=100000", "segment_frames=100000 frames is longer than the longest utterance of the training "
                              "data (40 frames); use at most 40."),
    ("batch_size=4", "batch_size=4 needs 4 usable utterances of at least 8 frames but the training data has 3; "
                     "lower batch_size to at most 3."),
])
def test_istft_window_and_batch_are_bounded_by_the_data(tmp_path, syn_dir, capsys, override, expected):
    hparams = ["channels=16", "num_blocks=1", "segment_frames=8", "batch_size=2", override]
    args = ["run", str(syn_dir), "-m", str(tmp_path / "models"), "--num_workers", "0", "--no_tensorboard", "--quiet",
            "--max_steps", "1", "--hparams", *hparams]
    assert istft_main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {expected}"]
    assert not (tmp_path / "models" / "run" / "vocoder.pt").exists()
