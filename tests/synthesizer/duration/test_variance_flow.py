"""The variance adaptor and the flow-matching post-net: shapes, a tiny overfit run whose flow restores
the spectral detail the regression decoder smooths away, pitch and energy controls, seeded
determinism, checkpoint round trip and starting from a file without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.model import DurationSynthesizerModel, Prosody, pitch_shift_offset
from synthesizer.duration.pitch import write_pitch_files
from synthesizer.duration.train import train_from_args
from synthesizer.inference import load_synthesizer
from synthesizer.metadata import read_train_txt
from tests.synthesizer.test_data import unit_vector, write_synthesizer_layout

TINY = ["encoder_channels=48", "duration_channels=32", "decoder_channels=48", "decoder_layers=2", "encoder_layers=3",
        "dropout=0.0", "learning_rate=3e-3", "warmup_steps=20", "alignment_prior_steps=100", "batch_frames=4000"]
WITH_FLOW = ["variance_adaptor=true", "variance_channels=32", "flow_layers=2", "flow_channels=48"]
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "She sells sea shells by the sea shore."]
LOW, HIGH = 25, 75  # espeak-ng pitch settings: the same voice about an octave-third apart
STEPS = 300


def global_variance(mel: np.ndarray) -> float:
    """Mean over bands of each band's standard deviation over time: what over-smoothing shrinks."""
    return float(mel.std(axis=1).mean())


def frequency_detail(mel: np.ndarray) -> float:
    """Mean absolute second difference along the lower 40 bands: harmonics make it large, averaging small."""
    return float(np.abs(np.diff(mel[:40], 2, axis=0)).mean())


def long_term_spectrum(mel: np.ndarray) -> np.ndarray:
    """Mean of the lower 30 bands over the louder half of the frames: where the harmonics of F0 fall."""
    loud = mel.mean(0) > np.median(mel.mean(0))
    return mel[:30, loud].mean(1)


@pytest.fixture(scope="module")
def syn_dir(tmp_path_factory, espeak):
    import librosa
    import soundfile

    folder = tmp_path_factory.mktemp("variance_data")
    utterances = []
    for pitch in (LOW, HIGH):
        for index, text in enumerate(SENTENCES):
            path = espeak(folder / f"p{pitch}_{index}.wav", text, pitch=pitch, speed=200)
            wav, _ = soundfile.read(path, dtype="float32")
            wav, _ = librosa.effects.trim(wav, top_db=40)
            utterances.append((text, (wav / np.abs(wav).max() * 0.9).astype(np.float32)))
    syn = write_synthesizer_layout(folder / "syn", utterances, unit_vector(3))  # one voice: pitch is not in it
    write_pitch_files(syn)
    return syn


def train_tiny(syn_dir, folder, hparams):
    torch.set_num_threads(1)
    train_from_args(["run", str(syn_dir), "-m", str(folder), "--max_steps", str(STEPS), "--quiet", "--seed", "0",
                     "--sample_every", "0", "--no_tensorboard", "--hparams", *TINY, *hparams])
    return load_synthesizer(folder / "run" / "synthesizer.pt")


@pytest.fixture(scope="module")
def trained(syn_dir, tmp_path_factory):
    """Variance adaptor and flow: pitch is given, so the two renditions of a text are told apart."""
    return train_tiny(syn_dir, tmp_path_factory.mktemp("runs"), WITH_FLOW)


@pytest.fixture(scope="module")
def ambiguous(syn_dir, tmp_path_factory):
    """Flow without the variance adaptor: each text has two renditions the model cannot tell apart."""
    return train_tiny(syn_dir, tmp_path_factory.mktemp("ambiguous"),
                      ["flow_layers=2", "flow_channels=48", "flow_temperature=0.3"])


