"""Fundamental frequency (F0) of training speech, one value per mel frame (YIN, vectorised).

The duration synthesizer's variance adaptor learns per-phoneme pitch from these contours.
``python -m synthesizer.duration.pitch <syn_dir>`` writes ``f0/f0-<name>.npy`` (``(T,)`` float32, Hz,
0 where unvoiced) beside the preprocessed mels, one per ``train.txt`` line, skipping those that exist.

Examples
--------
>>> t = np.arange(16000) / 16000
>>> f0 = estimate_f0(np.sin(2 * np.pi * 220 * t).astype(np.float32), 16000, 200, 81)
>>> f0.shape, round(float(np.median(f0[5:-5])))
((81,), 220)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from synthesizer.metadata import AUDIO_FOLDER, TrainEntry, read_train_txt
from utils.atomic_write import atomic_write
from utils.errors import UserError, one_line
from utils.parallel import parallel_map

PITCH_FOLDER = "f0"
F0_MIN_HZ = 55.0
F0_MAX_HZ = 600.0
# Below this cumulative-mean-normalised difference a lag counts as a period (YIN's absolute threshold).
YIN_THRESHOLD = 0.25
# Frames this far below the loudest frame are silence, whatever their periodicity.
SILENCE_DB = -45.0
FRAME_LENGTH = 1024  # 64 ms at 16 kHz: two periods of the lowest F0 fit in the integration window
# Mains hum (50/60 Hz, seen in LibriSpeech recordings) is periodic too: with it, YIN finds a period of
# the hum and the voice together, an octave or more below the voice. Speech keeps its harmonics above.
HUM_CUTOFF_HZ = 75.0


def pitch_file_name(mel_name: str) -> str:
    """``mel-<b>.npy`` → ``f0-<b>.npy``."""
    return "f0-" + mel_name.removeprefix("mel-")


def _frames(wav: np.ndarray, hop: int, n_frames: int, frame_length: int) -> np.ndarray:
    """``(n_frames, frame_length)`` frames centred on ``t · hop``, as the mel's STFT frames are."""
    needed = (n_frames - 1) * hop + frame_length
    padded = np.zeros(max(needed, len(wav) + frame_length), np.float32)
    padded[frame_length // 2 : frame_length // 2 + len(wav)] = wav
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame_length)
    return windows[::hop][:n_frames]


def estimate_f0(wav: np.ndarray, sample_rate: int, hop: int, n_frames: int) -> np.ndarray:
    """F0 in Hz per frame ``(n_frames,)`` float32, 0 for unvoiced or silent frames (de Cheveigné & Kawahara's YIN)."""
    frame_length = FRAME_LENGTH * sample_rate // 16000
    window = frame_length // 2
    tau_min = int(sample_rate / F0_MAX_HZ)
    tau_max = min(int(np.ceil(sample_rate / F0_MIN_HZ)), frame_length - window)
    from scipy.signal import butter, sosfiltfilt

    wav = np.asarray(wav, np.float32)
    if len(wav) > 30:
        wav = sosfiltfilt(butter(8, HUM_CUTOFF_HZ, "highpass", fs=sample_rate, output="sos"), wav).astype(np.float32)
    frames = _frames(wav, hop, n_frames, frame_length).astype(np.float64)  # (T, L)
    n_fft = 2 * frame_length
    # d(τ) = Σ_j (x_j − x_{j+τ})² over the first `window` samples = E_0 + E_τ − 2 r(τ)
    spectrum = np.fft.rfft(frames, n_fft)
    head = np.fft.rfft(frames[:, :window], n_fft)
    cross = np.fft.irfft(np.conj(head) * spectrum, n_fft)[:, : tau_max + 1]  # (T, τ)
    energy = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)  # (T, L + 1)
    e0 = energy[:, window][:, None]
    lags = np.arange(tau_max + 1)
    e_tau = energy[:, lags + window] - energy[:, lags]
    difference = np.maximum(e0 + e_tau - 2 * cross, 0.0)
    cumulative = np.cumsum(difference[:, 1:], axis=1)
    cmnd = np.ones_like(difference)
    cmnd[:, 1:] = difference[:, 1:] * lags[1:] / np.maximum(cumulative, 1e-12)
    search = cmnd[:, tau_min:]
    below = search < YIN_THRESHOLD
    # The first dip under the threshold, followed to its local minimum; else no period.
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    tau = np.zeros(len(frames), np.float64)
    voiced = first >= 0
    for row in np.flatnonzero(voiced):
        k = first[row]
        while k + 1 < search.shape[1] and search[row, k + 1] < search[row, k]:
            k += 1
        # Parabolic interpolation of the minimum
        if 0 < k < search.shape[1] - 1:
            a, b, c = search[row, k - 1], search[row, k], search[row, k + 1]
            denominator = a - 2 * b + c
            offset = 0.5 * (a - c) / denominator if denominator > 0 else 0.0
        else:
            offset = 0.0
        tau[row] = k + tau_min + offset
    level = 10 * np.log10(np.maximum(e0[:, 0], 1e-12))
    voiced &= level > level.max() + SILENCE_DB
    voiced &= tau > 0
    f0 = np.where(voiced, sample_rate / np.maximum(tau, 1e-6), 0.0)
    return np.where((f0 >= F0_MIN_HZ) & (f0 <= F0_MAX_HZ), f0, 0.0).astype(np.float32)


