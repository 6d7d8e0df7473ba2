"""Read any audio file as mono float32 at a chosen rate, check it, and write outputs atomically.

Problems are one-sentence :class:`AudioError` s; usable oddities (clipping, a low rate) are
:class:`AudioWarning` s. Formats soundfile cannot read go through ffmpeg.

>>> import numpy as np, tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "tone.wav"
>>> t = np.arange(16000) / 16000
>>> _ = save_audio(path, 0.5 * np.sin(2 * np.pi * 440 * t), 16000)
>>> wav = load_audio(path, 16000)
>>> wav.dtype, wav.shape
(dtype('float32'), (16000,))
"""

from __future__ import annotations

import errno
import importlib.util
import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import soundfile

from utils.atomic_write import atomic_write
from utils.errors import REASON_LIMIT, UserError, one_line
from utils.signal_contract import SAMPLE_RATE

WRITABLE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
# Past this a "reference" is a recording session, not a voice sample; refuse it instead of
# silently using minutes of memory and time.
DEFAULT_MAX_SECONDS = 600.0
SILENCE_PEAK = 1e-4
CLIPPING_LEVEL = 0.999
CLIPPING_FRACTION = 0.01


class AudioError(UserError, ValueError):
    """An audio file cannot be used; the message is one sentence naming the file."""


class AudioWarning(UserWarning):
    """An audio file can be used but something about it will hurt quality."""


def _read_with_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    info = soundfile.info(str(path))
    if max_seconds is not None and info.frames > max_seconds * info.samplerate:
        raise AudioError(
            f"'{path}' lasts {info.frames / info.samplerate:.0f} s; the limit is {max_seconds:.0f} s: "
            "cut a shorter excerpt."
        )
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)  # (samples,) mono


