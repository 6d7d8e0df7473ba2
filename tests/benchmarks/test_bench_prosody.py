"""bench_prosody.py's measures on signals with known answers, and its run on a tiny real pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_prosody  # noqa: E402


def test_loudness_follows_amplitude_and_f0_follows_the_tone():
    t = np.arange(16000) / 16000
    tone = (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    assert bench_prosody.loudness_db(2 * tone) - bench_prosody.loudness_db(tone) == pytest.approx(6.02, abs=0.01)
    assert bench_prosody.median_f0(tone, 16000) == pytest.approx(200, rel=0.01)
    up = (0.1 * np.sin(2 * np.pi * 200 * 2 ** (4 / 12) * t)).astype(np.float32)
    assert 12 * np.log2(bench_prosody.median_f0(up, 16000) / 200) == pytest.approx(4, abs=0.1)
    assert np.isnan(bench_prosody.median_f0(np.zeros(16000, np.float32), 16000))


def test_a_missing_recording_is_one_error_line(capsys, tmp_path):
    code = bench_prosody.main(["--librispeech", str(tmp_path), "--speakers", "19"])
    assert code == 1 and capsys.readouterr().err.count("\n") == 1
