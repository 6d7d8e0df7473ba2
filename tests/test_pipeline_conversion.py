"""ClonePipeline.convert and ``demo_cli.py --source``: a recording's words and timing in another voice.

The shipped duration synthesizer (trained weights, the file users get) does the aligning; the encoder
is the real GE2E; Griffin-Lim vocodes (no file). Sources are espeak-ng speech and real LibriSpeech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline import ClonePipeline, ModelPaths
from synthesizer.duration.conversion import ConversionError
from tests.test_demo_cli import assert_clean_failure, run_cli
from utils.asr import asr_available, word_error_rate

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "saved_models" / "shipped" / "synthesizer.pt"
LIBRISPEECH_TEST = ROOT.parent / "shared" / "datasets" / "LibriSpeech" / "test-clean"
needs_asr = pytest.mark.skipif(not asr_available(), reason="faster-whisper and the Whisper packages are not installed")


@pytest.fixture(scope="module")
def pipeline(encoder_checkpoint):
    if not SHIPPED.is_file():
        pytest.skip(f"the shipped synthesizer is not at {SHIPPED}")
    return ClonePipeline(ModelPaths(encoder_checkpoint, SHIPPED, None), device="cpu")


@pytest.fixture(scope="module")
def target(tmp_path_factory, espeak):
    return espeak(tmp_path_factory.mktemp("target") / "target.wav",
                  "A reference voice reads a sentence of some length, slowly and clearly, for the encoder.",
                  voice="en-us+f3", pitch=70)


@pytest.fixture(scope="module")
def voice(pipeline, target):
    return pipeline.embed_references([target])


@pytest.fixture(scope="module")
def source(tmp_path_factory, espeak):
    return espeak(tmp_path_factory.mktemp("source") / "source.wav", "The quick brown fox jumps over the lazy dog.",
                  voice="en-us+m3", pitch=35)


def test_the_source_words_and_timing_in_the_target_voice(pipeline, voice, source):
    seen = []
    result = pipeline.convert(voice, source, source_text="The quick brown fox jumps over the lazy dog.",
                              vocoder="griffinlim", seed=1, progress=lambda fraction, what: seen.append(fraction))
    source_seconds = soundfile.info(str(source)).duration
    assert result.duration == pytest.approx(source_seconds, rel=0.03)
    assert result.source_mel.shape[1] == sum(mel.shape[1] for mel in result.synthesis.mels)
    assert result.transcript == "the quick brown fox jumps over the lazy dog."
    # the shipped synthesizer has a pitch input: the source's contour, moved to the target's register
    assert result.pitch_transferred and not any("no pitch input" in note for note in result.warnings)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    # the target voice, not the source's: nearer the target reference than the source recording
    embedding = pipeline.embed_reference((result.wav, 16000)).embedding
    assert embedding @ voice.embedding > embedding @ pipeline.embed_reference(source).embedding + 0.05


@needs_asr
def test_a_long_recording_is_recognised_and_split_at_pauses(pipeline, voice, tmp_path, espeak):
    text = ("Please call Stella. Ask her to bring these things with her from the store. Six spoons of fresh "
            "snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.")
    long_source = espeak(tmp_path / "long.wav", text, voice="en-us+m3", speed=130)
    result = pipeline.convert(voice, long_source, vocoder="griffinlim", seed=0)
    assert len(result.synthesis.mels) >= 2  # over 12 s: cut at a pause
    assert word_error_rate(text, result.transcript) < 0.2
    assert result.duration == pytest.approx(soundfile.info(str(long_source)).duration, rel=0.03)


def test_a_word_the_recording_does_not_say_is_named(pipeline, voice, source):
    with pytest.raises(ConversionError, match="'extremely'"):
        pipeline.convert(voice, source, source_text="The quick brown fox jumps over the extremely lazy dog.",
                         vocoder="griffinlim")


@pytest.mark.parametrize("make, fragment", [
    (lambda: np.zeros(32000, np.float32), "No speech"),
    (lambda: 0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000).astype(np.float32), "No speech"),
    (lambda: np.random.default_rng(0).normal(0, 0.01, 301 * 16000).astype(np.float32), "at most 5 minutes"),
])
def test_sources_without_speech_or_too_long_are_refused(pipeline, voice, make, fragment):
    with pytest.raises(ConversionError, match=fragment):
        pipeline.convert(voice, (make(), 16000), source_text="hello there", vocoder="griffinlim")


@needs_asr
def test_noise_and_another_language_are_refused(pipeline, voice, tmp_path, espeak):
    noise = np.random.default_rng(0).normal(0, 0.05, 48000).astype(np.float32)
    with pytest.raises(ConversionError, match="No speech found"):
        pipeline.convert(voice, (noise, 16000), vocoder="griffinlim")
    german = espeak(tmp_path / "de.wav", "Entschuldigung, wo ist der Bahnhof? Ich möchte mit dem Zug nach München "
                    "fahren.", voice="de", speed=130)
    with pytest.raises(ConversionError, match="German, not English"):
        pipeline.convert(voice, german, vocoder="griffinlim")


# ------------------------------------------------------------------------------------------ CLI
def test_cli_converts_a_recording(encoder_checkpoint, target, source, tmp_path):
    if not SHIPPED.is_file():
        pytest.skip(f"the shipped synthesizer is not at {SHIPPED}")
    out = tmp_path / "converted.wav"
    result = run_cli("-e", encoder_checkpoint, "-s", SHIPPED, "--vocoder", "griffinlim", "--quiet",
                     "--reference", target, "--source", source,
                     "--source_text", "The quick brown fox jumps over the lazy dog.", "--out", out, "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "no pitch input" not in result.stderr  # the shipped synthesizer takes the source's pitch
    wav, rate = soundfile.read(out)
    assert rate == 16000 and len(wav) / rate == pytest.approx(soundfile.info(str(source)).duration, rel=0.03)
    assert np.abs(wav).max() > 0.05


def test_cli_refuses_bad_sources_before_loading_models(target, source, tmp_path):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    assert_clean_failure(run_cli("--reference", target, "--source", silent, "--out", tmp_path / "o.wav"), "silent")
    long_file = tmp_path / "long.wav"
    soundfile.write(long_file, np.random.default_rng(0).normal(0, 0.01, 301 * 16000).astype(np.float32), 16000)
    assert_clean_failure(run_cli("--reference", target, "--source", long_file, "--out", tmp_path / "o.wav"),
                         "5 minutes")
    assert_clean_failure(run_cli("--reference", target, "--text", "hi", "--source_text", "hi",
                                 "--out", tmp_path / "o.wav"), "--source")
    assert_clean_failure(run_cli("--reference", target, "--source", source, "--out", source), "overwrite")
    usage = run_cli("--reference", target, "--source", source, "--text", "hi")
    assert usage.returncode == 2 and "not allowed with" in usage.stderr
