"""Duration-synthesizer trainer end to end on espeak-ng speech: alignment and lengths learnt on a tiny
overfit run, resume, --init_from an exported float16 file, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesizer.duration.train import learning_rate, main, parse_oversample, train_from_args
from synthesizer.duration.hparams import DurationHParams
from synthesizer.inference import load_synthesizer
from tests.synthesizer.test_data import spoken_utterances, unit_vector, write_synthesizer_layout
from utils.export_model import main as export_main
from utils.training import TrainingError

TINY = ["encoder_channels=48", "duration_channels=32", "decoder_channels=48", "decoder_layers=2", "encoder_layers=3",
        "dropout=0.0", "learning_rate=3e-3", "warmup_steps=20", "alignment_prior_steps=100", "batch_frames=4000"]
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore.",
             "A stitch in time saves nine.", "Peter Piper picked a peck of pickled peppers."]


@pytest.fixture(scope="module")
def syn_dir(tmp_path_factory, espeak):
    folder = tmp_path_factory.mktemp("duration_data")
    utterances = spoken_utterances(folder / "wav", espeak, SENTENCES)
    return write_synthesizer_layout(folder / "syn", utterances, unit_vector(3))


@pytest.fixture(scope="module")
def trained(syn_dir, tmp_path_factory):
    models = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    model = train_from_args(["tiny", str(syn_dir), "-m", str(models), "--max_steps", "250", "--quiet", "--seed", "0",
                             "--sample_every", "250", "--no_tensorboard", "--hparams", *TINY])
    return model, models


def test_a_tiny_overfit_run_learns_monotonic_alignments_and_lengths(trained, syn_dir):
    model, models = trained
    synthesizer = load_synthesizer(models / "tiny" / "synthesizer.pt")
    assert synthesizer.step == 250
    from synthesizer.metadata import read_train_txt

    entries = read_train_txt(syn_dir / "train.txt")
    result = synthesizer.synthesize([e.text for e in entries], unit_vector(3))
    for entry, mel, path in zip(entries, result.mels, result.alignments):
        assert 0.8 < mel.shape[1] / entry.n_frames < 1.2  # predicted length within ±20 %
        owner = path.argmax(1)  # (frames,) symbol of each frame
        assert (np.diff(owner) >= 0).all()
    samples = sorted((models / "tiny" / "samples").glob("step-000250-*"))
    assert {p.name.split("-", 2)[2] for p in samples} >= {"alignment.png", "free.wav", "teacher.wav"}


def test_resume_continues_the_step_count(trained, syn_dir):
    _, models = trained
    train_from_args(["tiny", str(syn_dir), "-m", str(models), "--max_steps", "255", "--quiet", "--no_tensorboard"])
    assert load_synthesizer(models / "tiny" / "synthesizer.pt").step == 255


def test_init_from_an_exported_file(trained, syn_dir, tmp_path):
    _, models = trained
    assert export_main([str(models / "tiny" / "synthesizer.pt"), str(tmp_path / "small.pt"), "--float16"]) == 0
    train_from_args(["again", str(syn_dir), "-m", str(tmp_path), "--init_from", str(tmp_path / "small.pt"),
                     "--max_steps", "258", "--quiet", "--no_tensorboard"])
    assert load_synthesizer(tmp_path / "again" / "synthesizer.pt").step == 258


def test_a_tacotron_run_is_not_resumed_as_a_duration_run(syn_dir, tmp_path, capsys):
    from synthesizer.hparams import SynthesizerHParams
    from synthesizer.inference import Synthesizer
    from synthesizer.model import build_tacotron

    small = SynthesizerHParams(tts_embed_dims=16, tts_encoder_dims=16, tts_decoder_dims=16, tts_postnet_dims=16,
                               tts_lstm_dims=32)
    Synthesizer(build_tacotron(small)).save(tmp_path / "run" / "synthesizer.pt")
    assert main(["run", str(syn_dir), "-m", str(tmp_path), "--max_steps", "1", "--quiet"]) == 1
    assert "is a Tacotron synthesizer" in capsys.readouterr().err


def test_bad_options_are_one_line_errors(syn_dir, tmp_path, capsys):
    assert main(["x", str(tmp_path / "nowhere"), "-m", str(tmp_path), "--quiet"]) == 1
    assert main(["x", str(syn_dir), "-m", str(tmp_path), "--oversample", "abc", "--quiet"]) == 1
    # Issue 26: a factor of 10**9 grew the list of utterances past 15 GB.
    assert main(["x", str(syn_dir), "-m", str(tmp_path), "--oversample", "X=1000000000", "--quiet"]) == 1
    # Issue 26: the run "shipped" resumed and overwrote the committed saved_models/shipped/synthesizer.pt.
    assert main(["shipped", str(syn_dir), "--max_steps", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "Traceback" not in err and "N from 1 to 100" in err
    assert "The run name 'shipped' is reserved" in err
    with pytest.raises(TrainingError):
        parse_oversample(["(=2"])


def test_learning_rate_warms_up_then_halves():
    hparams = DurationHParams(learning_rate=1e-3, warmup_steps=10, lr_decay_half_life=100)
    assert learning_rate(hparams, 5) == pytest.approx(5e-4)
    assert learning_rate(hparams, 110) == pytest.approx(5e-4)


@pytest.mark.parametrize("where", ["between", "mid_step", "nan"])
def test_an_exception_saves_only_a_finished_finite_step(syn_dir, tmp_path, monkeypatch, capsys, where):
    """The rule every trainer shares (utils.training.training_session): see tests/utils/test_training.py."""
    from tests.utils.test_training import FAILURES, InjectedFailure, check_end_after_failure, inject_failure

    inject_failure(monkeypatch, where, at_step=FAILURES[where][0])
    with pytest.raises(InjectedFailure):
        train_from_args(["run", str(syn_dir), "-m", str(tmp_path), "--max_steps", "10", "--save_every", "2",
                         "--quiet", "--seed", "0", "--no_tensorboard", "--hparams", *TINY])
    check_end_after_failure(tmp_path / "run" / "synthesizer.pt", where, capsys.readouterr().out)
