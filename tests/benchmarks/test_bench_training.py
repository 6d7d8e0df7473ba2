"""The training benchmark runs every trainer's real step at RTVC's sizes and reports consistent figures."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_training


def test_json_report_covers_each_model_with_consistent_rates(capsys):
    code = bench_training.main(["--device", "cpu", "--steps", "1", "--warmup", "0", "--batch_scale", "0.04",
                                "--mel_frames", "20", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["amp"] is False and report["device"].startswith("CPU")
    assert set(report["models"]) == {"encoder", "synthesizer", "vocoder"}
    expected_items = {"encoder": 3 * 10, "synthesizer": 1 * 20, "vocoder": 4 * 1000}  # scaled RTVC batches
    for name, row in report["models"].items():
        assert row["seconds_per_step"] > 0
        assert row["steps_per_second"] == pytest.approx(1 / row["seconds_per_step"])
        assert row["items_per_second"] == pytest.approx(expected_items[name] * row["steps_per_second"])


def test_bad_arguments_give_one_error_line(capsys):
    assert bench_training.main(["--models", "tacotron2"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown model(s) tacotron2")
    assert bench_training.main(["--steps", "0"]) == 1
