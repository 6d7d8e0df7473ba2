"""Synthesizer trainer: masked losses, the schedule, the CLI end to end on espeak-ng speech, resume,
errors, and a 2-process torchrun run on CPU."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthesizer.data import SynthesizerCollator, SynthesizerItem
from synthesizer.hparams import SynthesizerHParams
from synthesizer.inference import Synthesizer
from synthesizer.model import TacotronOutput, build_tacotron
from synthesizer.text.symbols import SYMBOLS
from synthesizer.train import (
    guided_attention_loss,
    main,
    masked_mean,
    parse_schedule,
    session_for_step,
    stop_step_targets,
    tacotron_loss,
    train_from_args,
)
from tests.synthesizer.test_data import spoken_utterances, unit_vector, write_synthesizer_layout
from utils.training import TrainingError, cpu_has_native_bf16

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY = ["tts_embed_dims=32", "tts_encoder_dims=32", "tts_decoder_dims=32", "tts_postnet_dims=32",
        "tts_lstm_dims=64", "tts_encoder_K=2", "tts_postnet_K=2", "tts_num_highways=1"]
TINY_HPARAMS = SynthesizerHParams(tts_embed_dims=32, tts_encoder_dims=32, tts_decoder_dims=32, tts_postnet_dims=32,
                                  tts_lstm_dims=64, tts_encoder_K=2, tts_postnet_K=2, tts_num_highways=1)


@pytest.fixture(autouse=True)
def _single_thread(torch_single_thread):
    """Tiny models on 2 shared cores: a second torch thread only adds contention (measured 10x slower)."""


def trainer_args(data: Path, models: Path, *extra: str, schedule: str = "[[2, 1e-3, 1000, 3]]",
                 hparams: tuple[str, ...] = ()) -> list[str]:
    return ["run", str(data), "-m", str(models), "--quiet", "--num_workers", "0", "--seed", "0",
            "--no_tensorboard", "--sample_every", "0", *extra,
            "--hparams", *TINY, f"tts_schedule={schedule}", *hparams]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def spoken_dir(tmp_path_factory, espeak, real_encoder) -> Path:
    """Six espeak-ng sentences in RTVC's layout, embedded with the real pretrained encoder."""
    root = tmp_path_factory.mktemp("spoken")
    utterances = spoken_utterances(root / "wavs", espeak)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small LSTM batches: a second thread only adds contention
    try:
        embeddings = [real_encoder.embed_utterance(real_encoder.preprocess(wav, 16000)) for _, wav in utterances]
    finally:
        torch.set_num_threads(previous)
    return write_synthesizer_layout(root / "SV2TTS" / "synthesizer", utterances, embeddings)


# ----------------------------------------------------------------------------------------------
# Loss


def one_item_batch(frames: int, padded_to_r: int, n_mels: int = 2) -> tuple:
    item = SynthesizerItem(torch.tensor([30, 1]), torch.zeros(n_mels, frames), torch.ones(4), 0)
    return SynthesizerCollator(padded_to_r, -4.0)([item])


def test_masked_losses_equal_hand_computed_values():
    batch = one_item_batch(frames=3, padded_to_r=2)  # T = 4: frames 0-2 real, frame 3 padding
    # Targets are 0 on real frames; predictions 1 (decoder) and 2 (post-net) there, wild on padding.
    mels = torch.tensor([[[1.0, 1.0, 1.0, 50.0], [1.0, 1.0, 1.0, -50.0]]])
    postnet = torch.tensor([[[2.0, 2.0, 2.0, 9.0], [2.0, 2.0, 2.0, 9.0]]])
    stop = torch.tensor([[0.2, 0.2, 0.9, 0.9]])  # one probability per decoder step, repeated r = 2 times
    losses = tacotron_loss(TacotronOutput(mels, postnet, torch.ones(1, 2, 2) / 2, stop), batch, r=2)
    assert losses.mel_mse.item() == pytest.approx(1.0)  # (1 - 0)^2 on the 6 real values
    assert losses.mel_l1.item() == pytest.approx(1.0)
    assert losses.postnet_mse.item() == pytest.approx(4.0)
    # Step 0 (frames 0-1) target 0, step 1 (frames 2-3, holds the last real frame) target 1.
    expected_stop = -(np.log(1 - 0.2) + np.log(0.9)) / 2
    assert losses.stop.item() == pytest.approx(expected_stop, rel=1e-5)
    assert losses.total.item() == pytest.approx(6.0 + expected_stop, rel=1e-5)


