"""Monotonic alignment search (Glow-TTS, compiled with numba) and the beta-binomial diagonal prior
(RAD-TTS).

>>> import numpy as np
>>> score = np.full((2, 4), -10.0, np.float32); score[0, :1] = 0; score[1, 1:] = 0
>>> maximum_path(score[None], np.array([2]), np.array([4]))[0].astype(int).tolist()
[[1, 0, 0, 0], [0, 1, 1, 1]]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _compiled_maximum_path_one():
    """:func:`_maximum_path_one` compiled by numba, imported on first use (not by synthesis: seconds)."""
    import numba

    return numba.njit(cache=True)(_maximum_path_one)


def _maximum_path_one(score: np.ndarray, path: np.ndarray, n_symbols: int, n_frames: int) -> None:
    # best[i] after frame j: best total score of a path through frames 0..j ending at symbol i.
    best = np.full(n_symbols, -np.inf)
    came_from_previous = np.zeros((n_symbols, n_frames), dtype=np.bool_)
    best[0] = score[0, 0]
    for j in range(1, n_frames):
        low = max(0, n_symbols - (n_frames - j))  # symbols still left must fit in the frames left
        high = min(n_symbols - 1, j)
        for i in range(high, low - 1, -1):  # downwards, so best[i - 1] is still frame j - 1's
            stay = best[i]
            move = best[i - 1] if i > 0 else -np.inf
            if move > stay:
                best[i] = move + score[i, j]
                came_from_previous[i, j] = True
            else:
                best[i] = stay + score[i, j]
        if low > 0:
            best[low - 1] = -np.inf
    i = n_symbols - 1
    for j in range(n_frames - 1, -1, -1):
        path[i, j] = 1.0
        if j > 0 and came_from_previous[i, j]:
            i -= 1


def maximum_path(score: np.ndarray, symbol_lengths: np.ndarray, frame_lengths: np.ndarray) -> np.ndarray:
    """Best monotonic hard alignment ``(B, S, T)`` (0/1 float32) of ``score`` ``(B, S, T)``; every valid
    symbol gets at least one frame, so an item needs at least as many frames as symbols."""
    score = np.ascontiguousarray(score, dtype=np.float32)
    path = np.zeros(score.shape, dtype=np.float32)
    for b in range(score.shape[0]):
        n_symbols, n_frames = int(symbol_lengths[b]), int(frame_lengths[b])
        if n_frames < n_symbols:
            raise ValueError(f"item {b} has {n_symbols} symbols but only {n_frames} frames to align them to")
        _compiled_maximum_path_one()(score[b], path[b], n_symbols, n_frames)
    return path


@lru_cache(maxsize=256)  # a few MB each at most; batches repeat lengths often enough
def beta_binomial_log_prior(n_symbols: int, n_frames: int, scaling: float = 1.0) -> np.ndarray:
    """``(n_symbols, n_frames)`` log-probability favouring the diagonal.

    >>> prior = beta_binomial_log_prior(3, 6)
    >>> prior.shape, [int(i) for i in prior.argmax(axis=0)]
    ((3, 6), [0, 0, 1, 1, 2, 2])
    """
    from scipy.special import betaln, gammaln  # training only: kept off the synthesis import path

    k = np.arange(n_symbols)[:, None]  # (S, 1)
    t = np.arange(1, n_frames + 1)[None, :]  # (1, T)
    a, b = scaling * t, scaling * (n_frames + 1 - t)
    n = n_symbols - 1
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    prior = log_choose + betaln(k + a, n - k + b) - betaln(a, b)
    prior.setflags(write=False)
    return prior.astype(np.float32)
