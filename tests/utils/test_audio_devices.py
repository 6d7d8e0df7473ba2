"""utils.audio_devices without audio hardware: the real sound system of a device-less machine, a missing
PortAudio (in subprocesses), a fake ``sounddevice`` module for device selection and rate fallback, and
the queue/metering logic called directly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from utils.audio_devices import (
    NO_DEVICE,
    NO_OUTPUT,
    SILENCE_DBFS,
    AudioDevice,
    AudioDevices,
    AudioUnavailable,
    Recorder,
    StreamingPlayer,
    _LinearResampler,
    level_dbfs,
    negotiate,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def sine(frequency: float, rate: int, samples: int, amplitude: float = 1.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(samples) / rate)).astype(np.float32)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )


# ------------------------------------------------------------------------------ this machine's audio
@pytest.fixture
def deviceless() -> AudioDevices:
    devices = AudioDevices()
    if devices.devices():
        pytest.skip("this machine has audio devices; the test is about machines without any (like CI)")
    return devices


def test_machine_without_devices_reports_instead_of_crashing(deviceless: AudioDevices) -> None:
    ok, reason = deviceless.available()
    assert ok is False
    assert reason == NO_DEVICE or "PortAudio" in reason
    assert "\n" not in reason
    assert deviceless.inputs() == [] and deviceless.outputs() == []
    assert deviceless.default_input() is None and deviceless.default_output() is None
    assert deviceless.is_playing() is False

    with pytest.raises(AudioUnavailable) as error:
        deviceless.play(sine(440, 16000, 1600), 16000)
    assert "\n" not in str(error.value) and "disabled" in str(error.value)
    with pytest.raises(AudioUnavailable, match="disabled"):
        deviceless.play(sine(440, 16000, 1600), 16000, blocking=True)
    with pytest.raises(AudioUnavailable, match="recording is disabled|PortAudio"):
        deviceless.recorder()
    with pytest.raises(AudioUnavailable, match="disabled"):
        deviceless.set_output(0)
    deviceless.stop()  # harmless when nothing plays


def test_streams_on_a_machine_without_devices_raise_audio_unavailable(deviceless: AudioDevices) -> None:
    with pytest.raises(AudioUnavailable, match="playback is disabled|PortAudio"):
        StreamingPlayer().start(16000)
    recorder = Recorder()
    with pytest.raises(AudioUnavailable, match="recording is disabled|PortAudio"):
        recorder.start(16000)
    assert not recorder.is_recording
    assert recorder.stop().size == 0


@pytest.mark.parametrize(
    "simulation",
    [
        pytest.param("import sys; sys.modules['sounddevice'] = None", id="sounddevice-unimportable"),
        # sounddevice looks PortAudio up with ctypes.util.find_library at import time.
        pytest.param("import ctypes.util; ctypes.util.find_library = lambda name: None", id="no-libportaudio"),
    ],
)
def test_missing_portaudio_disables_audio_with_a_clear_message(simulation: str) -> None:
    code = f"""{simulation}
import numpy as np
from utils.audio_devices import AudioDevices, AudioUnavailable, StreamingPlayer, Recorder
devices = AudioDevices()
ok, reason = devices.available()
print("AVAILABLE", ok, reason)
print("LISTS", devices.inputs(), devices.outputs(), devices.default_output())
for action in (lambda: devices.play(np.zeros(160, np.float32), 16000),
               lambda: StreamingPlayer().start(16000), lambda: Recorder().start(16000)):
    try:
        action()
    except AudioUnavailable as error:
        print("UNAVAILABLE", error)
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("AVAILABLE False ") and "PortAudio" in lines[0]
    assert lines[1] == "LISTS [] [] None"
    assert len([line for line in lines if line.startswith("UNAVAILABLE ") and "PortAudio" in line]) == 3
    assert "Traceback" not in result.stderr