def test_padded_frames_do_not_change_the_loss():
    generator = torch.Generator().manual_seed(0)
    items = [SynthesizerItem(torch.tensor([30, 31, 1]), torch.rand(80, n, generator=generator), torch.ones(8), i)
             for i, n in enumerate((9, 4))]
    batch = SynthesizerCollator(3, -4.0)(items)  # T = 12
    shape = batch.mels.shape
    output = TacotronOutput(torch.rand(shape, generator=generator), torch.rand(shape, generator=generator),
                            torch.rand(2, 4, 3, generator=generator),
                            torch.rand(2, 4, generator=generator).repeat_interleave(3, dim=1))
    reference = tacotron_loss(output, batch, r=3)

    padding = batch.frame_mask == 0  # (B, T)
    changed_target = batch._replace(mels=batch.mels.masked_fill(padding.unsqueeze(1), 123.0))
    stop = output.stop.clone()
    stop[1, 6:] = 0.999  # item 1 has 4 frames: steps 0-1 (frames 0-5) are trained, steps 2-3 are padding
    changed_output = output._replace(
        mels=output.mels.masked_fill(padding.unsqueeze(1), -77.0),
        postnet_mels=output.postnet_mels.masked_fill(padding.unsqueeze(1), 55.0),
        stop=stop,
    )
    changed = tacotron_loss(changed_output, changed_target, r=3)
    for name in ("total", "mel_mse", "mel_l1", "postnet_mse", "stop"):
        assert getattr(changed, name).item() == pytest.approx(getattr(reference, name).item(), rel=1e-6), name
    # ... whereas a change on a real frame does change it.
    mels = output.mels.clone()
    mels[1, 0, 3] = 9.0  # frame 3 is item 1's last real frame
    real_change = output._replace(mels=mels)
    assert tacotron_loss(real_change, batch, r=3).mel_mse.item() != pytest.approx(reference.mel_mse.item())


def test_stop_is_trained_up_to_the_step_holding_the_first_padding_frame():
    batch = one_item_batch(frames=6, padded_to_r=3)  # T = 9: steps of frames 0-2, 3-5, 6-8
    targets, mask = stop_step_targets(batch, 3)
    assert targets.tolist() == [[0.0, 1.0, 1.0]]  # the last real frame (5) is in step 1
    assert mask.tolist() == [[1.0, 1.0, 1.0]]  # step 2 starts at the first padding frame (6)
    batch = one_item_batch(frames=4, padded_to_r=1)  # r = 1: T = 5
    targets, mask = stop_step_targets(batch, 1)
    assert targets.tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0]]
    assert mask.tolist() == [[1.0, 1.0, 1.0, 1.0, 1.0]]


def test_guided_attention_penalises_off_diagonal_attention_within_each_items_lengths():
    steps, chars = torch.tensor([6, 3]), torch.tensor([6, 4])
    diagonal = torch.zeros(2, 6, 6)
    diagonal[0] = torch.eye(6)
    diagonal[1, torch.arange(3), torch.tensor([0, 1, 3])] = 1.0  # item 2: 3 steps over 4 characters
    assert guided_attention_loss(diagonal, chars, steps, 0.2) < 0.05
    stuck = torch.zeros(2, 6, 6)
    stuck[:, :, 0] = 1.0  # attention that never leaves the first character
    assert guided_attention_loss(stuck, chars, steps, 0.2) > 0.4
    # Padding decoder steps cost nothing; attention on padding characters costs the most.
    padded = diagonal.clone()
    padded[1, 3:, :] = 1.0
    assert guided_attention_loss(padded, chars, steps, 0.2) == pytest.approx(
        float(guided_attention_loss(diagonal, chars, steps, 0.2)))
    on_pads = torch.zeros(2, 6, 6)
    on_pads[1, :, 5] = 1.0  # item 2 has 4 characters: all its weight on a padding character
    on_pads[0] = torch.eye(6)
    assert guided_attention_loss(on_pads, chars, steps, 0.2) > 0.3