def test_shapes():
    hp = DurationHParams(encoder_channels=16, duration_channels=16, decoder_channels=16, decoder_layers=1,
                         variance_adaptor=True, variance_channels=8, flow_layers=1, flow_channels=16)
    model = DurationSynthesizerModel(hp, n_symbols=10)
    ids, lengths, speaker = torch.tensor([[0, 3, 0, 4, 0], [0, 5, 0, 0, 0]]), torch.tensor([5, 3]), torch.ones(2, 256)
    mels, frame_lengths = torch.randn(2, 80, 12), torch.tensor([12, 7])
    out = model(ids, lengths, speaker / 16, mels, frame_lengths, log_f0=torch.full((2, 12), 5.0))
    assert out.mel.shape == out.flow_velocity.shape == out.flow_goal.shape == (2, 80, 12)
    assert out.variance.shape == out.variance_target.shape == (2, 2, 5)
    assert (out.flow_goal[1, :, 7:] == 0).all()  # padding carries no target
    free = model.infer(ids[:1], lengths[:1], speaker[:1] / 16)
    assert free.mel.shape == free.decoder_mel.shape and free.variance.shape == (1, 2, 5)


def test_a_flow_temperature_given_to_infer_replaces_the_stored_one():
    hp = DurationHParams(encoder_channels=16, duration_channels=16, decoder_channels=16, decoder_layers=1,
                         flow_layers=1, flow_channels=16, flow_temperature=1.0)
    model = DurationSynthesizerModel(hp, n_symbols=10).eval()
    ids, lengths, speaker = torch.tensor([[0, 3, 0, 4, 0]]), torch.tensor([5]), torch.ones(1, 256) / 16

    def mel(seed: int, temperature: float | None) -> torch.Tensor:
        return model.infer(ids, lengths, speaker, generator=torch.Generator().manual_seed(seed),
                           flow_temperature=temperature).mel

    assert not torch.equal(mel(0, None), mel(1, None))  # the stored temperature samples
    assert torch.equal(mel(0, 0.0), mel(1, 0.0))  # none: the same mel whatever the seed
    assert (mel(0, 0.5) - mel(0, 0.0)).abs().mean() < (mel(0, None) - mel(0, 0.0)).abs().mean()


def test_the_flow_restores_detail_the_regression_decoder_averages_away(ambiguous, syn_dir):
    entries = read_train_txt(syn_dir / "train.txt")
    real = np.mean([frequency_detail(np.load(syn_dir / "mels" / e.mel_name).T) for e in entries])
    torch.manual_seed(0)
    model = ambiguous.model
    flow, regression = [], []
    for text in SENTENCES:
        ids = torch.tensor([ambiguous.table.encode(ambiguous.front_end([text])[0].phonemes)])
        out = model.infer(ids, torch.tensor([ids.shape[1]]), torch.from_numpy(unit_vector(3))[None])
        flow.append(frequency_detail(out.mel[0].numpy()))
        regression.append(frequency_detail(out.decoder_mel[0].numpy()))
    # The regression decoder averages the low and the high rendition and blurs their harmonics.
    assert abs(np.mean(flow) - real) < 0.6 * abs(np.mean(regression) - real), (real, flow, regression)


def test_pitch_shift_moves_the_harmonics_and_energy_the_level(trained, syn_dir):
    entries = read_train_txt(syn_dir / "train.txt")
    spectra = [long_term_spectrum(np.load(syn_dir / "mels" / e.mel_name).T) for e in entries]
    voice = unit_vector(3)
    for index, text in enumerate(SENTENCES):
        low, high = spectra[index], spectra[len(SENTENCES) + index]
        distance_to_high = []
        for shift in (-4, 0, 4):
            torch.manual_seed(1)
            spectrum = long_term_spectrum(trained.synthesize([text], voice, pitch_shift=shift).mels[0])
            distance_to_high.append(np.abs(spectrum - high).mean() - np.abs(spectrum - low).mean())
        # Down: nearer the low rendition; up: nearer the high one; monotonic in between.
        assert distance_to_high[0] > 0 > distance_to_high[2] and distance_to_high[0] > distance_to_high[1], \
            distance_to_high
    levels = []
    for energy in (0.5, 1.0, 2.0):
        torch.manual_seed(1)
        levels.append(float(trained.synthesize([SENTENCES[0]], voice, energy=energy).mels[0].mean()))
    assert levels[0] < levels[1] < levels[2]


