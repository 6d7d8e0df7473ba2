"""Audio playback and recording for the toolbox and CLI; every device problem becomes one sentence.

Why it is built this way: docs/design.md.

>>> ok, reason = AudioDevices().available()
>>> isinstance(ok, bool) and isinstance(reason, str)
True
>>> round(level_dbfs(np.sin(2 * np.pi * np.arange(1600) / 16)), 2)
-3.01
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from utils.audio_io import resample
from utils.errors import REASON_LIMIT, UserError, one_line
from utils.signal_contract import SAMPLE_RATE

DEFAULT_SAMPLE_RATE = SAMPLE_RATE
SILENCE_DBFS = -120.0  # level reported for digital silence instead of -inf
NO_OUTPUT = "No audio output device was found: playback is disabled."
NO_INPUT = "No audio input device was found: recording is disabled."
NO_DEVICE = "No audio device was found: recording and playback are disabled."
NO_PORTAUDIO = (
    "PortAudio is not installed (Debian: apt-get install libportaudio2; macOS: brew install portaudio): "
    "recording and playback are disabled."
)
NO_SOUNDDEVICE = (
    "The sounddevice package (the Python bindings of PortAudio) cannot be imported "
    "(pip install sounddevice; Debian: apt-get install libportaudio2): recording and playback are disabled."
)


class AudioUnavailable(UserError, RuntimeError):
    """Audio cannot be played or recorded; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device.

    >>> AudioDevice(3, "USB headset", 1, 2, 48000.0).name
    'USB headset'
    """

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float


def level_dbfs(block: np.ndarray) -> float:
    """RMS level of ``block`` in dBFS; digital silence gives :data:`SILENCE_DBFS`, not ``-inf``.

    >>> round(level_dbfs(np.full(100, 0.5, dtype=np.float32)), 2)
    -6.02
    >>> level_dbfs(np.zeros(10))
    -120.0
    """
    samples = np.asarray(block, dtype=np.float64)
    if samples.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(samples**2)))
    return max(SILENCE_DBFS, float(20.0 * np.log10(rms))) if rms > 0 else SILENCE_DBFS


class AudioDevices:
    """The sound system as the toolbox sees it: devices accepting ``sample_rate``, a selection, playback.

    >>> devices = AudioDevices()
    >>> ok, reason = devices.available()
    >>> if not ok:  # e.g. a headless machine: playback raises a one-line AudioUnavailable
    ...     try:
    ...         devices.play(np.zeros(160, dtype=np.float32), 16000)
    ...     except AudioUnavailable as error:
    ...         print("disabled" in str(error))
    ... else:
    ...     print(True)
    True
    """

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate
        self._input: int | None = None
        self._output: int | None = None
        self._player: StreamingPlayer | None = None
        self._module: ModuleType | None = None
        # A failed import is remembered: retrying runs ctypes' library search (a subprocess) each time.
        self._import_error: AudioUnavailable | None = None

    # -- discovery --------------------------------------------------------------------------------
    def _sounddevice(self) -> ModuleType:
        if self._module is None:
            if self._import_error is not None:
                raise self._import_error
            try:
                self._module = import_sounddevice()
            except AudioUnavailable as error:
                self._import_error = error
                raise
        return self._module

    def devices(self) -> list[AudioDevice]:
        """Every device PortAudio reports; ``[]`` when PortAudio is unavailable."""
        try:
            sd = self._sounddevice()
            infos = sd.query_devices()
        except Exception:  # noqa: BLE001 - AudioUnavailable, or PortAudioError from a sound server going away
            return []
        return [_device_from_info(index, info) for index, info in enumerate(infos)]

    def available(self) -> tuple[bool, str]:
        """``(works, reason)``: ``(False, reason)`` without PortAudio or any device; ``(True, note)`` when
        only playback or recording works; ``(True, "")`` otherwise."""
        try:
            self._sounddevice()
        except AudioUnavailable as error:
            return False, str(error)
        can_record = bool(self.inputs(None))
        can_play = bool(self.outputs(None))
        if not can_record and not can_play:
            return False, NO_DEVICE
        if not can_play:
            return True, NO_OUTPUT
        if not can_record:
            return True, NO_INPUT
        return True, ""

    def inputs(self, sample_rate: int | None = DEFAULT_SAMPLE_RATE) -> list[AudioDevice]:
        """Input devices that accept mono ``sample_rate`` audio (any rate when ``None``)."""
        return self._usable("input", sample_rate)

    def outputs(self, sample_rate: int | None = DEFAULT_SAMPLE_RATE) -> list[AudioDevice]:
        return self._usable("output", sample_rate)

    def _usable(self, kind: str, sample_rate: int | None) -> list[AudioDevice]:
        devices = [d for d in self.devices() if _channels(d, kind) > 0]
        if sample_rate is None or not devices:
            return devices
        sd = self._sounddevice()
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        usable = []
        for device in devices:
            try:
                check(device=device.index, channels=1, dtype="float32", samplerate=sample_rate)
            except Exception:  # noqa: BLE001, S112 - PortAudioError (rate/channels), ValueError (odd device)
                continue
            usable.append(device)
        return usable

    def default_input(self) -> AudioDevice | None:
        """The system's default input if it can record, else the first usable input, else ``None``."""
        return self._default("input")

    def default_output(self) -> AudioDevice | None:
        """The system's default output if it can play, else the first usable output, else ``None``."""
        return self._default("output")

    def _default(self, kind: str) -> AudioDevice | None:
        candidates = self._usable(kind, None)
        if not candidates:
            return None
        try:
            pair = self._sounddevice().default.device
            system_default = int(pair[0] if kind == "input" else pair[1])
        except Exception:  # noqa: BLE001
            system_default = -1
        for device in candidates:
            if device.index == system_default:
                return device
        at_rate = self._usable(kind, self.sample_rate)
        return (at_rate or candidates)[0]

    # -- selection --------------------------------------------------------------------------------
    def set_input(self, index: int | None) -> None:
        """Record from ``index`` (``None``: the default input); :class:`AudioUnavailable` if it is no input."""
        self._input = self._validated(index, "input")

    def set_output(self, index: int | None) -> None:
        """Play on ``index`` (``None``: the default output); :class:`AudioUnavailable` if it is no output."""
        self._output = self._validated(index, "output")

    def _validated(self, index: int | None, kind: str) -> int | None:
        if index is None:
            return None
        self._sounddevice()
        candidates = self._usable(kind, None)
        if not candidates:
            raise AudioUnavailable(NO_INPUT if kind == "input" else NO_OUTPUT)
        if all(device.index != index for device in candidates):
            raise AudioUnavailable(
                f"Audio device {index} is not an {kind} device (or was unplugged): choose another one."
            )
        return int(index)

    @property
    def input_device(self) -> AudioDevice | None:
        return self._selected(self._input, "input")

    @property
    def output_device(self) -> AudioDevice | None:
        return self._selected(self._output, "output")

    def _selected(self, index: int | None, kind: str) -> AudioDevice | None:
        if index is not None:
            for device in self._usable(kind, None):
                if device.index == index:
                    return device
        return self._default(kind)

    def recorder(self) -> Recorder:
        """A :class:`Recorder` on the selected input device (:class:`AudioUnavailable` without one)."""
        self._sounddevice()
        device = self.input_device
        if device is None:
            raise AudioUnavailable(NO_INPUT)
        return Recorder(device.index)

    def streaming_player(self) -> StreamingPlayer:
        """A :class:`StreamingPlayer` on the selected output, stopping any current playback."""
        self._sounddevice()
        device = self.output_device
        if device is None:
            raise AudioUnavailable(NO_OUTPUT)
        self.stop()
        self._player = StreamingPlayer(device.index)
        return self._player

    # -- playback ---------------------------------------------------------------------------------
    def play(self, wav: np.ndarray, sample_rate: int, blocking: bool = False) -> None:
        """Play ``wav`` (channels averaged) on the selected output, stopping whatever was playing.

        A device that refuses ``sample_rate`` gets resampled audio; ``blocking`` waits for the end (at most the
        duration plus 2 s). :class:`AudioUnavailable` without PortAudio or an output, or when it fails to open."""
        samples = _as_mono(wav)
        player = self.streaming_player()
        sd = self._sounddevice()
        _, rate, _ = negotiate(sd, player.device, "output", sample_rate)
        if rate != sample_rate:
            # One whole-signal resampling sounds better than the streaming player's per-chunk one.
            samples = resample(samples, sample_rate, rate)
        player.push(samples)
        player.finish()
        player.start(rate)
        if blocking and not player.wait(len(samples) / rate + 2.0):
            player.stop()

    def stop(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None

    def is_playing(self) -> bool:
        """Whether audio started by :meth:`play` or :meth:`streaming_player` is still playing."""
        if self._player is None:
            return False
        if self._player.is_active:
            return True
        self._player.wait(0)  # releases a stream that ended on its own
        return False


class StreamingPlayer:
    """Play audio while it is still being produced: :meth:`push` queues chunks, the PortAudio callback
    plays silence while the queue is empty, until :meth:`finish`. ``device=None`` is the default output.

    >>> player = StreamingPlayer()
    >>> player.push(np.ones(3, dtype=np.float32)); player.finish()
    >>> out = np.full((5, 1), 9.0, dtype=np.float32)
    >>> player._fill(out, 5), out[:, 0].tolist()
    (True, [1.0, 1.0, 1.0, 0.0, 0.0])
    """

    def __init__(self, device: int | None = None, latency: str | float = "high") -> None:
        self.device = device
        self.latency = latency
        self.sample_rate: int | None = None  # the stream's rate once started
        self.played_samples = 0  # samples of pushed audio delivered to the device (stream rate)
        self.underrun_frames = 0  # silence output while waiting for the producer
        self._queue: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._current = np.zeros(0, dtype=np.float32)
        self._offset = 0
        self._finishing = threading.Event()
        self._drained = threading.Event()
        self._done = threading.Event()
        self._stopped = False
        self._stream: Any = None
        self._resampler: _LinearResampler | None = None
        self._stop_signal: type[BaseException] = StopIteration

    def start(self, sample_rate: int) -> None:
        """Open the stream; :class:`AudioUnavailable` when the device fails, ``RuntimeError`` when started."""
        if self._stream is not None:
            raise RuntimeError("This StreamingPlayer has already been started.")
        sd = import_sounddevice()
        channels, rate, name = negotiate(sd, self.device, "output", sample_rate)
        if rate != sample_rate:
            self._resampler = _LinearResampler(sample_rate, rate)
            queued = _drain(self._queue)
            for chunk in queued:
                self._queue.put(self._resampler(chunk))
        self.sample_rate = rate
        self._stop_signal = sd.CallbackStop
        self._stream = _started(
            lambda: sd.OutputStream(samplerate=rate, device=self.device, channels=channels, dtype="float32",
                                    latency=self.latency, callback=self._callback, finished_callback=self._done.set),
            f"Cannot play on '{name}'", "choose another output device.")

    def push(self, chunk: np.ndarray) -> None:
        """Queue audio at the rate given to :meth:`start`; ignored after :meth:`stop`, refused after :meth:`finish`."""
        if self._stopped:
            return
        if self._finishing.is_set():
            raise RuntimeError("push() after finish(): start a new StreamingPlayer.")
        samples = _as_mono(chunk)
        if self._resampler is not None:
            samples = self._resampler(samples)
        self._queue.put(samples)

    def finish(self) -> None:
        """Declare the end of the audio: what is queued plays out, then the stream stops."""
        self._finishing.set()

    def stop(self) -> None:
        self._stopped = True
        self._finishing.set()
        self._close(abort=True)
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until playback has ended; ``True`` if it has (always ``True`` when never started)."""
        if self._stream is None:
            return True
        finished = self._done.wait(timeout)
        if finished:
            self._close(abort=False)
        return finished

    @property
    def is_active(self) -> bool:
        return self._stream is not None and not self._done.is_set()

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        if self._fill(outdata, frames):
            raise self._stop_signal

    def _fill(self, outdata: np.ndarray, frames: int) -> bool:
        """Fill ``outdata`` from the queue (zeros past its end); ``True`` once everything after :meth:`finish`
        (or :meth:`stop`) has been output."""
        out = outdata.reshape(len(outdata), -1)[:frames]
        if self._stopped:
            out[:] = 0
            return True
        written = 0
        exhausted = False
        while written < frames:
            if self._offset >= len(self._current):
                # Read the flag before polling: a push made before finish() is then already queued,
                # so an empty queue after a set flag really is the end.
                finishing = self._finishing.is_set()
                try:
                    self._current = self._queue.get_nowait()
                    self._offset = 0
                    continue
                except queue.Empty:
                    exhausted = finishing
                    break
            count = min(frames - written, len(self._current) - self._offset)
            out[written : written + count] = self._current[self._offset : self._offset + count, None]
            self._offset += count
            written += count
        out[written:] = 0
        self.played_samples += written
        if exhausted:
            self._drained.set()
            return True
        self.underrun_frames += frames - written
        return False

    def _close(self, abort: bool) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            if abort:
                stream.abort()
            stream.close()
        except Exception:  # noqa: BLE001, S110 - the device may already be gone; nothing is left to release then
            pass


class Recorder:
    """Record from an input device (``None``: the default) until :meth:`stop`, with a live level.

    >>> recorder = Recorder()
    >>> round(recorder._on_block(np.full((800, 1), 0.5, dtype=np.float32)), 2)
    -6.02
    >>> recorder.stop().shape, recorder.elapsed_seconds
    ((800,), 0.05)
    """

    def __init__(self, device: int | None = None) -> None:
        self.device = device
        self.level_callback_error: BaseException | None = None
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._stream: Any = None
        self._stream_rate = DEFAULT_SAMPLE_RATE
        self._target_rate = DEFAULT_SAMPLE_RATE
        self._level_callback: Callable[[float], None] | None = None

    def start(self, sample_rate: int = DEFAULT_SAMPLE_RATE, level_callback: Callable[[float], None] | None = None
              ) -> None:
        """Start a take at ``sample_rate`` (resampled if the device refuses it).

        ``level_callback`` gets each block's level in dBFS from the audio thread (about 20 times a second).
        :class:`AudioUnavailable` when the device fails, ``RuntimeError`` when already recording."""
        if self._stream is not None:
            raise RuntimeError("Already recording: call stop() first.")
        sd = import_sounddevice()
        channels, rate, name = negotiate(sd, self.device, "input", sample_rate)
        self._blocks = []
        self._frames = 0
        self._stream_rate = rate
        self._target_rate = sample_rate
        self._level_callback = level_callback
        self.level_callback_error = None
        self._stream = _started(
            lambda: sd.InputStream(samplerate=rate, device=self.device, channels=channels, dtype="float32",
                                   blocksize=max(1, rate // 20),  # 50 ms blocks: a smooth meter at little overhead
                                   callback=lambda indata, frames, time, status: self._on_block(indata)),
            f"Could not record from '{name}'", "choose another input device.")

    def stop(self) -> np.ndarray:
        """End the take and return it: mono float32 at the rate given to :meth:`start`."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001, S110 - an unplugged device: keep what was recorded
                pass
        if not self._blocks:
            return np.zeros(0, dtype=np.float32)
        take = np.concatenate(self._blocks)
        if self._stream_rate != self._target_rate:
            take = resample(take, self._stream_rate, self._target_rate)
        return take.astype(np.float32, copy=False)

    @property
    def is_recording(self) -> bool:
        return self._stream is not None

    @property
    def elapsed_seconds(self) -> float:
        return self._frames / self._stream_rate

    def _on_block(self, indata: np.ndarray) -> float:
        block = np.asarray(indata, dtype=np.float32)
        # PortAudio reuses its buffer after the callback returns, hence the copy for 1-D input.
        mono = block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.copy()
        self._blocks.append(mono)
        self._frames += len(mono)
        level = level_dbfs(mono)
        if self._level_callback is not None:
            try:
                self._level_callback(level)
            except Exception as error:  # noqa: BLE001
                # A broken meter must not end the take; keep the error for the caller to inspect.
                self.level_callback_error = error
                self._level_callback = None
        return level


def import_sounddevice() -> ModuleType:
    """``sounddevice``, or :class:`AudioUnavailable` without PortAudio or the package.

    >>> try:
    ...     module = import_sounddevice()
    ... except AudioUnavailable as error:
    ...     module = None
    >>> module is None or hasattr(module, "OutputStream")
    True
    """
    try:
        import sounddevice
    except OSError:  # sounddevice raises OSError("PortAudio library not found")
        raise AudioUnavailable(NO_PORTAUDIO) from None
    except ImportError:
        raise AudioUnavailable(NO_SOUNDDEVICE) from None
    except Exception as error:  # noqa: BLE001 - PortAudioError when Pa_Initialize fails (broken sound server)
        raise AudioUnavailable(
            f"PortAudio failed to start ({one_line(error, REASON_LIMIT)}): recording and playback are disabled."
        ) from None
    return sounddevice


def negotiate(sd: ModuleType, device: int | None, kind: str, sample_rate: int) -> tuple[int, int, str]:
    """``(channels, rate, device name)`` for ``device``: mono at ``sample_rate``, else stereo, else its
    default rate; :class:`AudioUnavailable` when none works."""
    try:
        info = sd.query_devices(device, kind)
    except Exception:  # noqa: BLE001 - no default device, or an index without channels of this kind
        raise AudioUnavailable(NO_INPUT if kind == "input" else NO_OUTPUT) from None
    name = str(info["name"])
    max_channels = int(info[f"max_{kind}_channels"])
    default_rate = round(float(info["default_samplerate"]))
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    rates = [sample_rate] + ([default_rate] if 0 < default_rate != sample_rate else [])
    channel_options = [1, 2] if max_channels >= 2 else [1]
    last_error: Exception | None = None
    for rate in rates:
        for channels in channel_options:
            try:
                check(device=device, channels=channels, dtype="float32", samplerate=rate)
            except Exception as error:  # noqa: BLE001
                last_error = error
                continue
            return channels, rate, name
    reason = one_line(last_error, REASON_LIMIT) if last_error is not None else "no usable settings"
    raise AudioUnavailable(
        f"The {kind} device '{name}' accepts neither {sample_rate} Hz nor its default rate ({reason}): "
        f"choose another {kind} device."
    )


class _LinearResampler:
    """Linear-interpolation resampler carrying its position across chunks (docs/design.md)."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.step = source_rate / target_rate
        self._tail = np.zeros(0, dtype=np.float32)
        self._position = 0.0  # next output position, in samples from the start of ``_tail``

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        signal = np.concatenate([self._tail, np.asarray(chunk, dtype=np.float32)])
        last = len(signal) - 1
        if last < self._position:
            self._tail = signal
            return np.zeros(0, dtype=np.float32)
        count = int(np.floor((last - self._position) / self.step)) + 1
        positions = self._position + self.step * np.arange(count)
        out = np.interp(positions, np.arange(len(signal)), signal).astype(np.float32)
        next_position = self._position + self.step * count
        keep = int(np.floor(next_position))
        self._tail = signal[keep:]
        self._position = next_position - keep
        return out


def _started(open_stream: Callable[[], Any], failure: str, advice: str) -> Any:
    """Open and start a PortAudio stream, or raise :class:`AudioUnavailable` saying ``failure`` and ``advice``."""
    try:
        stream = open_stream()
        stream.start()
    except Exception as error:  # noqa: BLE001 - PortAudioError, or ValueError for a device that vanished
        raise AudioUnavailable(f"{failure} ({one_line(error, REASON_LIMIT)}): {advice}") from None
    return stream


def _device_from_info(index: int, info: Any) -> AudioDevice:
    return AudioDevice(int(info.get("index", index)), str(info.get("name", f"device {index}")),
                       int(info.get("max_input_channels", 0)), int(info.get("max_output_channels", 0)),
                       float(info.get("default_samplerate", 0.0)))


def _channels(device: AudioDevice, kind: str) -> int:
    return device.max_input_channels if kind == "input" else device.max_output_channels


def _as_mono(wav: np.ndarray) -> np.ndarray:
    samples = np.asarray(wav, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    elif samples.ndim != 1:
        raise ValueError(f"Audio must be (samples,) or (samples, channels), not shape {samples.shape}.")
    # NaN sent to a sound card is undefined behaviour (often a loud burst); silence is the safe choice.
    return np.ascontiguousarray(np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0))


def _drain(pending: queue.SimpleQueue[np.ndarray]) -> list[np.ndarray]:
    chunks = []
    while True:
        try:
            chunks.append(pending.get_nowait())
        except queue.Empty:
            return chunks