def test_guided_attention_gradient_moves_attention_towards_the_diagonal():
    logits = torch.zeros(1, 4, 4, requires_grad=True)  # uniform attention
    loss = guided_attention_loss(logits.softmax(-1), torch.tensor([4]), torch.tensor([4]), 0.2)
    loss.backward()
    # Descending the gradient raises the diagonal weight of every step more than any other weight.
    assert all(int(torch.argmin(logits.grad[0, step])) == step for step in range(4))


def test_masked_mean_ignores_masked_frames():
    values = torch.tensor([[[2.0, 4.0, 1000.0], [6.0, 8.0, -1000.0]]])  # (1, 2, 3)
    assert masked_mean(values, torch.tensor([[1.0, 1.0, 0.0]])).item() == pytest.approx(5.0)


def test_every_parameter_gets_a_gradient_in_the_teacher_forced_pass():
    """DDP can then run without find_unused_parameters (which costs a graph traversal per step)."""
    torch.manual_seed(0)
    model = build_tacotron(TINY_HPARAMS.replace(speaker_embedding_size=8))
    model.r = 2
    items = [SynthesizerItem(torch.tensor([30, 31, 32, 1]), torch.rand(80, 7) * 8 - 4, torch.rand(8), 0)]
    batch = SynthesizerCollator(2, -4.0)(items)
    tacotron_loss(model(batch.texts, batch.mels, batch.embeddings), batch, r=2).total.backward()
    without = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert without == []


# ----------------------------------------------------------------------------------------------
# Schedule


def test_schedule_sessions_are_chosen_by_step():
    schedule = parse_schedule([[2, 1e-3, 10, 12], [3, 5e-4, 20, 8], [5, 1e-4, 40, 4]])
    picked = {step: session_for_step(schedule, step) for step in (0, 9, 10, 19, 20, 39, 40, 1000)}
    assert [picked[step].r if picked[step] else None for step in picked] == [2, 2, 3, 3, 5, 5, None, None]
    assert picked[10].learning_rate == 5e-4 and picked[10].batch_size == 8 and picked[10].until_step == 20


@pytest.mark.parametrize("rows, expected", [
    ([], "empty"),
    ([[2, 1e-3, 10]], "must be"),
    ([[0, 1e-3, 10, 4]], "r must be between 1 and 20"),
    ([[21, 1e-3, 10, 4]], "r must be between 1 and 20"),
    ([[2, -1.0, 10, 4]], "learning rate must be positive"),
    ([[2, 1e-3, 10, 0]], "batch size"),
    ([[2, 1e-3, 10, 4], [2, 1e-4, 10, 4]], "larger than"),
    ([[2.5, 1e-3, 10, 4]], "integers"),
])
def test_bad_schedules_are_refused(rows, expected):
    with pytest.raises(TrainingError, match=expected):
        parse_schedule(rows)


# ----------------------------------------------------------------------------------------------
# Command line, end to end on espeak-ng speech


@pytest.mark.filterwarnings("ignore::synthesizer.inference.SynthesisWarning")  # 4 steps do not learn to stop
def test_train_writes_a_checkpoint_the_synthesizer_loads_and_resume_continues(spoken_dir, tmp_path, capsys):
    models = tmp_path / "models"
    run = models / "run"
    model = train_from_args(trainer_args(spoken_dir, models, "--max_steps", "4", "--sample_every", "2"))
    checkpoint_path = run / "synthesizer.pt"
    checkpoint = load(checkpoint_path)
    assert checkpoint["step"] == 4 and int(checkpoint["model_state"]["step"]) == 4
    assert {"model_state", "optimizer_state", "hparams", "symbols"} <= set(checkpoint)
    assert checkpoint["symbols"] == "".join(SYMBOLS) and checkpoint["model_type"] == "synthesizer"
    assert checkpoint["hparams"]["tts_lstm_dims"] == 64
    assert checkpoint["hparams"]["tts_schedule"] == [[2, 1e-3, 1000, 3]]
    for name, tensor in model.state_dict().items():  # train() returns exactly what was saved
        assert torch.equal(tensor, checkpoint["model_state"][name]), name

    synthesizer = Synthesizer.from_checkpoint(checkpoint_path)
    assert synthesizer.step == 4 and synthesizer.r == 2
    torch.manual_seed(0)
    result = synthesizer.synthesize(["Hello there."], unit_vector(0), max_steps=20)
    assert result.mels[0].shape[0] == 80 and np.isfinite(result.mels[0]).all()

    samples = sorted(path.name for path in (run / "samples").iterdir())
    for step in ("000002", "000004"):
        for suffix in ("attention.png", "mel-spectrogram.png", "mel-prediction.npy", "wave-from-mel.wav", "text.txt"):
            assert f"step-{step}-{suffix}" in samples
    prediction = np.load(run / "samples" / "step-000004-mel-prediction.npy")
    assert prediction.ndim == 2 and prediction.shape[1] == 80
    sample_text = (run / "samples" / "step-000004-text.txt").read_text().strip()
    assert sample_text in {sentence.lower() for sentence in
                           (line.split("|")[5] for line in (spoken_dir / "train.txt").read_text().splitlines())}
    tsv = (run / "metas" / "CharacterEmbeddings.tsv").read_text().splitlines()
    assert len(tsv) == len(SYMBOLS) and tsv[-1] == "\\s" and tsv[2] == "A"

    capsys.readouterr()
    train_from_args(trainer_args(spoken_dir, models, "--max_steps", "6"))
    assert "Resuming synthesizer at step 4" in capsys.readouterr().out
    resumed = load(checkpoint_path)
    assert resumed["step"] == 6 and int(resumed["model_state"]["step"]) == 6
    assert Synthesizer.from_checkpoint(checkpoint_path).step == 6

    train_from_args(trainer_args(spoken_dir, models, "--max_steps", "2", "-f"))
    assert load(checkpoint_path)["step"] == 2


