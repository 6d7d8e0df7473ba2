"""encoder.metrics: EER against hand-worked cases and RTVC's sklearn+brentq recipe; GE2E loss against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from encoder.hparams import EncoderHParams
from encoder.metrics import equal_error_rate, ge2e_softmax_loss, ge2e_targets, roc_points, similarity_eer
from encoder.model import SpeakerEncoder
from encoder.train import GE2ELossModule

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def similarity_from_trials(targets: list[float], non_targets: list[float], n_speakers: int,
                           n_utterances: int) -> np.ndarray:
    """An ``(N, M, N)`` matrix whose own-speaker entries are ``targets`` and the others ``non_targets``."""
    similarity = np.empty((n_speakers, n_utterances, n_speakers))
    own = np.eye(n_speakers, dtype=bool)[:, None, :].repeat(n_utterances, axis=1)
    similarity[own] = targets
    similarity[~own] = non_targets
    return similarity


# --------------------------------------------------------------------------------------------------
# EER by hand
# --------------------------------------------------------------------------------------------------
def test_roc_points_by_hand():
    # Sorted: .9 T, .7 N, .5 T, .1 N → accept 0, 1, 2, 3, 4 trials.
    fpr, tpr = roc_points(np.array([1, 0, 1, 0]), np.array([0.9, 0.7, 0.5, 0.1]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    # A tie between a target and a non-target is one threshold: a diagonal step.
    fpr, tpr = roc_points(np.array([1, 0, 1, 0]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_eer_2x2_crossing_on_a_vertical_step():
    # Targets .9 .8 .4 .3, non-targets .7 .2 .1 .05. ROC: (0,0) (0,.25) (0,.5) (.25,.5) (.25,.75) (.25,1) ...
    # 1 − x − TPR(x) is +.25 just before the jump at x = .25 and −.25 after it: EER = .25
    # (threshold .35: one of four non-targets accepted, one of four targets rejected).
    similarity = similarity_from_trials([0.9, 0.8, 0.4, 0.3], [0.7, 0.2, 0.1, 0.05], 2, 2)
    assert similarity[0, 0, 0] == 0.9 and similarity[1, 1, 1] == 0.3 and similarity[0, 0, 1] == 0.7
    assert similarity_eer(similarity) == pytest.approx(0.25, abs=1e-12)


def test_eer_2x2_crossing_on_a_tie():
    # Targets .9 .8 .5 .5, non-targets .5 .5 .1 0: after the two sure targets the ROC is at (0, .5); the
    # four-way tie at .5 jumps it diagonally to (.5, 1). On that segment TPR = .5 + x, and
    # 1 − x = .5 + x gives x = .25.
    similarity = similarity_from_trials([0.9, 0.8, 0.5, 0.5], [0.5, 0.5, 0.1, 0.0], 2, 2)
    assert similarity_eer(similarity) == pytest.approx(0.25, abs=1e-12)


def test_eer_3x2_by_hand():
    # 6 targets .9 .8 .7 .6 .5 .2 and 12 non-targets: one at .55, eleven at 0–.1.
    # ROC: (0, 4/6) after four targets, (1/12, 4/6) after the .55 non-target, then (1/12, 5/6), (1/12, 1).
    # At x = 1/12: 1 − x = 11/12 lies between TPR 5/6 (10/12) and 1 → the curve crosses there: EER = 1/12.
    non_targets = [0.55] + [0.01 * k for k in range(11)]
    similarity = similarity_from_trials([0.9, 0.8, 0.7, 0.6, 0.5, 0.2], non_targets, 3, 2)
    assert similarity.shape == (3, 2, 3)
    assert similarity_eer(similarity) == pytest.approx(1 / 12, abs=1e-12)


def test_eer_extremes_and_tensor_input():
    separated = similarity_from_trials([0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4], 2, 2)
    assert similarity_eer(separated) == 0.0
    assert similarity_eer(-separated) == 1.0
    assert similarity_eer(np.zeros((3, 2, 3))) == pytest.approx(0.5)  # all tied: the diagonal
    assert similarity_eer(torch.from_numpy(separated).float().requires_grad_()) == 0.0


def test_eer_rejects_meaningless_input():
    with pytest.raises(ValueError, match="both target and non-target"):
        equal_error_rate(np.ones(4), np.arange(4.0))
    with pytest.raises(ValueError, match="NaN"):
        equal_error_rate(np.array([1, 0]), np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match=r"\(N, M, N\)"):
        similarity_eer(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("seed", range(6))
def test_eer_equals_rtvc_sklearn_brentq(seed):
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(seed)
    n_speakers, n_utterances = rng.integers(2, 9), rng.integers(2, 6)
    similarity = rng.normal(size=(n_speakers, n_utterances, n_speakers))
    similarity += 1.5 * np.eye(n_speakers)[:, None, :]  # targets score higher, with overlap
    if seed % 2:
        similarity = np.round(similarity, 1)  # plenty of ties
    # RTVC's encoder/train.py (with np.int fixed): one-hot labels, ROC, brentq on the interpolated curve.
    labels = np.array([[1 if k == j else 0 for k in range(n_speakers)] for j in range(n_speakers)
                       for _ in range(n_utterances)])
    fpr, tpr, _ = roc_curve(labels.flatten(), similarity.reshape(-1, n_speakers).flatten())
    expected = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert 0.0 < expected < 0.5
    assert similarity_eer(similarity) == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------------------------------
# GE2E loss by hand
# --------------------------------------------------------------------------------------------------
def hand_ge2e_loss(embeds: list[list[list[float]]], weight: float, bias: float) -> float:
    """Softmax GE2E written out: utterance i of speaker j against every centroid k.

    Own speaker: the centroid of the other M − 1 utterances (exclusive); other speakers: the centroid of
    all M (inclusive). Centroids are normalised as RTVC does (divided by norm + 1e-5); the utterance
    embeddings are unit vectors already.
    """
    n_speakers, n_utterances, size = len(embeds), len(embeds[0]), len(embeds[0][0])

    def centroid(members: list[list[float]]) -> list[float]:
        mean = [sum(member[d] for member in members) / len(members) for d in range(size)]
        norm = math.sqrt(sum(x * x for x in mean))
        return [x / (norm + 1e-5) for x in mean]

    total = 0.0
    for j in range(n_speakers):
        for i in range(n_utterances):
            logits = []
            for k in range(n_speakers):
                members = [embeds[k][m] for m in range(n_utterances) if k != j or m != i]
                cosine = sum(a * b for a, b in zip(embeds[j][i], centroid(members)))
                logits.append(weight * cosine + bias)
            log_partition = math.log(sum(math.exp(logit) for logit in logits))
            total += log_partition - logits[j]  # −log softmax of the own speaker
    return total / (n_speakers * n_utterances)


def unit_embeddings(seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    raw = torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return raw / raw.norm(dim=2, keepdim=True)


def test_ge2e_targets():
    assert ge2e_targets(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("seed, shape", [(0, (2, 2, 3)), (1, (3, 4, 5)), (2, (4, 3, 6))])
def test_ge2e_loss_matches_loops(seed, shape):
    model = SpeakerEncoder(EncoderHParams(hidden_size=4, embedding_size=shape[2], num_layers=1)).double()
    with torch.no_grad():
        model.similarity_weight.fill_(6.0)
        model.similarity_bias.fill_(-1.5)
    embeds = unit_embeddings(seed, shape)
    loss = ge2e_softmax_loss(model.similarity_matrix(embeds))
    assert loss.item() == pytest.approx(hand_ge2e_loss(embeds.tolist(), 6.0, -1.5), abs=1e-10)


def test_ge2e_loss_of_equal_similarities_is_log_n():
    assert ge2e_softmax_loss(torch.full((5, 3, 5), 2.0)).item() == pytest.approx(math.log(5))
    with pytest.raises(ValueError):
        ge2e_softmax_loss(torch.zeros(2, 3, 4))


def test_training_module_loss_matches_loops_and_reaches_similarity_parameters():
    torch.manual_seed(0)
    encoder = SpeakerEncoder(EncoderHParams(hidden_size=8, embedding_size=6, num_layers=1))
    module = GE2ELossModule(encoder)
    frames = torch.rand(3 * 4, 20, 40)  # 3 speakers × 4 utterances, speaker-major
    loss, similarity = module(frames, 3, 4)
    with torch.no_grad():
        embeds = encoder(frames).reshape(3, 4, 6).double()
    expected = hand_ge2e_loss(embeds.tolist(), 10.0, -5.0)  # the initial scale and bias
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert similarity.shape == (3, 4, 3) and not similarity.requires_grad
    loss.backward()
    assert encoder.similarity_weight.grad is not None and encoder.similarity_bias.grad is not None
    assert encoder.lstm.weight_ih_l0.grad.abs().sum() > 0
