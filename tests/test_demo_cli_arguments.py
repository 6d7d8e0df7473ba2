"""Issue 18: demo_cli refuses a --seed beyond 64 bits and an impossible --out name before any work, and a
legal 250-byte output name is written (its hidden temporary name used to be 18 bytes too long)."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16", "utf-8-sig", "utf-8"])
def test_text_files_in_utf16_without_a_bom_are_read_whole(tmp_path, encoding):
    """Issue 26: BOM-less UTF-16 was decoded as UTF-8 with NULs, and espeak spoke only "H"."""
    import argparse

    from demo_cli import read_text_argument

    text = "Hello there, this is a whole line.\nAnd a second one: café."
    path = tmp_path / "lines.txt"
    path.write_bytes(text.encode(encoding))
    assert read_text_argument(argparse.Namespace(text=None, text_file=path)) == text


def test_nul_characters_in_the_text_are_one_line_errors(tmp_path, capsys):
    from demo_cli import main
    from pipeline import split_text

    path = tmp_path / "nul.txt"
    path.write_bytes(b"Hello\0 world, said nobody.")
    assert main(["--reference", str(tmp_path / "me.wav"), "--text_file", str(path), "--out",
                 str(tmp_path / "out.wav"), "--models_dir", str(tmp_path / "no_models")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: The text contains NUL characters") and err.count("\n") == 1
    with pytest.raises(ValueError, match="NUL"):
        split_text(["Fine.", "Not\0fine."])
