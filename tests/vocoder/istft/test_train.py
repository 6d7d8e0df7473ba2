"""The trainer end to end on a tiny folder, its schedule, and a tiny overfit that beats Griffin-Lim."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from utils.mel import melspectrogram
from synthesizer.hparams import SynthesizerHParams
from synthesizer.metadata import write_train_txt
from tests.distributed_harness import run_ranks
from tests.vocoder.istft.conftest import small_model
from utils.checkpoints import load_checkpoint_file
from vocoder.inference import GriffinLimVocoder
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.inference import ISTFTVocoder
from vocoder.istft.losses import compute_losses
from vocoder.istft.metrics import spectral_distance
from vocoder.istft.train import learning_rate_at, main, train_from_args

TINY = ["--hparams", "channels=16", "num_blocks=1", "segment_frames=8", "batch_size=2"]
QUIET = ["--num_workers", "0", "--no_tensorboard", "--quiet", "--log_every", "1"]


def test_trains_saves_resumes_and_writes_samples(tmp_path, syn_dir):
    models = tmp_path / "models"
    args = ["run", str(syn_dir), "-m", str(models), *TINY, *QUIET, "--sample_every", "2", "--sample_seconds", "0.5"]
    train_from_args([*args, "--max_steps", "2"])
    path = models / "run" / "vocoder.pt"
    checkpoint = load_checkpoint_file(path, "vocoder")
    assert checkpoint["architecture"] == "istft" and checkpoint["step"] == 2
    assert checkpoint["hparams"]["channels"] == 16 and "optimizer_state" in checkpoint
    assert sorted(p.name for p in (models / "run" / "samples").iterdir())[:2] == [
        "step2_1_generated.wav", "step2_1_target.wav"]
    model = train_from_args([*args, "--max_steps", "3"])
    assert int(model.step) == 3 and ISTFTVocoder.from_checkpoint(path).step == 3


@pytest.mark.parametrize("fraction", ["1", "0.5"])
def test_fine_tunes_on_gta_mels(tmp_path, syn_dir, fraction):
    from vocoder.preprocess import GTA_FOLDER, SYNTHESIZED_TXT
    from synthesizer.metadata import read_train_txt

    gta = tmp_path / "gta"
    (gta / GTA_FOLDER).mkdir(parents=True)
    entries = read_train_txt(syn_dir / "train.txt")
    for entry in entries:  # "GTA" mels: the real ones blurred along time, as a synthesizer smooths them
        mel = melspectrogram(np.load(syn_dir / "audio" / entry.audio_name), SynthesizerHParams())
        blurred = (mel + np.roll(mel, 1, axis=1) + np.roll(mel, -1, axis=1)) / 3
        np.save(gta / GTA_FOLDER / entry.mel_name, blurred.T.astype(np.float32))
    write_train_txt(gta / SYNTHESIZED_TXT, entries[:2])
    models = tmp_path / "models"
    model = train_from_args(["run", str(syn_dir), "-m", str(models), *TINY, f"gta_batch_fraction={fraction}",
                             *QUIET, "--sample_every", "0", "--gta_dir", str(gta), "--max_steps", "4"])
    assert int(model.step) == 4 and ISTFTVocoder.from_checkpoint(models / "run" / "vocoder.pt").step == 4
    assert load_checkpoint_file(models / "run" / "vocoder.pt", "vocoder")["hparams"]["gta_batch_fraction"] == float(
        fraction)


def test_gta_mels_change_the_loss_but_not_its_targets(speech_clip):
    hp = ISTFTHParams(**{"channels": 16, "num_blocks": 1})
    model = small_model(channels=16, num_blocks=1)
    segment = torch.from_numpy(np.concatenate([[0.0], speech_clip[:8000]]).astype(np.float32))[None]
    own = model.front.mel_from_wave(segment[:, 1:], segment[:, 0])
    with torch.no_grad():
        default, _ = compute_losses(model, segment, hp)
        same, _ = compute_losses(model, segment, hp, own)
        other, _ = compute_losses(model, segment, hp, own.roll(3, dims=2))
    assert torch.allclose(default, same) and not torch.allclose(default, other)


def test_refuses_to_resume_a_wavernn_run(tmp_path, syn_dir, capsys):
    from vocoder.hparams import VocoderHParams
    from vocoder.inference import WaveRNNVocoder
    from vocoder.model import build_wavernn

    run = tmp_path / "models" / "run"
    WaveRNNVocoder(build_wavernn(VocoderHParams(voc_rnn_dims=16, voc_fc_dims=16, voc_compute_dims=8,
                                                voc_res_out_dims=8, voc_res_blocks=1))).save(run / "vocoder.pt")
    assert main(["run", str(syn_dir), "-m", str(tmp_path / "models"), *TINY, *QUIET, "--max_steps", "1"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "not an iSTFT vocoder" in error and "\n" not in error


def test_learning_rate_warms_up_then_decays_to_the_floor():
    hp = ISTFTHParams(learning_rate=1e-3, warmup_steps=10, decay_steps=110, lr_min_ratio=0.1)
    rates = [learning_rate_at(step, hp) for step in range(0, 200)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[60] == pytest.approx(0.55e-3) and rates[150] == pytest.approx(1e-4)


def test_overfitting_one_clip_beats_griffin_lim(speech_clip):
    """A small model trained briefly on one espeak-ng clip must already beat Griffin-Lim's spectral distance."""
    torch.manual_seed(0)
    hop = SynthesizerHParams().hop_size
    wav = speech_clip[: (len(speech_clip) - 1) // hop * hop]
    segment = torch.from_numpy(np.concatenate([[0.0], wav]).astype(np.float32))[None]  # (1, 1 + L)
    model = small_model(channels=48, num_blocks=2, layer_scale_init=0.5).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.8, 0.99))
    for _ in range(120):
        loss, _ = compute_losses(model, segment, model.hparams)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
    mel = melspectrogram(wav, SynthesizerHParams())
    ours = ISTFTVocoder(model.eval()).vocode(mel)
    griffin_lim = GriffinLimVocoder().vocode(mel, generator=torch.Generator().manual_seed(0))
    reference = wav[: len(ours)]
    ours_distance, griffin_lim_distance = spectral_distance(reference, ours), spectral_distance(reference, griffin_lim)
    print(f"spectral distance: iSTFT {ours_distance:.2f} dB, Griffin-Lim {griffin_lim_distance:.2f} dB")
    assert ours_distance < griffin_lim_distance


