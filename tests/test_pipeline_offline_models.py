"""ClonePipeline and demo_cli.py with this project's own model kinds: the duration synthesizer and
the iSTFT vocoder (small random weights in the real checkpoint format), and the Griffin-Lim settings."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import ClonePipeline, ModelPaths
from synthesizer.duration.inference import DurationSynthesizer
from tests.model_files import write_duration_synthesizer, write_istft_vocoder, write_rtvc_vocoder
from tests.test_demo_cli import assert_clean_failure, run_cli
from vocoder.inference import vocoder_architecture
from vocoder.istft.inference import SYNTHESIZED_MEL_CONTRAST, ISTFTVocoder


@pytest.fixture(scope="module")
def offline_dir(tmp_path_factory, encoder_checkpoint):
    folder = tmp_path_factory.mktemp("offline_models")
    write_duration_synthesizer(folder / "synthesizer.pt")
    write_istft_vocoder(folder / "vocoder.pt")
    (folder / "encoder.pt").symlink_to(encoder_checkpoint)
    return folder


@pytest.fixture(scope="module")
def pipeline(offline_dir):
    return ClonePipeline(ModelPaths.in_folder(offline_dir), device="cpu")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, espeak):
    return espeak(tmp_path_factory.mktemp("ref") / "ref.wav",
                  "A reference voice reads a sentence of some length, slowly and clearly, for the encoder.",
                  voice="en-us+m3", speed=140)


@pytest.fixture(scope="module")
def voice(pipeline, reference):
    return pipeline.embed_references([reference])


def test_the_pipeline_loads_each_file_as_its_kind(pipeline, offline_dir):
    assert isinstance(pipeline.synthesizer, DurationSynthesizer)
    assert isinstance(pipeline.neural_vocoder, ISTFTVocoder)
    # The pipeline vocodes only synthesized mels: their post-filter is on (a loaded file alone has none).
    assert pipeline.neural_vocoder.contrast == SYNTHESIZED_MEL_CONTRAST > 1.0
    assert ISTFTVocoder.from_checkpoint(offline_dir / "vocoder.pt").contrast == 1.0
    assert vocoder_architecture(offline_dir / "vocoder.pt") == "istft"
    with pytest.raises(ValueError, match="holds an iSTFT vocoder, not a WaveRNN one"):
        _ = pipeline.vocoder("wavernn")


@pytest.mark.parametrize("vocoder", ["istft", "griffinlim"])
def test_clone_with_the_offline_models(pipeline, voice, vocoder):
    result = pipeline.clone(voice, "Hello there. How are you?", vocoder=vocoder, seed=0)
    gaps = 2400 * (len(result.synthesis.mels) - 1)
    assert len(result.wav) == sum((mel.shape[1] - 1) * 200 for mel in result.synthesis.mels) + gaps
    assert np.isfinite(result.wav).all() and set(result.timings) == {"synthesizer", vocoder}
    # the toolbox labels the plot of these (frames, phonemes) paths by the synthesizer's architecture
    assert result.synthesis.architecture == "duration"


def test_streamed_istft_pieces_join_into_the_sentence(pipeline, voice):
    pieces = []
    part, result = pipeline.stream(voice, "One streamed sentence.", vocoder="istft", seed=0, on_audio=pieces.append)
    assert len(pieces) > 2  # the first audio arrives before the sentence is done
    np.testing.assert_allclose(np.concatenate(pieces), part.wav, atol=1e-6)
    np.testing.assert_array_equal(result.wav, part.wav)
    assert result.synthesis.architecture == "duration"


def test_speaking_rate_changes_the_length(pipeline, voice):
    normal = pipeline.synthesize("A sentence at two speeds.", voice).mels[0].shape[1]
    fast = pipeline.synthesize("A sentence at two speeds.", voice, speaking_rate=2.0).mels[0].shape[1]
    assert abs(fast - normal / 2) <= 6
    with pytest.raises(ValueError, match="between 0.5 and 2"):
        pipeline.synthesize("Too fast.", voice, speaking_rate=5)


def test_griffin_lim_settings_default_to_tuned_and_rtvc_on_request(offline_dir):
    tuned = ClonePipeline(ModelPaths.in_folder(offline_dir)).vocoder("griffinlim").settings
    rtvc = ClonePipeline(ModelPaths.in_folder(offline_dir), exact_griffin_lim=True).vocoder("griffinlim").settings
    assert (tuned.power, tuned.momentum) == (1.2, 0.99)
    assert (rtvc.power, rtvc.momentum, rtvc.n_iters) == (1.5, 0.0, 60)


def test_cli_picks_the_vocoder_kind_from_the_file(offline_dir, reference, tmp_path):
    out = tmp_path / "clone.wav"
    result = run_cli("-r", reference, "-t", "Cloned offline.", "-o", out, "-e", offline_dir / "encoder.pt",
                     "-s", offline_dir / "synthesizer.pt", "-v", offline_dir / "vocoder.pt", "--rate", "1.2",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert "istft" in result.stdout and out.is_file()


def test_cli_rejects_a_bad_rate_and_a_vocoder_of_the_wrong_kind(offline_dir, reference, tmp_path):
    result = run_cli("-r", reference, "-t", "x", "--rate", "9", "-o", tmp_path / "a.wav")
    assert result.returncode == 2 and "between 0.5 and 2" in result.stderr
    wavernn = write_rtvc_vocoder(tmp_path / "wavernn.pt")
    result = run_cli("-r", reference, "-t", "Wrong kind.", "-o", tmp_path / "b.wav", "-e", offline_dir / "encoder.pt",
                     "-s", offline_dir / "synthesizer.pt", "-v", wavernn, "--vocoder", "istft", "--quiet")
    assert_clean_failure(result, "holds a WaveRNN vocoder")


def test_energy_scales_the_level_and_pitch_needs_a_pitch_input(pipeline, voice):
    levels = [float(pipeline.synthesize("Louder and louder.", voice, seed=0, energy=energy).mels[0].mean())
              for energy in (0.5, 1.0, 2.0)]
    assert levels[0] < levels[1] < levels[2]
    with pytest.raises(ValueError, match="no pitch control"):
        pipeline.synthesize("Higher.", voice, pitch_shift=3)
    with pytest.raises(ValueError, match="between -12 and 12"):
        pipeline.synthesize("Far too high.", voice, pitch_shift=24)


def test_cli_refuses_prosody_outside_its_ranges_in_one_line(offline_dir, reference, tmp_path):
    for option, value, message in (("--pitch_shift", "13", "between -12 and 12"),
                                   ("--energy", "3", "between 0.5 and 2"), ("--energy", "loud", "must be a number")):
        result = run_cli("-r", reference, "-t", "x", option, value, "-o", tmp_path / "a.wav")
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    result = run_cli("-r", reference, "-t", "Higher.", "-o", tmp_path / "b.wav", "-e", offline_dir / "encoder.pt",
                     "-s", offline_dir / "synthesizer.pt", "-v", offline_dir / "vocoder.pt", "--pitch_shift", "2",
                     "--quiet")
    assert_clean_failure(result, "no pitch control")
    assert not (tmp_path / "b.wav").exists()
