"""encoder.train on real speech: six espeak-ng voices × four sentences, preprocessed into RTVC's layout.

Tiny hyperparameters (hidden 32, embedding 16, one layer, 4 speakers × 3 utterances) keep every run
to a few seconds on a shared CPU.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.audio import preprocess_wav, wav_to_mel_spectrogram
from encoder.hparams import EncoderHParams
from encoder.inference import Encoder
from encoder.model import SpeakerEncoder
from encoder.train import MAX_GRADIENT_NORM, apply_gradient_rules, main, train_from_args
from tests.conftest import REPO_ROOT
from utils.training import cpu_has_native_bf16

pytestmark = pytest.mark.usefixtures("torch_single_thread")

VOICES = [("en-us+m3", 40), ("en-gb+f2", 70), ("en-us+f4", 80), ("en-gb-scotland+m1", 30), ("en-029", 55),
          ("en-us+croak", 45)]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore every single summer morning.",
    "A journey of a thousand miles begins with a single careful step.",
    "Bright stars were shining over the quiet village late that night.",
]
TINY = ["--hparams", "hidden_size=32", "embedding_size=16", "num_layers=1", "speakers_per_batch=4",
        "utterances_per_speaker=3"]


def build_espeak_corpus(root: Path, wav_dir: Path, speak) -> Path:
    """``root/<speaker>/utt_<n>.npy`` + ``_sources.txt`` from espeak-ng speech, as encoder.preprocess writes."""
    for index, (voice, pitch) in enumerate(VOICES):
        folder = root / f"espeak_{index}"
        folder.mkdir(parents=True)
        lines = []
        for number, text in enumerate(SENTENCES):
            wav_path = speak(wav_dir / f"{index}_{number}.wav", text, voice=voice, pitch=pitch)
            frames = wav_to_mel_spectrogram(preprocess_wav(wav_path))  # (T, 40) power mels
            assert frames.shape[0] >= 160  # every sentence lasts well over 1.6 s
            np.save(folder / f"utt_{number}.npy", frames)
            lines.append(f"utt_{number}.npy,{wav_path}")
        (folder / "_sources.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def clean_data_root(tmp_path_factory, espeak) -> Path:
    base = tmp_path_factory.mktemp("encoder_train")
    return build_espeak_corpus(base / "SV2TTS" / "encoder", base / "wavs", espeak)


def run_args(run_id: str, data: Path, models: Path, *extra: str) -> list[str]:
    return [run_id, str(data), "-m", str(models), *TINY, "--umap_every", "0", "--num_workers", "0", "--quiet",
            "--no_tensorboard", "--seed", "0", *extra]


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def scalar_series(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


# --------------------------------------------------------------------------------------------------
# Gradient rules
# --------------------------------------------------------------------------------------------------
def test_gradient_rules_scale_similarity_then_clip():
    model = SpeakerEncoder(EncoderHParams(hidden_size=4, embedding_size=4, num_layers=1))
    generator = torch.Generator().manual_seed(0)
    for parameter in model.parameters():
        parameter.grad = torch.randn(parameter.shape, generator=generator)
    model.similarity_weight.grad.fill_(50.0)
    model.similarity_bias.grad.fill_(-20.0)
    network = [p.grad.clone() for name, p in model.named_parameters() if not name.startswith("similarity")]
    expected_norm = torch.cat([g.flatten() for g in network] + [torch.tensor([0.5, -0.2])]).norm().item()
    assert expected_norm > MAX_GRADIENT_NORM

    norm = apply_gradient_rules(model)
    assert norm == pytest.approx(expected_norm, rel=1e-5)  # measured after the ×0.01
    scale = MAX_GRADIENT_NORM / expected_norm
    assert model.similarity_weight.grad.item() == pytest.approx(0.5 * scale, rel=1e-4)
    assert model.similarity_bias.grad.item() == pytest.approx(-0.2 * scale, rel=1e-4)
    clipped = [p.grad for name, p in model.named_parameters() if not name.startswith("similarity")]
    for before, after in zip(network, clipped):
        torch.testing.assert_close(after, before * scale, rtol=1e-4, atol=1e-7)
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    assert total == pytest.approx(MAX_GRADIENT_NORM, rel=1e-4)


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------
def test_checkpoint_loads_and_resume_continues_the_step_count(clean_data_root, tmp_path):
    models = tmp_path / "models"
    model = train_from_args(run_args("run", clean_data_root, models, "--max_steps", "3"))
    checkpoint_path = models / "run" / "encoder.pt"
    first = load_checkpoint(checkpoint_path)
    assert first["step"] == 3 and first["model_type"] == "encoder"
    assert first["hparams"]["hidden_size"] == 32 and first["hparams"]["speakers_per_batch"] == 4
    tiny = EncoderHParams(hidden_size=32, embedding_size=16, num_layers=1)
    assert list(first["model_state"]) == list(SpeakerEncoder(tiny).state_dict())  # RTVC's key names
    assert all(state["step"].item() == 3 for state in first["optimizer_state"]["state"].values())
    for key, value in model.state_dict().items():
        assert torch.equal(value, first["model_state"][key])  # the returned model is what was saved
    assert (models / "run" / "hparams.json").is_file()

    encoder = Encoder.from_checkpoint(checkpoint_path)
    assert encoder.step == 3 and encoder.embedding_size == 16
    wav = preprocess_wav(clean_data_root.parents[1] / "wavs" / "0_0.wav")
    embedding = encoder.embed_utterance(wav)
    assert embedding.shape == (16,) and np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-4)

    train_from_args(run_args("run", clean_data_root, models, "--max_steps", "5"))
    resumed = load_checkpoint(checkpoint_path)
    assert resumed["step"] == 5
    # Adam's own counter went 3 → 5: its state was restored, not restarted.
    assert all(state["step"].item() == 5 for state in resumed["optimizer_state"]["state"].values())
    assert not torch.equal(resumed["model_state"]["lstm.weight_ih_l0"], first["model_state"]["lstm.weight_ih_l0"])

    train_from_args(run_args("run", clean_data_root, models, "--max_steps", "5"))  # already there: no step
    assert load_checkpoint(checkpoint_path)["step"] == 5

    train_from_args(run_args("run", clean_data_root, models, "--max_steps", "2", "-f"))
    assert load_checkpoint(checkpoint_path)["step"] == 2


def test_init_from_starts_a_new_run_from_other_weights(clean_data_root, tmp_path, capsys):
    models = tmp_path / "models"
    train_from_args(run_args("base", clean_data_root, models, "--max_steps", "3"))
    base = load_checkpoint(models / "base" / "encoder.pt")
    assert main(run_args("tuned", clean_data_root, models, "--max_steps", "4", "--init_from",
                         str(models / "base" / "encoder.pt"))) == 0
    assert "Fine-tuning from encoder at step 3." in capsys.readouterr().out
    tuned = load_checkpoint(models / "tuned" / "encoder.pt")
    assert tuned["step"] == 4
    # The weights came from the base run; the optimizer started afresh (one Adam step, not four).
    assert all(state["step"].item() == 1 for state in tuned["optimizer_state"]["state"].values())
    change = (tuned["model_state"]["linear.weight"] - base["model_state"]["linear.weight"]).abs().max()
    assert 0 < change < 0.01


def test_loss_goes_down_and_umap_plots_are_written(clean_data_root, tmp_path):
    models = tmp_path / "models"
    args = run_args("overfit", clean_data_root, models, "--max_steps", "120", "--log_every", "1",
                    "--umap_every", "60")
    args.remove("--no_tensorboard")
    args.insert(args.index("--hparams") + 1, "learning_rate_init=0.003")
    train_from_args(args)
    run_dir = models / "overfit"
    losses = [value for _, value in scalar_series(run_dir, "train/loss")]
    assert len(losses) == 120
    # Chance level is log(4) ≈ 1.386 for 4 speakers.
    assert np.mean(losses[:10]) > 1.25
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1
    eers = scalar_series(run_dir, "train/eer")
    assert [step for step, _ in eers] == list(range(1, 121)) and all(0.0 <= value <= 1.0 for _, value in eers)
    assert scalar_series(run_dir, "train/learning_rate")[-1][1] == pytest.approx(0.003)
    assert scalar_series(run_dir, "model/similarity_weight")[-1][1] > 0
    for step in (60, 120):
        plot = run_dir / "samples" / f"umap_{step:06d}.png"
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["umap_000060.png", "umap_000120.png"]


@pytest.mark.parametrize("case, expected", [
    ("missing_data", "does not exist (run python -m encoder.preprocess first)"),
    ("too_many_speakers", "Only 6 speaker(s)"),
    ("one_utterance", "utterances_per_speaker must be between 2 and 10000"),
    ("unknown_hparam", "Invalid hyperparameters: unknown EncoderHParams field(s): hiden_size."),
    ("broken_checkpoint", "is truncated or not a PyTorch checkpoint"),
    ("negative_umap", "--umap_every cannot be negative."),
    # Out-of-range values used to end in torch tracebacks (issue 17).
    ("num_layers=0", "Invalid hyperparameters: num_layers must be between 1 and 256, not 0."),
    ("hidden_size=0", "Invalid hyperparameters: hidden_size must be between 1 and 16384, not 0."),
    ("partials_n_frames=0", "Invalid hyperparameters: partials_n_frames must be between 1 and 100000, not 0."),
    ("learning_rate_init=Infinity", "learning_rate_init must be above 0 and finite, not inf."),
])
def test_user_errors_are_one_line(clean_data_root, tmp_path, capsys, case, expected):
    models = tmp_path / "models"
    data, extra = clean_data_root, []
    if case == "missing_data":
        data = tmp_path / "nowhere"
    elif case == "too_many_speakers":
        extra = ["--hparams", "speakers_per_batch=8"]  # a second --hparams adds to the first
    elif case == "one_utterance":
        extra = ["--hparams", "utterances_per_speaker=1"]
    elif case == "unknown_hparam":
        extra = ["--hparams", "hiden_size=3"]
    elif "=" in case:
        extra = ["--hparams", case]
    elif case == "broken_checkpoint":
        (models / "run").mkdir(parents=True)
        whole = models / "whole.pt"
        torch.save({"model_state": SpeakerEncoder(EncoderHParams(num_layers=1)).state_dict()}, whole)
        (models / "run" / "encoder.pt").write_bytes(whole.read_bytes()[:5000])  # a save cut short
    args = run_args("run", data, models, "--max_steps", "1", *extra)
    if case == "negative_umap":
        args[args.index("--umap_every") + 1] = "-1"
    assert main(args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in captured.out + captured.err
    if case == "too_many_speakers":
        assert "--hparams speakers_per_batch=6" in lines[0]
    if case != "broken_checkpoint":
        assert not (models / "run" / "encoder.pt").exists()


def test_command_line_module(clean_data_root, tmp_path):
    models = tmp_path / "models"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "encoder.train", *run_args("cli", clean_data_root, models,
                                                                               "--max_steps", "2")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Training data: 6 speakers, 24 utterances" in done.stdout
    assert f"Saved {models / 'cli' / 'encoder.pt'} at step 2 (reached --max_steps 2)." in done.stdout
    assert load_checkpoint(models / "cli" / "encoder.pt")["step"] == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_process_torchrun_ranks_agree(clean_data_root, tmp_path):
    models, out = tmp_path / "models", tmp_path / "ranks"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               str(REPO_ROOT / "tests" / "distributed_harness.py"), "encoder.train", str(out),
               *run_args("ddp", clean_data_root, models, "--max_steps", "4")]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert list(rank0) == list(rank1)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # the similarity scale and bias included
    checkpoint = load_checkpoint(models / "ddp" / "encoder.pt")
    assert checkpoint["step"] == 4
    for key in rank0:
        assert torch.equal(checkpoint["model_state"][key], rank0[key])
    # The ranks started from different seeds; identical weights mean DDP synchronised them, and the
    # weights moved away from the initial similarity scale.
    assert rank0["similarity_weight"].item() != 10.0
    assert done.stdout.count("Training data:") == 1  # only rank 0 prints


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
def test_cpu_bf16_trains_with_float32_weights(clean_data_root, tmp_path):
    models = tmp_path / "models"
    args = run_args("bf16", clean_data_root, models, "--max_steps", "60", "--log_every", "1", "--cpu_bf16")
    args.remove("--no_tensorboard")
    args.insert(args.index("--hparams") + 1, "learning_rate_init=0.003")
    train_from_args(args)
    losses = [value for _, value in scalar_series(models / "bf16", "train/loss")]
    assert len(losses) == 60 and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.05
    state = load_checkpoint(models / "bf16" / "encoder.pt")["model_state"]
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())


@pytest.mark.parametrize("where", ["between", "mid_step", "nan"])
def test_an_exception_saves_only_a_finished_finite_step(clean_data_root, tmp_path, monkeypatch, capsys, where):
    """The rule every trainer shares (utils.training.training_session): see tests/utils/test_training.py."""
    from tests.utils.test_training import FAILURES, InjectedFailure, check_end_after_failure, inject_failure

    inject_failure(monkeypatch, where, at_step=FAILURES[where][0])
    with pytest.raises(InjectedFailure):
        train_from_args(run_args("run", clean_data_root, tmp_path, "--max_steps", "10", "--save_every", "2"))
    check_end_after_failure(tmp_path / "run" / "encoder.pt", where, capsys.readouterr().out)