def test_tensorboard_logs_losses_alignment_and_samples(spoken_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = trainer_args(spoken_dir, tmp_path, "--max_steps", "2", "--log_every", "1", "--sample_every", "2")
    args.remove("--no_tensorboard")
    train_from_args(args)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "audio": 0})
    events.Reload()
    tags = events.Tags()
    for scalar in ("train/loss", "train/mel_mse", "train/mel_l1", "train/postnet_mse", "train/stop",
                   "train/attention_diagonality", "train/learning_rate", "train/steps_per_second",
                   "samples/attention_diagonality"):
        assert scalar in tags["scalars"], scalar
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2]
    assert events.Scalars("train/learning_rate")[0].value == pytest.approx(1e-3)
    assert {"samples/attention", "samples/mel"} <= set(tags["images"])
    assert "samples/griffin_lim" in tags["audio"]


def test_loss_goes_down_on_a_tiny_overfit_run(spoken_dir, tmp_path, capsys):
    train_from_args(trainer_args(spoken_dir, tmp_path, "--max_steps", "40", "--log_every", "10",
                                 schedule="[[2, 3e-3, 1000, 6]]"))
    logged = [float(value) for value in re.findall(r"\| loss ([0-9.]+) \|", capsys.readouterr().out)]
    assert len(logged) == 4
    assert logged[-1] < 0.6 * logged[0], logged


def test_guided_attention_weight_adds_its_term_to_the_loss(spoken_dir, tmp_path, capsys):
    train_from_args(trainer_args(spoken_dir, tmp_path, "--max_steps", "2", "--log_every", "1",
                                 hparams=("tts_guided_attention_weight=5.0",)))
    out = capsys.readouterr().out
    guided = [float(v) for v in re.findall(r"guided_attention ([0-9.]+)", out)]
    losses = [float(v) for v in re.findall(r"\| loss ([0-9.]+) \|", out)]
    assert len(guided) == 2 and all(value > 0 for value in guided)
    # The logged loss is RTVC's four terms; the weighted guided term is added for the update only.
    assert len(losses) == 2
    stored = load(tmp_path / "run" / "synthesizer.pt")["hparams"]
    assert stored["tts_guided_attention_weight"] == 5.0


