"""Exporting training checkpoints to small inference files (utils/export_model.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesizer.hparams import SynthesizerHParams
from synthesizer.inference import Synthesizer
from synthesizer.model import build_tacotron
from tests.model_files import write_rtvc_vocoder
from utils.checkpoints import CheckpointError, load_checkpoint_file
from utils.export_model import export_checkpoint, main
from vocoder.inference import WaveRNNVocoder

SMALL = SynthesizerHParams(tts_embed_dims=32, tts_encoder_dims=16, tts_decoder_dims=16, tts_postnet_dims=16,
                           tts_lstm_dims=32)


def _trained_synthesizer(path):
    torch.manual_seed(0)
    model = build_tacotron(SMALL)
    model.r = 3
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 80, 6), torch.zeros(1, 256)).mels.sum().backward()
    optimizer.step()  # a real Adam state, as in a training checkpoint
    Synthesizer(model).save(path, optimizer=optimizer)
    return path


def test_float16_export_halves_the_file_and_synthesizes_the_same(tmp_path):
    source = _trained_synthesizer(tmp_path / "train" / "synthesizer.pt")
    target = tmp_path / "shipped" / "synthesizer.pt"
    payload = export_checkpoint(source, target, dtype=torch.float16)
    assert "optimizer_state" not in payload
    assert target.stat().st_size < 0.6 * source.stat().st_size
    stored = load_checkpoint_file(target, "synthesizer")
    floats = [t for t in stored["model_state"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    assert not stored["model_state"]["decoder.r"].is_floating_point() and int(stored["model_state"]["decoder.r"]) == 3

    original, exported = Synthesizer.from_checkpoint(source), Synthesizer.from_checkpoint(target)
    assert exported.hparams == original.hparams and exported.r == 3
    assert next(exported.model.parameters()).dtype == torch.float32  # cast back on load
    embedding = np.full(256, 1 / 16, dtype=np.float32)
    torch.manual_seed(1)
    reference = original.synthesize(["Hello there."], embedding).mels[0]
    torch.manual_seed(1)
    half = exported.synthesize(["Hello there."], embedding).mels[0]
    frames = min(reference.shape[1], half.shape[1])
    assert np.abs(reference[:, :frames] - half[:, :frames]).max() < 0.05


def test_rtvc_vocoder_exports_without_its_optimizer(tmp_path):
    source = write_rtvc_vocoder(tmp_path / "vocoder.pt")
    target = tmp_path / "out" / "vocoder.pt"
    export_checkpoint(source, target, dtype=None)
    stored = load_checkpoint_file(target, "vocoder")
    assert set(stored) == {"model_state", "model_type"} and stored["model_type"] == "vocoder"
    assert target.stat().st_size < 0.5 * source.stat().st_size  # Adam's two moments are gone
    WaveRNNVocoder.from_checkpoint(target)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert main([str(junk), str(tmp_path / "out.pt"), "--float16"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error
    assert not (tmp_path / "out.pt").exists()


def test_export_refuses_to_overwrite_its_source(tmp_path):
    source = _trained_synthesizer(tmp_path / "synthesizer.pt")
    with pytest.raises(CheckpointError, match="another file"):
        export_checkpoint(source, source)


def test_cli_prints_the_size(tmp_path, capsys):
    source = _trained_synthesizer(tmp_path / "synthesizer.pt")
    assert main([str(source), str(tmp_path / "small.pt"), "--float16"]) == 0
    assert "MiB" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Issue 18: every failure is one line.


def test_export_onto_a_folder_or_a_read_only_place_is_one_line(tmp_path, read_only_dir, capsys):
    source = write_rtvc_vocoder(tmp_path / "vocoder.pt")
    folder = tmp_path / "existing"
    folder.mkdir()
    for target, expected in ((folder, "existing folder"), (read_only_dir / "vocoder.pt", "Read-only file system")):
        assert main([str(source), str(target)]) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith("error:") and "\n" not in error and expected in error
    assert list(folder.iterdir()) == [] and list(read_only_dir.iterdir()) == []


def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, full_disk, capsys):
    source = write_rtvc_vocoder(tmp_path / "vocoder.pt")
    assert main([str(source), str(full_disk / "vocoder.pt")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: Not enough disk space") and "\n" not in error
    assert sorted(path.name for path in full_disk.iterdir()) == ["filler.bin"]


def test_export_of_weights_that_are_not_tensors_is_one_line(tmp_path, capsys):
    source = tmp_path / "vocoder.pt"
    torch.save({"model_state": {"upsample.resnet.conv_in.weight": "not a tensor"}}, source)
    assert main([str(source), str(tmp_path / "out.pt")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "not a tensor" in error and "\n" not in error


def test_export_name_too_long_is_refused_before_loading(tmp_path, capsys):
    source = write_rtvc_vocoder(tmp_path / "vocoder.pt")
    assert main([str(source), str(tmp_path / ("v" * 300 + ".pt"))]) == 1
    assert "bytes long" in capsys.readouterr().err
