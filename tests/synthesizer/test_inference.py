"""Tests for synthesizer.inference: loading RTVC's and our checkpoints, and batched synthesis."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from synthesizer.hparams import SynthesizerHParams
from synthesizer.inference import SynthesisResult, SynthesisWarning, Synthesizer, trim_silent_tail
from synthesizer.model import Tacotron, build_tacotron
from synthesizer.text import encode_text
from synthesizer.text.symbols import SYMBOLS
from utils.checkpoints import CheckpointError, make_payload, save_checkpoint

SMALL = SynthesizerHParams(
    tts_embed_dims=32, tts_encoder_dims=32, tts_decoder_dims=32, tts_postnet_dims=32, tts_lstm_dims=64
)
SHORT, LONG = "short text", "a much longer second text here"


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def embedding(seed: int = 0, size: int = 256) -> np.ndarray:
    return unit(np.random.default_rng(seed).random(size))


def small_synthesizer(r: int = 2, seed: int = 0, **changes) -> Synthesizer:
    torch.manual_seed(seed)
    model = build_tacotron(SMALL.replace(**changes) if changes else SMALL)
    model.r = r
    return Synthesizer(model)


def assert_one_line(error: pytest.ExceptionInfo) -> None:
    message = str(error.value)
    assert "\n" not in message and "size mismatch for" not in message and len(message) < 400


# ---------------------------------------------------------------------------------------------------
# RTVC's checkpoint format at full size
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rtvc_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A full-size random Tacotron saved exactly like RTVC's training script (r = 2, Adam state)."""
    torch.manual_seed(0)
    model = build_tacotron()
    model.r = 2
    optimizer = torch.optim.Adam(model.parameters())
    model.train()
    out = model(torch.tensor([[30, 31, 32, 1]]), torch.rand(1, 80, 4) * 8 - 4, torch.rand(1, 256))
    (out.mels.abs().mean() + out.postnet_mels.abs().mean() + out.stop.mean()).backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("rtvc") / "synthesizer.pt"
    torch.save({"model_state": model.state_dict(), "optimizer_state": optimizer.state_dict()}, path)
    return path, model.state_dict()


def test_rtvc_checkpoint_loads_and_synthesizes(rtvc_checkpoint) -> None:
    path, state = rtvc_checkpoint
    synthesizer = Synthesizer.from_checkpoint(path)
    assert synthesizer.r == 2 and synthesizer.step == 1
    assert synthesizer.hparams == SynthesizerHParams()
    assert synthesizer.path == path and synthesizer.device == torch.device("cpu")
    assert synthesizer.sample_rate == 16000
    assert not synthesizer.model.training
    loaded = synthesizer.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SynthesisWarning)  # random weights may never emit a stop token
        result = synthesizer.synthesize(["Hello world."], embedding(), max_steps=40)
    mel = result.mels[0]
    assert mel.dtype == np.float32 and mel.ndim == 2 and mel.shape[0] == 80
    assert 1 <= mel.shape[1] <= 40
    assert np.isfinite(mel).all() and np.abs(mel).max() < 4.5
    assert result.alignments[0].shape[1] == len(encode_text("Hello world.").ids)
    assert not synthesizer.model.training


def test_vocoder_file_is_rejected_with_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "vocoder.pt"
    state = {"step": torch.zeros(1), "upsample.resnet.conv_in.weight": torch.zeros(128, 80, 5),
             "I.weight": torch.zeros(512, 113)}
    torch.save({"model_state": state, "optimizer_state": {}}, path)
    with pytest.raises(CheckpointError, match="vocoder checkpoint, not a synthesizer") as error:
        Synthesizer.from_checkpoint(path)
    assert_one_line(error)


def test_fork_with_70_symbols_is_rejected_with_one_sentence(rtvc_checkpoint, tmp_path: Path) -> None:
    _, state = rtvc_checkpoint
    state = dict(state)
    state["encoder.embedding.weight"] = torch.zeros(70, 512)
    path = tmp_path / "fork.pt"
    torch.save({"model_state": state}, path)
    with pytest.raises(CheckpointError, match="70 text symbols") as error:
        Synthesizer.from_checkpoint(path)
    assert_one_line(error)


# ---------------------------------------------------------------------------------------------------
# Our checkpoint format
# ---------------------------------------------------------------------------------------------------