@pytest.mark.parametrize("where", ["between", "mid_step", "nan"])
def test_an_exception_saves_only_a_finished_finite_step(tmp_path, syn_dir, monkeypatch, capsys, where):
    """The rule every trainer shares (utils.training.training_session): see tests/utils/test_training.py."""
    from tests.utils.test_training import FAILURES, InjectedFailure, check_end_after_failure, inject_failure

    inject_failure(monkeypatch, where, at_step=FAILURES[where][0])
    with pytest.raises(InjectedFailure):
        train_from_args(["run", str(syn_dir), "-m", str(tmp_path), *QUIET, "--sample_every", "0", "--seed", "0",
                         "--max_steps", "10", "--save_every", "2", *TINY])
    check_end_after_failure(tmp_path / "run" / "vocoder.pt", where, capsys.readouterr().out)


def test_adversarial_fine_tuning_keeps_the_discriminator_in_the_training_checkpoint_only(tmp_path, syn_dir):
    from utils.export_model import export_checkpoint

    models = tmp_path / "models"
    adversarial = ["--hparams", "channels=16", "num_blocks=1", "segment_frames=8", "batch_size=2",
                   "w_adversarial=1", "discriminator_channels=4"]
    args = ["run", str(syn_dir), "-m", str(models), *adversarial, *QUIET, "--sample_every", "0"]
    train_from_args([*args, "--max_steps", "2"])
    path = models / "run" / "vocoder.pt"
    checkpoint = load_checkpoint_file(path, "vocoder")
    assert {"discriminator_state", "discriminator_optimizer_state"} <= set(checkpoint)
    saved = {k: v.clone() for k, v in checkpoint["discriminator_state"].items()}
    model = train_from_args([*args, "--max_steps", "3"])  # resumes the discriminator too
    resumed = load_checkpoint_file(path, "vocoder")["discriminator_state"]
    assert int(model.step) == 3 and saved.keys() == resumed.keys()
    assert any(not torch.equal(saved[k], resumed[k]) for k in saved)  # it kept learning
    export_checkpoint(path, tmp_path / "shipped.pt")
    shipped = torch.load(tmp_path / "shipped.pt", map_location="cpu", weights_only=True)
    assert not any(key.startswith("discriminator") for key in shipped)
    assert ISTFTVocoder.from_checkpoint(tmp_path / "shipped.pt").step == 3