def test_seeded_synthesis_repeats_and_survives_a_round_trip(trained, tmp_path):
    text, voice = ["A stitch in time saves nine."], unit_vector(3)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append(trained.synthesize(text, voice).mels[0])
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    trained.save(tmp_path / "copy.pt")
    copy = load_synthesizer(tmp_path / "copy.pt")  # building the model draws from the generator: seed after
    torch.manual_seed(5)
    assert np.array_equal(copy.synthesize(text, voice).mels[0], runs[0])


def test_prosody_controls_are_refused_outside_their_ranges_and_without_a_pitch_input(trained):
    voice = unit_vector(3)
    with pytest.raises(ValueError, match="between -12 and 12"):
        trained.synthesize(["Hello."], voice, pitch_shift=12.5)
    with pytest.raises(ValueError, match="between 0.5 and 2"):
        trained.synthesize(["Hello."], voice, energy=float("nan"))
    plain = DurationSynthesizerModel(DurationHParams(encoder_channels=16, duration_channels=16, decoder_channels=16,
                                                     decoder_layers=1), len(trained.table))
    from synthesizer.duration.inference import DurationSynthesizer

    with pytest.raises(ValueError, match="no pitch control"):
        DurationSynthesizer(plain, trained.table).synthesize(["Hello."], voice, pitch_shift=2)
    assert pitch_shift_offset(12) == pytest.approx(2 * pitch_shift_offset(6))
    assert Prosody().speaking_rate == 1.0


def test_a_run_with_the_new_modules_starts_from_a_file_without_them(syn_dir, tmp_path):
    train_from_args(["plain", str(syn_dir), "-m", str(tmp_path), "--max_steps", "2", "--quiet", "--no_tensorboard",
                     "--hparams", *TINY])
    train_from_args(["grown", str(syn_dir), "-m", str(tmp_path), "--max_steps", "3", "--quiet", "--no_tensorboard",
                     "--init_from", str(tmp_path / "plain" / "synthesizer.pt"), "--hparams", *WITH_FLOW])
    plain = load_synthesizer(tmp_path / "plain" / "synthesizer.pt").model.state_dict()
    grown = load_synthesizer(tmp_path / "grown" / "synthesizer.pt").model
    assert grown.flow is not None and grown.hparams.variance_adaptor
    assert set(plain) < set(grown.state_dict())


def test_the_weight_average_is_kept_resumed_and_exported(syn_dir, tmp_path, capsys):
    from utils.checkpoints import load_checkpoint_file
    from utils.export_model import main as export_main

    arguments = ["avg", str(syn_dir), "-m", str(tmp_path), "--quiet", "--no_tensorboard", "--hparams", *TINY,
                 "ema_decay=0.9"]
    train_from_args([*arguments, "--max_steps", "3"])
    run = tmp_path / "avg" / "synthesizer.pt"
    first = load_checkpoint_file(run, "synthesizer")
    assert set(first["ema_state"]) == set(first["model_state"])
    key = "decoder_out.weight"  # zero at the start, so its average is 1 - 0.9³ of a moving target
    assert 0 < first["ema_state"][key].abs().sum() < first["model_state"][key].abs().sum()
    train_from_args([*arguments, "--max_steps", "4"])
    resumed = load_checkpoint_file(run, "synthesizer")["ema_state"][key]
    assert not torch.equal(resumed, first["ema_state"][key])
    assert export_main([str(run), str(tmp_path / "avg.pt"), "--float16", "--ema"]) == 0
    exported = load_synthesizer(tmp_path / "avg.pt").model.state_dict()[key]
    assert torch.allclose(exported, resumed.half().float())
    assert export_main([str(tmp_path / "avg.pt"), str(tmp_path / "again.pt"), "--ema"]) == 1
    assert "holds no weight average" in capsys.readouterr().err

