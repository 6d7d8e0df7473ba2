"""Vocoder front door: loading RTVC and our checkpoints, vocoding with validation, Griffin-Lim fallback."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.checkpoints import CheckpointError
from vocoder.hparams import VocoderHParams
from vocoder.inference import GriffinLimVocoder, Vocoder, WaveRNNVocoder
from vocoder.model import build_wavernn

SMALL = dict(voc_rnn_dims=64, voc_fc_dims=64, voc_compute_dims=16, voc_res_out_dims=16, voc_res_blocks=2)


def small_vocoder(seed: int = 0, **changes) -> WaveRNNVocoder:
    torch.manual_seed(seed)
    return WaveRNNVocoder(build_wavernn(VocoderHParams(**{**SMALL, **changes})))


def synth_mel(frames: int, seed: int = 0) -> np.ndarray:
    """A mel in the synthesizer's [-4, 4] range."""
    return np.random.default_rng(seed).uniform(-4.0, 4.0, size=(80, frames)).astype(np.float32)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key].cpu(), sb[key].cpu()), key


# ------------------------------------------------------------------------------------- checkpoints


@pytest.mark.slow
def test_rtvc_checkpoint_with_adam_state_loads_unchanged(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_wavernn(VocoderHParams())
    optimizer = torch.optim.Adam(model.parameters())
    # one real training step, as RTVC's files carry step and Adam moments
    labels = torch.randint(0, 512, (1, 400))
    logits = model(2 * labels.float() / 511 - 1, torch.rand(1, 80, 6) * 2 - 1)  # BatchNorm needs 2+ frames
    F.cross_entropy(logits.transpose(1, 2), labels).backward()
    optimizer.step()
    path = tmp_path / "vocoder.pt"
    torch.save({"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict()}, path)

    vocoder = WaveRNNVocoder.from_checkpoint(path)
    assert_same_weights(vocoder.model, model)
    assert vocoder.hparams == VocoderHParams()
    assert vocoder.step == 1
    assert vocoder.path == path
    assert vocoder.device == torch.device("cpu")
    assert not vocoder.model.training


def test_legacy_bare_state_dict_loads(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_wavernn(VocoderHParams())
    path = tmp_path / "pretrained.pt"
    torch.save(model.state_dict(), path)
    assert_same_weights(WaveRNNVocoder.from_checkpoint(path).model, model)


def test_our_checkpoint_round_trips_small_hparams(tmp_path: Path) -> None:
    vocoder = small_vocoder(voc_target=400, voc_overlap=50)
    optimizer = torch.optim.Adam(vocoder.model.parameters())
    path = tmp_path / "nested" / "small.pt"
    vocoder.save(path, optimizer)

    payload = torch.load(path, weights_only=True)
    assert payload["model_type"] == "vocoder" and "optimizer_state" in payload
    assert payload["hparams"]["voc_rnn_dims"] == 64
    loaded = WaveRNNVocoder.from_checkpoint(path)
    assert loaded.hparams == vocoder.hparams
    assert_same_weights(loaded.model, vocoder.model)
    assert not list(tmp_path.joinpath("nested").glob("*.tmp"))  # atomic write left nothing behind

    mel = synth_mel(4)
    a = vocoder.vocode(mel, generator=torch.Generator().manual_seed(3))
    b = loaded.vocode(mel, generator=torch.Generator().manual_seed(3))
    assert np.array_equal(a, b)


def test_wrong_files_raise_checkpoint_errors(tmp_path: Path) -> None:
    encoder_like = tmp_path / "encoder.pt"
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(4, 4)}}, encoder_like)
    with pytest.raises(CheckpointError, match="encoder checkpoint"):
        WaveRNNVocoder.from_checkpoint(encoder_like)
    small = tmp_path / "small_rtvc_layout.pt"  # RTVC layout carries no hparams, so defaults are assumed
    torch.save({"model_state": small_vocoder().model.state_dict()}, small)
    with pytest.raises(CheckpointError, match="does not fit"):
        WaveRNNVocoder.from_checkpoint(small)
    with pytest.raises(CheckpointError, match="does not exist"):
        WaveRNNVocoder.from_checkpoint(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------ vocode


@pytest.mark.parametrize("frames", [1, 3, 25])
def test_vocode_length_and_dtype(frames: int) -> None:
    vocoder = small_vocoder()
    wav = vocoder.vocode(synth_mel(frames), target=1000, overlap=100, generator=torch.Generator().manual_seed(0))
    assert wav.dtype == np.float32
    assert wav.shape == ((frames - 1) * vocoder.hparams.hop_length,)
    assert np.isfinite(wav).all()


def test_vocode_normalizes_by_the_mel_range_and_keeps_input() -> None:
    vocoder = small_vocoder()
    mel = synth_mel(5)
    original = mel.copy()
    a = vocoder.vocode(mel, batched=False, generator=torch.Generator().manual_seed(1))
    b = vocoder.vocode(mel / 4.0, normalize=False, batched=False, generator=torch.Generator().manual_seed(1))
    c = vocoder.vocode(mel, normalize=False, batched=False, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(mel, original)


def test_vocode_uses_hparams_geometry_by_default() -> None:
    vocoder = small_vocoder(voc_target=300, voc_overlap=60)
    mel = synth_mel(6)
    calls: list[tuple] = []
    default = vocoder.vocode(
        mel, generator=torch.Generator().manual_seed(2), progress_callback=lambda *a: calls.append(a)
    )
    explicit = vocoder.vocode(mel, target=300, overlap=60, generator=torch.Generator().manual_seed(2))
    assert np.array_equal(default, explicit)
    assert calls[-1][:3] == (420, 420, 4)  # (1200 - 60) / 360 -> 4 folds of 300 + 2·60


def test_vocode_accepts_a_cpu_tensor() -> None:
    vocoder = small_vocoder()
    mel = synth_mel(3)
    a = vocoder.vocode(torch.from_numpy(mel), batched=False, generator=torch.Generator().manual_seed(0))
    b = vocoder.vocode(mel, batched=False, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(80), r"shape \(80, T\)"),
        (np.zeros((5, 80)), r"shape \(80, T\)"),
        (np.zeros((1, 80, 5)), r"shape \(80, T\)"),
        (np.zeros((80, 0)), "0 frames"),
        (np.full((80, 5), np.nan), "NaN or infinite"),
        (np.full((80, 5), np.inf), "NaN or infinite"),
        ("not a mel", "numeric array"),
    ],
)
def test_vocode_rejects_bad_mels_with_one_clear_sentence(bad, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        small_vocoder().vocode(bad)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_vocoders_follow_the_protocol() -> None:
    vocoder = small_vocoder()
    assert isinstance(vocoder, Vocoder)
    assert isinstance(GriffinLimVocoder(n_iters=4), Vocoder)
    assert vocoder.sample_rate == 16000 == GriffinLimVocoder().sample_rate
    assert GriffinLimVocoder(n_iters=7).settings.n_iters == 7
    assert GriffinLimVocoder(n_iters=7, exact_rtvc=True).settings.n_iters == 7
    with pytest.raises(ValueError):
        GriffinLimVocoder(n_iters=0)


# ------------------------------------------------------------------------------------- Griffin-Lim


def _require_griffin_lim() -> None:
    try:
        audio = importlib.import_module("vocoder.griffin_lim")
    except ImportError as error:
        pytest.skip(f"vocoder.griffin_lim is not available yet ({error})")
    if not hasattr(audio, "inv_mel_spectrogram"):
        pytest.skip("vocoder.griffin_lim has no inv_mel_spectrogram yet")


@pytest.mark.parametrize("frames", [1, 2, 40])
def test_griffin_lim_length_matches_wavernn(frames: int) -> None:
    _require_griffin_lim()
    vocoder = GriffinLimVocoder(n_iters=4)
    wav = vocoder.vocode(synth_mel(frames), generator=torch.Generator().manual_seed(0))
    assert wav.dtype == np.float32
    assert wav.shape == ((frames - 1) * 200,)
    assert np.isfinite(wav).all()


def test_griffin_lim_is_repeatable_with_a_seed() -> None:
    _require_griffin_lim()
    vocoder = GriffinLimVocoder(n_iters=4)
    mel = synth_mel(30)
    calls: list[tuple] = []
    a = vocoder.vocode(mel, generator=torch.Generator().manual_seed(5), progress_callback=lambda *c: calls.append(c))
    b = vocoder.vocode(mel, generator=torch.Generator().manual_seed(5))
    assert np.array_equal(a, b)
    assert calls[0][0] == 0 and calls[-1][:2] == (4, 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        vocoder.vocode(np.full((80, 5), np.nan))


@pytest.mark.parametrize("damaged", ["fc3.weight", "rnn2.weight_hh_l0", "upsample.resnet.conv_in.weight"])
def test_nan_weights_never_give_audio(tmp_path, damaged):
    """NaN logits used to be sampled into a "successful" waveform (issue 17); every path refuses them now."""
    from utils.checkpoints import NonFiniteOutputError

    hp = VocoderHParams(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16, voc_res_blocks=1)
    model = build_wavernn(hp)
    with torch.no_grad():
        dict(model.named_parameters())[damaged].view(-1)[0] = float("nan")
    path = tmp_path / "nan_vocoder.pt"
    WaveRNNVocoder(model).save(path)
    vocoder = WaveRNNVocoder.from_checkpoint(path)
    mel = np.full((80, 30), -2.0, dtype=np.float32)
    expected = (f"The vocoder checkpoint '{path}' produced NaN or infinite audio: its weights are damaged or its "
                "training diverged.")
    attempts = {
        "fast": lambda: vocoder.vocode(mel, fast=True),
        "exact": lambda: vocoder.vocode(mel, fast=False, batched=False),
        "exact batched": lambda: vocoder.vocode(mel, fast=False, batched=True, target=1000, overlap=200),
        "batch": lambda: vocoder.vocode_batch([mel, mel[:, :10]]),
        "stream": lambda: list(vocoder.vocode_stream(mel)),
    }
    for name, attempt in attempts.items():
        with pytest.raises(NonFiniteOutputError) as error:
            attempt()
        assert str(error.value) == expected, name


def test_a_synthesizer_file_given_as_the_vocoder_is_named_as_such(tmp_path):
    """Issue 26: ``-v synthesizer.pt`` said "Unknown vocoder 'duration'"."""
    from tests.model_files import write_duration_synthesizer
    from utils.checkpoints import CheckpointError
    from vocoder.inference import load_vocoder, vocoder_architecture

    path = write_duration_synthesizer(tmp_path / "synthesizer.pt")
    for read in (vocoder_architecture, load_vocoder):
        with pytest.raises(CheckpointError, match="is a synthesizer checkpoint, not a vocoder checkpoint"):
            read(path)
