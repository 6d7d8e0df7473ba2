"""GTA preprocessing: shapes, determinism (dropout off), equality with a teacher-forced pass, resume,
torchrun sharding and one-line errors, on espeak-ng speech in the real synthesizer layout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from synthesizer.hparams import SynthesizerHParams
from synthesizer.inference import Synthesizer
from synthesizer.metadata import read_train_txt
from synthesizer.model import build_tacotron
from synthesizer.text import text_to_sequence
from tests.conftest import REPO_ROOT
from tests.vocoder.test_data import espeak_utterances, write_synthesizer_folder
from synthesizer.gta import load_gta_synthesizer
from vocoder.preprocess import main

TINY_SYNTHESIZER = dict(tts_embed_dims=16, tts_encoder_dims=16, tts_decoder_dims=16, tts_postnet_dims=16,
                        tts_lstm_dims=32)  # dropout stays RTVC's 0.5: GTA must switch it off


@pytest.fixture(scope="module")
def gta_inputs(tmp_path_factory, espeak) -> tuple[Path, Path]:
    """``(datasets_root, synthesizer.pt)``: espeak-ng speech in RTVC's layout and a tiny random Tacotron (r = 2)."""
    root = tmp_path_factory.mktemp("gta")
    write_synthesizer_folder(root / "SV2TTS" / "synthesizer", espeak_utterances(root / "wavs", espeak))
    torch.manual_seed(0)
    model = build_tacotron(SynthesizerHParams(**TINY_SYNTHESIZER))
    model.r = 2
    checkpoint = root / "synthesizer.pt"
    Synthesizer(model).save(checkpoint)
    return root, checkpoint


def run_gta(root: Path, checkpoint: Path, out_dir: Path, *extra: str) -> int:
    return main([str(root), "-s", str(checkpoint), "-o", str(out_dir), "-n", "0", "--quiet", "--cpu", *extra])


def read_gta(out_dir: Path) -> dict[str, np.ndarray]:
    return {path.name: np.load(path) for path in sorted((out_dir / "mels_gta").glob("*.npy"))}


def test_gta_mels_have_the_ground_truth_shapes(gta_inputs, tmp_path, capsys, torch_single_thread) -> None:
    root, checkpoint = gta_inputs
    syn_dir = root / "SV2TTS" / "synthesizer"
    assert run_gta(root, checkpoint, tmp_path / "voc", "--batch_size", "2") == 0
    assert "GTA mels: 3 written, 0 already there" in capsys.readouterr().out

    gta = read_gta(tmp_path / "voc")
    assert sorted(gta) == sorted(entry.mel_name for entry in read_train_txt(syn_dir / "train.txt"))
    for name, mel in gta.items():
        assert mel.dtype == np.float32 and mel.shape == np.load(syn_dir / "mels" / name).shape
        assert np.isfinite(mel).all() and mel.std() > 0
    # synthesized.txt repeats train.txt's lines, in its order
    assert (tmp_path / "voc" / "synthesized.txt").read_text() == (syn_dir / "train.txt").read_text()
    assert not list((tmp_path / "voc" / "mels_gta").glob(".*"))  # no temporary files left


def test_gta_is_deterministic_and_equals_a_teacher_forced_pass(gta_inputs, tmp_path, torch_single_thread) -> None:
    root, checkpoint = gta_inputs
    syn_dir = root / "SV2TTS" / "synthesizer"
    assert run_gta(root, checkpoint, tmp_path / "one", "--batch_size", "1") == 0
    assert run_gta(root, checkpoint, tmp_path / "two", "--batch_size", "1") == 0
    first, second = read_gta(tmp_path / "one"), read_gta(tmp_path / "two")
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])

    # By hand: the checkpoint's weights with dropout 0, eval mode, the real previous frames fed in.
    entry = read_train_txt(syn_dir / "train.txt")[1]
    loaded = Synthesizer.from_checkpoint(checkpoint)
    assert loaded.hparams.tts_dropout == 0.5 and loaded.r == 2
    model = build_tacotron(loaded.hparams.replace(tts_dropout=0.0))
    model.load_state_dict(loaded.model.state_dict())
    model.eval()
    ids = torch.tensor([text_to_sequence(entry.text)])
    mel = torch.from_numpy(np.load(syn_dir / "mels" / entry.mel_name).T.copy())[None]  # (1, 80, T)
    n_frames = mel.shape[-1]
    padded = torch.nn.functional.pad(mel, (0, 2 - n_frames % 2 if n_frames % 2 else 2), value=-4.0)
    embed = torch.from_numpy(np.load(syn_dir / "embeds" / entry.embed_name))[None]
    with torch.no_grad():
        expected = model(ids, padded, embed).postnet_mels[0, :, :n_frames].T.numpy()
        noisy = [loaded.model(ids, padded, embed).postnet_mels[0, :, :n_frames].T.numpy() for _ in range(2)]
    np.testing.assert_allclose(first[entry.mel_name], expected, rtol=1e-5, atol=1e-5)
    # with RTVC's always-on dropout the same pass differs from run to run: GTA really switched it off
    assert np.abs(noisy[0] - noisy[1]).max() > 1e-3


