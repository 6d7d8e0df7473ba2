"""Every toolbox workflow through the controller alone: no Qt, real models, real audio."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile

from pipeline import MissingModelError
from synthesizer.hparams import SynthesizerHParams
from synthesizer.inference import Synthesizer
from synthesizer.model import build_tacotron
from synthesizer.text import TextError
from toolbox.controller import (
    GRIFFIN_LIM,
    MIN_UMAP_POINTS,
    ToolboxController,
    cosine_similarity,
    reference_quality_warnings,
)
from utils.audio_io import AudioError


@pytest.fixture(scope="module")
def models_dir(rtvc_models_dir):
    return rtvc_models_dir


@pytest.fixture(scope="module")
def voices(tmp_path_factory, espeak):
    folder = tmp_path_factory.mktemp("voices")
    return {
        "anna": espeak(folder / "anna" / "one.wav", "Good morning, my name is Anna and I read the news.",
                       voice="en+f2"),
        "anna2": espeak(folder / "anna" / "two.wav", "The weather will be sunny with a light breeze.", voice="en+f2"),
        "bob": espeak(folder / "bob" / "one.wav", "Hello, I am Bob and I like long walks.", voice="en-us+m3"),
    }


@pytest.fixture
def controller(models_dir):
    lines: list[str] = []
    controller = ToolboxController(models_dir, device="cpu", log=lines.append, shipped_dir=None)
    controller.log_lines = lines  # type: ignore[attr-defined]
    return controller


def test_model_selectors_list_compatible_checkpoints(models_dir, tmp_path, encoder_checkpoint):
    root = tmp_path / "models"
    shutil.copytree(models_dir / "default", root / "default")
    (root / "notes.pt").write_bytes(b"not a checkpoint")
    small = SynthesizerHParams(tts_embed_dims=16, tts_encoder_dims=16, tts_decoder_dims=16, tts_postnet_dims=16,
                               tts_lstm_dims=32)
    Synthesizer(build_tacotron(small)).save(root / "my_run" / "synthesizer.pt")
    controller = ToolboxController(root, device="cpu", shipped_dir=None)
    labels = {kind: [choice.label for choice in choices] for kind, choices in controller.model_choices.items()}
    assert labels == {"encoder": ["default"], "synthesizer": ["default", "my_run"],
                      "vocoder": ["default", GRIFFIN_LIM]}
    assert controller.selected["synthesizer"].label == "default"
    controller.select_model("synthesizer", "my_run")
    assert controller.pipeline.synthesizer.hparams == small
    controller.select_model("vocoder", GRIFFIN_LIM)
    assert controller.vocoder_name == "griffinlim"
    with pytest.raises(ValueError, match="No encoder called"):
        controller.select_model("encoder", "nope")


def test_without_synthesizer_references_still_work(tmp_path, encoder_checkpoint, voices):
    (tmp_path / "default").mkdir()
    shutil.copyfile(encoder_checkpoint, tmp_path / "default" / "encoder.pt")
    controller = ToolboxController(tmp_path, device="cpu", shipped_dir=None)
    assert not controller.has_synthesizer()
    assert [c.label for c in controller.model_choices["vocoder"]] == [GRIFFIN_LIM]
    utterance = controller.load_file(voices["anna"])
    with pytest.raises(MissingModelError, match="Download default models"):
        controller.synthesize("Hello.", [utterance.name])


def test_shipped_models_are_offered_after_the_downloaded_defaults(tmp_path, models_dir, encoder_checkpoint):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    small = SynthesizerHParams(tts_embed_dims=16, tts_encoder_dims=16, tts_decoder_dims=16, tts_postnet_dims=16,
                               tts_lstm_dims=32)
    Synthesizer(build_tacotron(small)).save(shipped / "synthesizer.pt")
    (shipped / "vocoder.pt").write_text("a broken file is not offered")

    only_encoder = tmp_path / "models"
    (only_encoder / "default").mkdir(parents=True)
    shutil.copyfile(encoder_checkpoint, only_encoder / "default" / "encoder.pt")
    controller = ToolboxController(only_encoder, device="cpu", shipped_dir=shipped)
    assert controller.has_synthesizer() and controller.selected["synthesizer"].label == "shipped"
    assert [c.label for c in controller.model_choices["vocoder"]] == [GRIFFIN_LIM]
    assert controller.pipeline.synthesizer.hparams == small

    with_downloads = ToolboxController(models_dir, device="cpu", shipped_dir=shipped)
    assert [c.label for c in with_downloads.model_choices["synthesizer"]] == ["default", "shipped"]
    assert with_downloads.selected["synthesizer"].label == "default"


def test_load_file_registers_an_embedded_utterance(controller, voices):
    utterance = controller.load_file(voices["anna"])
    assert controller.history[0] is utterance
    assert utterance.name == "one.wav" and utterance.speaker == "anna"
    assert utterance.mel.shape[0] == 80 and utterance.mel.shape[1] == 1 + len(utterance.wav) // 200
    assert np.linalg.norm(utterance.embedding) == pytest.approx(1.0, abs=1e-5)
    assert 1.0 < utterance.speech_seconds <= utterance.duration
    assert abs(np.abs(utterance.wav).max() - 0.9) < 1e-5  # RTVC's display/playback peak
    # The same file again is not loaded twice (issue 16): the history's utterance is returned.
    again = controller.load_file(voices["anna"])
    assert again is utterance and len(controller.history) == 1
    # Another file with the same name gets a distinct name instead of replacing the first.
    other = controller.load_file(voices["bob"])
    assert other.name != utterance.name and len(controller.history) == 2


def test_recording_is_resampled_named_and_checked(controller, voices):
    wav, rate = soundfile.read(voices["bob"], dtype="float32")
    take = np.interp(np.arange(0, len(wav), rate / 48000), np.arange(len(wav)), wav).astype(np.float32)
    recording = controller.add_recording(take, 48000)
    assert recording.name.startswith("user01_rec_") and recording.speaker == "user01"
    assert abs(recording.duration - len(wav) / rate) < 0.01
    with pytest.raises(AudioError, match="silent"):
        controller.add_recording(np.zeros(48000, np.float32), 48000)


def test_voice_averages_several_references_and_warns_when_short(controller, voices):
    first = controller.load_file(voices["anna"])
    second = controller.load_file(voices["anna2"])
    voice = controller.voice([first.name, second.name])
    mean = first.embedding + second.embedding
    np.testing.assert_allclose(voice.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    assert voice.speech_seconds == pytest.approx(first.speech_seconds + second.speech_seconds)
    assert voice.speaker == "anna" and voice.warnings == []

    short = controller.add_recording(np.asarray(soundfile.read(voices["bob"], dtype="float32")[0][:24000]), 16000)
    assert any("s of speech" in note for note in controller.voice([short.name]).warnings)
    with pytest.raises(ValueError, match="Select at least one"):
        controller.voice([])


def test_reference_quality_warnings():
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    speech_like = (np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32) * 0.5
    assert reference_quality_warnings(speech_like, "clean") == []
    clipped = np.clip(speech_like * 10, -1, 1)
    assert any("clipped" in note for note in reference_quality_warnings(clipped, "loud"))
    noisy = speech_like + 0.3 * rng.standard_normal(len(t)).astype(np.float32)
    assert any("noisy" in note for note in reference_quality_warnings(noisy, "street"))


def test_streaming_synthesis_and_vocoding(controller, voices):
    reference = controller.load_file(voices["bob"])
    chunks: list[np.ndarray] = []
    progress: list[float] = []
    output = controller.synthesize_and_vocode("Hello there. This is sentence two!\nAnd a third line.",
                                              [reference.name], vocoder="griffinlim", seed=5,
                                              on_chunk=chunks.append, progress=lambda f, _m: progress.append(f))
    assert output.synthesis.sentences == ["Hello there.", "This is sentence two!", "And a third line."]
    assert len(chunks) == 3
    np.testing.assert_array_equal(np.concatenate(chunks), output.wav)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert output.similarity is not None and -1.0 <= output.similarity <= 1.0
    assert output.similarity == pytest.approx(cosine_similarity(output.utterance.embedding,
                                                                controller.current_voice.embedding))
    # Generated utterances join the history (RTVC left them out) and are marked as generated.
    assert controller.history[0] is output.utterance and output.utterance.generated
    assert output.name.startswith("bob_gen_") and controller.outputs[0] is output

    again = controller.synthesize_and_vocode("Hello there. This is sentence two!\nAnd a third line.",
                                             [reference.name], vocoder="griffinlim", seed=5)
    np.testing.assert_array_equal(again.wav, output.wav)


def test_synthesize_then_vocode_with_wavernn(controller, voices):
    reference = controller.load_file(voices["anna"])
    synthesis = controller.synthesize("One. Two.", [reference.name], seed=1)
    assert controller.current_synthesis is synthesis and len(synthesis.mels) == 2
    output = controller.vocode(vocoder="wavernn", seed=1, enhance=False)
    gap = int(0.15 * 16000)
    assert len(output.wav) == sum((mel.shape[1] - 1) * 200 + gap for mel in synthesis.mels)
    assert output.vocoder == "wavernn" and set(output.timings) == {"synthesizer", "wavernn"}


def test_generation_errors_are_clear(controller, voices):
    reference = controller.load_file(voices["anna"])
    with pytest.raises(TextError, match="empty"):
        controller.synthesize("   ", [reference.name])
    fresh = ToolboxController(controller.models_dir, device="cpu", shipped_dir=None)
    with pytest.raises(ValueError, match="Synthesize a spectrogram"):
        fresh.vocode()


def test_export_adds_suffix_and_writes_readable_audio(controller, voices, tmp_path):
    reference = controller.load_file(voices["anna"])
    output = controller.synthesize_and_vocode("Export me.", [reference.name], vocoder="griffinlim", seed=2)
    written = controller.export(output, tmp_path / "take")
    assert written.name == "take.wav"
    data, rate = soundfile.read(written, dtype="float32")
    assert rate == 16000 and len(data) == len(output.wav)
    flac = controller.export(output, tmp_path / "take.flac")
    assert soundfile.info(flac).format == "FLAC"
    with pytest.raises(AudioError, match=".mp3"):
        controller.export(output, tmp_path / "take.mp3")


def test_projection_needs_four_points_and_colours_any_number_of_speakers(controller, librispeech_dir):
    from toolbox.datasets import discover_datasets

    dataset = next(d for d in discover_datasets(librispeech_dir.parent.parent) if d.kind == "librispeech")
    speakers = dataset.speakers[:16]
    for speaker in speakers[: MIN_UMAP_POINTS - 1]:
        controller.load_dataset_utterance(dataset.utterances(speaker)[0])
    assert controller.projection() is None
    for speaker in speakers[MIN_UMAP_POINTS - 1 :]:
        controller.load_dataset_utterance(dataset.utterances(speaker)[0])
    projection = controller.projection()
    assert projection.points.shape == (16, 2) and np.isfinite(projection.points).all()
    assert len(set(projection.speakers)) == 16 and not any(projection.generated)
    controller.clear_projection()
    assert controller.projection() is None and len(controller.history) == 16


def test_warnings_reach_the_log_and_the_output_with_their_sentence(controller, voices):
    reference = controller.load_file(voices["anna"])
    output = controller.synthesize_and_vocode("Hello there. Then a ~ tilde.", [reference.name], vocoder="griffinlim",
                                              seed=0)
    dropped = [note for note in output.warnings if "Dropped" in note]
    assert dropped and dropped[0].startswith('Sentence 2/2 ("Then a ~ tilde."): ')
    assert f"Warning: {dropped[0]}" in controller.log_lines
    synthesis = controller.synthesize("A ~ first. Then the second.", [reference.name], seed=0)
    assert any("Dropped" in note for note in synthesis.warnings)
