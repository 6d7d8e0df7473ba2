"""resampy's ``kaiser_best`` resampler (what ``librosa.resample(res_type="kaiser_best")`` runs) in NumPy.

Bit-identical to librosa + resampy: the same filter table (read from resampy's package data), the same
float64 arithmetic and the same per-tap accumulation into the output dtype, only vectorised across
output samples instead of compiled with numba. It exists for the start-up time: importing
``librosa.core.audio`` (scipy.signal, numba) and compiling resampy's kernel cost about 2 s of CPU,
more than resampling a reference of a minute. Longer inputs, where numba's loop wins, still go
through librosa (:data:`MAX_NUMPY_WORK`).

>>> x = np.sin(np.arange(22050) / 10).astype(np.float32)
>>> kaiser_best_resample(x, 22050, 16000).shape
(16000,)
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

# Output samples × filter taps above which numba's compiled loop (plus ~2 s of importing and compiling)
# beats the vectorised one: about a minute of 44.1 kHz audio.
MAX_NUMPY_WORK = 3e8
_CHUNK = 16384  # output samples per pass: keeps the working arrays in cache


def resampy_available() -> bool:
    return importlib.util.find_spec("resampy") is not None


@lru_cache(maxsize=1)
def kaiser_best_filter() -> tuple[np.ndarray, int]:
    """resampy's ``kaiser_best`` half window and table precision, read without importing resampy (numba)."""
    spec = importlib.util.find_spec("resampy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("resampy is not installed")
    data = np.load(Path(next(iter(spec.submodule_search_locations))) / "data" / "kaiser_best.npz")
    return data["half_window"], int(data["precision"])


def kaiser_best_work(n_in: int, source_rate: int, target_rate: int) -> float:
    """Output samples × taps of one resampling: the cost of :func:`kaiser_best_resample`."""
    half_window, precision = kaiser_best_filter()
    scale = min(1.0, float(target_rate) / source_rate)
    return n_in * float(target_rate) / source_rate * 2 * len(half_window) / max(1, int(scale * precision))


def kaiser_best_resample(x: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """``librosa.resample(x, orig_sr=source_rate, target_sr=target_rate, res_type="kaiser_best")`` of a
    1-D floating-point signal, same dtype, same values."""
    x = np.asarray(x)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected a 1-D floating-point waveform, not {x.dtype} of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("Audio buffer is not finite everywhere")
    if source_rate == target_rate:
        return x
    sample_ratio = float(target_rate) / source_rate
    n_out = int(x.shape[0] * float(target_rate) / float(source_rate))
    if n_out < 1:
        raise ValueError(f"Input signal length={x.shape[0]} is too small to resample from "
                         f"{source_rate}->{target_rate}")
    interp_win, num_table = kaiser_best_filter()
    if sample_ratio < 1:
        interp_win = sample_ratio * interp_win
    interp_delta = np.diff(interp_win, append=interp_win[-1])
    scale = min(1.0, sample_ratio)
    index_step = int(scale * num_table)
    n_win, n_orig = interp_win.shape[0], x.shape[0]
    t_out = np.arange(n_out) * (1.0 / sample_ratio)
    y = np.zeros(n_out, dtype=x.dtype)
    for begin in range(0, n_out, _CHUNK):
        t = t_out[begin : begin + _CHUNK]
        out = y[begin : begin + _CHUNK]
        n = t.astype(np.int64)  # int(): t >= 0
        # Left wing (x[n], x[n-1], ...), then right wing (x[n+1], ...), in resampy's order.
        frac = scale * (t - n)
        _accumulate(out, x, n, frac * num_table, interp_win, interp_delta,
                    index_step, n_win, -1, n + 1)
        frac = scale - frac
        _accumulate(out, x, n + 1, frac * num_table, interp_win, interp_delta,
                    index_step, n_win, 1, n_orig - n - 1)
    # librosa's fix_length: pad with zeros (or cut) to ceil(len · ratio).
    n_samples = int(np.ceil(x.shape[0] * sample_ratio))
    if n_samples > n_out:
        y = np.concatenate([y, np.zeros(n_samples - n_out, dtype=y.dtype)])
    return y[:n_samples]


def _accumulate(out, x, first, index_frac, interp_win, interp_delta, index_step, n_win, direction, limit) -> None:
    """``out[t] += w_i(t) · x[first[t] + direction · i]`` for ``i < min(limit, taps(t))``, one tap at a
    time, each sum rounded to ``out``'s dtype as resampy's loop does."""
    offset = index_frac.astype(np.int64)
    eta = index_frac - offset
    count = np.minimum(limit, (n_win - offset) // index_step)
    for i in range(int(count.max(initial=0))):
        active = i < count
        if active.all():
            idx = offset + i * index_step
            weight = interp_win[idx] + eta * interp_delta[idx]
            out[:] = out + weight * x[first + direction * i]
        else:
            where = np.flatnonzero(active)
            idx = offset[where] + i * index_step
            weight = interp_win[idx] + eta[where] * interp_delta[idx]
            out[where] = out[where] + weight * x[first[where] + direction * i]
