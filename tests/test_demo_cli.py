"""End-to-end tests of ``demo_cli.py``: real subprocesses, real audio, real checkpoint files.

The synthesizer and vocoder are full-size random models saved in RTVC's exact file format (with an
optimizer state); the encoder is RTVC's real one from the resemblyzer package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.model_files import write_rtvc_vocoder

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "demo_cli.py"


def run_cli(*args: str | Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI like a user would, with no standard input and no network needed."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(CLI), *map(str, args)], cwd=ROOT, env=environment, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 1, exactly one ``error:`` line that contains every fragment, and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), errors[0]
    return errors[0]


@pytest.fixture(scope="session")
def models_dir(rtvc_models_dir) -> Path:
    return rtvc_models_dir


@pytest.fixture(scope="session")
def reference(tmp_path_factory, espeak) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    return espeak(folder / "reference.wav", "This is the voice that I would like to clone for the tests today.",
                  voice="en-us+m3")


def read(path: Path) -> np.ndarray:
    data, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    return data


class TestSuccess:
    def test_griffinlim_end_to_end(self, models_dir, reference, tmp_path):
        out = tmp_path / "out.wav"
        result = run_cli("--reference", reference, "--text", "Hello there.", "--out", out, "--vocoder", "griffinlim",
                         "--models_dir", models_dir, "--seed", "1", "--quiet")
        assert result.returncode == 0, result.stderr
        wav = read(out)
        # Griffin-Lim gives (frames - 1) * hop samples.
        assert len(wav) > 0 and len(wav) % 200 == 0
        for stage in ("encoder", "synthesizer", "griffinlim", "total"):
            assert any(line.startswith(stage) for line in result.stdout.splitlines()), result.stdout
        assert "RTF" in result.stdout

    def test_wavernn_same_seed_same_audio(self, models_dir, reference, tmp_path):
        outputs = []
        for name in ("a.wav", "b.wav"):
            out = tmp_path / name
            result = run_cli("--reference", reference, "--text", "Hi.", "--out", out, "--models_dir", models_dir,
                             "--seed", "7", "--quiet")
            assert result.returncode == 0, result.stderr
            outputs.append(read(out))
        assert len(outputs[0]) > 0 and len(outputs[0]) % 200 == 0
        np.testing.assert_array_equal(outputs[0], outputs[1])
        assert "wavernn" in result.stdout

    def test_text_file_several_references_and_enhance(self, models_dir, reference, tmp_path, espeak):
        second = espeak(tmp_path / "second.wav", "And here is a second sample of the very same voice.",
                        voice="en-us+m3")
        text_file = tmp_path / "lines.txt"
        text_file.write_text("First line.\n\nSecond line! Third sentence?\n", encoding="utf-8")
        out = tmp_path / "out.flac"
        result = run_cli("--reference", reference, second, "--text-file", text_file, "--out", out,
                         "--vocoder", "griffinlim", "--models_dir", models_dir, "--enhance", "--quiet")
        assert result.returncode == 0, result.stderr
        assert "3 sentence(s)" in result.stdout
        wav = read(out)
        assert 0 < np.abs(wav).max() <= 0.971

    def test_low_rate_clipped_and_foreign_inputs_warn(self, models_dir, reference, tmp_path):
        wav, rate = soundfile.read(reference, dtype="float32")
        low = tmp_path / "low.wav"
        soundfile.write(low, np.clip(wav[::2] * 20, -1, 1), rate // 2)  # 8 kHz and heavily clipped
        result = run_cli("--reference", low, "--text", "Привет, как дела?", "--out", tmp_path / "o.wav",
                         "--vocoder", "griffinlim", "--models_dir", models_dir, "--quiet")
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert any("8000 Hz" in line for line in warnings), result.stderr
        assert any("clipped" in line for line in warnings), result.stderr
        assert any("not English" in line or "transliterated" in line for line in warnings), result.stderr


class TestBadInput:
    def test_missing_reference(self, models_dir, tmp_path):
        result = run_cli("--reference", tmp_path / "nope.wav", "--text", "Hi.", "--models_dir", models_dir)
        assert_clean_failure(result, "nope.wav", "does not exist")

    @pytest.mark.parametrize(
        "content, fragment",
        [(b"", "empty"), (b"this is not audio at all" * 50, "cannot")],
        ids=["empty-file", "garbage-file"],
    )
    def test_unreadable_reference(self, models_dir, tmp_path, content, fragment):
        bad = tmp_path / "bad.wav"
        bad.write_bytes(content)
        result = run_cli("--reference", bad, "--text", "Hi.", "--models_dir", models_dir, "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "bad.wav", fragment)

    def test_silent_reference(self, models_dir, tmp_path):
        silent = tmp_path / "silent.wav"
        soundfile.write(silent, np.zeros(32000, dtype=np.float32), 16000)
        result = run_cli("--reference", silent, "--text", "Hi.", "--models_dir", models_dir, "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "silent")

    def test_noise_without_speech(self, models_dir, tmp_path):
        hum = tmp_path / "hum.wav"
        t = np.arange(48000) / 16000
        soundfile.write(hum, (0.001 * np.sin(2 * np.pi * 50 * t)).astype(np.float32), 16000)
        result = run_cli("--reference", hum, "--text", "Hi.", "--models_dir", models_dir,
                         "--vocoder", "griffinlim", "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "no usable speech")

    def test_very_long_reference(self, models_dir, tmp_path):
        long = tmp_path / "long.wav"
        rng = np.random.default_rng(0)
        soundfile.write(long, (0.1 * rng.standard_normal(8000 * 601)).astype(np.float32), 8000)
        result = run_cli("--reference", long, "--text", "Hi.", "--models_dir", models_dir, "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "long.wav", "limit")

    def test_m4a_without_ffmpeg(self, models_dir, reference, tmp_path):
        ffmpeg = __import__("shutil").which("ffmpeg")
        if ffmpeg is None:
            pytest.skip("ffmpeg is needed to make the m4a file")
        m4a = tmp_path / "voice.m4a"
        subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(reference), str(m4a)], check=True)
        empty_bin = tmp_path / "bin"
        empty_bin.mkdir()
        result = run_cli("--reference", m4a, "--text", "Hi.", "--models_dir", models_dir, "-o", tmp_path / "o.wav",
                         env={"PATH": str(empty_bin)})
        assert_clean_failure(result, "voice.m4a", "ffmpeg")

    @pytest.mark.parametrize(
        "text, fragments",
        [("", ("empty",)), ("   \n  ", ("empty",)), ("🙂🙂🙂", ()), ("word " * 5000, ("limit",))],
        ids=["empty", "whitespace", "emoji-only", "huge"],
    )
    def test_bad_text(self, models_dir, reference, tmp_path, text, fragments):
        result = run_cli("--reference", reference, "--text", text, "--models_dir", models_dir, "-o", tmp_path / "o.wav")
        assert_clean_failure(result, *fragments)

    def test_text_file_problems(self, models_dir, reference, tmp_path):
        assert_clean_failure(run_cli("--reference", reference, "--text-file", tmp_path / "none.txt",
                                     "--models_dir", models_dir), "none.txt", "does not exist")
        latin1 = tmp_path / "latin1.txt"
        latin1.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
        assert_clean_failure(run_cli("--reference", reference, "--text-file", latin1, "--models_dir", models_dir),
                             "latin1.txt", "UTF-8")

    def test_bad_output_path(self, models_dir, reference, tmp_path):
        assert_clean_failure(run_cli("--reference", reference, "--text", "Hi.", "--out", tmp_path / "x.mp3",
                                     "--models_dir", models_dir), ".wav or .flac")
        assert_clean_failure(run_cli("--reference", reference, "--text", "Hi.", "--out", tmp_path / "no" / "x.wav",
                                     "--models_dir", models_dir), "does not exist")

    def test_missing_synthesizer_explains_how_to_get_it(self, encoder_checkpoint, reference, tmp_path):
        (tmp_path / "default").mkdir()
        (tmp_path / "default" / "encoder.pt").symlink_to(encoder_checkpoint)
        (tmp_path / "no_shipped").mkdir()  # as if the shipped models had been deleted
        result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", tmp_path, "-o", tmp_path / "o.wav",
                         env={"SV2TTS_SHIPPED_MODELS_DIR": str(tmp_path / "no_shipped")})
        assert_clean_failure(result, "no synthesizer model", "utils.default_models", "train", "--download")

    def test_without_any_vocoder_file_griffinlim_is_used(self, models_dir, reference, tmp_path):
        (tmp_path / "models" / "default").mkdir(parents=True)
        for name in ("encoder", "synthesizer"):
            (tmp_path / "models" / "default" / f"{name}.pt").symlink_to(models_dir / "default" / f"{name}.pt")
        (tmp_path / "no_shipped").mkdir()
        result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", tmp_path / "models",
                         "-o", tmp_path / "o.wav", "--seed", "0", "--quiet",
                         env={"SV2TTS_SHIPPED_MODELS_DIR": str(tmp_path / "no_shipped")})
        assert result.returncode == 0, result.stderr
        assert "using Griffin-Lim" in result.stdout and "griffinlim" in result.stdout
        assert (tmp_path / "o.wav").stat().st_size > 1000

    def test_missing_vocoder_suggests_griffinlim(self, models_dir, reference, tmp_path):
        result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", models_dir,
                         "-v", tmp_path / "absent.pt", "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "no vocoder model", "absent.pt", "griffinlim")

    def test_truncated_synthesizer(self, models_dir, reference, tmp_path):
        truncated = tmp_path / "synthesizer.pt"
        data = (models_dir / "default" / "synthesizer.pt").read_bytes()
        truncated.write_bytes(data[: len(data) // 3])
        result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", models_dir, "-s", truncated,
                         "--vocoder", "griffinlim", "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "synthesizer checkpoint", "truncated")

    def test_mismatched_checkpoints(self, models_dir, reference, tmp_path):
        vocoder_file = models_dir / "default" / "vocoder.pt"
        result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", models_dir, "-s", vocoder_file,
                         "--vocoder", "griffinlim", "-o", tmp_path / "o.wav")
        assert_clean_failure(result, "is a vocoder checkpoint, not a synthesizer")

        import torch

        from vocoder.hparams import VocoderHParams
        from vocoder.model import build_wavernn

        small = build_wavernn(VocoderHParams(voc_rnn_dims=64, voc_fc_dims=64))
        odd = tmp_path / "odd_vocoder.pt"
        torch.save({"model_state": small.state_dict()}, odd)
        result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", models_dir, "-v", odd,
                         "-o", tmp_path / "o.wav")
        line = assert_clean_failure(result, "odd_vocoder.pt", "does not fit", "in the file but")
        assert "size mismatch for" not in line

    def test_vocoder_with_nan_weights_fails_naming_the_file(self, models_dir, reference, tmp_path):
        # It used to sample "audio" from NaN logits and exit 0 (issue 17).
        import torch

        from vocoder.hparams import VocoderHParams
        from vocoder.inference import WaveRNNVocoder
        from vocoder.model import build_wavernn

        model = build_wavernn(VocoderHParams(voc_rnn_dims=32, voc_fc_dims=32, voc_compute_dims=16, voc_res_out_dims=16,
                                             voc_res_blocks=1))
        with torch.no_grad():
            model.fc3.weight.fill_(float("nan"))
        damaged = tmp_path / "nan_vocoder.pt"
        WaveRNNVocoder(model).save(damaged)
        for extra in ([], ["--exact_vocoder"]):
            result = run_cli("--reference", reference, "--text", "Hi.", "--models_dir", models_dir, "-v", damaged,
                             "-o", tmp_path / "o.wav", "--seed", "1", *extra)
            assert_clean_failure(result, "vocoder checkpoint", "nan_vocoder.pt", "NaN or infinite audio")
            assert not (tmp_path / "o.wav").exists()

    def test_usage_error_exit_code(self):
        result = run_cli("--text", "no reference given")
        assert result.returncode == 2
        assert "Traceback" not in result.stderr


def test_rtvc_vocoder_fixture_is_rtvc_format(tmp_path):
    """The fixture files must look like RTVC's: only model_state + optimizer_state, no hyperparameters."""
    import torch

    path = write_rtvc_vocoder(tmp_path / "vocoder.pt")
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"model_state", "optimizer_state"}
    assert checkpoint["optimizer_state"]["state"], "the Adam state must hold per-parameter moments"


