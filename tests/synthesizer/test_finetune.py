"""Single-speaker fine-tuning: one command from a folder of recordings and a checkpoint to a new checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from synthesizer.finetune import build_parser, main
from synthesizer.inference import Synthesizer
from synthesizer.metadata import read_train_txt
from synthesizer.model import build_tacotron
from tests.conftest import DATASETS_DIR
from tests.synthesizer.test_train import TINY_HPARAMS

SENTENCES = (
    "This is my own voice, recorded for a little fine tuning.",
    "Every sentence should last longer than two seconds or so.",
    "The synthesizer then learns how this one speaker talks.",
)


@pytest.fixture(autouse=True)
def _single_thread(torch_single_thread):
    """Tiny models on 2 shared cores: a second torch thread only adds contention."""


@pytest.fixture
def base_checkpoint(tmp_path) -> Path:
    """A tiny random-weight synthesizer in our format, at step 7 (kept in the step buffer) with r = 3."""
    torch.manual_seed(0)
    model = build_tacotron(TINY_HPARAMS)
    model.r = 3
    model.step.fill_(7)
    path = tmp_path / "base" / "synthesizer.pt"
    Synthesizer(model).save(path)
    return path


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, espeak) -> Path:
    """One espeak-ng voice as ``name.wav`` + ``name.txt`` pairs."""
    folder = tmp_path_factory.mktemp("my_voice")
    for index, sentence in enumerate(SENTENCES):
        espeak(folder / f"take{index}.wav", sentence, voice="en-us", pitch=40)
        (folder / f"take{index}.txt").write_text(sentence + "\n")
    return folder


def finetune_args(folder: Path, checkpoint: Path, out: Path, encoder: Path, steps: int, *extra: str) -> list[str]:
    return [str(folder), "-s", str(checkpoint), "-o", str(out), "-e", str(encoder), "--steps", str(steps),
            "--quiet", "--no_tensorboard", "--num_workers", "0", "-n", "1", "--seed", "0", "--sample_every", "0",
            "--batch_size", "2", *extra]


def saved(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_finetune_preprocesses_trains_n_steps_and_resumes(recordings, base_checkpoint, tmp_path, encoder_checkpoint,
                                                          capsys):
    out = tmp_path / "my_voice_run"
    assert main(finetune_args(recordings, base_checkpoint, out, encoder_checkpoint, 3)) == 0
    printed = capsys.readouterr().out
    assert "Fine-tuning from synthesizer at step 7" in printed

    data = out / "data"
    entries = read_train_txt(data / "train.txt")
    assert sorted(entry.text for entry in entries) == sorted(SENTENCES)
    for entry in entries:
        embedding = np.load(data / "embeds" / entry.embed_name)
        assert embedding.shape == (256,) and abs(np.linalg.norm(embedding) - 1) < 1e-4

    checkpoint = saved(out / "synthesizer.pt")
    assert checkpoint["step"] == 10  # 7 + 3
    assert int(checkpoint["model_state"]["decoder.r"]) == 3  # the checkpoint's r
    assert checkpoint["hparams"]["tts_schedule"] == [[3, 3e-5, 10, 2]]
    assert checkpoint["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(3e-5)
    base = saved(base_checkpoint)["model_state"]
    changed = [name for name, tensor in checkpoint["model_state"].items()
               if tensor.is_floating_point() and not torch.equal(tensor, base[name])]
    assert "decoder.mel_proj.weight" in changed  # it trained
    synthesizer = Synthesizer.from_checkpoint(out / "synthesizer.pt")
    assert synthesizer.step == 10 and synthesizer.r == 3

    # The same command again: preprocessing is reused, nothing is left to train.
    mel_times = {path.name: path.stat().st_mtime_ns for path in (data / "mels").iterdir()}
    assert main(finetune_args(recordings, base_checkpoint, out, encoder_checkpoint, 3)) == 0
    assert "nothing left to train" in capsys.readouterr().out
    assert {path.name: path.stat().st_mtime_ns for path in (data / "mels").iterdir()} == mel_times
    assert saved(out / "synthesizer.pt")["step"] == 10

    # More steps continue from the fine-tuned checkpoint, not from the base.
    assert main(finetune_args(recordings, base_checkpoint, out, encoder_checkpoint, 5)) == 0
    assert "Resuming synthesizer at step 10" in capsys.readouterr().out
    assert saved(out / "synthesizer.pt")["step"] == 12


def test_finetune_on_real_ljspeech_clips(base_checkpoint, tmp_path, encoder_checkpoint):
    source = DATASETS_DIR / "LJSpeech-mini"
    if not (source / "metadata.csv").is_file():
        pytest.skip(f"{source} is absent (the shared real-speech datasets are not available)")
    folder = tmp_path / "LJ"
    (folder / "wavs").mkdir(parents=True)
    lines = (source / "metadata.csv").read_text(encoding="utf-8").splitlines()[:3]
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in lines:
        shutil.copy(source / "wavs" / f"{line.split('|')[0]}.wav", folder / "wavs")
    out = tmp_path / "lj_run"
    assert main(finetune_args(folder, base_checkpoint, out, encoder_checkpoint, 2, "--lr", "1e-4")) == 0
    checkpoint = saved(out / "synthesizer.pt")
    assert checkpoint["step"] == 9 and checkpoint["hparams"]["tts_schedule"] == [[3, 1e-4, 9, 2]]
    assert len(read_train_txt(out / "data" / "train.txt")) == 3


@pytest.mark.parametrize("problem, expected", [
    ("no_folder", "does not exist"),
    ("speaker_folders", "neither LJSpeech format"),
    ("bad_checkpoint", "synthesizer checkpoint"),
    ("zero_steps", "--steps must be at least 1"),
])
def test_unusable_input_exits_1_with_one_line(problem, expected, recordings, base_checkpoint, tmp_path,
                                              encoder_checkpoint, capsys):
    folder, checkpoint, steps = recordings, base_checkpoint, 2
    if problem == "no_folder":
        folder = tmp_path / "missing"
    elif problem == "speaker_folders":  # audio without transcripts
        folder = tmp_path / "speakers"
        (folder / "alice").mkdir(parents=True)
        shutil.copy(recordings / "take0.wav", folder / "alice" / "a.wav")
    elif problem == "bad_checkpoint":
        checkpoint = encoder_checkpoint
    else:
        steps = 0
    assert main(finetune_args(folder, checkpoint, tmp_path / "out", encoder_checkpoint, steps)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err


def test_help_and_defaults():
    args = build_parser().parse_args(["voice/", "--steps", "10"])
    assert args.syn_model_fpath == Path("saved_models/default/synthesizer.pt")
    assert args.lr == 3e-5 and args.out_dir is None and args.run_id is None
