"""Monotonic alignment search against brute force, and the beta-binomial prior."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthesizer.duration.alignment import beta_binomial_log_prior, maximum_path


def brute_force_best(score: np.ndarray) -> float:
    """Best total over every monotonic path that gives each symbol ≥ 1 frame, by enumeration."""
    n_symbols, n_frames = score.shape
    best = -np.inf
    for cuts in itertools.combinations(range(1, n_frames), n_symbols - 1):
        bounds = (0, *cuts, n_frames)
        total = sum(score[s, bounds[s]:bounds[s + 1]].sum() for s in range(n_symbols))
        best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_maximum_path_finds_the_best_monotonic_path(seed):
    rng = np.random.default_rng(seed)
    n_symbols, n_frames = int(rng.integers(1, 5)), int(rng.integers(5, 9))
    score = rng.normal(size=(n_symbols, n_frames)).astype(np.float32)
    path = maximum_path(score[None], np.array([n_symbols]), np.array([n_frames]))[0]
    assert (path.sum(0) == 1).all()  # every frame belongs to one symbol
    assert (path.sum(1) >= 1).all()  # every symbol gets a frame
    owner = path.argmax(0)
    assert (np.diff(owner) >= 0).all() and (np.diff(owner) <= 1).all()
    assert (path * score).sum() == pytest.approx(brute_force_best(score), abs=1e-4)


def test_padding_stays_empty_in_a_batch():
    score = np.zeros((2, 4, 9), np.float32)
    path = maximum_path(score, np.array([4, 2]), np.array([9, 5]))
    assert path[1, 2:].sum() == 0 and path[1, :, 5:].sum() == 0
    assert path[1].sum() == 5


def test_too_few_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="3 symbols but only 2 frames"):
        maximum_path(np.zeros((1, 3, 2), np.float32), np.array([3]), np.array([2]))


def test_beta_binomial_prior_is_a_distribution_per_frame_along_the_diagonal():
    prior = beta_binomial_log_prior(7, 30)
    assert np.exp(prior).sum(0) == pytest.approx(np.ones(30), abs=1e-4)
    modes = prior.argmax(0)
    assert modes[0] == 0 and modes[-1] == 6 and (np.diff(modes) >= 0).all()
