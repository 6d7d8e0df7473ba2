"""GE2E training loss and the equal error rate (EER) of a similarity matrix.

:func:`similarity_eer` is RTVC's verification metric, solved exactly on the piecewise-linear ROC
curve instead of with scikit-learn and a root finder (same number).

>>> labels = np.array([1, 1, 0, 0])
>>> equal_error_rate(labels, np.array([0.9, 0.8, 0.3, 0.1]))  # perfectly separated
0.0
>>> equal_error_rate(labels, np.array([0.9, 0.2, 0.5, 0.1]))  # one target below one non-target
0.5
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F


def ge2e_targets(n_speakers: int, n_utterances: int, device: torch.device | str | None = None) -> Tensor:
    """Own-speaker index of each row of the flattened ``(N·M, N)`` similarity matrix.

    >>> ge2e_targets(2, 3).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    return torch.arange(n_speakers, device=device).repeat_interleave(n_utterances)


def ge2e_softmax_loss(similarity: Tensor) -> Tensor:
    """Softmax GE2E loss of ``(N, M, N)`` scaled similarities; ``log N`` when all are equal.

    >>> round(ge2e_softmax_loss(torch.zeros(4, 3, 4)).item(), 4) == round(float(np.log(4)), 4)
    True
    """
    n_speakers, n_utterances, n_centroids = similarity.shape
    if n_centroids != n_speakers:
        raise ValueError(f"expected an (N, M, N) similarity matrix, got {tuple(similarity.shape)}")
    rows = similarity.reshape(n_speakers * n_utterances, n_speakers)  # (N·M, N)
    return F.cross_entropy(rows, ge2e_targets(n_speakers, n_utterances, similarity.device))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of binary ``labels`` against ``scores``, one point per distinct threshold; tied
    scores make a diagonal step.

    >>> fpr, tpr = roc_points(np.array([1, 0, 1, 0]), np.array([0.9, 0.7, 0.5, 0.1]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    n_positive = int(labels.sum())
    n_negative = labels.size - n_positive
    if n_positive == 0 or n_negative == 0:
        raise ValueError("the EER needs both target and non-target trials")
    if not np.isfinite(scores).all():
        raise ValueError("the scores contain NaN or infinite values")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_positives = np.cumsum(sorted_labels)
    false_positives = np.cumsum(~sorted_labels)
    # Keep the last position of every run of equal scores: a threshold accepts all of a tie or none.
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), scores.size - 1]
    tpr = np.r_[0.0, true_positives[last_of_tie] / n_positive]
    fpr = np.r_[0.0, false_positives[last_of_tie] / n_negative]
    return fpr, tpr


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """False-positive rate where the piecewise-linear ROC curve meets ``FPR = 1 − TPR``: what RTVC's
    ``brentq`` over ``interp1d(fpr, tpr)`` converges to.

    >>> equal_error_rate(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9]))  # all wrong
    1.0
    """
    fpr, tpr = roc_points(labels, scores)
    gap = 1.0 - fpr - tpr  # (P,) decreasing from 1 to -1
    crossing = int(np.flatnonzero(gap <= 0)[0])  # first point at or past the anti-diagonal
    if gap[crossing] == 0 or crossing == 0:
        return float(fpr[crossing])
    x0, x1 = fpr[crossing - 1], fpr[crossing]
    g0, g1 = gap[crossing - 1], gap[crossing]
    if x1 == x0:  # vertical segment: the curve jumps across the line at x0
        return float(x0)
    return float(x0 + (x1 - x0) * g0 / (g0 - g1))


def similarity_eer(similarity: Tensor | np.ndarray) -> float:
    """EER of a GE2E ``(N, M, N)`` similarity matrix, each entry a trial (RTVC's training metric).

    >>> sim = np.zeros((2, 2, 2)); sim[0, :, 0] = sim[1, :, 1] = 1.0  # own centroid always wins
    >>> similarity_eer(sim)
    0.0
    """
    if isinstance(similarity, Tensor):
        similarity = similarity.detach().float().cpu().numpy()
    similarity = np.asarray(similarity)
    if similarity.ndim != 3 or similarity.shape[2] != similarity.shape[0]:
        raise ValueError(f"expected an (N, M, N) similarity matrix, got {similarity.shape}")
    n_speakers = similarity.shape[0]
    labels = np.broadcast_to(np.eye(n_speakers, dtype=bool)[:, None, :], similarity.shape)  # (N, M, N)
    return equal_error_rate(labels, similarity)