REAL_STREAMS = """
import time, numpy as np
from utils.audio_devices import AudioDevices, StreamingPlayer
devices = AudioDevices()
if not devices.outputs(None) or not devices.inputs(None):
    print("SKIP", devices.available()[1])
    raise SystemExit
devices.play(np.full(1600, 0.1, np.float32), 16000, blocking=True)
assert not devices.is_playing()
devices.play(np.full(16000 * 30, 0.1, np.float32), 16000)
devices.stop()
assert not devices.is_playing()
player = devices.streaming_player()
player.start(16000)
for _ in range(10):
    player.push(np.full(1600, 0.1, np.float32))
    time.sleep(0.01)
player.finish()
assert player.wait(10), "streaming playback never finished"
assert player.played_samples == 16000, player.played_samples
assert not player.is_active
levels = []
recorder = devices.recorder()
recorder.start(16000, levels.append)
time.sleep(0.2)
take = recorder.stop()
assert take.dtype == np.float32 and take.ndim == 1 and take.size > 0 and levels
assert not recorder.is_recording
print("OK")
"""


def test_real_portaudio_streams_on_an_alsa_null_device(tmp_path: Path) -> None:
    """Real sounddevice streams with ALSA's ``null`` PCM as the default device: silent, needs no card."""
    (tmp_path / ".asoundrc").write_text("pcm.!default {\n    type null\n}\n")
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", REAL_STREAMS], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if result.stdout.startswith("SKIP"):
        pytest.skip(f"no ALSA null device through PortAudio here ({result.stdout.strip()})")
    assert result.stdout.strip() == "OK"


# ----------------------------------------------------------------------------- fake sounddevice
class FakePortAudioError(Exception):
    pass


class FakeCallbackStop(Exception):
    pass


class FakeSoundDevice:
    """Enough of the sounddevice API for device selection and synchronous fake streams."""

    PortAudioError = FakePortAudioError
    CallbackStop = FakeCallbackStop

    def __init__(self, devices: list[dict], default: tuple[int, int], input_signal: np.ndarray | None = None):
        self._devices = devices
        self.default = SimpleNamespace(device=list(default))
        self.input_signal = input_signal
        self.played: list[np.ndarray] = []
        self.opened: list[dict] = []
        fake = self

        class Stream:
            def __init__(self, **settings):
                fake.opened.append(settings)
                self.settings = settings

            def abort(self):
                pass

            def stop(self):
                pass

            def close(self):
                pass

        class OutputStream(Stream):
            def start(self):  # plays everything synchronously, in blocks of 256 frames
                for _ in range(10_000):
                    out = np.full((256, self.settings["channels"]), np.nan, dtype=np.float32)
                    try:
                        self.settings["callback"](out, 256, None, None)
                    except FakeCallbackStop:
                        fake.played.append(out.copy())
                        break
                    fake.played.append(out.copy())
                self.settings["finished_callback"]()

        class InputStream(Stream):
            def start(self):  # delivers the whole input signal synchronously
                block = self.settings["blocksize"]
                signal = np.repeat(fake.input_signal[:, None], self.settings["channels"], axis=1)
                for start in range(0, len(signal), block):
                    chunk = signal[start : start + block]
                    self.settings["callback"](chunk, len(chunk), None, None)

        self.OutputStream = OutputStream
        self.InputStream = InputStream

    def query_devices(self, device=None, kind=None):
        if device is None and kind is None:
            return list(self._devices)
        if device is None:
            device = self.default.device[0 if kind == "input" else 1]
            if device < 0:
                raise FakePortAudioError("Error querying device -1")
        info = self._devices[device]
        if kind is not None and info[f"max_{kind}_channels"] == 0:
            raise ValueError(f"Not an {kind} device")
        return info

    def _check(self, kind, device, channels, samplerate):
        info = self.query_devices(device, kind)
        if samplerate not in info["rates"]:
            raise FakePortAudioError("Error opening stream: Invalid sample rate [PaErrorCode -9997]")
        if channels not in info["channels"]:
            raise FakePortAudioError("Error opening stream: Invalid number of channels [PaErrorCode -9998]")

    def check_input_settings(self, device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):
        self._check("input", device, channels, samplerate)

    def check_output_settings(self, device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):
        self._check("output", device, channels, samplerate)