def test_own_format_round_trip(tmp_path: Path) -> None:
    synthesizer = small_synthesizer(r=3, tts_dropout=0.3)
    with torch.no_grad():
        synthesizer.model.step.fill_(1234)
    optimizer = torch.optim.Adam(synthesizer.model.parameters())
    path = tmp_path / "ours.pt"
    synthesizer.save(path, optimizer)
    stored = torch.load(path, weights_only=True)
    assert stored["symbols"] == "".join(SYMBOLS) and stored["model_type"] == "synthesizer"
    assert "optimizer_state" in stored

    loaded = Synthesizer.from_checkpoint(path)
    assert loaded.hparams == synthesizer.hparams and loaded.hparams.tts_lstm_dims == 64
    assert loaded.r == 3 and loaded.step == 1234
    results = []
    for candidate in (synthesizer, loaded):
        torch.manual_seed(11)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SynthesisWarning)
            results.append(candidate.synthesize([SHORT, LONG], embedding(), max_steps=30))
    for before, after in zip(results[0].mels, results[1].mels):
        assert np.array_equal(before, after)


def test_own_format_with_other_symbol_table_is_rejected(tmp_path: Path) -> None:
    synthesizer = small_synthesizer()
    path = tmp_path / "other_symbols.pt"
    save_checkpoint(path, make_payload(synthesizer.model, "synthesizer", synthesizer.hparams,
                                       symbols="".join(reversed(SYMBOLS))))
    with pytest.raises(CheckpointError, match="another text symbol table") as error:
        Synthesizer.from_checkpoint(path)
    assert_one_line(error)


# ---------------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------------


def stop_on_speaker(synthesizer: Synthesizer, direction: np.ndarray) -> None:
    """Make the stop token fire for speakers along ``direction`` and never for the opposite one.

    The stop projection sees the context vector, whose speaker part is exactly the speaker
    embedding (attention weights sum to 1), so this gives items of one batch different lengths.
    """
    model: Tacotron = synthesizer.model
    speaker_start = model.hparams.tts_lstm_dims + model.hparams.tts_encoder_dims
    with torch.no_grad():
        model.decoder.stop_proj.weight.zero_()
        model.decoder.stop_proj.bias.zero_()
        model.decoder.stop_proj.weight[0, speaker_start:] = torch.from_numpy(20 * direction)


def test_batched_items_sound_as_if_synthesized_alone() -> None:
    synthesizer = small_synthesizer(tts_dropout=0.0)  # deterministic, so items can be compared
    direction = embedding(5)
    stop_on_speaker(synthesizer, direction)
    speakers = np.stack([direction, -direction])  # SHORT stops after 14 frames, LONG never
    texts = [SHORT, LONG]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SynthesisWarning)
        batched = synthesizer.synthesize(texts, speakers, max_steps=40)
        alone = [synthesizer.synthesize([text], speaker, max_steps=40) for text, speaker in zip(texts, speakers)]
        rtvc = synthesizer.synthesize(texts, speakers, max_steps=40, exact_rtvc_batching=True)

    assert batched.stop_reached == [True, False]
    assert batched.mels[0].shape == (80, 14) and batched.mels[1].shape[1] > 30
    for index in range(2):
        assert batched.mels[index].shape == alone[index].mels[0].shape
        np.testing.assert_allclose(batched.mels[index], alone[index].mels[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched.alignments[index], alone[index].alignments[0], rtol=1e-4, atol=1e-6)

    # RTVC: the short text's encoder and attention see the pads, and it is not cut at its stop.
    short_rtvc = rtvc.mels[0]
    assert short_rtvc.shape[1] > 14
    assert not np.allclose(short_rtvc[:, :14], alone[0].mels[0], rtol=1e-4, atol=1e-5)
    assert rtvc.alignments[0].shape == (20, len(encode_text(SHORT).ids))
    np.testing.assert_allclose(rtvc.mels[1], alone[1].mels[0], rtol=1e-4, atol=1e-5)  # no pads in the longest


def test_results_in_input_order_with_progress() -> None:
    synthesizer = small_synthesizer()
    with torch.no_grad():
        synthesizer.model.decoder.stop_proj.bias.fill_(100.0)  # every item stops after 14 frames
    texts = ["one", "a rather longer text than the others", "two words"]
    calls: list[tuple[int, int]] = []
    result = synthesizer.synthesize(texts, embedding(), batch_size=2,
                                    progress_callback=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 3), (3, 3)]
    assert isinstance(result, SynthesisResult)
    assert [a.shape[1] for a in result.alignments] == [len(encode_text(t).ids) for t in texts]
    assert all(a.shape[0] == 7 for a in result.alignments)
    assert result.stop_reached == [True, True, True] and result.dropped_characters == ()