def test_schedule_sessions_change_r_and_training_stops_after_the_last(spoken_dir, tmp_path, capsys):
    schedule = "[[2, 1e-3, 2, 3], [3, 5e-4, 4, 6]]"
    model = train_from_args(trainer_args(spoken_dir, tmp_path, schedule=schedule))
    out = capsys.readouterr().out
    assert "r=2, lr=0.001, batch 3, until step 2" in out and "r=3, lr=0.0005, batch 6, until step 4" in out
    assert model.r == 3
    checkpoint = load(tmp_path / "run" / "synthesizer.pt")
    assert checkpoint["step"] == 4 and int(checkpoint["model_state"]["decoder.r"]) == 3
    assert checkpoint["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(5e-4)

    train_from_args(trainer_args(spoken_dir, tmp_path, schedule=schedule))  # nothing left to do
    assert "past the end of tts_schedule" in capsys.readouterr().out
    assert load(tmp_path / "run" / "synthesizer.pt")["step"] == 4


def test_init_from_starts_a_new_run_from_another_checkpoint(spoken_dir, tmp_path, capsys):
    train_from_args(trainer_args(spoken_dir, tmp_path / "base", "--max_steps", "3"))
    base = tmp_path / "base" / "run" / "synthesizer.pt"
    capsys.readouterr()
    args = trainer_args(spoken_dir, tmp_path / "tuned", "--max_steps", "5", "--init_from", str(base))
    train_from_args(args)
    assert "Fine-tuning from synthesizer at step 3" in capsys.readouterr().out
    tuned = load(tmp_path / "tuned" / "run" / "synthesizer.pt")
    assert tuned["step"] == 5
    assert load(base)["step"] == 3  # the source is left alone


def test_init_from_an_rtvc_style_file_takes_the_step_from_its_buffer(spoken_dir, tmp_path, capsys):
    """RTVC's files have no "step" key nor hyperparameters: the step lives in the model's buffer."""
    torch.manual_seed(0)
    model = build_tacotron(TINY_HPARAMS)
    model.step.fill_(123)
    rtvc_file = tmp_path / "rtvc_synthesizer.pt"
    torch.save({"model_state": model.state_dict()}, rtvc_file)
    train_from_args(trainer_args(spoken_dir, tmp_path / "models", "--max_steps", "125", "--init_from", str(rtvc_file)))
    assert "Fine-tuning from synthesizer at step 123" in capsys.readouterr().out
    checkpoint = load(tmp_path / "models" / "run" / "synthesizer.pt")
    assert checkpoint["step"] == 125 and int(checkpoint["model_state"]["step"]) == 125


def test_non_finite_gradients_skip_the_update(tmp_path, capsys):
    utterances = [("broken", np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32))]
    data = write_synthesizer_layout(tmp_path / "data", utterances, unit_vector(0))
    mel_path = next((data / "mels").iterdir())
    mel = np.load(mel_path)
    mel[3, 5] = np.nan
    np.save(mel_path, mel)
    with pytest.warns(UserWarning, match="this update was skipped"):
        model = train_from_args(trainer_args(data, tmp_path / "models", "--max_steps", "2",
                                             schedule="[[2, 1e-3, 100, 1]]"))
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    assert load(tmp_path / "models" / "run" / "synthesizer.pt")["step"] == 2


@pytest.mark.parametrize("problem", ["missing_folder", "encoder_checkpoint", "bad_hparams", "tts_dropout=1.5",
                                     "tts_cleaner_names=klingon_cleaners", "tts_postnet_dims=0"])
def test_user_errors_exit_1_with_one_line(spoken_dir, tmp_path, capsys, problem, encoder_checkpoint):
    data = tmp_path / "nothing" if problem == "missing_folder" else spoken_dir
    extra = ["--init_from", str(encoder_checkpoint)] if problem == "encoder_checkpoint" else []
    args = trainer_args(data, tmp_path, *extra)
    if problem == "bad_hparams":
        args.append("tts_lstm_dimz=3")
    elif "=" in problem:
        args.append(problem)  # out of range: a traceback from torch or the text cleaners before issue 17
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert {"missing_folder": "does not exist", "encoder_checkpoint": "encoder checkpoint",
            "bad_hparams": "tts_lstm_dimz",
            "tts_dropout=1.5": "tts_dropout must be at least 0 and below 1, not 1.5",
            "tts_cleaner_names=klingon_cleaners": "tts_cleaner_names must be a list of names from "
                                                  "basic_cleaners, transliteration_cleaners, english_cleaners, "
                                                  "not ['klingon_cleaners']",
            "tts_postnet_dims=0": "tts_postnet_dims must be between 1 and 16384, not 0"}[problem] in err


