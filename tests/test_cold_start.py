"""The README's clone (shipped models, a 22.05 kHz espeak-ng reference) imports none of the libraries that
cost seconds of start-up: librosa, scipy, numba, resampy. NumPy stand-ins do their work with the same
numbers (tests/utils/test_librosa_equivalents.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import soundfile

from tests.conftest import REPO_ROOT

HEAVY = ["librosa", "scipy", "scipy.signal", "numba", "resampy", "vocoder.fast", "synthesizer.model"]

CLONE_AND_LIST = """
import runpy, sys
sys.argv = ["demo_cli.py", "--reference", sys.argv[1], "--text", "Hello! This is the cloned voice.",
            "--out", sys.argv[2], "--models_dir", sys.argv[3], "--seed", "0", "--quiet"]
try:
    runpy.run_path("demo_cli.py", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
print("loaded:", [name for name in {heavy!r} if name in sys.modules])
"""


def test_the_readme_clone_imports_no_heavy_library(espeak, encoder_checkpoint, tmp_path):
    reference = espeak(tmp_path / "reference.wav", "This is the voice that I would like to clone today.",
                       rate=22050)  # espeak-ng's own rate, as in the README: the reference gets resampled
    out = tmp_path / "hello.wav"
    result = subprocess.run(
        [sys.executable, "-c", CLONE_AND_LIST.format(heavy=HEAVY), str(reference), str(out), str(tmp_path / "models")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "loaded: []"
    wav, rate = soundfile.read(out)
    assert rate == 16000 and len(wav) > rate