def fake_device(index, name, inputs, outputs, default_rate, rates, channels=(1, 2)) -> dict:
    return {
        "index": index,
        "name": name,
        "max_input_channels": inputs,
        "max_output_channels": outputs,
        "default_samplerate": float(default_rate),
        "rates": set(rates),
        "channels": set(channels),
    }


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> FakeSoundDevice:
    sd = FakeSoundDevice(
        [
            fake_device(0, "Built-in Microphone", 2, 0, 44100, {16000, 44100}),
            fake_device(1, "HDMI output", 0, 8, 48000, {48000}),  # rejects 16 kHz (-9997)
            fake_device(2, "USB headset", 1, 2, 48000, {16000, 48000}),
            fake_device(3, "Line in", 2, 0, 48000, {48000}),
            fake_device(4, "Stereo DAC", 0, 2, 44100, {16000, 44100}, channels=(2,)),  # refuses mono
        ],
        default=(0, 1),
    )
    monkeypatch.setattr("utils.audio_devices.import_sounddevice", lambda: sd)
    return sd


def test_device_lists_and_defaults_with_fake_sounddevice(fake_sd: FakeSoundDevice) -> None:
    devices = AudioDevices()
    assert devices.available() == (True, "")
    assert [d.name for d in devices.outputs()] == ["USB headset"]  # only devices that take 16 kHz
    assert [d.name for d in devices.outputs(None)] == ["HDMI output", "USB headset", "Stereo DAC"]
    assert [d.name for d in devices.inputs()] == ["Built-in Microphone", "USB headset"]
    assert [d.name for d in devices.inputs(None)] == ["Built-in Microphone", "USB headset", "Line in"]
    assert devices.default_output() == AudioDevice(1, "HDMI output", 0, 8, 48000.0)  # the system's choice
    assert devices.default_input().name == "Built-in Microphone"

    devices.set_output(2)
    assert devices.output_device.name == "USB headset"
    devices.set_output(None)
    assert devices.output_device.name == "HDMI output"
    with pytest.raises(AudioUnavailable, match="not an output device"):
        devices.set_output(0)
    with pytest.raises(AudioUnavailable, match="not an input device"):
        devices.set_input(1)

    fake_sd.default.device = [-1, -1]  # no system default: the first device that takes 16 kHz
    assert devices.default_output().name == "USB headset"


def test_available_when_only_one_direction_works(monkeypatch: pytest.MonkeyPatch) -> None:
    only_output = FakeSoundDevice([fake_device(0, "Speakers", 0, 2, 48000, {48000})], default=(-1, 0))
    monkeypatch.setattr("utils.audio_devices.import_sounddevice", lambda: only_output)
    ok, reason = AudioDevices().available()
    assert ok and "recording is disabled" in reason
    only_input = FakeSoundDevice([fake_device(0, "Mic", 1, 0, 48000, {48000})], default=(0, -1))
    monkeypatch.setattr("utils.audio_devices.import_sounddevice", lambda: only_input)
    devices = AudioDevices()
    assert devices.available() == (True, NO_OUTPUT)
    with pytest.raises(AudioUnavailable, match="playback is disabled"):
        devices.play(np.zeros(10, np.float32), 16000)


def test_negotiation_falls_back_to_stereo_then_to_the_default_rate(fake_sd: FakeSoundDevice) -> None:
    assert negotiate(fake_sd, 0, "input", 16000) == (1, 16000, "Built-in Microphone")
    assert negotiate(fake_sd, 4, "output", 16000) == (2, 16000, "Stereo DAC")
    assert negotiate(fake_sd, 1, "output", 16000) == (1, 48000, "HDMI output")
    assert negotiate(fake_sd, None, "output", 16000) == (1, 48000, "HDMI output")
    fake_sd._devices[3]["rates"] = {96000}  # accepts neither 16 kHz nor its own default
    with pytest.raises(AudioUnavailable, match=r"'Line in' accepts neither 16000 Hz.*-9997.*another input device"):
        negotiate(fake_sd, 3, "input", 16000)
    with pytest.raises(AudioUnavailable, match="No audio output device"):
        negotiate(fake_sd, 0, "output", 16000)


