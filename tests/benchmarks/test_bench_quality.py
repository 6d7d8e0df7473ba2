"""bench_quality.py's bookkeeping (no model runs here): paired differences, seeds, the printed DNSMOS columns."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from utils.dnsmos import DnsmosScores

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_quality.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_quality_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def clone(bench, vocoder: str, similarity: float, p808: float, seed: int = 0):
    return bench.Clone("19", vocoder, "Rice is often served in round bowls.", "rice is often served in round bowls",
                       0.0, similarity, True, 2.0, DnsmosScores(p808, p808 - 0.5, p808 - 0.2, 3.9), seed)


def test_paired_differences_against_griffinlim(bench):
    clones = {"istft": [clone(bench, "istft", 0.75, 3.0), clone(bench, "istft", 0.70, 2.6)],
              "griffinlim": [clone(bench, "griffinlim", 0.70, 2.8), clone(bench, "griffinlim", 0.68, 2.8)]}
    by_metric = {d.metric: d for d in bench.paired_differences(clones)}
    assert set(by_metric) == {"similarity", "p808", "ovrl", "sig"}
    similarity = by_metric["similarity"]
    assert (similarity.vocoder, similarity.baseline) == ("istft", "griffinlim")
    assert (similarity.higher, similarity.clones) == (2, 2)
    assert similarity.mean == pytest.approx(0.035) and similarity.standard_error == pytest.approx(0.015)
    assert by_metric["p808"].mean == pytest.approx(0.0) and by_metric["p808"].higher == 1
    assert bench.paired_differences({"istft": clones["istft"]}) == []


def test_two_seeds_are_parsed_reported_and_printed(bench, monkeypatch, tmp_path, capsys):
    pair = {"istft": [clone(bench, "istft", 0.75, 3.0)], "griffinlim": [clone(bench, "griffinlim", 0.70, 2.8)]}
    one_set = bench.summarize(pair, 1.0, {"istft": 1.0, "griffinlim": 2.0}, 10.0)
    received = {}

    def fake_run(args):
        received["seed"] = args.seed
        return {"synthesizer": "s.pt", "vocoder": "v.pt", "speakers": ["19"], "reference_seconds": 5.0,
                "sentences_per_speaker": 1, "seeds": args.seed, "different_speaker_similarity": None,
                "same_speaker_similarity": 0.9, "reference_dnsmos": asdict(DnsmosScores(3.7, 3.1, 3.5, 4.0)),
                "reference_dnsmos_by_speaker": {}, **one_set,
                "per_seed": [{"seed": seed, **one_set} for seed in args.seed]}

    monkeypatch.setattr(bench, "run", fake_run)
    assert bench.main(["--seed", "0", "1", "--librispeech", str(tmp_path)]) == 0
    assert received["seed"] == [0, 1]
    printed = capsys.readouterr().out
    assert "the ceiling): DNSMOS P.808 3.70, OVRL 3.10, SIG 3.50" in printed
    assert "Benchmark seed 1:" in printed and "All seeds together:" in printed
    assert "P.808  OVRL   SIG" in printed and "similarity +0.050 ± 0.000 (1/1)" in printed
    assert bench.main(["--librispeech", str(tmp_path), "--json"]) == 0
    assert received["seed"] == [0]
    report = json.loads(capsys.readouterr().out)["reports"][0]
    assert report["dnsmos"] == {"p808": 3.0, "ovrl": 2.5, "sig": 2.8, "bak": 3.9}
