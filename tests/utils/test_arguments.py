"""The trainers' shared flags: one builder (utils.arguments.training_parser), one conversion (options_from_args)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from utils.arguments import training_parser
from utils.training import TrainingError, TrainingOptions, options_from_args

TRAINERS = ["encoder.train", "synthesizer.train", "synthesizer.duration.train", "vocoder.train",
            "vocoder.istft.train"]

#: Every shared flag, each away from its default.
SHARED_FLAGS = ["-m", "models", "--config", "c.json", "--hparams", "a=1", "b=[1, 2]", "--hparams", "c=x",
                "--init_from", "start.pt", "-s", "3", "-b", "4", "--max_steps", "5", "--log_every", "0",
                "--sample_every", "6", "-f", "--cpu", "--no_amp", "--cpu_bf16", "--seed", "7", "--num_workers", "1",
                "--no_tensorboard", "--quiet"]

EXPECTED = TrainingOptions(
    run_id="run", models_dir=Path("models"), config=Path("c.json"), hparam_overrides={"a": 1, "b": [1, 2], "c": "x"},
    save_every=3, backup_every=4, max_steps=5, log_every=1, sample_every=6, force_restart=True,
    init_from=Path("start.pt"), cpu=True, amp=False, cpu_bf16=True, seed=7, num_workers=1, tensorboard=False,
    progress=False)


def test_the_shared_flags_become_the_run_settings():
    args = training_parser("train", "Train.", init_from="weights").parse_args(["run", *SHARED_FLAGS])
    assert options_from_args(args) == EXPECTED


def test_defaults_are_the_trainers_own():
    parser = training_parser("train", "Train.", init_from="weights", save_every=9, backup_every=0, sample_every=2,
                             num_workers=0)
    options = options_from_args(parser.parse_args(["run"]))
    assert (options.save_every, options.backup_every, options.sample_every, options.num_workers) == (9, 0, 2, 0)
    assert options.models_dir == Path("saved_models") and options.init_from is None and options.seed is None
    assert options.amp and options.tensorboard and options.progress and not options.cpu


@pytest.mark.parametrize("module", TRAINERS)
def test_every_trainer_takes_the_shared_flags(module):
    args = importlib.import_module(module).build_parser().parse_args(["run", "data", *SHARED_FLAGS])
    assert options_from_args(args) == EXPECTED


@pytest.mark.parametrize("flag, message", [
    ("--save_every=-1", "--save_every cannot be negative."),
    ("--num_workers=-1", "--num_workers cannot be negative."),
    ("--max_steps=0", "--max_steps must be at least 1."),
])
def test_bad_values_are_refused(flag, message):
    args = training_parser("train", "Train.", init_from="weights").parse_args(["run", flag])
    with pytest.raises(TrainingError, match=message):
        options_from_args(args)


@pytest.mark.parametrize("module", TRAINERS)
@pytest.mark.parametrize("run_id, message", [("../x", "must be a plain folder name"), ("shipped", "is reserved")])
def test_a_bad_run_name_is_one_line_before_any_data_is_read(module, run_id, message, tmp_path, capsys):
    # The data folder does not exist either: the run name is what is reported, and nothing is created.
    assert importlib.import_module(module).main([run_id, str(tmp_path / "nowhere"), "-m", str(tmp_path / "models"),
                                                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: The run name ") and message in err[0], err
    assert not any(tmp_path.iterdir())


def test_finetune_refuses_a_bad_run_name_before_preprocessing(tmp_path, capsys):
    from synthesizer.finetune import main

    (tmp_path / "voice").mkdir()
    assert main([str(tmp_path / "voice"), "--steps", "1", "--run_id", "default", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "The run name 'default' is reserved" in err[0], err
    assert [p.name for p in tmp_path.iterdir()] == ["voice"]
