"""Voice conversion building blocks: alignment of a real recording, F0 register transfer, the model's
duration and pitch overrides. The alignment tests use the shipped (trained) duration synthesizer, the
override tests a small random one with a variance adaptor, in the real checkpoint format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from utils.mel import melspectrogram
from synthesizer.duration.conversion import (
    ConversionError,
    F0Register,
    align_source,
    convert_segment,
    f0_register,
    frame_f0,
    phoneme_average,
    phoneme_pitch,
    time_normalised_correlation,
    transfer_log_f0,
    unaligned_words,
    word_symbol_spans,
)
from synthesizer.duration.hparams import DurationHParams
from synthesizer.duration.inference import DurationSynthesizer
from synthesizer.duration.model import LOG_F0_CENTRE, LOG_F0_SCALE
from utils.audio_io import load_audio

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "saved_models" / "shipped" / "synthesizer.pt"
LIBRISPEECH_TEST = ROOT.parent / "shared" / "datasets" / "LibriSpeech" / "test-clean"


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED.is_file():
        pytest.skip(f"the shipped synthesizer is not at {SHIPPED}")
    return DurationSynthesizer.from_checkpoint(SHIPPED)


@pytest.fixture(scope="module")
def recording(real_encoder):
    """A real LibriSpeech test-clean utterance, its exact transcript and its speaker's embedding."""
    folder = LIBRISPEECH_TEST / "1089" / "134686"
    if not folder.is_dir():
        pytest.skip(f"LibriSpeech test-clean not found at {LIBRISPEECH_TEST}")
    lines = dict(line.split(" ", 1) for line in (folder / "1089-134686.trans.txt").read_text().splitlines())
    name = "1089-134686-0003"  # "HELLO BERTIE ANY GOOD IN YOUR MIND"
    wav = load_audio(folder / f"{name}.ogg")
    wav = wav / np.abs(wav).max() * 0.9
    embedding = real_encoder.embed_utterance(real_encoder.preprocess(wav, 16000))
    return wav, lines[name].strip().lower(), embedding


def test_a_real_recording_aligns_frame_for_frame(shipped, recording):
    wav, text, embedding = recording
    item = shipped.front_end([text])[0]
    mel = melspectrogram(wav)
    alignment = align_source(shipped.model, item.ids, mel, embedding)
    assert alignment.durations.sum() == mel.shape[1]  # every frame belongs to one symbol
    assert (alignment.durations[np.asarray(item.ids) != 0] >= 1).all()  # every phoneme is said
    spans = word_symbol_spans(item.ids, shipped.table._ids[" "])
    words = item.cleaned.split()
    assert len(spans) == len(words)
    assert unaligned_words(shipped.model, item.ids, mel, embedding, spans, words) == []
    # A word that is not in the recording is found when it is put into the text.
    wrong = shipped.front_end([text.replace("good", "good elephant")])[0]
    missing = unaligned_words(shipped.model, wrong.ids, mel, embedding,
                              word_symbol_spans(wrong.ids, shipped.table._ids[" "]), wrong.cleaned.split())
    assert missing == ["elephant"]


def test_a_recording_shorter_than_its_text_is_refused(shipped, recording):
    wav, _, embedding = recording
    item = shipped.front_end(["this is far too much text for such a short piece of a recording to say"])[0]
    with pytest.raises(ConversionError, match="too short"):
        align_source(shipped.model, item.ids, melspectrogram(wav[:4000]), embedding)


def test_the_f0_register_moves_and_the_contour_is_kept(espeak, tmp_path):
    low = load_audio(espeak(tmp_path / "low.wav", "Is this the way to the station, or is it not?", pitch=20))
    high = load_audio(espeak(tmp_path / "high.wav", "Is this the way to the station, or is it not?", pitch=90,
                             voice="en-us+f3"))
    source, target = f0_register(low), f0_register(high)
    assert target.hertz > 1.4 * source.hertz  # a female voice an octave up, near enough
    f0 = frame_f0(low)
    voiced = f0 > 0
    moved = transfer_log_f0(np.log(f0[voiced]), source, target)
    assert moved.mean() == pytest.approx(target.mean, abs=1e-4)
    assert moved.std() == pytest.approx(target.spread, rel=1e-3)
    assert np.corrcoef(moved, np.log(f0[voiced]))[0, 1] > 0.999  # the same intonation, higher
    assert time_normalised_correlation(moved, np.log(f0[voiced])) > 0.999
    assert F0Register.from_f0(np.zeros(100)) is None  # unvoiced: no register


