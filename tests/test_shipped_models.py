"""The offline default synthesizer and vocoder committed in ``saved_models/shipped`` (clone without
internet): their files, and ``demo_cli.py`` cloning a voice with them alone, which Whisper must
understand at least as well as the model card's figures promise (a regression bound, not the goal)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile
import torch

from tests.test_demo_cli import run_cli
from utils.asr import Transcriber, asr_available, word_error_rate
from utils.checkpoints import load_checkpoint_file
from utils.default_models import SHIPPED_MODELS_DIR

SHIPPED_BUDGET_BYTES = 40 * 2**20
SYNTHESIZER_BUDGET_BYTES = 25 * 2**20
VOCODER_BUDGET_BYTES = 15 * 2**20
TEXT = "The birch canoe slid on the smooth planks."
#: Word error rate the offline clone of TEXT must not exceed: a regression bound. The shipped files
#: (synthesizer step 9,989, iSTFT vocoder step 13,448) give 3 wrong words of 8 from this espeak-ng
#: reference with one or two Whisper threads (0.375, "the birch can use slate on the smooth planks");
#: earlier files gave 3 to 5 depending on the thread count, so the bound keeps two words of margin. It
#: fails on babble; the held-out figures are in saved_models/README.md.
MAX_WORD_ERROR_RATE = 0.75

pytestmark = pytest.mark.skipif(
    not all((SHIPPED_MODELS_DIR / f"{name}.pt").is_file() for name in ("synthesizer", "vocoder")),
    reason="this checkout has no shipped models in saved_models/shipped")


@pytest.mark.parametrize("name", ["synthesizer", "vocoder"])
def test_shipped_files_are_float16_inference_checkpoints(name):
    checkpoint = load_checkpoint_file(SHIPPED_MODELS_DIR / f"{name}.pt", name)
    assert checkpoint["model_type"] == name and "optimizer_state" not in checkpoint
    floats = [t for t in checkpoint["model_state"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    assert all(torch.isfinite(t.float()).all() for t in floats)
    assert checkpoint["step"] > 0


@pytest.mark.parametrize("name", ["synthesizer", "vocoder"])
def test_shipped_files_carry_their_sha256_and_a_changed_copy_is_refused(name, tmp_path):
    """Issue 26: a SHA-256 beside each shipped file (``sha256sum -c`` format), checked at every load."""
    import shutil

    from utils.checkpoints import CheckpointError, checksum_path
    from utils.download import file_sha256

    shipped = SHIPPED_MODELS_DIR / f"{name}.pt"
    assert checksum_path(shipped).read_text(encoding="ascii") == f"{file_sha256(shipped)}  {name}.pt\n"
    copy = tmp_path / shipped.name
    shutil.copyfile(shipped, copy)
    shutil.copyfile(checksum_path(shipped), checksum_path(copy))
    load_checkpoint_file(copy, name)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1  # one bit inside the weights: torch itself would load this file
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"does not match the SHA-256 in '{name}.pt.sha256'"):
        load_checkpoint_file(copy, name)


def test_shipped_models_are_the_offline_kinds():
    assert load_checkpoint_file(SHIPPED_MODELS_DIR / "synthesizer.pt", "synthesizer")["architecture"] == "duration"
    assert load_checkpoint_file(SHIPPED_MODELS_DIR / "vocoder.pt", "vocoder")["architecture"] == "istft"


def test_shipped_models_fit_the_size_budget_and_have_a_model_card():
    sizes = [path.stat().st_size for path in SHIPPED_MODELS_DIR.glob("*.pt")]
    assert len(sizes) == 2 and sum(sizes) <= SHIPPED_BUDGET_BYTES
    assert (SHIPPED_MODELS_DIR / "synthesizer.pt").stat().st_size <= SYNTHESIZER_BUDGET_BYTES
    assert (SHIPPED_MODELS_DIR / "vocoder.pt").stat().st_size <= VOCODER_BUDGET_BYTES
    card = (SHIPPED_MODELS_DIR.parent / "README.md").read_text(encoding="utf-8")
    for topic in ("Data", "Licen", "Steps", "Word error rate", "similarity", "DNSMOS", "bench_quality.py"):
        assert topic.lower() in card.lower(), topic


@pytest.fixture(scope="module")
def offline_clone(tmp_path_factory, espeak) -> tuple[Path, str]:
    """``demo_cli.py`` with an empty models folder and every proxy pointing nowhere: no download possible."""
    folder = tmp_path_factory.mktemp("offline")
    reference = espeak(folder / "reference.wav", "I am recording a few sentences so that my voice can be cloned.",
                       voice="en-us+f2")
    out = folder / "clone.wav"
    dead = "http://127.0.0.1:9"  # the discard port: any network attempt fails at once
    env = {"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead, "no_proxy": ""}
    result = run_cli("--reference", reference, "--text", TEXT, "--out", out, "--models_dir", folder / "models",
                     "--seed", "0", "--quiet", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_demo_cli_clones_with_the_shipped_models_when_nothing_was_downloaded(offline_clone):
    out, stdout = offline_clone
    assert "offline synthesizer and vocoder" in stdout
    wav, rate = soundfile.read(out, dtype="float32")
    assert rate == 16000 and 1.0 < len(wav) / rate < 8.0
    assert 0.05 < abs(wav).max() <= 1.0


@pytest.mark.skipif(not asr_available(), reason="faster-whisper or the Whisper base packages are not installed")
def test_the_offline_clone_is_intelligible(offline_clone):
    out, _ = offline_clone
    wav, _ = soundfile.read(out, dtype="float32")
    transcript = Transcriber.load(threads=min(2, os.cpu_count() or 1)).transcribe(wav)
    assert word_error_rate(TEXT, transcript) <= MAX_WORD_ERROR_RATE, transcript


# --------------------------------------------------------------------------------------------------
# The shipped vocoder against Griffin-Lim on recorded mels (issue 14's copy-synthesis bars, in small)
# --------------------------------------------------------------------------------------------------
def _copy_synthesis_scores(wav, encoder) -> dict[str, tuple[float, float]]:
    """``{vocoder: (spectral distance dB, GE2E cosine to the source)}`` of the shipped iSTFT vocoder
    and tuned Griffin-Lim, both vocoding the recording's own mel."""
    from utils.mel import melspectrogram
    from synthesizer.hparams import SynthesizerHParams
    from vocoder.inference import GriffinLimVocoder
    from vocoder.istft.inference import ISTFTVocoder
    from vocoder.istft.metrics import spectral_distance

    mel = melspectrogram(wav, SynthesizerHParams())
    source = encoder.embed_utterance(encoder.preprocess(wav, 16000))
    scores = {}
    for name, vocoder in (("istft", ISTFTVocoder.from_checkpoint(SHIPPED_MODELS_DIR / "vocoder.pt")),
                          ("griffinlim", GriffinLimVocoder())):
        # Griffin-Lim starts from random phases: a fixed generator makes the comparison repeatable.
        audio = vocoder.vocode(mel, generator=torch.Generator().manual_seed(0)) if name == "griffinlim" \
            else vocoder.vocode(mel)
        embedding = encoder.embed_utterance(encoder.preprocess(audio, 16000))
        scores[name] = (spectral_distance(wav, audio), float(embedding @ source))
    return scores