def test_full_disk_leaves_no_partial_output(models_dir, reference, full_disk):
    out = full_disk / "out.wav"
    result = run_cli("--reference", reference, "--text", "Hello there, this is a longer sentence.", "--out", out,
                     "--vocoder", "griffinlim", "--models_dir", models_dir, "--quiet")
    assert_clean_failure(result, "out.wav", "disk is full")
    assert sorted(path.name for path in full_disk.iterdir()) == ["filler.bin"]


def test_play_without_audio_device_fails_before_any_work(models_dir, reference, tmp_path):
    import sounddevice

    if any(device["max_output_channels"] > 0 for device in sounddevice.query_devices()):
        pytest.skip("this machine has an audio output; the no-device path cannot be shown here")
    result = run_cli("--reference", reference, "--text", "Hi.", "--play", "--models_dir", models_dir,
                     "-o", tmp_path / "o.wav")
    assert_clean_failure(result, "--play needs an audio output")
    assert "Loaded models" not in result.stdout
    assert not (tmp_path / "o.wav").exists()


def test_play_streams_sentences_to_a_real_portaudio_device(models_dir, reference, tmp_path):
    """ALSA's null device through real PortAudio: the streaming path runs end to end with no sound card."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default {\n    type null\n}\n")
    out = tmp_path / "streamed.wav"
    result = run_cli("--reference", reference, "--text", "First sentence. Second sentence!", "--play",
                     "--vocoder", "griffinlim", "--seed", "4", "--models_dir", models_dir, "-o", out,
                     env={"HOME": str(home)})
    if result.returncode != 0 and "audio output" in result.stderr:
        pytest.skip(f"no ALSA null device through PortAudio here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert "First audio after" in result.stdout and "2 sentence(s)" in result.stdout
    assert len(read(out)) > 0