def test_phoneme_average_covers_each_phoneme_frames():
    values = np.arange(10, dtype=np.float32)
    assert phoneme_average(values, np.array([2, 0, 3, 5])).tolist() == [0.5, 0.0, 3.0, 7.0]


def test_a_symbol_without_frames_gets_the_training_pitch_of_zero():
    """Blanks often get no frames; their input still reaches neighbours through a kernel-3 convolution,
    so it must be what training gave such symbols (0), not the normalised log of 0 Hz."""
    f0 = np.array([100, 110, 120, 0, 130, 140], np.float32)
    pitch = phoneme_pitch(f0, np.array([2, 0, 4]), None, None)
    assert pitch[1] == 0.0
    assert np.allclose(pitch[[0, 2]] * LOG_F0_SCALE + LOG_F0_CENTRE, np.log([104.88, 128.52]), atol=1e-2)


@pytest.fixture(scope="module")
def pitched(tmp_path_factory):
    """A small random duration synthesizer with a variance adaptor, through a real checkpoint file."""
    torch.manual_seed(0)
    hp = DurationHParams(encoder_channels=32, duration_channels=16, decoder_channels=32, decoder_layers=2,
                         variance_adaptor=True, variance_channels=16)
    path = tmp_path_factory.mktemp("pitched") / "synthesizer.pt"
    synthesizer = DurationSynthesizer.untrained(hp)
    with torch.no_grad():  # a pitch input that matters (it starts at zero so that old files are unchanged)
        synthesizer.model.variance_embedding.weight.normal_(0, 0.5)
        synthesizer.model.decoder_out.weight.normal_(0, 0.1)
    synthesizer.save(path)
    return DurationSynthesizer.from_checkpoint(path)


def test_the_source_durations_and_pitch_reach_the_model(pitched, espeak, tmp_path):
    wav = load_audio(espeak(tmp_path / "source.wav", "Say it like this.", pitch=30))
    embedding = np.ones(256, np.float32) / 16
    low, high = F0Register(float(np.log(100)), 0.1), F0Register(float(np.log(250)), 0.2)
    first = convert_segment(pitched, wav, "Say it like this.", embedding, embedding, target_register=low,
                            check_words=False)
    second = convert_segment(pitched, wav, "Say it like this.", embedding, embedding, target_register=high,
                             check_words=False)
    n_frames = melspectrogram(wav).shape[1]
    assert first.mel.shape == (80, n_frames) and first.durations.sum() == n_frames
    assert first.alignment.shape == (n_frames, len(first.durations))
    # the pitch given is the source contour in the target register, per phoneme
    voiced = first.durations > 2
    low_hz = np.exp(first.pitch[voiced] * LOG_F0_SCALE + LOG_F0_CENTRE)
    high_hz = np.exp(second.pitch[voiced] * LOG_F0_SCALE + LOG_F0_CENTRE)
    assert 70 < np.median(low_hz) < 140 and 170 < np.median(high_hz) < 350
    assert np.corrcoef(first.pitch[voiced], second.pitch[voiced])[0, 1] > 0.99
    assert not np.allclose(first.mel, second.mel, atol=1e-3)  # the pitch input changed the speech


def test_infer_takes_durations_and_a_partial_variance_override(pitched):
    model = pitched.model
    ids = torch.tensor([[0, 5, 0, 9, 0]])
    speaker = torch.ones(1, 256) / 16
    durations = torch.tensor([[2, 7, 0, 4, 3]])
    override = torch.full((1, 2, 5), float("nan"))
    override[0, 0] = torch.tensor([1.0, -1.0, 0.5, 2.0, 0.0])
    out = model.infer(ids, torch.tensor([5]), speaker, durations=durations, variance_override=override)
    predicted = model.infer(ids, torch.tensor([5]), speaker)
    assert out.durations[0].tolist() == [2, 7, 0, 4, 3] and out.mel.shape[2] == 16
    assert torch.equal(out.variance[0, 0], override[0, 0])  # pitch given
    assert torch.allclose(out.variance[0, 1], predicted.variance[0, 1])  # energy predicted
