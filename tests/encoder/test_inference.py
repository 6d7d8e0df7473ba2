"""encoder.inference with the real pretrained GE2E weights: partial windows, speaker separation on real
speech (LibriSpeech) and on synthetic voices (espeak-ng), and reference embedding through ClonePipeline."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile

from encoder.hparams import EncoderHParams
from encoder.inference import Encoder, average_embeddings, compute_partial_slices
from encoder.model import SpeakerEncoder
from tests.conftest import librispeech_utterances
from utils.audio_io import AudioError, AudioWarning

SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence.",
    "She sells sea shells by the sea shore, and every morning she counts them twice before breakfast.",
)
# Four espeak-ng voices the pretrained encoder tells apart about as well as real people
# (measured: own-pair cosine ~0.93, highest cross-voice cosine ~0.75). Many other variants are not.
DISTINCT_VOICES = (("en-us+m3", 50), ("en+f2", 50), ("en-gb-x-rp+m7", 50), ("en-us+f4", 70))

# Every test here runs the LSTM on small batches: see the fixture's docstring in tests/conftest.py.
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def equal_error_rate(same: np.ndarray, different: np.ndarray) -> float:
    """EER by sweeping the decision threshold over every observed score.

    At threshold t: false acceptances = different-speaker scores >= t, false rejections = same-speaker
    scores < t. The EER is the mean of the two rates where they are closest.
    """
    best_gap, best_rate = np.inf, 1.0
    for threshold in np.unique(np.concatenate([same, different])):
        false_accept = np.mean(different >= threshold)
        false_reject = np.mean(same < threshold)
        if abs(false_accept - false_reject) < best_gap:
            best_gap, best_rate = abs(false_accept - false_reject), (false_accept + false_reject) / 2
    return float(best_rate)


def test_equal_error_rate_helper():
    assert equal_error_rate(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.3])) == 0.0
    assert equal_error_rate(np.array([0.1, 0.2]), np.array([0.8, 0.9])) == pytest.approx(1.0, abs=0.5)
    overlap = equal_error_rate(np.array([0.9, 0.8, 0.4, 0.85]), np.array([0.5, 0.3, 0.2, 0.1]))
    assert overlap == pytest.approx(0.25)


# --------------------------------------------------------------------------------------------------
# Partial windows
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds, n_partials", [(1.0, 1), (1.6, 1), (3.0, 3), (5.0, 5)])
def test_partial_counts_match_rtvc(seconds, n_partials):
    wav_slices, mel_slices = compute_partial_slices(int(seconds * 16000))
    assert len(wav_slices) == len(mel_slices) == n_partials


def test_partial_slice_arithmetic():
    n_samples = 8 * 16000
    wav_slices, mel_slices = compute_partial_slices(n_samples)
    assert [s.start for s in mel_slices] == [80 * i for i in range(len(mel_slices))]
    for wav_slice, mel_slice in zip(wav_slices, mel_slices):
        assert mel_slice.stop - mel_slice.start == 160
        assert (wav_slice.start, wav_slice.stop) == (mel_slice.start * 160, mel_slice.stop * 160)
    # Kept windows are at least 75 % real audio; the next one would not be.
    last = wav_slices[-1]
    assert (n_samples - last.start) / (last.stop - last.start) >= 0.75
    assert (n_samples - (last.start + 80 * 160)) / 25600 < 0.75
    # Short audio: one window, padded to 25 600 samples.
    only = compute_partial_slices(16000)[0]
    assert only == [slice(0, 25600)]


def test_partial_parameters_are_validated():
    with pytest.raises(ValueError, match="overlap"):
        compute_partial_slices(16000, overlap=1.0)
    with pytest.raises(ValueError, match="min_pad_coverage"):
        compute_partial_slices(16000, min_pad_coverage=0.0)


# --------------------------------------------------------------------------------------------------
# Utterance and speaker embeddings
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def espeak_voices(tmp_path_factory, espeak):
    """``{(voice, pitch): [path of sentence 1, path of sentence 2]}`` for DISTINCT_VOICES."""
    folder = tmp_path_factory.mktemp("voices")
    return {
        (voice, pitch): [
            espeak(folder / f"{voice}_{pitch}_{index}.wav", sentence, voice=voice, pitch=pitch)
            for index, sentence in enumerate(SENTENCES)
        ]
        for voice, pitch in DISTINCT_VOICES
    }


def test_embed_utterance_is_the_normalised_mean_of_partials(real_encoder, espeak_voices):
    wav = real_encoder.preprocess(espeak_voices[DISTINCT_VOICES[0]][0])
    details = real_encoder.embed_utterance_details(wav)
    assert details.partial_embeddings.shape == (len(compute_partial_slices(len(wav))[0]), 256)
    assert details.partial_embeddings.shape[0] >= 3
    mean = details.partial_embeddings.mean(axis=0)
    np.testing.assert_allclose(details.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    assert details.embedding.dtype == np.float32 and (details.embedding >= 0).all()
    assert np.linalg.norm(details.embedding) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(real_encoder.embed_utterance(wav), details.embedding)
    # The whole utterance at once is a different computation but the same voice.
    whole = real_encoder.embed_utterance(wav, using_partials=False)
    assert np.linalg.norm(whole) == pytest.approx(1.0, abs=1e-4) and whole @ details.embedding > 0.7


def test_average_embeddings(real_encoder, espeak_voices):
    paths = espeak_voices[DISTINCT_VOICES[1]]
    singles = [real_encoder.embed_utterance(real_encoder.preprocess(path)) for path in paths]
    speaker = average_embeddings(singles)
    mean = np.mean(singles, axis=0)
    np.testing.assert_allclose(speaker, mean / np.linalg.norm(mean), atol=1e-6)
    assert np.linalg.norm(speaker) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="cancel out"):
        average_embeddings([np.array([1.0, 0.0]), np.array([-1.0, 0.0])])


def test_small_encoder_runs_on_any_length():
    hparams = EncoderHParams(hidden_size=16, embedding_size=8, num_layers=1)
    encoder = Encoder(SpeakerEncoder(hparams), hparams)
    for n_samples in (100, 16000, 25600, 40000):
        embedding = encoder.embed_utterance(np.random.default_rng(n_samples).normal(0, 0.1, n_samples))
        assert embedding.shape == (8,) and np.isfinite(embedding).all()
    with pytest.raises(ValueError):
        encoder.embed_utterance(np.zeros(0, np.float32))


# --------------------------------------------------------------------------------------------------
# Speaker separation
# --------------------------------------------------------------------------------------------------
def test_speaker_separation_on_librispeech(real_encoder, librispeech_dir):
    """Same speaker (two halves of one utterance) vs different speakers, first 40 eligible speakers.

    Utterances with under 6 s of speech after trimming are skipped (each half gets >= 3 s, the
    amount the pipeline recommends for a reference): a few LibriSpeech "utterances" are one-second
    chapter titles, too short for any speaker embedding.
    """
    first_halves, second_halves = [], []
    for _, path in librispeech_utterances(librispeech_dir):
        wav = real_encoder.preprocess(path)
        if len(wav) < 6 * 16000:
            continue
        half = len(wav) // 2
        first_halves.append(real_encoder.embed_utterance(wav[:half]))
        second_halves.append(real_encoder.embed_utterance(wav[half:]))
        if len(first_halves) == 40:
            break
    assert len(first_halves) >= 20
    scores = np.stack(first_halves) @ np.stack(second_halves).T  # cosine: embeddings are unit norm
    same = np.diag(scores)
    different = scores[~np.eye(len(scores), dtype=bool)]
    eer = equal_error_rate(same, different)
    assert eer < 0.02, f"EER {eer:.2%} on {len(same)} speakers"
    assert same.mean() > different.mean() + 0.2, (same.mean(), different.mean())
    assert 0.3 < different.mean() < 0.75  # about 0.55 for real speakers with these weights


def test_espeak_voices_are_told_apart(real_encoder, espeak_voices):
    embeddings = {voice: [real_encoder.embed_utterance(real_encoder.preprocess(path)) for path in paths]
                  for voice, paths in espeak_voices.items()}
    for voice, (first, second) in embeddings.items():
        own = float(first @ second)
        others = [
            float(mine @ theirs)
            for other, theirs_pair in embeddings.items()
            if other != voice
            for mine in (first, second)
            for theirs in theirs_pair
        ]
        assert own > np.mean(others) + 0.1, (voice, own, np.mean(others))
        assert own > max(others), (voice, own, max(others))


# --------------------------------------------------------------------------------------------------
# ClonePipeline.embed_references (only the encoder is needed)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder_pipeline(encoder_checkpoint):
    from pipeline import ClonePipeline, ModelPaths

    return ClonePipeline(ModelPaths(encoder=encoder_checkpoint), device="cpu")


def test_embed_reference_refuses_silence(encoder_pipeline, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(32000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent"):
        encoder_pipeline.embed_reference(path)
    with pytest.raises(ValueError, match="at least one reference"):
        encoder_pipeline.embed_references([])


def test_embed_references_from_files(encoder_pipeline, espeak_voices):
    voice = DISTINCT_VOICES[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioWarning)  # over 3 s of speech: no warning
        result = encoder_pipeline.embed_references(espeak_voices[voice])
    assert result.names == [path.name for path in espeak_voices[voice]]
    assert result.speech_seconds > 3.0 and result.warnings == []
    assert len(result.reference_embeddings) == 2
    mean = np.mean(result.reference_embeddings, axis=0)
    np.testing.assert_allclose(result.embedding, mean / np.linalg.norm(mean), atol=1e-6)
    # Same voice as a direct embedding of one file; closer to it than to another voice.
    direct = encoder_pipeline.embed_reference(espeak_voices[voice][0]).embedding
    other = encoder_pipeline.embed_reference(espeak_voices[DISTINCT_VOICES[3]][0]).embedding
    assert result.embedding @ direct > result.embedding @ other + 0.1


def test_embed_references_warns_about_short_references(encoder_pipeline, espeak, tmp_path):
    paths = [
        espeak(tmp_path / "hi.wav", "Hello there.", voice="en-us+m3"),
        espeak(tmp_path / "bye.wav", "Good bye.", voice="en-us+m3"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note is returned as data, never raised as a warning
        result = encoder_pipeline.embed_references(paths)
    assert 0 < result.speech_seconds < 3.0
    assert len(result.warnings) == 1 and "3 s or more" in result.warnings[0]
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)


def test_embed_references_from_arrays(encoder_pipeline, espeak, tmp_path):
    path = espeak(tmp_path / "native.wav", SENTENCES[0], voice="en+f2", rate=22050)
    wav, rate = soundfile.read(path, dtype="float32")
    assert rate == 22050
    from_array = encoder_pipeline.embed_references([(wav, rate)], names=["mic"])
    from_file = encoder_pipeline.embed_references([path])
    assert from_array.names == ["mic"] and from_file.names == ["native.wav"]
    np.testing.assert_allclose(from_array.embedding, from_file.embedding, atol=1e-6)
    assert from_array.speech_seconds == from_file.speech_seconds > 3.0


def test_embed_references_refuses_silence(encoder_pipeline, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(48000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent") as error:
        encoder_pipeline.embed_references([path])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_embed_references_refuses_low_noise(encoder_pipeline, tmp_path):
    # -60 dBFS white noise is not silent, gets raised to -30 dBFS, and the VAD finds no speech in it.
    path = tmp_path / "hiss.wav"
    noise = np.random.default_rng(0).normal(0, 10 ** (-60 / 20), 4 * 16000).astype(np.float32)
    soundfile.write(path, noise, 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="no usable speech") as error:
        encoder_pipeline.embed_references([path])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_embed_references_needs_a_reference(encoder_pipeline):
    with pytest.raises(ValueError, match="at least one"):
        encoder_pipeline.embed_references([])


# --------------------------------------------------------------------------------------------------
# Reference implementation: the resemblyzer package ships the same network and front-end
# --------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread's imports, pulled in by resemblyzer
def test_matches_resemblyzer(real_encoder, espeak_voices):
    resemblyzer = pytest.importorskip("resemblyzer")
    import torch

    path = espeak_voices[DISTINCT_VOICES[1]][1]
    ours = real_encoder.preprocess(path)
    theirs = resemblyzer.preprocess_wav(path)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)

    from encoder.audio import wav_to_mel_spectrogram

    mel = wav_to_mel_spectrogram(ours)
    np.testing.assert_allclose(mel, resemblyzer.wav_to_mel_spectrogram(ours), rtol=1e-5, atol=1e-8)
    reference = resemblyzer.VoiceEncoder("cpu", verbose=False)
    batch = np.stack([mel[:160], mel[80:240]])
    with torch.no_grad():
        expected = reference(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(real_encoder.embed_frames_batch(batch), expected, atol=1e-5)


def test_nan_weights_give_one_error_naming_the_checkpoint(tmp_path):
    # Issue 17: every stage refuses its own non-finite output, naming the file it came from.
    import torch

    from utils.checkpoints import CheckpointError, NonFiniteOutputError, make_payload, save_checkpoint

    hp = EncoderHParams(hidden_size=8, embedding_size=8, num_layers=1)
    model = SpeakerEncoder(hp)
    with torch.no_grad():
        model.linear.weight.fill_(float("nan"))
    path = tmp_path / "nan_encoder.pt"
    save_checkpoint(path, make_payload(model, "encoder", hp))
    encoder = Encoder.from_checkpoint(path)
    wav = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    with pytest.raises(NonFiniteOutputError) as error:
        encoder.embed_utterance(wav)
    assert str(error.value) == (f"The encoder checkpoint '{path}' produced NaN or infinite speaker embeddings: "
                                "its weights are damaged or its training diverged.")
    assert isinstance(error.value, CheckpointError)  # reported in one line wherever checkpoints are