def test_a_duration_synthesizer_gives_its_teacher_forced_mels(gta_inputs, tmp_path, capsys,
                                                              torch_single_thread) -> None:
    from synthesizer.duration.data import DurationDataset
    from synthesizer.duration.hparams import DurationHParams
    from synthesizer.duration.inference import DurationSynthesizer

    root, _ = gta_inputs
    syn_dir = root / "SV2TTS" / "synthesizer"
    torch.manual_seed(0)
    tiny = DurationHParams(encoder_channels=8, duration_channels=8, decoder_channels=8, decoder_layers=1,
                           encoder_layers=1)
    checkpoint = tmp_path / "duration.pt"
    DurationSynthesizer.untrained(tiny).save(checkpoint)
    assert run_gta(root, checkpoint, tmp_path / "voc", "--batch_size", "2") == 0
    assert "GTA mels: 3 written" in capsys.readouterr().out
    gta = read_gta(tmp_path / "voc")
    entries = read_train_txt(syn_dir / "train.txt")
    assert sorted(gta) == sorted(entry.mel_name for entry in entries)
    assert len(read_train_txt(tmp_path / "voc" / "synthesized.txt")) == 3

    # By hand, one utterance alone: the training step's pass along the alignment of the real mel.
    loaded = DurationSynthesizer.from_checkpoint(checkpoint)
    dataset = DurationDataset(syn_dir, loaded.front_end, max_mel_frames=10**9)
    row = next(i for i, item in enumerate(dataset.items) if item.entry.mel_name == entries[0].mel_name)
    batch = dataset.collate([row])
    with torch.no_grad():
        output = loaded.model(batch["ids"], batch["lengths"], batch["speakers"], batch["mels"], batch["frame_lengths"])
    expected = output.mel[0].numpy().T  # (T, 80)
    assert gta[entries[0].mel_name].shape == np.load(syn_dir / "mels" / entries[0].mel_name).shape == expected.shape
    np.testing.assert_allclose(gta[entries[0].mel_name], expected, rtol=1e-4, atol=1e-4)