def test_play_resamples_for_a_device_that_rejects_16khz(fake_sd: FakeSoundDevice) -> None:
    devices = AudioDevices()
    wav = sine(440, 16000, 1600, amplitude=0.5)  # 0.1 s
    devices.play(wav, 16000, blocking=True)
    (settings,) = fake_sd.opened
    assert (settings["samplerate"], settings["channels"], settings["device"]) == (48000, 1, 1)
    played = np.concatenate(fake_sd.played)[:, 0]
    assert not np.isnan(played).any()
    assert len(played) == 19 * 256 and not played[4800:].any()  # 0.1 s at 48 kHz, then the stop block
    spectrum = np.abs(np.fft.rfft(played[:4800]))
    assert abs(np.argmax(spectrum) * 48000 / 4800 - 440) <= 10
    assert not devices.is_playing()


def test_play_on_a_stereo_only_device_fills_both_channels(fake_sd: FakeSoundDevice) -> None:
    devices = AudioDevices()
    devices.set_output(4)
    devices.play(np.linspace(-0.5, 0.5, 300, dtype=np.float32), 16000, blocking=True)
    assert fake_sd.opened[0]["channels"] == 2 and fake_sd.opened[0]["samplerate"] == 16000
    played = np.concatenate(fake_sd.played)
    np.testing.assert_array_equal(played[:300, 0], played[:300, 1])
    np.testing.assert_allclose(played[:300, 0], np.linspace(-0.5, 0.5, 300), atol=1e-7)
    assert not played[300:].any()


def test_recorder_falls_back_to_the_default_rate_and_resamples(fake_sd: FakeSoundDevice) -> None:
    fake_sd.input_signal = sine(300, 48000, 48000, amplitude=0.5)  # 1 s at the device's 48 kHz
    levels: list[float] = []
    recorder = Recorder(3)  # "Line in" only takes 48 kHz
    recorder.start(16000, level_callback=levels.append)
    assert recorder.is_recording
    assert fake_sd.opened[0]["samplerate"] == 48000 and fake_sd.opened[0]["blocksize"] == 2400
    assert recorder.elapsed_seconds == pytest.approx(1.0)
    take = recorder.stop()
    assert not recorder.is_recording
    assert take.dtype == np.float32 and len(take) == 16000
    assert len(levels) == 20 and all(abs(level - (-9.03)) < 0.05 for level in levels)
    spectrum = np.abs(np.fft.rfft(take))
    assert abs(np.argmax(spectrum) * 16000 / len(take) - 300) <= 2


# ----------------------------------------------------------------------- hardware-free core logic
def test_streaming_fill_returns_exactly_the_pushed_samples_then_zeros() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.uniform(-1, 1, size).astype(np.float32) for size in (7, 1, 0, 13, 5, 31)]
    expected = np.concatenate(chunks)
    player = StreamingPlayer()
    for chunk in chunks[:3]:
        player.push(chunk)

    outputs = []
    for frames in (3, 4, 6):  # 8 samples queued: the third block underruns with zeros
        out = np.full((frames, 2), np.nan, dtype=np.float32)
        assert player._fill(out, frames) is False  # not finished: the producer may still push
        np.testing.assert_array_equal(out[:, 0], out[:, 1])
        outputs.append(out[:, 0])
    assert outputs[2][1:].tolist() == [0.0] * 5 and player.underrun_frames == 5

    for chunk in chunks[3:]:
        player.push(chunk)
    player.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        player.push(np.zeros(4, np.float32))
    finished = False
    while not finished:
        out = np.full(5, np.nan, dtype=np.float32)  # 1-D buffers work too
        finished = player._fill(out, 5)
        outputs.append(out)
    played = np.concatenate(outputs)
    audio = np.concatenate([played[:8], played[13:]])  # without the underrun's silence
    np.testing.assert_array_equal(audio[: len(expected)], expected)
    assert not audio[len(expected) :].any()
    assert player.played_samples == len(expected) == 57
    assert player._fill(np.ones(4, np.float32), 4) is True  # stays finished