def test_missing_stop_token_warns_and_is_reported() -> None:
    synthesizer = small_synthesizer()
    with torch.no_grad():
        synthesizer.model.decoder.stop_proj.bias.fill_(-100.0)
    with pytest.warns(SynthesisWarning, match="too long"):
        result = synthesizer.synthesize([SHORT], embedding(), max_steps=20)
    assert result.stop_reached == [False]
    assert result.alignments[0].shape == (10, len(encode_text(SHORT).ids))


def test_dropped_characters_are_reported() -> None:
    synthesizer = small_synthesizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = synthesizer.synthesize(["tag #one", "mail @home #two"], embedding(), max_steps=12)
    assert result.dropped_characters == ("#", "@")


def test_trim_silent_tail_matches_rtvc_rule() -> None:
    mel = np.full((80, 10), -4.0, np.float32)
    mel[:, :6] = 1.0
    mel[3, 7] = -3.0  # one band above −3.4 keeps frame 7 and everything before it
    assert trim_silent_tail(mel, -3.4).shape == (80, 8)
    assert trim_silent_tail(np.full((80, 5), -4.0, np.float32), -3.4).shape == (80, 1)


# ---------------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick() -> Synthesizer:
    synthesizer = small_synthesizer(tts_dropout=0.0)
    with torch.no_grad():
        synthesizer.model.decoder.stop_proj.bias.fill_(100.0)
    return synthesizer


def test_embedding_layouts_are_equivalent(quick: Synthesizer) -> None:
    texts = ["first one", "second"]
    shared = embedding()
    layouts = [shared, np.stack([shared, shared]), [shared, shared], shared[None], torch.from_numpy(shared)]
    results = [quick.synthesize(texts, layout) for layout in layouts]
    for result in results[1:]:
        for expected, actual in zip(results[0].mels, result.mels):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    mixed = quick.synthesize(texts, [embedding(1), embedding(2)])
    assert not np.allclose(mixed.mels[1], results[0].mels[1])


@pytest.mark.parametrize(
    ("texts", "embeds", "message"),
    [
        ([], embedding(), "texts is empty"),
        ("just a string", embedding(), "not a single string"),
        (["a", "b"], np.stack([embedding()] * 3), "3 speaker embeddings for 2 texts"),
        (["a", "b"], [embedding()] * 3, "3 speaker embeddings for 2 texts"),
        (["a"], embedding(size=128), r"shape \(256,\)"),
        (["a", "b"], [embedding(), embedding(size=255)], r"shape \(256,\)"),
        (["a"], np.full(256, np.nan, np.float32), "NaN"),
        (["a"], np.full(256, np.inf, np.float32), "infinite"),
        (["a", "   "], embedding(), "text 1 is empty"),
        (["@#"], embedding(), "no characters"),
    ],
)
def test_invalid_inputs_raise_value_error(quick: Synthesizer, texts, embeds, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message) as error:
            quick.synthesize(texts, embeds)
    assert "\n" not in str(error.value)


def test_nan_weights_give_one_error_naming_the_checkpoint(tmp_path):
    # Issue 17: the NaN used to surface only in the vocoder, as "the mel spectrogram contains NaN".
    from utils.checkpoints import CheckpointError, NonFiniteOutputError

    synthesizer = small_synthesizer()
    with torch.no_grad():
        synthesizer.model.post_proj.weight.fill_(float("nan"))  # the last layer: stop tokens stay finite
    path = tmp_path / "nan_synthesizer.pt"
    synthesizer.save(path)
    loaded = Synthesizer.from_checkpoint(path)
    with pytest.raises(NonFiniteOutputError) as error:
        loaded.synthesize([SHORT], embedding(), max_steps=20)
    assert str(error.value) == (f"The synthesizer checkpoint '{path}' produced NaN or infinite mel spectrograms: "
                                "its weights are damaged or its training diverged.")
    assert isinstance(error.value, CheckpointError)


def test_a_vocoder_file_given_as_the_synthesizer_is_named_as_such(tmp_path):
    """Issue 26: ``-s vocoder.pt`` said "unknown architecture 'istft'"."""
    from synthesizer.inference import load_synthesizer
    from tests.model_files import write_istft_vocoder
    from utils.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="is a vocoder checkpoint, not a synthesizer checkpoint"):
        load_synthesizer(write_istft_vocoder(tmp_path / "vocoder.pt"))