def continuous_log_f0(f0: np.ndarray, fallback_hz: float = 150.0) -> np.ndarray:
    """log F0 with unvoiced frames filled by linear interpolation (edges held), ``(T,)`` float32.

    >>> np.round(np.exp(continuous_log_f0(np.array([0, 100, 0, 400, 0], np.float32))), 1).tolist()
    [100.0, 100.0, 200.0, 400.0, 400.0]
    """
    voiced = f0 > 0
    if not voiced.any():
        return np.full(len(f0), np.log(fallback_hz), np.float32)
    positions = np.arange(len(f0))
    return np.interp(positions, positions[voiced], np.log(f0[voiced])).astype(np.float32)


def _write_pitch(entry: TrainEntry, *, syn_dir: Path, sample_rate: int, hop: int) -> None:
    out = syn_dir / PITCH_FOLDER / pitch_file_name(entry.mel_name)
    if out.exists():
        return
    wav = np.load(syn_dir / AUDIO_FOLDER / entry.audio_name)
    f0 = estimate_f0(wav, sample_rate, hop, entry.n_frames)
    with atomic_write(out) as stream:
        np.save(stream, f0)


def write_pitch_files(syn_dir: Path, n_processes: int = 1) -> int:
    """Write the missing F0 files of ``syn_dir``; returns how many lines ``train.txt`` has."""
    from utils.signal_contract import SIGNAL

    entries = read_train_txt(syn_dir / "train.txt")
    (syn_dir / PITCH_FOLDER).mkdir(exist_ok=True)
    job = partial(_write_pitch, syn_dir=syn_dir, sample_rate=SIGNAL.sample_rate, hop=SIGNAL.hop_size)
    failures = [result for result in parallel_map(job, entries, n_processes, "F0", unit="utterance")
                if result.error is not None]
    if failures:
        raise UserError(f"{len(failures)} of {len(entries)} F0 contours failed, first "
                        f"'{failures[0].item.audio_name}': {failures[0].error}")
    return len(entries)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthesizer.duration.pitch",
                                     description="Write the F0 contour of every preprocessed utterance.")
    parser.add_argument("syn_dir", type=Path, help="The synthesizer data folder (train.txt, audio/).")
    parser.add_argument("-n", "--n_processes", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if not (args.syn_dir / "train.txt").is_file():
            raise UserError(f"'{args.syn_dir}' has no train.txt: run `python -m synthesizer.preprocess` first.")
        count = write_pitch_files(args.syn_dir, max(1, args.n_processes))
    except (UserError, OSError, ValueError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    print(f"F0 contours of {count} utterances in '{args.syn_dir / PITCH_FOLDER}'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
