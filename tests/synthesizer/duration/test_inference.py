"""Loading and running a duration synthesizer: the same checkpoint code as the Tacotron."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.inference import DurationSynthesizer
from synthesizer.duration.model import DurationSynthesizerModel
from synthesizer.duration.phonemes import SymbolTable
from synthesizer.inference import Synthesizer, load_synthesizer
from utils.checkpoints import CheckpointError, load_checkpoint_file, save_checkpoint
from utils.export_model import main as export_main
from tests.synthesizer.duration.test_model import SMALL

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

VOICE = np.full(256, 1 / 16, np.float32)


@pytest.fixture
def synthesizer(tmp_path) -> DurationSynthesizer:
    torch.manual_seed(0)
    table = SymbolTable.default()
    model = DurationSynthesizerModel(SMALL, len(table))
    with torch.no_grad():
        model.duration_head.bias.fill_(1.5)
    loaded = DurationSynthesizer(model, table)
    loaded.save(tmp_path / "synthesizer.pt")
    return loaded


def test_synthesize_gives_one_mel_and_path_per_text(synthesizer):
    result = synthesizer.synthesize(["Hello there.", "A second, longer sentence here!"], VOICE)
    assert [mel.shape[0] for mel in result.mels] == [80, 80]
    assert result.mels[1].shape[1] > result.mels[0].shape[1]
    for mel, alignment in zip(result.mels, result.alignments):
        assert alignment.shape[0] == mel.shape[1]  # (frames, symbols), the attention plot's orientation
        assert (alignment.sum(1) == 1).all()
    assert result.stop_reached == [True, True]


def test_checkpoint_round_trip_through_load_synthesizer(synthesizer, tmp_path):
    loaded = load_synthesizer(tmp_path / "synthesizer.pt")
    assert isinstance(loaded, DurationSynthesizer)
    before = synthesizer.synthesize(["Round trip."], VOICE).mels[0]
    after = loaded.synthesize(["Round trip."], VOICE).mels[0]
    np.testing.assert_array_equal(before, after)
    assert loaded.espeak_version == synthesizer.front_end.phonemizer.version


def test_float16_export_loads_and_is_close(synthesizer, tmp_path):
    assert export_main([str(tmp_path / "synthesizer.pt"), str(tmp_path / "small.pt"), "--float16"]) == 0
    checkpoint = load_checkpoint_file(tmp_path / "small.pt", "synthesizer")
    assert checkpoint["architecture"] == "duration" and "optimizer_state" not in checkpoint
    assert all(v.dtype == torch.float16 for v in checkpoint["model_state"].values() if v.is_floating_point())
    exported = load_synthesizer(tmp_path / "small.pt")
    a = synthesizer.synthesize(["Close enough."], VOICE).mels[0]
    b = exported.synthesize(["Close enough."], VOICE).mels[0]
    assert a.shape == b.shape and np.abs(a - b).max() < 0.05


def test_speaking_rate_is_checked_and_applied(synthesizer):
    normal = synthesizer.synthesize(["Pace of speech."], VOICE).mels[0].shape[1]
    slow = synthesizer.synthesize(["Pace of speech."], VOICE, speaking_rate=0.5).mels[0].shape[1]
    assert slow > 1.6 * normal
    with pytest.raises(ValueError, match="between 0.5 and 2"):
        synthesizer.synthesize(["x"], VOICE, speaking_rate=3)


def test_bad_inputs_are_one_line_errors(synthesizer):
    with pytest.raises(ValueError, match="text 0 is empty"):
        synthesizer.synthesize(["  "], VOICE)
    with pytest.raises(ValueError, match="shape"):
        synthesizer.synthesize(["Hi."], np.ones(3, np.float32))


def test_files_of_the_wrong_kind_are_refused(synthesizer, tmp_path):
    checkpoint = load_checkpoint_file(tmp_path / "synthesizer.pt", "synthesizer")
    with pytest.raises(CheckpointError, match="not a Tacotron"):
        Synthesizer.from_checkpoint(tmp_path / "synthesizer.pt", checkpoint=checkpoint)
    del checkpoint["symbols"]
    save_checkpoint(tmp_path / "nosymbols.pt", checkpoint)
    with pytest.raises(CheckpointError, match="symbol table"):
        load_synthesizer(tmp_path / "nosymbols.pt")
    checkpoint["symbols"] = SymbolTable.default().symbols + "☃"
    save_checkpoint(tmp_path / "moresymbols.pt", checkpoint)
    with pytest.raises(CheckpointError, match="shape"):
        load_synthesizer(tmp_path / "moresymbols.pt")
    checkpoint["architecture"] = "diffusion"
    save_checkpoint(tmp_path / "unknown.pt", checkpoint)
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_synthesizer(tmp_path / "unknown.pt")


def test_nan_weights_are_refused(synthesizer, tmp_path):
    with torch.no_grad():
        synthesizer.model.decoder_out.bias.fill_(float("nan"))
    from utils.checkpoints import NonFiniteOutputError

    with pytest.raises(NonFiniteOutputError, match="produced NaN or infinite mel spectrograms"):
        synthesizer.synthesize(["Broken."], VOICE)


def test_untrained_hparams_are_kept(tmp_path):
    hp = DurationHParams(encoder_channels=8, duration_channels=8, decoder_channels=8, decoder_layers=1,
                         encoder_layers=1)
    DurationSynthesizer.untrained(hp).save(tmp_path / "tiny.pt")
    assert load_synthesizer(tmp_path / "tiny.pt").model.hparams == hp


def test_a_sentence_cut_at_the_frame_limit_is_warned_about(synthesizer, tmp_path):
    """Issue 26: the model clamps at max_frames before the inference code compared, so no warning came."""
    from synthesizer.duration.hparams import MIN_FRAMES
    from synthesizer.inference import SynthesisWarning

    checkpoint = load_checkpoint_file(tmp_path / "synthesizer.pt", "synthesizer")
    checkpoint["hparams"]["max_frames"] = MIN_FRAMES
    save_checkpoint(tmp_path / "short.pt", checkpoint)
    short = DurationSynthesizer.from_checkpoint(tmp_path / "short.pt")
    with pytest.warns(SynthesisWarning, match=f"cut at the {MIN_FRAMES}-frame limit"):
        result = short.synthesize(["9" * 200], VOICE)
    assert result.mels[0].shape[1] == MIN_FRAMES and result.stop_reached == [False]


@pytest.mark.parametrize("max_frames", [1, 10**9])
def test_a_stored_max_frames_out_of_range_is_refused_at_load(synthesizer, tmp_path, max_frames):
    checkpoint = load_checkpoint_file(tmp_path / "synthesizer.pt", "synthesizer")
    checkpoint["hparams"]["max_frames"] = max_frames
    save_checkpoint(tmp_path / "bad.pt", checkpoint)
    with pytest.raises(CheckpointError, match="max_frames must be between 80 and 30000"):
        DurationSynthesizer.from_checkpoint(tmp_path / "bad.pt")


def test_a_small_file_describing_a_huge_model_is_refused_before_allocating_it(synthesizer, tmp_path):
    """Issue 26: stored sizes inside the rules but far from the weights reached 4.6 GB before the refusal."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    checkpoint = load_checkpoint_file(tmp_path / "synthesizer.pt", "synthesizer")
    checkpoint["hparams"].update(decoder_channels=2048, decoder_expansion=16, decoder_layers=8)  # 4.3 GB of weights
    save_checkpoint(tmp_path / "huge.pt", checkpoint)
    probe = textwrap.dedent(f"""
        import resource
        from synthesizer.duration.inference import DurationSynthesizer
        from utils.checkpoints import CheckpointError
        try:
            DurationSynthesizer.from_checkpoint({str(tmp_path / "huge.pt")!r})
        except CheckpointError as error:
            print(error)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[3])
    message, peak_mb = result.stdout.splitlines()
    assert "does not fit this synthesizer" in message and "decoder_in.weight" in message
    assert int(peak_mb) < 1500, peak_mb


def test_nul_characters_are_refused_instead_of_cutting_the_text(synthesizer):
    with pytest.raises(ValueError, match="text 1 contains NUL characters"):
        synthesizer.synthesize(["Fine.", "H\0e\0l\0l\0o"], VOICE)