def test_refuses_a_discriminator_of_another_size(tmp_path, syn_dir, capsys):
    models = tmp_path / "models"
    base = ["run", str(syn_dir), "-m", str(models), *QUIET, "--sample_every", "0"]
    sizes = ["channels=16", "num_blocks=1", "segment_frames=8", "batch_size=2", "w_adversarial=1"]
    train_from_args([*base, "--hparams", *sizes, "discriminator_channels=4", "--max_steps", "1"])
    assert main([*base, "--hparams", *sizes, "discriminator_channels=6", "--max_steps", "2"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "discriminator" in error and "\n" not in error


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_two_processes_with_discriminator_and_speaker_loss_end_with_identical_weights(tmp_path, syn_dir,
                                                                                       encoder_checkpoint):
    out = tmp_path / "ranks"
    models = tmp_path / "models"
    hparams = ["channels=16", "num_blocks=1", "segment_frames=8", "batch_size=1", "w_adversarial=1",
               "discriminator_channels=4", "w_speaker=50"]
    args = ["run", str(syn_dir), "-m", str(models), "--hparams", *hparams, *QUIET, "--sample_every", "0",
            "-e", str(encoder_checkpoint), "--max_steps", "3"]
    rank0, rank1 = run_ranks("vocoder.istft.train", out, args)
    saved = load_checkpoint_file(models / "run" / "vocoder.pt", "vocoder")
    assert saved["step"] == 3 and int(rank0["step"]) == 3 and "discriminator_state" in saved
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        assert torch.equal(rank0[key], saved["model_state"][key]), key


BAD_OVERRIDES = ["w_mel=NaN", "w_speaker=Infinity", "w_amplitude=-1", "learning_rate=-1", "learning_rate=NaN",
                 "learning_rate=0", "mr_resolutions=[[512,600,512]]"]


def test_bad_loss_weights_and_learning_rates_are_refused_and_keep_the_good_file(tmp_path, syn_dir, capsys):
    args = ["run", str(syn_dir), "-m", str(tmp_path), *TINY, *QUIET, "--sample_every", "0"]
    assert main([*args, "--max_steps", "1"]) == 0
    path = tmp_path / "run" / "vocoder.pt"
    before = path.read_bytes()
    capsys.readouterr()
    for override in BAD_OVERRIDES:
        assert main([*args, "--hparams", override, "--max_steps", "2"]) == 1, override
        err = capsys.readouterr().err
        assert err.startswith("error: Invalid hyperparameters: " + override.split("=")[0]) and err.count("\n") == 1
        assert path.read_bytes() == before


def test_transposed_gta_mels_end_the_trainer_in_one_line(tmp_path, syn_dir, capsys):
    """Issue 26: they gave a DataLoader traceback and then hung (killed at 150 s)."""
    from synthesizer.metadata import read_train_txt
    from vocoder.preprocess import GTA_FOLDER, SYNTHESIZED_TXT

    gta = tmp_path / "gta"
    (gta / GTA_FOLDER).mkdir(parents=True)
    entries = read_train_txt(syn_dir / "train.txt")
    for entry in entries:
        np.save(gta / GTA_FOLDER / entry.mel_name, np.zeros((80, entry.n_frames), np.float32))
    write_train_txt(gta / SYNTHESIZED_TXT, entries)
    assert main(["run", str(syn_dir), "-m", str(tmp_path / "models"), *TINY, "--num_workers", "1", "--quiet",
                 "--gta_dir", str(gta), "--max_steps", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The GTA mel") and "transposed" in err and err.count("\n") == 1
