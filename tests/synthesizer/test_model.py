"""Tests for synthesizer.model: RTVC's state_dict layout and Tacotron's behaviour.

Most tests use a small model (sizes 32/64); the layout test builds the full RTVC size.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from synthesizer.hparams import SynthesizerHParams
from synthesizer.model import BatchNormConv, Tacotron, build_tacotron, stop_lengths, text_lengths_from_ids

STATE_DICTS = Path(__file__).resolve().parents[2].parent / "shared" / "docs" / "rtvc_state_dicts.txt"
SMALL = SynthesizerHParams(
    tts_embed_dims=32, tts_encoder_dims=32, tts_decoder_dims=32, tts_postnet_dims=32, tts_lstm_dims=64
)
TEXTS = torch.tensor([[30, 40, 50, 65, 33, 61, 1], [35, 36, 1, 0, 0, 0, 0]])  # (2, 7), second one padded


def small_model(r: int = 2, seed: int = 0, **changes) -> Tacotron:
    torch.manual_seed(seed)
    model = build_tacotron(SMALL.replace(**changes) if changes else SMALL)
    model.r = r
    return model


def speakers(batch: int = 2, size: int = 256, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.rand(batch, size, generator=generator)
    return embeds / embeds.norm(dim=1, keepdim=True)  # (B, S), unit norm like GE2E


def rtvc_listing() -> list[tuple[str, tuple[int, ...], str]]:
    section = STATE_DICTS.read_text(encoding="utf-8").split("### synthesizer")[1].split("###")[0]
    entries = []
    for line in section.splitlines()[1:]:
        if line.startswith("#") or "\t" not in line:
            continue
        key, shape, dtype = line.split("\t")
        entries.append((key, tuple(int(n) for n in re.findall(r"\d+", shape)), dtype))
    return entries


# ---------------------------------------------------------------------------------------------------
# Checkpoint layout
# ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not STATE_DICTS.exists(), reason=f"RTVC state_dict listing not found at {STATE_DICTS}")
def test_state_dict_equals_rtvc_listing_in_order() -> None:
    model = build_tacotron()
    ours = [(key, tuple(value.shape), str(value.dtype).removeprefix("torch."))
            for key, value in model.state_dict().items()]
    expected = rtvc_listing()
    assert len(expected) == 170
    assert ours == expected


def test_full_size_totals() -> None:
    model = build_tacotron()
    assert sum(value.numel() for value in model.state_dict().values()) == 30_880_082
    assert model.num_params() == 30_870_177


def test_buffers_and_r_property() -> None:
    model = small_model(r=1)
    state = model.state_dict()
    assert state["step"].dtype == torch.int64 and state["step"].shape == (1,)
    assert state["stop_threshold"].dtype == torch.float32 and state["stop_threshold"].shape == ()
    assert state["stop_threshold"].item() == pytest.approx(-3.4)
    assert state["decoder.r"].dtype == torch.int32 and state["decoder.r"].shape == ()
    model.r = 7
    assert model.r == 7 and model.state_dict()["decoder.r"].item() == 7
    assert model.decoder.r.dtype == torch.int32
    with pytest.raises(ValueError, match="between 1 and 20"):
        model.r = 21


def test_initialisation_follows_rtvc() -> None:
    model = small_model()
    for highway in model.encoder.cbhg.highways:
        assert torch.count_nonzero(highway.W1.bias) == 0
        assert torch.count_nonzero(highway.W2.bias) > 0  # PyTorch's default, not zeroed
    weight = model.decoder.rnn_input.weight  # (64, 96): Xavier-uniform bound sqrt(6 / (fan_in + fan_out))
    bound = math.sqrt(6 / sum(weight.shape))
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.9 * bound  # default kaiming init would stay below 1/sqrt(fan_in)


def test_batchnorm_conv_applies_relu_before_batchnorm() -> None:
    torch.manual_seed(0)
    block = BatchNormConv(4, 6, kernel=3).eval()
    with torch.no_grad():
        block.bnorm.running_mean.fill_(0.5)
        block.bnorm.bias.fill_(-1.0)
    x = torch.randn(2, 4, 9)
    expected = block.bnorm(F.relu(block.conv(x)))
    assert torch.allclose(block(x), expected)
    assert not torch.allclose(block(x), F.relu(block.bnorm(block.conv(x))))


# ---------------------------------------------------------------------------------------------------
# Forward (teacher forcing)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [1, 2])
def test_forward_shapes(r: int) -> None:
    model = small_model(r=r)
    mels = torch.rand(2, 80, 12) * 8 - 4
    out = model(TEXTS, mels, speakers())
    assert out.mels.shape == (2, 80, 12)
    assert out.postnet_mels.shape == (2, 80, 12)
    assert out.attention.shape == (2, 12 // r, 7)
    assert out.stop.shape == (2, 12)
    assert torch.allclose(out.attention.sum(dim=2), torch.ones(2, 12 // r))
    assert ((out.stop >= 0) & (out.stop <= 1)).all()
    out.postnet_mels.mean().backward()
    assert model.encoder.embedding.weight.grad is not None


def test_other_speaker_embedding_size() -> None:
    model = small_model(speaker_embedding_size=16)
    assert model.encoder_proj.weight.shape == (32, 48)
    out = model(TEXTS, torch.zeros(2, 80, 6), speakers(size=16))
    assert out.mels.shape == (2, 80, 6)
    with pytest.raises(ValueError, match="speaker_embeddings must have shape"):
        model(TEXTS, torch.zeros(2, 80, 6), speakers(size=256))


def test_step_increments_on_training_forward_only() -> None:
    model = small_model()
    model.train()
    model(TEXTS, torch.zeros(2, 80, 4), speakers())
    model(TEXTS, torch.zeros(2, 80, 4), speakers())
    assert model.step.tolist() == [2]
    model.eval()
    model(TEXTS, torch.zeros(2, 80, 4), speakers())
    model.generate(TEXTS, speakers(), max_steps=4)
    assert model.step.tolist() == [2]


def test_zoneout_only_in_training() -> None:
    model = small_model(tts_dropout=0.0)  # no dropout: only zoneout can make two passes differ
    mels = torch.rand(2, 80, 8) * 8 - 4
    model.eval()
    first, second = model(TEXTS, mels, speakers()), model(TEXTS, mels, speakers())
    assert torch.equal(first.mels, second.mels)
    model.train()
    first, second = model(TEXTS, mels, speakers()), model(TEXTS, mels, speakers())
    assert not torch.allclose(first.mels, second.mels)


def test_mel_projection_is_mel_major_and_sliced_to_r() -> None:
    model = small_model(r=3)
    model.pack_cpu_weights = False  # the hook needs the module itself to run (packed copies: test_packed.py)
    captured: list[torch.Tensor] = []
    hook = model.decoder.mel_proj.register_forward_hook(lambda module, args, output: captured.append(output.clone()))
    frames_seen: list[torch.Tensor] = []
    out = model.generate(TEXTS, speakers(), max_steps=3,
                         step_callback=lambda t, mels, attn, stop: frames_seen.append(mels))
    hook.remove()
    assert len(captured) == 1 and captured[0].shape == (2, 1600)
    expected = captured[0].view(2, 80, 20)[:, :, :3]  # element index = mel * 20 + frame
    assert torch.equal(frames_seen[0], expected)
    assert torch.equal(out.mels, expected)


# ---------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_generate_restores_previous_mode(training: bool) -> None:
    model = small_model()
    model.train(training)
    out = model.generate(TEXTS, speakers(), max_steps=6)
    assert model.training is training
    assert all(module.training is training for module in model.modules())
    assert out.postnet_mels.shape[:2] == (2, 80)


def test_prenet_dropout_stays_on_in_eval() -> None:
    model = small_model().eval()
    first = model.generate(TEXTS, speakers(), max_steps=12).postnet_mels
    second = model.generate(TEXTS, speakers(), max_steps=12).postnet_mels
    assert not torch.allclose(first, second)
    torch.manual_seed(0)
    first = model.generate(TEXTS, speakers(), max_steps=12)
    torch.manual_seed(0)
    second = model.generate(TEXTS, speakers(), max_steps=12)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_single_text_same_with_and_without_rtvc_batching() -> None:
    model = small_model()  # dropout 0.5: both paths must draw the same random numbers
    text, speaker = TEXTS[:1], speakers(batch=1)
    torch.manual_seed(3)
    ours = model.generate(text, speaker, max_steps=30)
    torch.manual_seed(3)
    rtvc = model.generate(text, speaker, max_steps=30, exact_rtvc_batching=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, rtvc))


@pytest.mark.parametrize(("r", "frames"), [(1, 12), (2, 14), (3, 15)])
def test_stop_token_ends_decoding_after_frame_10(r: int, frames: int) -> None:
    model = small_model(r=r)
    with torch.no_grad():
        model.decoder.stop_proj.bias.fill_(100.0)  # stop fires at every step
    out = model.generate(TEXTS, speakers(), max_steps=50)
    assert out.postnet_mels.shape[2] == frames  # first step starting after frame 10, included
    assert out.stop.shape == (2, frames) and out.attention.shape == (2, frames // r, 7)


def test_generation_runs_to_max_steps_without_stop() -> None:
    model = small_model(r=2)
    with torch.no_grad():
        model.decoder.stop_proj.bias.fill_(-100.0)
    out = model.generate(TEXTS, speakers(), max_steps=25)
    assert out.mels.shape == (2, 80, 26)  # 13 steps of r = 2
    lengths, reached = stop_lengths(out.stop, 2)
    assert lengths.tolist() == [26, 26] and reached.tolist() == [False, False]


def test_attention_masks_pads_only_without_rtvc_batching() -> None:
    model = small_model()
    ours = model.generate(TEXTS, speakers(), max_steps=8).attention  # (2, 4, 7)
    rtvc = model.generate(TEXTS, speakers(), max_steps=8, exact_rtvc_batching=True).attention
    assert torch.count_nonzero(ours[1, :, 3:]) == 0
    assert torch.allclose(ours.sum(dim=2), torch.ones(2, 4))
    assert (rtvc[1, :, 3:] > 0).all()  # RTVC's multiplicative mask leaves pads softmax mass


def test_stop_lengths_and_text_lengths() -> None:
    stop = torch.tensor([[0.9] * 12 + [0.2] * 2 + [0.7] * 2 + [0.9] * 2, [0.0] * 18])
    lengths, reached = stop_lengths(stop, r=2)
    assert lengths.tolist() == [16, 18] and reached.tolist() == [True, False]
    assert text_lengths_from_ids(TEXTS).tolist() == [7, 3]


def test_generate_rejects_bad_inputs() -> None:
    model = small_model()
    with pytest.raises(ValueError, match="speaker_embeddings"):
        model.generate(TEXTS, speakers(batch=3))
    with pytest.raises(ValueError, match="max_steps"):
        model.generate(TEXTS, speakers(), max_steps=0)
    with pytest.raises(ValueError, match="text lengths"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), speakers(batch=1))