def test_streaming_stop_is_immediate_and_later_pushes_are_ignored() -> None:
    player = StreamingPlayer()
    player.push(np.ones(100, np.float32))
    player.stop()
    out = np.ones(10, np.float32)
    assert player._fill(out, 10) is True and not out.any()
    player.push(np.ones(10, np.float32))  # a synthesis thread still running must not crash
    assert player.wait(0.1) is True and not player.is_active


def test_streaming_with_a_concurrent_producer() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.uniform(-1, 1, int(size)).astype(np.float32) for size in rng.integers(1, 400, 200)]
    player = StreamingPlayer()

    def produce() -> None:
        for chunk in chunks:
            player.push(chunk)
        player.finish()

    producer = threading.Thread(target=produce)
    producer.start()
    played = []
    for _ in range(100_000):
        out = np.zeros(128, np.float32)
        done = player._fill(out, 128)
        played.append(out)
        if done:
            break
    producer.join()
    assert done
    expected = np.concatenate(chunks)
    audio = np.concatenate(played)
    assert player.played_samples == len(expected)
    # Underruns insert zeros, never reorder or drop: the non-silent samples come out in order.
    np.testing.assert_array_equal(audio[audio != 0], expected[expected != 0])


def test_linear_resampler_is_continuous_across_chunks() -> None:
    signal = sine(440, 16000, 16000)
    whole = _LinearResampler(16000, 44100)(signal)
    resampler = _LinearResampler(16000, 44100)
    pieces = np.concatenate([resampler(chunk) for chunk in np.array_split(signal, [1, 2, 500, 501, 9000])])
    np.testing.assert_allclose(pieces, whole, atol=1e-6)
    assert abs(len(whole) - 44100) <= 3
    reference = sine(440, 44100, len(whole))
    assert np.max(np.abs(whole - reference)) < 0.01


def test_recorder_blocks_and_level_of_a_full_scale_sine() -> None:
    levels: list[float] = []
    recorder = Recorder()
    recorder._level_callback = levels.append
    signal = sine(1000, 16000, 8000)  # 16 samples per period: every 800-sample block has whole periods
    for start in range(0, len(signal), 800):
        recorder._on_block(signal[start : start + 800, None])
    assert levels == pytest.approx([-3.0103] * 10, abs=1e-3)
    assert recorder.elapsed_seconds == pytest.approx(0.5)
    np.testing.assert_array_equal(recorder.stop(), signal)


def test_recorder_block_details() -> None:
    recorder = Recorder()
    stereo = np.stack([np.full(160, 0.5), np.full(160, -0.5)], axis=1).astype(np.float32)
    assert recorder._on_block(stereo) == SILENCE_DBFS  # opposite channels cancel in the mono mix
    buffer = np.full(160, 0.25, np.float32)
    recorder._on_block(buffer)
    buffer[:] = 9.0  # PortAudio reuses its buffers; the take must hold a copy
    take = recorder.stop()
    assert take.shape == (320,) and take[160:].tolist() == [0.25] * 160

    def broken_meter(level: float) -> None:
        raise ValueError("meter widget deleted")

    recorder = Recorder()
    recorder._level_callback = broken_meter
    recorder._on_block(np.zeros(10, np.float32))
    recorder._on_block(np.zeros(10, np.float32))  # no second call, no exception into the audio thread
    assert isinstance(recorder.level_callback_error, ValueError)
    assert recorder.stop().size == 20


def test_level_dbfs() -> None:
    assert level_dbfs(sine(1000, 16000, 1600)) == pytest.approx(-3.0103, abs=1e-3)
    assert level_dbfs(np.full(10, 1.0)) == pytest.approx(0.0)
    assert level_dbfs(np.zeros(10)) == SILENCE_DBFS
    assert level_dbfs(np.zeros(0)) == SILENCE_DBFS
    assert level_dbfs(np.full(10, 1e-9)) == SILENCE_DBFS
