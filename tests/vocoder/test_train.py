"""Vocoder training CLI: checkpoints that inference loads, resume with the same step count, samples,
a loss that falls on a tiny overfit run, GTA / ground-truth / MOL modes, one-line errors, and DDP."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from synthesizer.metadata import read_train_txt
from tests.distributed_harness import run_ranks
from tests.vocoder.test_data import TINY_VOCODER, speech_dataset_root, write_synthesizer_folder  # noqa: F401 (fixture)
from utils.checkpoints import load_checkpoint_file
from vocoder.hparams import VocoderHParams
from vocoder.inference import WaveRNNVocoder
from vocoder.model import build_wavernn
from vocoder.train import main, rtvc_loss, sample_indices
from utils.training import cpu_has_native_bf16

TINY_HPARAMS = [f"{key}={value}" for key, value in TINY_VOCODER.items()]


def train_args(root: Path, models: Path, run: str = "run", *extra: str, hparams: list[str] | None = None) -> list[str]:
    return [run, str(root), "-m", str(models), "--num_workers", "0", "--quiet", "--seed", "0", "--cpu",
            "--sample_every", "0", *extra, "--hparams", *TINY_HPARAMS, *(hparams or [])]


def logged_losses(text: str) -> dict[int, float]:
    return {int(step): float(loss) for step, loss in re.findall(r"^step (\d+) \| loss ([\d.]+)", text, re.MULTILINE)}


def test_cross_entropy_matches_a_hand_computation() -> None:
    hp = VocoderHParams()
    logits = torch.zeros(1, 2, 512)
    logits[0, 0, 3] = 2.0
    target = torch.tensor([[3, 4]])
    log_z = np.log(511 + np.exp(2.0))
    expected = ((log_z - 2.0) + np.log(512)) / 2  # -log p(3) at step 0, uniform -log p(4) at step 1
    assert rtvc_loss(logits, target, hp).item() == pytest.approx(expected, rel=1e-6)
    assert sample_indices(7, 5) == [0, 2, 3, 4, 6]


def test_train_saves_resumes_and_samples(speech_dataset_root, tmp_path, capsys, torch_single_thread) -> None:
    models = tmp_path / "models"
    args = train_args(speech_dataset_root, models, "run", "--max_steps", "4", "-s", "2", "-b", "2",
                      "--sample_every", "3", "--sample_seconds", "0.25", hparams=["voc_gen_at_checkpoint=2"])
    assert main(args) == 0
    run = models / "run"
    checkpoint = load_checkpoint_file(run / "vocoder.pt", "vocoder")
    assert checkpoint["step"] == 4 and int(checkpoint["model_state"]["step"]) == 4
    assert checkpoint["model_type"] == "vocoder" and checkpoint["hparams"]["voc_rnn_dims"] == 32
    assert "optimizer_state" in checkpoint
    assert (run / "vocoder_000002.pt").is_file() and (run / "hparams.json").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    # samples at step 3 (--sample_every) and at the end of the run (step 4), target next to generated
    names = sorted(path.name for path in (run / "samples").glob("*.wav"))
    assert names == sorted(f"step{step}_{i}_{kind}.wav" for step in (3, 4) for i in (1, 2)
                           for kind in ("target", "generated"))
    generated, rate = soundfile.read(run / "samples" / "step4_1_generated.wav")
    target, _ = soundfile.read(run / "samples" / "step4_1_target.wav")
    assert rate == 16000 and len(generated) == len(target) == 20 * 200 and np.abs(target).max() > 0.05

    # the inference class loads the file and vocodes a real mel
    vocoder = WaveRNNVocoder.from_checkpoint(run / "vocoder.pt")
    assert vocoder.step == 4 and vocoder.hparams.voc_rnn_dims == 32
    entry = read_train_txt(speech_dataset_root / "SV2TTS" / "vocoder" / "synthesized.txt")[0]
    mel = np.load(speech_dataset_root / "SV2TTS" / "vocoder" / "mels_gta" / entry.mel_name).T[:, :12]
    wav = vocoder.vocode(mel, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (11 * 200,) and np.isfinite(wav).all()

    # resume: the step count goes on from 4, the optimizer too
    capsys.readouterr()
    assert main(train_args(speech_dataset_root, models, "run", "--max_steps", "6", "-s", "2")) == 0
    assert "Resuming vocoder at step 4." in capsys.readouterr().out
    checkpoint = load_checkpoint_file(run / "vocoder.pt", "vocoder")
    assert checkpoint["step"] == 6 and int(checkpoint["model_state"]["step"]) == 6
    adam_steps = {int(state["step"]) for state in checkpoint["optimizer_state"]["state"].values()}
    assert adam_steps == {6}

    # at --max_steps already: nothing is trained or rewritten
    before = (run / "vocoder.pt").stat().st_mtime_ns
    assert main(train_args(speech_dataset_root, models, "run", "--max_steps", "6")) == 0
    assert (run / "vocoder.pt").stat().st_mtime_ns == before


def test_loss_falls_on_a_tiny_overfit_run_with_ground_truth_mels(speech_dataset_root, tmp_path, capsys,
                                                                  torch_single_thread) -> None:
    # One utterance, -g (ground-truth mels, no vocoder folder at all).
    source = speech_dataset_root / "SV2TTS" / "synthesizer"
    entry = read_train_txt(source / "train.txt")[2]
    wav = np.load(source / "audio" / entry.audio_name)
    write_synthesizer_folder(tmp_path / "SV2TTS" / "synthesizer", [("one", wav, entry.text)])
    # A high rate with clipping drops the loss by 0.5-1.5 nats in 20 steps for every utterance and seed tried.
    args = train_args(tmp_path, tmp_path / "models", "overfit", "-g", "--max_steps", "20", "--log_every", "10",
                      "--clip_grad_norm", "1", hparams=["voc_batch_size=8", "voc_lr=0.01"])
    assert main(args) == 0
    losses = logged_losses(capsys.readouterr().out)
    assert sorted(losses) == [10, 20]
    assert losses[10] < 6.3  # about ln(512) = 6.24 at the start
    assert losses[20] < losses[10] - 0.3, losses


def test_mol_mode_trains_and_loads(speech_dataset_root, tmp_path, torch_single_thread) -> None:
    args = train_args(speech_dataset_root, tmp_path, "mol", "--max_steps", "2", "--sample_every", "2",
                      "--sample_seconds", "0.05", hparams=["voc_mode=MOL", "voc_gen_at_checkpoint=1"])
    assert main(args) == 0
    vocoder = WaveRNNVocoder.from_checkpoint(tmp_path / "mol" / "vocoder.pt")
    assert vocoder.hparams.voc_mode == "MOL" and vocoder.model.fc3.out_features == 30 and vocoder.step == 2
    assert (tmp_path / "mol" / "samples" / "step2_1_generated.wav").is_file()


def test_init_from_fine_tunes_a_vocoder_checkpoint(speech_dataset_root, tmp_path, capsys, torch_single_thread) -> None:
    torch.manual_seed(3)
    model = build_wavernn(VocoderHParams(**TINY_VOCODER))
    model.step.data.fill_(7)
    WaveRNNVocoder(model).save(tmp_path / "start.pt")
    args = train_args(speech_dataset_root, tmp_path / "models", "tuned", "--max_steps", "8",
                      "--init_from", str(tmp_path / "start.pt"))
    assert main(args) == 0
    assert "Fine-tuning from vocoder at step 7." in capsys.readouterr().out
    tuned = WaveRNNVocoder.from_checkpoint(tmp_path / "models" / "tuned" / "vocoder.pt").model
    assert int(tuned.step) == 8
    assert not torch.equal(tuned.fc3.weight, model.fc3.weight)
    assert (tuned.fc3.weight - model.fc3.weight).abs().max() < 0.01  # one small step away from the start


def test_resumes_a_run_file_in_rtvc_layout_and_never_overwrites_it_on_failure(speech_dataset_root, tmp_path, capsys,
                                                                            torch_single_thread) -> None:
    # RTVC's vocoder.pt: {"model_state", "optimizer_state"}, the step only in the model, Adam over all
    # parameters (``step`` included). Tiny sizes come from --hparams since RTVC files carry none.
    torch.manual_seed(0)
    model = build_wavernn(VocoderHParams(**TINY_VOCODER))
    optimizer = torch.optim.Adam(model.parameters())
    labels = torch.randint(0, 512, (2, 400))
    rtvc_loss(model(2 * labels.float() / 511 - 1, torch.rand(2, 80, 6) * 2 - 1), labels, model.hparams).backward()
    optimizer.step()
    model.step.data.fill_(5)
    run = tmp_path / "models" / "rtvc"
    run.mkdir(parents=True)
    torch.save({"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict()}, run / "vocoder.pt")

    # an optimizer state that does not fit: one error line, and the file is left exactly as it was
    broken = {"model_state": model.state_dict(), "optimizer_state": {"state": {}, "param_groups": [
        {**optimizer.state_dict()["param_groups"][0], "params": [0, 1]}]}}
    torch.save(broken, tmp_path / "broken.pt")
    (run / "vocoder.pt").replace(run / "vocoder.pt.keep")
    shutil.copyfile(tmp_path / "broken.pt", run / "vocoder.pt")
    assert main(train_args(speech_dataset_root, tmp_path / "models", "rtvc", "--max_steps", "6")) == 1
    assert "optimizer state" in capsys.readouterr().err
    assert (run / "vocoder.pt").read_bytes() == (tmp_path / "broken.pt").read_bytes()

    (run / "vocoder.pt.keep").replace(run / "vocoder.pt")
    assert main(train_args(speech_dataset_root, tmp_path / "models", "rtvc", "--max_steps", "6")) == 0
    assert "Resuming vocoder at step 5." in capsys.readouterr().out
    checkpoint = load_checkpoint_file(run / "vocoder.pt", "vocoder")
    assert checkpoint["step"] == 6 and int(checkpoint["model_state"]["step"]) == 6


@pytest.mark.parametrize("case", ["no_syn_dir", "no_gta", "bad_seq_len", "synthesizer_file"])
def test_bad_inputs_give_one_error_line(speech_dataset_root, tmp_path, capsys, case) -> None:
    root, extra, hparams = speech_dataset_root, [], []
    if case == "no_syn_dir":
        root = tmp_path / "empty"
    elif case == "no_gta":
        extra = ["--voc_dir", str(tmp_path / "nothing")]
    elif case == "bad_seq_len":
        hparams = ["voc_seq_len=500"]
    else:
        from synthesizer.hparams import SynthesizerHParams
        from synthesizer.inference import Synthesizer
        from synthesizer.model import build_tacotron

        hp = SynthesizerHParams(tts_embed_dims=8, tts_encoder_dims=8, tts_decoder_dims=8, tts_postnet_dims=8,
                                tts_lstm_dims=8)
        Synthesizer(build_tacotron(hp)).save(tmp_path / "synthesizer.pt")
        extra = ["--init_from", str(tmp_path / "synthesizer.pt")]
    assert main(train_args(root, tmp_path / "models", "bad", "--max_steps", "1", *extra, hparams=hparams)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    expected = {"no_syn_dir": "synthesizer.preprocess", "no_gta": "python -m vocoder.preprocess first, or",
                "bad_seq_len": "multiple of hop_length", "synthesizer_file": "not a vocoder checkpoint"}[case]
    assert expected in err[0]
    assert not (tmp_path / "models" / "bad" / "vocoder.pt").exists()
    if case in ("no_syn_dir", "no_gta"):
        assert not (tmp_path / "models").exists()  # nothing is created for a wrong path


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_two_processes_end_with_identical_weights(speech_dataset_root, tmp_path) -> None:
    out = tmp_path / "ranks"
    args = train_args(speech_dataset_root, tmp_path / "models", "ddp", "--max_steps", "3",
                      hparams=["voc_batch_size=2"])
    rank0, rank1 = run_ranks("vocoder.train", out, args)
    saved = load_checkpoint_file(tmp_path / "models" / "ddp" / "vocoder.pt", "vocoder")
    assert saved["step"] == 3 and int(rank0["step"]) == 3
    for key in rank0:  # BatchNorm statistics included
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved["model_state"][key]), key


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
def test_cpu_bf16_trains_down_with_float32_weights(speech_dataset_root, tmp_path, capsys, torch_single_thread) -> None:
    source = speech_dataset_root / "SV2TTS" / "synthesizer"
    entry = read_train_txt(source / "train.txt")[2]
    write_synthesizer_folder(tmp_path / "SV2TTS" / "synthesizer", [("one", np.load(source / "audio" / entry.audio_name),
                                                                    entry.text)])
    args = train_args(tmp_path, tmp_path / "models", "bf16", "-g", "--max_steps", "20", "--log_every", "10",
                      "--clip_grad_norm", "1", "--cpu_bf16", hparams=["voc_batch_size=8", "voc_lr=0.01"])
    assert main(args) == 0
    losses = logged_losses(capsys.readouterr().out)
    assert sorted(losses) == [10, 20] and losses[20] < losses[10] - 0.3, losses
    checkpoint = torch.load(tmp_path / "models" / "bf16" / "vocoder.pt", map_location="cpu", weights_only=True)
    state = checkpoint["model_state"]
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())


@pytest.mark.parametrize("where", ["between", "mid_step", "nan"])
def test_an_exception_saves_only_a_finished_finite_step(speech_dataset_root, tmp_path, monkeypatch, capsys, where,
                                                        torch_single_thread) -> None:
    """The rule every trainer shares (utils.training.training_session): see tests/utils/test_training.py."""
    from tests.utils.test_training import FAILURES, InjectedFailure, check_end_after_failure, inject_failure
    from vocoder.train import train_from_args

    inject_failure(monkeypatch, where, at_step=FAILURES[where][0])
    with pytest.raises(InjectedFailure):
        train_from_args(train_args(speech_dataset_root, tmp_path, "run", "--max_steps", "10", "--save_every", "2",
                                   hparams=["voc_batch_size=2"]))
    check_end_after_failure(tmp_path / "run" / "vocoder.pt", where, capsys.readouterr().out)
