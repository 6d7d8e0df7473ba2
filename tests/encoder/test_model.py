"""encoder.model: RTVC's exact state_dict, the pretrained weights, and GE2E checked against explicit loops."""

from __future__ import annotations

import math

import pytest
import torch

from encoder.hparams import EncoderHParams
from encoder.model import SpeakerEncoder

PRETRAINED_STEP = 1_564_501
# Small CPU workloads: one torch thread is faster and immune to busy machines (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_state_dict_matches_rtvc_exactly(rtvc_state_dicts):
    expected = rtvc_state_dicts["encoder"]
    assert len(expected) == 16
    state = SpeakerEncoder(EncoderHParams()).state_dict()
    actual = [(key, tuple(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()]
    assert actual == expected  # same keys, shapes, dtypes, and order


def test_parameter_count():
    model = SpeakerEncoder(EncoderHParams())
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_423_618
    assert model.similarity_weight.item() == 10.0 and model.similarity_bias.item() == -5.0


def test_pretrained_weights_load_safely_and_strictly(encoder_checkpoint):
    checkpoint = torch.load(encoder_checkpoint, map_location="cpu", weights_only=True)
    assert checkpoint["step"] == PRETRAINED_STEP
    assert "optimizer_state" in checkpoint  # the published file carries Adam state, ignored at inference
    model = SpeakerEncoder(EncoderHParams())
    model.load_state_dict(checkpoint["model_state"], strict=True)
    # Trained values, not the initial ones.
    assert model.similarity_weight.item() != 10.0 and model.similarity_bias.item() != -5.0


def test_real_encoder_outputs_nonnegative_unit_vectors(real_encoder):
    assert real_encoder.step == PRETRAINED_STEP
    frames = torch.rand(6, 160, 40, generator=torch.Generator().manual_seed(0)) * 5
    with torch.no_grad():
        embeds = real_encoder.model(frames)
    assert embeds.shape == (6, 256)
    assert (embeds >= 0).all()
    torch.testing.assert_close(embeds.norm(dim=1), torch.ones(6), atol=1e-4, rtol=0)
    assert len({tuple(row.round(decimals=4).tolist()) for row in embeds}) == 6  # inputs differ, outputs differ


def test_forward_uses_last_layer_final_state():
    torch.manual_seed(0)
    model = SpeakerEncoder(EncoderHParams(hidden_size=16, embedding_size=16, num_layers=2))
    frames = torch.rand(3, 12, 40)
    _, (hidden, _) = model.lstm(frames)
    raw = torch.relu(model.linear(hidden[-1]))
    expected = raw / (raw.norm(dim=1, keepdim=True) + 1e-5)
    torch.testing.assert_close(model(frames), expected)
    first_layer = torch.relu(model.linear(hidden[0]))
    assert not torch.allclose(model(frames), first_layer / (first_layer.norm(dim=1, keepdim=True) + 1e-5))


# --------------------------------------------------------------------------------------------------
# GE2E
# --------------------------------------------------------------------------------------------------
def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / (norm + 1e-5) for x in vector]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def hand_similarity(embeds: list[list[list[float]]], weight: float, bias: float) -> list[list[list[float]]]:
    """GE2E similarity written with loops: own speaker → centroid without the utterance itself."""
    n_speakers, n_utterances = len(embeds), len(embeds[0])
    size = len(embeds[0][0])
    result = []
    for j in range(n_speakers):
        rows = []
        for i in range(n_utterances):
            row = []
            for k in range(n_speakers):
                others = [embeds[k][m] for m in range(n_utterances) if not (k == j and m == i)]
                centroid = _normalise([sum(e[d] for e in others) / len(others) for d in range(size)])
                row.append(weight * _dot(embeds[j][i], centroid) + bias)
            rows.append(row)
        result.append(rows)
    return result


def hand_loss(similarity: list[list[list[float]]]) -> float:
    total, count = 0.0, 0
    for j, rows in enumerate(similarity):
        for row in rows:
            log_sum = math.log(sum(math.exp(s) for s in row))
            total += log_sum - row[j]
            count += 1
    return total / count


@pytest.fixture
def ge2e_model() -> SpeakerEncoder:
    model = SpeakerEncoder(EncoderHParams(hidden_size=4, embedding_size=5, num_layers=1))
    with torch.no_grad():
        model.similarity_weight.fill_(7.0)
        model.similarity_bias.fill_(-2.5)
    return model


def tiny_embeds(seed: int) -> torch.Tensor:
    raw = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return raw / raw.norm(dim=2, keepdim=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similarity_matrix_matches_loops(ge2e_model, seed):
    embeds = tiny_embeds(seed)
    matrix = ge2e_model.double().similarity_matrix(embeds)
    assert matrix.shape == (3, 4, 3)
    expected = torch.tensor(hand_similarity(embeds.tolist(), 7.0, -2.5), dtype=torch.float64)
    torch.testing.assert_close(matrix, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_loops_and_backpropagates(ge2e_model, seed):
    embeds = tiny_embeds(seed).requires_grad_(True)
    model = ge2e_model.double()
    loss = model.loss(embeds)
    expected = hand_loss(hand_similarity(embeds.tolist(), 7.0, -2.5))
    assert loss.item() == pytest.approx(expected, abs=1e-10)
    loss.backward()
    for tensor in (embeds, model.similarity_weight, model.similarity_bias):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_loss_is_lower_for_separated_speakers():
    model = SpeakerEncoder(EncoderHParams(hidden_size=4, embedding_size=16, num_layers=1))
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(16)[:4] * 3  # 4 well-separated speakers
    separated = centres[:, None, :] + 0.1 * torch.randn(4, 6, 16, generator=generator)
    separated = torch.relu(separated)
    separated = separated / separated.norm(dim=2, keepdim=True)
    random = torch.rand(4, 6, 16, generator=generator)
    random = random / random.norm(dim=2, keepdim=True)
    with torch.no_grad():
        good, bad = model.loss(separated).item(), model.loss(random).item()
    assert good < bad
    assert good < 0.05 and bad > math.log(4) * 0.8  # near zero vs near chance