def test_a_duration_synthesizer_with_pitch_and_flow_gives_its_inference_output(gta_inputs, tmp_path,
                                                                               torch_single_thread) -> None:
    """The recording's timing and F0, the synthesizer's decoder and flow sample: what inference produces."""
    from synthesizer.duration.data import DurationDataset
    from synthesizer.duration.hparams import DurationHParams
    from synthesizer.duration.inference import DurationSynthesizer
    from synthesizer.duration.pitch import write_pitch_files

    source_root, _ = gta_inputs
    root = tmp_path / "data"
    shutil.copytree(source_root / "SV2TTS", root / "SV2TTS")
    syn_dir = root / "SV2TTS" / "synthesizer"
    write_pitch_files(syn_dir)
    torch.manual_seed(0)
    tiny = DurationHParams(encoder_channels=8, duration_channels=8, decoder_channels=8, decoder_layers=1,
                           encoder_layers=1, variance_adaptor=True, variance_channels=8, variance_layers=1,
                           flow_layers=1, flow_channels=8, flow_steps=2, flow_temperature=1.0)
    synthesizer = DurationSynthesizer.untrained(tiny)
    with torch.no_grad():  # the output layers start at zero: give every path a say
        for parameter in synthesizer.model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    checkpoint = tmp_path / "duration.pt"
    synthesizer.save(checkpoint)
    assert run_gta(root, checkpoint, tmp_path / "one", "--batch_size", "1") == 0
    assert run_gta(root, checkpoint, tmp_path / "two", "--batch_size", "1") == 0
    first, second = read_gta(tmp_path / "one"), read_gta(tmp_path / "two")
    assert len(first) == 3
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])

    # By hand: the longest utterance comes first, so it takes the first draw of the seed-0 noise.
    loaded = DurationSynthesizer.from_checkpoint(checkpoint)
    dataset = DurationDataset(syn_dir, loaded.front_end, max_mel_frames=10**9, with_pitch=True)
    row = max(range(len(dataset.items)), key=lambda i: dataset.items[i].entry.n_frames)
    batch = dataset.collate([row])
    args = (batch["ids"], batch["lengths"], batch["speakers"], batch["mels"], batch["frame_lengths"])
    expected = loaded.model.ground_truth_aligned(*args, batch["log_f0"], torch.Generator().manual_seed(0))
    name = dataset.items[row].entry.mel_name
    np.testing.assert_allclose(first[name], expected[0].numpy().T, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        regression = loaded.model(*args, log_f0=batch["log_f0"]).mel[0].numpy().T
        without_pitch = loaded.model.ground_truth_aligned(*args, None, torch.Generator().manual_seed(0))
    assert np.abs(first[name] - regression).mean() > 1e-3  # the flow's sample, not the regression mel
    assert (expected - without_pitch).abs().mean() > 1e-4  # the recording's F0 reaches the decoder


def test_skip_existing_keeps_finished_mels(gta_inputs, tmp_path, capsys, torch_single_thread) -> None:
    root, checkpoint = gta_inputs
    out_dir = tmp_path / "voc"
    assert run_gta(root, checkpoint, out_dir) == 0
    kept = out_dir / "mels_gta" / "mel-utt_a.npy"
    redo = out_dir / "mels_gta" / "mel-utt_b.npy"
    kept.write_bytes(kept.read_bytes())  # same content, new identity
    before = kept.stat().st_mtime_ns
    redo.unlink()
    (out_dir / "synthesized.txt").unlink()
    capsys.readouterr()
    assert run_gta(root, checkpoint, out_dir, "--skip_existing") == 0
    assert "GTA mels: 1 written, 2 already there" in capsys.readouterr().out
    assert kept.stat().st_mtime_ns == before and redo.is_file()
    assert len(read_train_txt(out_dir / "synthesized.txt")) == 3


def test_load_gta_synthesizer_switches_dropout_off_for_rtvc_files(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_tacotron(SynthesizerHParams())  # RTVC's file: full size, no hyperparameters inside
    model.r = 2
    torch.save({"model_state": model.state_dict()}, tmp_path / "rtvc.pt")
    gta_model = load_gta_synthesizer(tmp_path / "rtvc.pt")
    assert gta_model.r == 2 and not gta_model.training
    assert gta_model.hparams.tts_dropout == 0.0 and gta_model.decoder.prenet.p == 0.0
    assert gta_model.encoder.pre_net.p == 0.0
    assert torch.equal(gta_model.decoder.mel_proj.weight, model.decoder.mel_proj.weight)


@pytest.mark.parametrize("case", ["no_checkpoint", "no_train_txt", "vocoder_checkpoint"])
def test_bad_inputs_give_one_error_line(gta_inputs, tmp_path, capsys, case) -> None:
    root, checkpoint = gta_inputs
    if case == "no_checkpoint":
        checkpoint = tmp_path / "missing.pt"
    elif case == "no_train_txt":
        root = tmp_path
    else:
        from vocoder.hparams import VocoderHParams
        from vocoder.inference import WaveRNNVocoder
        from vocoder.model import build_wavernn

        checkpoint = tmp_path / "vocoder.pt"
        WaveRNNVocoder(build_wavernn(VocoderHParams(voc_rnn_dims=8, voc_fc_dims=8, voc_res_blocks=1))).save(checkpoint)
    assert run_gta(root, checkpoint, tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert {"no_checkpoint": "does not exist", "no_train_txt": "train.txt",
            "vocoder_checkpoint": "vocoder checkpoint"}[case] in err[0]


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_two_ranks_share_the_work_and_agree_with_one_process(gta_inputs, tmp_path, torch_single_thread) -> None:
    root, checkpoint = gta_inputs
    assert run_gta(root, checkpoint, tmp_path / "single", "--batch_size", "1") == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "vocoder.preprocess", str(root), "-s", str(checkpoint),
         "-o", str(tmp_path / "ddp"), "--batch_size", "1", "-n", "0", "--cpu", "--quiet"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("GTA mels: 3 written") == 1  # one summary, counted over both ranks
    single, ddp = read_gta(tmp_path / "single"), read_gta(tmp_path / "ddp")
    assert sorted(single) == sorted(ddp)
    for name in single:
        np.testing.assert_allclose(ddp[name], single[name], atol=1e-6)
    assert (tmp_path / "ddp" / "synthesized.txt").read_text() == (tmp_path / "single" / "synthesized.txt").read_text()