def _read_with_audioread(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    # Deferred import: librosa is slow to import and only formats libsndfile lacks need it.
    import librosa

    if path.suffix.lower() in (".m4a", ".aac", ".mp3", ".wma", ".opus") and shutil.which("ffmpeg") is None:
        raise AudioError(
            f"Cannot decode '{path}': reading {path.suffix} files needs ffmpeg "
            "(Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg), or convert it to WAV/FLAC."
        )
    # Decode a little past the limit: librosa's ``duration`` silently truncates, so a longer file is
    # only recognisable by coming back longer than the limit.
    duration = None if max_seconds is None else max_seconds + 1.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's "PySoundFile failed" FutureWarning is noise here
            wav, rate = librosa.load(str(path), sr=None, mono=True, duration=duration)
    # Any exception: audioread raises many unrelated types (NoBackendError, EOFError, ...).
    except Exception as error:  # noqa: BLE001
        if type(error).__name__ == "NoBackendError":
            if shutil.which("ffmpeg") is not None:
                # ffmpeg is there and could not open it either: the file is the problem, not the setup.
                raise AudioError(
                    f"Cannot read '{path}': it is damaged or not in an audio format that soundfile or "
                    "ffmpeg can decode."
                ) from None
            raise AudioError(
                f"Cannot decode '{path}': no audio backend can read {path.suffix or 'this'} files; "
                "install ffmpeg (apt-get install ffmpeg) or convert it to WAV/FLAC."
            ) from None
        raise AudioError(f"Cannot read '{path}' as audio ({one_line(error, REASON_LIMIT)}).") from None
    if max_seconds is not None and len(wav) > max_seconds * rate:
        raise AudioError(
            f"'{path}' lasts more than {max_seconds:.0f} s, the limit: cut a shorter excerpt."
        )
    return np.asarray(wav, dtype=np.float32), int(rate)


def resample(wav: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample with resampy's ``kaiser_best`` filter, RTVC's (soxr when resampy is missing).

    The resampler matters: with soxr the pretrained encoder's embeddings of a file move by up to ~3e-3
    cosine through changed voice-activity decisions."""
    if source_rate == target_rate:
        return wav.astype(np.float32, copy=False)
    from utils import resampling

    wav = np.asarray(wav)
    if (resampling.resampy_available() and wav.ndim == 1 and np.issubdtype(wav.dtype, np.floating)
            and np.all(np.isfinite(wav))
            and resampling.kaiser_best_work(len(wav), source_rate, target_rate) <= resampling.MAX_NUMPY_WORK):
        # The same numbers without importing librosa and compiling resampy's kernel (~2 s of CPU).
        return resampling.kaiser_best_resample(wav, source_rate, target_rate).astype(np.float32)
    import librosa

    res_type = "kaiser_best" if importlib.util.find_spec("resampy") is not None else "soxr_hq"
    return librosa.resample(wav, orig_sr=source_rate, target_sr=target_rate, res_type=res_type).astype(np.float32)


def check_waveform(wav: np.ndarray, name: str, sample_rate: int, min_seconds: float = 0.0) -> np.ndarray:
    """Reject empty, non-finite, silent or too-short audio, warn about clipping; the float32 1-D waveform."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise AudioError(f"{name} must be a 1-D mono waveform, not shape {wav.shape}.")
    if wav.size == 0:
        raise AudioError(f"{name} contains no audio samples (it is empty).")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{name} contains NaN or infinite samples; the file is corrupt.")
    peak = float(np.max(np.abs(wav)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"{name} is silent (peak level {20 * np.log10(max(peak, 1e-12)):.0f} dBFS).")
    if wav.size < min_seconds * sample_rate:
        raise AudioError(f"{name} lasts {wav.size / sample_rate:.2f} s; at least {min_seconds:g} s are needed.")
    clipped = float(np.mean(np.abs(wav) >= CLIPPING_LEVEL * max(peak, 1.0)))
    if clipped > CLIPPING_FRACTION:
        warnings.warn(
            f"{name} is clipped ({100 * clipped:.1f} % of samples at full scale); the voice may be copied badly.",
            AudioWarning,
            stacklevel=2,
        )
    return wav


def load_audio(
    path: str | Path,
    sample_rate: int | None = SAMPLE_RATE,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    check: bool = True,
) -> np.ndarray:
    """A mono float32 waveform at ``sample_rate`` (``None``: the file's own); files longer than
    ``max_seconds`` are refused; ``check`` applies :func:`check_waveform`."""
    wav, _ = load_audio_with_rate(path, sample_rate, max_seconds=max_seconds, check=check)
    return wav


def load_audio_with_rate(
    path: str | Path,
    sample_rate: int | None = SAMPLE_RATE,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    check: bool = True,
) -> tuple[np.ndarray, int]:
    """Like :func:`load_audio` but also returns the rate of the returned waveform."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"The audio file '{path}' does not exist.")
    if path.is_dir():
        raise AudioError(f"'{path}' is a folder, not an audio file.")
    if path.stat().st_size == 0:
        raise AudioError(f"The audio file '{path}' is empty (0 bytes).")
    try:
        wav, rate = _read_with_soundfile(path, max_seconds)
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        wav, rate = _read_with_audioread(path, max_seconds)
    except MemoryError:
        raise AudioError(f"'{path}' is too large to load into memory.") from None
    if check:
        check_waveform(wav, f"The audio file '{path}'", rate)
        if sample_rate is not None and rate < sample_rate:
            warnings.warn(
                f"'{path}' is sampled at {rate} Hz, below {sample_rate} Hz: it is upsampled, "
                "and the missing high frequencies limit the quality.",
                AudioWarning,
                stacklevel=2,
            )
    if sample_rate is not None and rate != sample_rate:
        wav, rate = resample(wav, rate, sample_rate), sample_rate
    return wav, rate


def save_audio(path: str | Path, wav: np.ndarray, sample_rate: int, *, subtype: str | None = None) -> Path:
    """Write a waveform atomically as WAV, FLAC or OGG (by suffix), clipped to [-1, 1]."""
    path = Path(path)
    file_format = WRITABLE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise AudioError(
            f"Cannot write '{path}': use one of {', '.join(sorted(WRITABLE_FORMATS))} as the file extension."
        )
    if not path.parent.exists():
        raise AudioError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")
    data = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    if subtype is None:
        subtype = "PCM_16" if file_format in ("WAV", "FLAC") else None
    # Encode in memory first: soundfile reports write errors of file objects through cffi callbacks
    # as printed tracebacks, whereas a plain write of the finished bytes raises a clean OSError.
    buffer = io.BytesIO()
    soundfile.write(buffer, data, sample_rate, format=file_format, subtype=subtype)
    try:
        with atomic_write(path) as stream:
            stream.write(buffer.getbuffer())
    except OSError as error:
        if getattr(error, "errno", None) == errno.ENOSPC:
            raise AudioError(f"Cannot write '{path}': the disk is full.") from None
        raise AudioError(f"Cannot write '{path}' ({one_line(error, REASON_LIMIT)}).") from None
    return path
