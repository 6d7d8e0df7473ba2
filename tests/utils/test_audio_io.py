"""utils.audio_io on real files written by soundfile and ffmpeg: loading, checks, errors, atomic saving."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from utils.audio_io import AudioError, AudioWarning, load_audio, load_audio_with_rate, save_audio

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def tone(seconds: float, rate: int, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def dominant_frequency(wav: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.argmax(spectrum) * rate / len(wav))


def assert_clean_message(error: pytest.ExceptionInfo, path: Path, *fragments: str) -> str:
    """One line that names the file and contains every fragment (case-insensitive)."""
    message = str(error.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


def ffmpeg_encode(source: Path, target: Path) -> Path:
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(source), str(target)], check=True)
    return target


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def test_stereo_44k_flac_becomes_mono_16k_float32(tmp_path):
    left, right = tone(2.0, 44100, amplitude=0.6), tone(2.0, 44100, amplitude=0.2)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_16")

    wav, rate = load_audio_with_rate(path, 16000)
    assert rate == 16000 and wav.dtype == np.float32 and wav.ndim == 1
    assert len(wav) == 32000  # 2 s at 16 kHz
    # Mono is the channel mean: a 0.4-amplitude tone, mean power 0.4² / 2 (edges aside).
    assert np.mean(wav[1000:-1000] ** 2) == pytest.approx(0.4**2 / 2, rel=0.01)
    assert dominant_frequency(wav, 16000) == pytest.approx(440, abs=2)
    assert np.array_equal(load_audio(path, 16000), wav)


def test_native_rate_is_kept_when_asked(tmp_path):
    path = tmp_path / "native.wav"
    soundfile.write(path, tone(1.0, 22050), 22050)
    wav, rate = load_audio_with_rate(path, None)
    assert rate == 22050 and len(wav) == 22050


def test_8k_wav_warns_and_is_upsampled(tmp_path):
    path = tmp_path / "phone.wav"
    soundfile.write(path, tone(1.5, 8000, frequency=300), 8000)
    with pytest.warns(AudioWarning, match="8000 Hz") as record:
        wav = load_audio(path, 16000)
    assert str(path) in str(record[0].message)
    assert len(wav) == 24000 and wav.dtype == np.float32
    assert dominant_frequency(wav, 16000) == pytest.approx(300, abs=2)


def test_16k_file_loads_without_warnings(tmp_path):
    path = tmp_path / "clean.wav"
    soundfile.write(path, tone(1.0, 16000), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wav = load_audio(path, 16000)
    np.testing.assert_allclose(wav, tone(1.0, 16000), atol=1 / 32768)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert_clean_message(error, path, "empty", "0 bytes")


def test_random_bytes_named_wav_is_refused_as_damaged(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(AudioError) as error:
        load_audio(path)
    message = assert_clean_message(error, path)
    if shutil.which("ffmpeg"):
        # Both soundfile and ffmpeg tried: the file is the problem, and "install ffmpeg" would mislead.
        assert "damaged" in message and "install ffmpeg" not in message
    else:
        assert "ffmpeg" in message  # maybe an exotic codec that ffmpeg could read


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "nowhere" / "missing.flac"
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert_clean_message(error, path, "does not exist")


def test_folder_is_refused(tmp_path):
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(AudioError) as error:
        load_audio(folder)
    assert_clean_message(error, folder, "folder")


def test_silent_file_is_refused(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert_clean_message(error, path, "silent")
    # The check can be switched off (e.g. to read a file known to contain a pause).
    assert not load_audio(path, check=False).any()


def test_clipped_file_warns(tmp_path):
    path = tmp_path / "clipped.wav"
    soundfile.write(path, np.clip(tone(1.0, 16000, amplitude=3.0), -1, 1), 16000)
    with pytest.warns(AudioWarning, match="clipped"):
        load_audio(path)


def test_too_long_file_is_refused(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, tone(3.0, 16000), 16000)
    with pytest.raises(AudioError) as error:
        load_audio(path, max_seconds=2.0)
    assert_clean_message(error, path, "limit")
    assert len(load_audio(path, max_seconds=3.0)) == 48000
    assert len(load_audio(path, max_seconds=None)) == 48000


@needs_ffmpeg
def test_mp3_made_with_ffmpeg_loads(tmp_path):
    source = tmp_path / "source.wav"
    soundfile.write(source, tone(2.0, 22050, frequency=500), 22050)
    wav = load_audio(ffmpeg_encode(source, tmp_path / "tone.mp3"), 16000)
    assert wav.dtype == np.float32
    assert abs(len(wav) - 32000) < 0.1 * 16000  # MP3 adds up to a frame of padding
    assert dominant_frequency(wav, 16000) == pytest.approx(500, abs=3)


@needs_ffmpeg
def test_m4a_loads_with_ffmpeg_and_respects_max_seconds(tmp_path):
    source = tmp_path / "source.wav"
    soundfile.write(source, tone(3.0, 16000, frequency=330), 16000)
    path = ffmpeg_encode(source, tmp_path / "tone.m4a")
    wav = load_audio(path, 16000)
    assert abs(len(wav) - 48000) < 0.1 * 16000
    assert dominant_frequency(wav, 16000) == pytest.approx(330, abs=3)
    # The ffmpeg path must refuse long files too, not silently cut them at the limit.
    with pytest.raises(AudioError) as error:
        load_audio(path, 16000, max_seconds=1.0)
    assert_clean_message(error, path, "limit")


@needs_ffmpeg
def test_m4a_without_ffmpeg_says_so(tmp_path, monkeypatch):
    source = tmp_path / "source.wav"
    soundfile.write(source, tone(1.0, 16000), 16000)
    path = ffmpeg_encode(source, tmp_path / "voice.m4a")
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    monkeypatch.setenv("PATH", str(no_tools))
    assert shutil.which("ffmpeg") is None
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert_clean_message(error, path, "ffmpeg")
    assert "Traceback" not in str(error.value) and "NoBackendError" not in str(error.value)


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, expected_format", [(".wav", "WAV"), (".flac", "FLAC")])
def test_save_writes_readable_files(tmp_path, suffix, expected_format):
    wav = tone(1.0, 16000, amplitude=0.8)
    path = save_audio(tmp_path / f"out{suffix}", wav, 16000)
    assert path == tmp_path / f"out{suffix}"
    info = soundfile.info(path)
    assert (info.format, info.samplerate, info.channels, info.frames) == (expected_format, 16000, 1, 16000)
    data, rate = soundfile.read(path, dtype="float32")
    np.testing.assert_allclose(data, wav, atol=1 / 32767)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]  # no temporary files left


def test_save_clips_instead_of_wrapping(tmp_path):
    wav = np.array([0.0, 1.5, -2.0, 0.5] * 400, dtype=np.float32)
    data, _ = soundfile.read(save_audio(tmp_path / "loud.wav", wav, 16000), dtype="float32")
    assert data[1] == pytest.approx(1.0, abs=1e-4) and data[2] == pytest.approx(-1.0, abs=1e-4)
    assert data[3] == pytest.approx(0.5, abs=1e-4)


def test_save_replaces_existing_file_and_follows_umask(tmp_path):
    path = tmp_path / "take.wav"
    save_audio(path, tone(2.0, 16000), 16000)
    save_audio(path, tone(0.5, 16000), 16000)
    assert soundfile.info(path).frames == 8000
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]
    umask = os.umask(0)
    os.umask(umask)
    # Like any file the user creates: not the 0o600 of a raw temporary file.
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("name", ["out.mp3", "out", "out.m4a"])
def test_save_refuses_unwritable_formats(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(AudioError) as error:
        save_audio(path, tone(0.1, 16000), 16000)
    assert_clean_message(error, path, ".wav", ".flac")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_missing_folder(tmp_path):
    path = tmp_path / "no" / "such" / "folder" / "out.wav"
    with pytest.raises(AudioError) as error:
        save_audio(path, tone(0.1, 16000), 16000)
    assert_clean_message(error, path, "does not exist")
    assert not (tmp_path / "no").exists()


def test_failed_save_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "taken.wav"
    target.mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(AudioError) as error:
        save_audio(target, tone(0.1, 16000), 16000)
    assert_clean_message(error, target)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.wav"] and target.is_dir()
