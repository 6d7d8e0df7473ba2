"""The benchmark script runs and reports every stage in its JSON format (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"


def test_json_report_has_every_stage_with_consistent_rtf():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "0.3", "--first_sentence", "0.2", "--device", "cpu", "--json"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"cpu"}
    assert set(report["cpu"]) == {"encoder", "synthesizer", "wavernn_exact", "wavernn_fast", "griffinlim",
                                  "time_to_first_audio"}
    for stage, figures in report["cpu"].items():
        assert figures["seconds"] > 0, stage
        assert abs(figures["rtf"] - figures["seconds"] / figures["audio_seconds"]) < 1e-9, stage
    for stage in ("wavernn_exact", "wavernn_fast"):
        assert abs(report["cpu"][stage]["audio_seconds"] - 0.3) < 0.02
    assert report["cpu"]["time_to_first_audio"]["playback_stall_seconds"] >= 0.0


def test_cuda_request_without_gpu_fails_cleanly():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr


def _shipped_models_present() -> bool:
    from utils.default_models import shipped_model_path

    return all(shipped_model_path(name) is not None for name in ("synthesizer", "vocoder"))


def test_shipped_model_sizes_are_timed_too():
    import pytest

    if not _shipped_models_present():
        pytest.skip("this checkout has no shipped models in saved_models/shipped")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "shipped", "--seconds", "0.3", "--first_sentence", "0.2",
         "--skip_exact", "--device", "cpu"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Shipped models")
    assert "time_to_first_audio" in done.stdout and "wavernn_exact" not in done.stdout
    assert "synthesizer" in done.stdout and ("istft" in done.stdout or "wavernn_fast" in done.stdout)
