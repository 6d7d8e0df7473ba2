"""ClonePipeline with RTVC-format checkpoint files (real encoder, full-size random synthesizer/vocoder)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pipeline import (ClonePipeline, CloneResult, MissingModelError, ModelPaths, VoiceEmbedding, enhance_output,
                      limit_peak, resolve_models, soft_limit)
from utils.default_models import SHIPPED_MODELS_ENV


@pytest.fixture(scope="module")
def pipeline(rtvc_models_dir) -> ClonePipeline:
    return ClonePipeline(ModelPaths.in_folder(rtvc_models_dir / "default"), device="cpu")


@pytest.fixture(scope="module")
def voice(pipeline, tmp_path_factory, espeak) -> VoiceEmbedding:
    folder = tmp_path_factory.mktemp("voice")
    first = espeak(folder / "a.wav", "The first reference sentence is long enough to embed.", voice="en-us+f2")
    second = espeak(folder / "b.wav", "And the second one is read by the very same voice.", voice="en-us+f2")
    return pipeline.embed_references([first, second])


def test_voice_is_the_renormalised_mean_of_its_references(voice):
    assert len(voice.reference_embeddings) == 2
    mean = np.mean(voice.reference_embeddings, axis=0)
    np.testing.assert_allclose(voice.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    assert voice.speech_seconds > 2.0
    assert voice.names == ["a.wav", "b.wav"]


@pytest.mark.parametrize("vocoder", ["griffinlim", "wavernn"])
def test_clone_length_matches_mel_frames(pipeline, voice, vocoder):
    result = pipeline.clone(voice, "Hello there. How are you today?", vocoder=vocoder, seed=3)
    assert result.synthesis.sentences == ["Hello there.", "How are you today?"]
    gaps = 2400 * (len(result.synthesis.mels) - 1)
    assert len(result.wav) == sum((mel.shape[1] - 1) * 200 for mel in result.synthesis.mels) + gaps
    assert result.sample_rate == 16000 and result.wav.dtype == np.float32
    assert np.isfinite(result.wav).all() and np.abs(result.wav).max() <= 0.97 + 1e-6
    # The random model stops as early as RTVC allows: mels shorter than 21 frames must not crash.
    assert all(mel.shape[1] < 21 for mel in result.synthesis.mels)
    assert set(result.timings) == {"synthesizer", vocoder}


def test_same_seed_same_audio(pipeline, voice):
    first = pipeline.clone(voice, "Repeat after me.", vocoder="wavernn", seed=11).wav
    second = pipeline.clone(voice, "Repeat after me.", vocoder="wavernn", seed=11).wav
    other = pipeline.clone(voice, "Repeat after me.", vocoder="wavernn", seed=12).wav
    np.testing.assert_array_equal(first, second)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_synthesize_returns_alignments_per_sentence(pipeline, voice):
    output = pipeline.synthesize(["One.", "Two words."], voice, seed=0)
    assert len(output.mels) == len(output.alignments) == 2
    for mel, alignment, sentence in zip(output.mels, output.alignments, output.sentences):
        assert mel.shape[0] == 80
        assert alignment.shape[1] == len(sentence) + 1  # characters + EOS
        np.testing.assert_allclose(alignment.sum(axis=1), 1.0, atol=1e-4)


def test_missing_models_explain_themselves(encoder_checkpoint, tmp_path):
    pipeline = ClonePipeline(ModelPaths(encoder_checkpoint, None, tmp_path / "nothing.pt"), device="cpu")
    with pytest.raises(MissingModelError, match="train your own"):
        _ = pipeline.synthesizer
    with pytest.raises(MissingModelError, match="griffinlim"):
        _ = pipeline.vocoder("wavernn")
    with pytest.raises(ValueError, match="Unknown vocoder"):
        pipeline.vocode(np.zeros((80, 5), np.float32), "melgan")


def test_enhance_trims_silence_and_normalises(espeak, tmp_path):
    from utils.audio_io import load_audio

    speech = load_audio(espeak(tmp_path / "s.wav", "Some words. And more words.", voice="en-us"), 16000)
    padded = np.concatenate([np.zeros(32000, np.float32), 0.3 * speech, np.zeros(32000, np.float32)])
    enhanced = enhance_output(padded)
    assert len(enhanced) < len(padded) - 40000  # most of the 4 s of padding is gone
    assert abs(np.abs(enhanced).max() - 0.97) < 1e-4
    assert np.array_equal(limit_peak(np.array([0.5, -0.2])), [0.5, -0.2])
    assert np.abs(limit_peak(np.array([2.0, -1.0]))).max() == pytest.approx(0.97)


def test_vocode_sentence_hands_out_wavernn_audio_in_pieces_as_it_is_made(pipeline):
    mel = np.random.default_rng(0).uniform(-4, 4, (80, 120)).astype(np.float32)
    pieces: list[np.ndarray] = []
    wav = pipeline.vocode_for_playback(mel, "wavernn", seed=2, on_audio=pieces.append)
    assert len(pieces) > 2  # the sentence's audio, in several pieces, then the pause
    np.testing.assert_array_equal(np.concatenate(pieces), wav)
    assert len(wav) == 119 * 200 + 2400 and not pieces[-1].any()
    assert np.abs(wav).max() <= 0.97  # soft-limited piece by piece (tanh reaches 0.97 in float32)
    again: list[np.ndarray] = []
    np.testing.assert_array_equal(pipeline.vocode_for_playback(mel, "wavernn", seed=2, on_audio=again.append), wav)
    # Griffin-Lim, the exact WaveRNN path and enhancement need the whole sentence: one piece.
    whole: list[np.ndarray] = []
    wav = pipeline.vocode_for_playback(mel, "griffinlim", seed=2, on_audio=whole.append)
    assert len(whole) == 1 and whole[0] is wav


def test_stream_yields_the_sentences_then_the_clone_result(pipeline, voice):
    pieces: list[np.ndarray] = []
    *parts, result = pipeline.stream(voice, "Hello there. How are you today?", seed=3, on_audio=pieces.append)
    assert [p.sentence for p in parts] == ["Hello there.", "How are you today?"]
    np.testing.assert_array_equal(np.concatenate(pieces), np.concatenate([p.wav for p in parts]))
    assert isinstance(result, CloneResult) and result.synthesis.sentences == [p.sentence for p in parts]
    np.testing.assert_array_equal(result.wav, np.concatenate(pieces))
    assert [mel.shape for mel in result.synthesis.mels] == [p.mel.shape for p in parts]
    assert set(result.timings) == {"synthesizer", "wavernn"}


def test_warnings_come_back_as_data(pipeline, voice, tmp_path, espeak):
    short = espeak(tmp_path / "short.wav", "Hi.", voice="en-us+f2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may reach the warnings module: it is all data
        quiet = pipeline.embed_references([short])
        synthesis = pipeline.synthesize("Привет, мир.", voice, seed=0)
        *_, streamed = pipeline.stream(voice, "Привет.", vocoder="griffinlim", seed=0)
    assert any("s of speech" in note for note in quiet.warnings)
    assert any("not English" in note for note in synthesis.warnings)
    assert any("not English" in note for note in streamed.warnings)


def test_soft_limit_leaves_quiet_audio_alone_and_bends_peaks_below_the_limit():
    quiet = np.linspace(-0.7, 0.7, 101, dtype=np.float32)
    np.testing.assert_array_equal(soft_limit(quiet), quiet)
    loud = np.linspace(-5, 5, 1001, dtype=np.float32)
    bent = soft_limit(loud)
    assert np.abs(bent).max() <= 0.97 and np.all(np.diff(bent) >= 0)  # below the limit, still monotonic
    assert np.abs(np.diff(bent)).max() <= np.abs(np.diff(loud)).max() + 1e-6  # no jump at the knee


def test_resolve_models_prefers_explicit_then_downloaded_then_shipped_files(rtvc_models_dir, tmp_path, monkeypatch):
    nothing = tmp_path / "no_shipped"
    nothing.mkdir()
    monkeypatch.setenv(SHIPPED_MODELS_ENV, str(nothing))
    bare = resolve_models(tmp_path / "models")
    assert bare.vocoder == "griffinlim" and bare.paths.vocoder is None and "Griffin-Lim" in bare.notes[0]
    assert bare.paths.synthesizer == tmp_path / "models" / "default" / "synthesizer.pt"  # missing: loading explains

    downloaded = resolve_models(rtvc_models_dir)
    assert downloaded.paths == ModelPaths.in_folder(rtvc_models_dir / "default")
    assert downloaded.vocoder == "wavernn" and downloaded.notes == []

    monkeypatch.setenv(SHIPPED_MODELS_ENV, str(rtvc_models_dir / "default"))  # as if these were shipped
    shipped = resolve_models(tmp_path / "models")
    assert (shipped.paths.synthesizer, shipped.paths.vocoder) == (rtvc_models_dir / "default" / "synthesizer.pt",
                                                                 rtvc_models_dir / "default" / "vocoder.pt")
    assert "offline synthesizer and vocoder" in shipped.notes[0]

    explicit = resolve_models(tmp_path / "models", vocoder=tmp_path / "mine.pt", vocoder_name=None)
    assert explicit.paths.vocoder == tmp_path / "mine.pt" and explicit.vocoder == "wavernn"  # loading it explains
    assert resolve_models(rtvc_models_dir, vocoder_name="griffinlim").paths.vocoder is None