def test_shipped_vocoder_beats_griffin_lim_on_espeak_voices(espeak, real_encoder, tmp_path, torch_single_thread):
    # Copy-synthesis of three synthetic voices. The shipped step-13,448 vocoder is 1.2-1.7 dB closer
    # than Griffin-Lim on each and scores GE2E 0.968 against 0.956 on average; the step-9,753 one,
    # trained without the speaker-consistency loss, scored 0.936 and would fail.
    from synthesizer.audio import load_wav
    from synthesizer.hparams import SynthesizerHParams

    text = "I am recording a few sentences so that my voice can be cloned by the toolbox."
    scores = []
    for voice, pitch in (("en-us+f2", 50), ("en-us", 40), ("en-gb+m3", 60)):
        path = espeak(tmp_path / f"{voice}.wav", text, voice=voice, pitch=pitch)
        scores.append(_copy_synthesis_scores(load_wav(path, SynthesizerHParams()), real_encoder))
    for score in scores:
        assert score["istft"][0] < score["griffinlim"][0] - 0.5, score
    mean_cosine = {name: sum(score[name][1] for score in scores) / len(scores) for name in ("istft", "griffinlim")}
    assert mean_cosine["istft"] > mean_cosine["griffinlim"], mean_cosine


@pytest.mark.parametrize("speaker", ["19", "5192"])  # held out of the shipped models' training
def test_shipped_vocoder_keeps_a_held_out_voice_better_than_griffin_lim(librispeech_dir, real_encoder, speaker,
                                                                        torch_single_thread):
    # Six seconds of each speaker's recording: the shipped step-13,448 vocoder scores GE2E 0.923 and
    # 0.962 against Griffin-Lim's 0.849 and 0.906, and is 3.5-4 dB closer.
    from synthesizer.audio import load_wav
    from synthesizer.hparams import SynthesizerHParams

    recording = sorted((librispeech_dir / speaker).glob("*/*.flac"))[0]
    wav = load_wav(recording, SynthesizerHParams())[: 6 * 16000]
    scores = _copy_synthesis_scores(wav, real_encoder)
    assert scores["istft"][0] < scores["griffinlim"][0] - 2.0, scores
    assert scores["istft"][1] > scores["griffinlim"][1] + 0.03, scores