def test_cli_help_lists_the_trainer_flags():
    done = subprocess.run([sys.executable, "-m", "synthesizer.train", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    for flag in ("run_id", "syn_dir", "--init_from", "--max_steps", "--hparams", "--force_restart"):
        assert flag in done.stdout


# ----------------------------------------------------------------------------------------------
# Scale-out


@pytest.mark.timeout(180)
def test_two_process_torchrun_ends_with_identical_weights_on_both_ranks(spoken_dir, tmp_path):
    out = tmp_path / "ranks"
    args = trainer_args(spoken_dir, tmp_path / "models", "--max_steps", "3", schedule="[[2, 1e-3, 100, 2]]")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO_ROOT / "tests" / "distributed_harness.py"), "synthesizer.train", str(out), *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    checkpoint = load(tmp_path / "models" / "run" / "synthesizer.pt")
    assert checkpoint["step"] == 3
    for name, tensor in checkpoint["model_state"].items():
        assert torch.equal(tensor, ranks[0][name]), name
    assert done.stdout.count("Saved ") == 1  # only rank 0 reports and writes


def test_mask_padding_keeps_attention_off_padded_characters():
    torch.manual_seed(0)
    model = build_tacotron(TINY_HPARAMS).train()
    model.r = 2
    texts = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    mels, embeddings = torch.zeros(2, 80, 6), torch.rand(2, 256)
    rtvc = model(texts, mels, embeddings).attention  # (B, S, Tc)
    masked = model(texts, mels, embeddings, exact_rtvc=False).attention
    assert rtvc[0, :, 3:].sum() > 0  # RTVC's training computation leaks weight onto the pads
    assert masked[0, :, 3:].abs().sum() == 0
    torch.testing.assert_close(masked.sum(-1), torch.ones(2, 3))


def test_feeding_predictions_replaces_the_target_frames_the_decoder_sees():
    torch.manual_seed(0)
    model = build_tacotron(TINY_HPARAMS).eval()
    model.r = 2
    texts, embeddings = torch.tensor([[5, 6, 7, 8]]), torch.rand(1, 256)
    targets = torch.rand(1, 80, 8) * 4
    torch.manual_seed(1)
    teacher = model(texts, targets, embeddings).mels
    torch.manual_seed(1)
    assert torch.equal(model(texts, targets, embeddings, feed_predictions=0.0).mels, teacher)
    torch.manual_seed(1)
    fed = model(texts, targets, embeddings, feed_predictions=1.0).mels
    torch.testing.assert_close(fed[:, :, :2], teacher[:, :, :2])  # the first step always sees the go frame
    assert not torch.allclose(fed[:, :, 2:], teacher[:, :, 2:])
    # Fed back with every target replaced, the targets no longer matter.
    torch.manual_seed(1)
    other = model(texts, torch.zeros(1, 80, 8), embeddings, feed_predictions=1.0).mels
    torch.testing.assert_close(other, fed)
    fed.sum().backward()


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
def test_cpu_bf16_autocast_trains_down_and_keeps_float32_weights(spoken_dir, tmp_path, capsys):
    train_from_args(trainer_args(spoken_dir, tmp_path, "--max_steps", "40", "--log_every", "10", "--cpu_bf16",
                                 schedule="[[2, 3e-3, 1000, 6]]"))
    logged = [float(value) for value in re.findall(r"\| loss ([0-9.]+) \|", capsys.readouterr().out)]
    assert len(logged) == 4 and all(math.isfinite(value) for value in logged)
    assert logged[-1] < 0.6 * logged[0], logged
    checkpoint = load(tmp_path / "run" / "synthesizer.pt")
    assert all(tensor.dtype == torch.float32 for tensor in checkpoint["model_state"].values()
               if tensor.is_floating_point())


@pytest.mark.parametrize("where", ["between", "mid_step", "nan"])
def test_an_exception_saves_only_a_finished_finite_step(spoken_dir, tmp_path, monkeypatch, capsys, where):
    """The rule every trainer shares (utils.training.training_session): see tests/utils/test_training.py."""
    from tests.utils.test_training import FAILURES, InjectedFailure, check_end_after_failure, inject_failure

    inject_failure(monkeypatch, where, at_step=FAILURES[where][0])
    with pytest.raises(InjectedFailure):
        train_from_args(trainer_args(spoken_dir, tmp_path, "--max_steps", "10", "--save_every", "2",
                                     schedule="[[2, 1e-3, 100, 2]]"))
    check_end_after_failure(tmp_path / "run" / "synthesizer.pt", where, capsys.readouterr().out)
