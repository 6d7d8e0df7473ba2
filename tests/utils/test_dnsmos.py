"""utils.dnsmos: real speech scored offline, noise lowers the scores, repeatable, bad input refused."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import LIBRISPEECH_DIR
from utils.audio_io import load_audio
from utils.dnsmos import (
    DNSMOS_SAMPLE_RATE,
    DnsmosInputError,
    DnsmosScorer,
    DnsmosScores,
    mean_scores,
    models_dir,
)
from utils.errors import UserError

pytest.importorskip("speechmos", reason="speechmos is not installed (pip install -r requirements.txt)")


@pytest.fixture(scope="module")
def scorer() -> DnsmosScorer:
    return DnsmosScorer.load(threads=1)


@pytest.fixture(scope="module")
def speech(tmp_path_factory, espeak) -> np.ndarray:
    """About 3 s of espeak-ng speech at 16 kHz."""
    path = espeak(tmp_path_factory.mktemp("dnsmos") / "speech.wav",
                  "The birch canoe slid on the smooth planks of the old dock.", voice="en-us")
    return load_audio(path, DNSMOS_SAMPLE_RATE)


@pytest.fixture(scope="module")
def clean_scores(scorer, speech) -> DnsmosScores:
    """The speech's scores, computed with every network connection refused (the models are local)."""
    def refuse(*args, **kwargs):
        raise OSError("network access during DNSMOS scoring")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        return scorer.score(speech)


def test_models_ship_inside_the_package(clean_scores):
    import speechmos

    assert models_dir().parent == Path(speechmos.__file__).parent
    assert all(1.0 <= value <= 5.0 for value in (clean_scores.p808, clean_scores.ovrl, clean_scores.sig,
                                                  clean_scores.bak))


def test_scoring_repeats_exactly(scorer, speech, clean_scores):
    assert scorer.score(speech) == clean_scores


def test_heavy_white_noise_scores_lower(scorer, speech, clean_scores):
    noise = np.random.default_rng(0).normal(0.0, 0.1, len(speech)).astype(np.float32)
    noisy = scorer.score(speech + noise)  # beyond ±1 is clipped, not refused
    assert noisy.p808 < clean_scores.p808 - 0.3
    assert noisy.ovrl < clean_scores.ovrl - 0.5
    assert noisy.sig < clean_scores.sig - 0.5
    assert noisy.bak < clean_scores.bak - 1.0


def test_real_recorded_speech_scores_high(scorer):
    files = sorted(LIBRISPEECH_DIR.glob("19/*/*.flac"))
    if not files:
        pytest.skip(f"LibriSpeech train-clean-100 speaker 19 not found under {LIBRISPEECH_DIR}")
    scores = scorer.score(load_audio(files[0], DNSMOS_SAMPLE_RATE))
    assert scores.p808 > 3.2 and scores.ovrl > 2.8 and scores.sig > 3.2


@pytest.mark.parametrize("wav, rate, words", [
    (np.zeros(0, np.float32), DNSMOS_SAMPLE_RATE, "lasts 0.00 s"),
    (np.full(8000, 0.1, np.float32), DNSMOS_SAMPLE_RATE, "at least 1 s"),
    (np.zeros(32000, np.float32), DNSMOS_SAMPLE_RATE, "silent"),
    (np.full(32000, np.nan, np.float32), DNSMOS_SAMPLE_RATE, "NaN"),
    (np.full((2, 32000), 0.1, np.float32), DNSMOS_SAMPLE_RATE, "mono"),
    (np.full(44100, 0.1, np.float32), 22050, "22050 Hz"),
])
def test_bad_audio_gives_a_one_line_user_error(scorer, wav, rate, words):
    with pytest.raises(DnsmosInputError, match=words) as caught:
        scorer.score(wav, rate)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_mean_scores():
    assert mean_scores([DnsmosScores(3.0, 2.0, 3.0, 4.0), DnsmosScores(4.0, 3.0, 4.0, 4.0)]) == DnsmosScores(
        3.5, 2.5, 3.5, 4.0)
    with pytest.raises(ValueError):
        mean_scores([])
