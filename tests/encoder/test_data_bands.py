"""Issue 18: encoder data made with another number of mel bands is named as such, not as "not enough speakers"."""

from __future__ import annotations

import pytest

from encoder.data import SpeakerCorpus
from tests.encoder.test_data import HP, corpus_root  # noqa: F401 (fixture)
from utils.training import TrainingError


def test_data_with_another_mel_band_count_names_the_cause(corpus_root):
    # corpus_root holds (T, 40) frames: train it as if the model expected 80 bands.
    with pytest.raises(TrainingError) as raised:
        SpeakerCorpus.load(corpus_root, HP.replace(mel_n_channels=80))
    assert str(raised.value) == (
        f"The encoder data in '{corpus_root}' has 40 mel bands (13 utterances) but mel_n_channels is 80: "
        "pass --hparams mel_n_channels=40, or preprocess again with mel_n_channels=80."
    )


def test_a_few_odd_files_among_good_ones_are_only_skipped(corpus_root):
    import numpy as np

    np.save(corpus_root / "spk_a" / "odd.npy", np.zeros((300, 80), np.float32))  # not in _sources.txt: ignored
    np.save(corpus_root / "spk_d" / "odd.npy", np.zeros((300, 80), np.float32))  # spk_d has no _sources.txt
    corpus = SpeakerCorpus.load(corpus_root, HP)
    assert corpus.other_bands == {80: 1} and len(corpus.speakers) == 5


def test_the_encoder_trainer_reports_the_band_mismatch_in_one_line(corpus_root, tmp_path, capsys):
    from encoder.train import main

    code = main(["run", str(corpus_root), "-m", str(tmp_path / "models"), "--no_tensorboard", "--quiet",
                 "--umap_every", "0", "--num_workers", "0", "--max_steps", "1",
                 "--hparams", "mel_n_channels=80", "speakers_per_batch=3", "utterances_per_speaker=2",
                 "hidden_size=8", "embedding_size=8", "num_layers=1"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 40 mel bands" in err[0] and "speakers" not in err[0]
