"""Issue 18: demo_cli refuses a --seed beyond 64 bits and an impossible --out name before any work, and a
legal 250-byte output name is written (its hidden temporary name used to be 18 bytes too long)."""

from __future__ import annotations

import numpy as np

from tests.test_demo_cli import assert_clean_failure, run_cli
from utils.audio_io import save_audio


def test_seed_beyond_64_bits_fails_while_parsing(tmp_path):
    result = run_cli("--reference", tmp_path / "missing.wav", "--text", "Hi.", "--seed", str(2**64),
                     "--models_dir", tmp_path / "no_models", timeout=120)
    assert result.returncode == 2
    assert "the seed must be an integer from 0 to 18446744073709551615" in result.stderr
    assert "Traceback" not in result.stderr and "Loaded" not in result.stdout


def test_output_name_too_long_fails_before_any_work(tmp_path):
    out = tmp_path / ("x" * 300 + ".wav")
    result = run_cli("--reference", tmp_path / "missing.wav", "--text", "Hi.", "--out", out,
                     "--models_dir", tmp_path / "no_models", timeout=120)
    # Named before the missing reference and models: nothing else was looked at.
    assert_clean_failure(result, "is 304 bytes long; file systems allow at most 255")


def test_a_legal_250_byte_output_name_is_written(tmp_path):
    out = tmp_path / ("y" * 246 + ".wav")
    save_audio(out, np.zeros(1600, np.float32), 16000)
    assert [path.name for path in tmp_path.iterdir()] == [out.name]


def test_an_output_that_is_a_reference_recording_is_refused_and_left_as_it_was(tmp_path, espeak, capsys):
    """Issue 26: ``--out`` equal to ``--reference`` (by name, another spelling or a hard link) overwrote it."""
    import os

    from demo_cli import main

    me = espeak(tmp_path / "me.wav", "This is my own voice.")
    original = me.read_bytes()
    os.link(me, tmp_path / "linked.wav")
    for out in (me, tmp_path / "." / "me.wav", tmp_path / "linked.wav"):
        assert main(["--reference", str(tmp_path / "other.wav"), str(me), "--text", "Hi.", "--out", str(out),
                     "--models_dir", str(tmp_path / "no_models")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: The output") and "is the reference recording" in err and err.count("\n") == 1
    assert me.read_bytes() == original
