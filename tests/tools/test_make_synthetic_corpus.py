"""Tests of tools/make_synthetic_corpus.py: layout, audio, speakers, pitch/formant shifts, resuming, errors.

Every test needs espeak-ng (skipped with a reason otherwise); flite is used as a second engine when it
is installed. The corpus is generated once per module (4 speakers x 2 sentences).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile

from utils.corpora import collect_utterances, detect_layout, find_corpora

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "make_synthetic_corpus.py"
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore every summer.",
    "A large fawn jumped quickly over white zinc boxes.",
    "We will meet again at the old station tomorrow morning.",
    "Bright lamps were shining along the narrow river bank.",
    "Nobody knew where the little boat had gone that night.",
]
SHIFTS = "1.0:1.0,1.15:0.92"
SAMPLE_RATE = 16000

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_synthetic_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and multiprocessing look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return _load_tool()


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def engines() -> str:
    return "espeak,flite" if shutil.which("flite") else "espeak"


def _arguments(out: Path, texts: Path, engines: str) -> list[str]:
    return [str(out), "--texts", str(texts), "--engines", engines, "--shifts", SHIFTS,
            "--sentences_per_speaker", "2", "--max_speakers", "4", "-n", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def corpus(tool: ModuleType, texts: Path, engines: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "synthetic"
    assert tool.main(_arguments(out, texts, engines)) == 0
    return out


def _speaker_dirs(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.is_dir())


def _f0(wav: np.ndarray) -> float:
    from synthesizer.duration.pitch import estimate_f0

    f0 = estimate_f0(wav, SAMPLE_RATE, 256, 1 + len(wav) // 256)
    return float(np.median(f0[f0 > 0]))


def _centroid(wav: np.ndarray) -> float:
    import librosa

    loud = librosa.feature.rms(y=wav)[0] > 0.02  # speech frames only: silence has no envelope
    return float(np.mean(librosa.feature.spectral_centroid(y=wav, sr=SAMPLE_RATE)[0][loud]))


# --------------------------------------------------------------------------------------------------
# The generated corpus
# --------------------------------------------------------------------------------------------------
def test_layout_is_a_text_folder_with_one_speaker_per_folder(corpus: Path, engines: str) -> None:
    assert detect_layout(corpus) == ("text_folder", corpus)
    utterances = collect_utterances(find_corpora(corpus.parent))
    speakers = {u.speaker for u in utterances}
    assert len(speakers) == 4 and len(utterances) == 8
    assert all(u.text in SENTENCES for u in utterances)
    names = [p.name for p in _speaker_dirs(corpus)]
    expected_engines = {e + "-" for e in engines.split(",")}
    assert {next(e for e in expected_engines if n.startswith(e)) for n in names} == expected_engines
    assert any(n.endswith("_p1.15_f0.92") for n in names) and any(n.endswith("_p1.00_f1.00") for n in names)


def test_wavs_are_16k_mono_pcm16_speech(corpus: Path) -> None:
    wavs = sorted(corpus.glob("*/*.wav"))
    assert len(wavs) == 8
    for path in wavs:
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        wav, _ = soundfile.read(str(path), dtype="float32")
        assert info.duration > 1.0
        assert np.sqrt(np.mean(wav**2)) > 0.02  # speech, not silence
        text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        assert text in SENTENCES


def test_speakers_get_different_sentences_and_the_tsv_lists_them(corpus: Path) -> None:
    rows = [line.split("\t") for line in (corpus / "speakers.tsv").read_text().splitlines()]
    assert rows[0] == ["speaker", "engine", "voice", "pitch_factor", "formant_factor"]
    assert sorted(r[0] for r in rows[1:]) == [p.name for p in _speaker_dirs(corpus)]
    for name, engine, voice, pitch, formant in rows[1:]:
        assert name == f"{engine}-{voice}_p{float(pitch):.2f}_f{float(formant):.2f}"
    chosen = {frozenset(p.stem for p in d.glob("*.txt")) for d in _speaker_dirs(corpus)}
    assert len(chosen) > 1  # with 6 sentences and 4 speakers, not every speaker says the same two
    readme = (corpus / "README.txt").read_text()
    assert "espeak-ng" in readme and "GPL" in readme


def test_sentence_choice_is_deterministic_per_speaker(tool: ModuleType) -> None:
    sentences = [tool.Sentence(f"s{i}", f"sentence {i}") for i in range(100)]
    first = tool.pick_sentences(sentences, "espeak-en-us_p1.00_f1.00", 5, seed=0)
    assert first == tool.pick_sentences(sentences, "espeak-en-us_p1.00_f1.00", 5, seed=0)
    assert first != tool.pick_sentences(sentences, "espeak-en-gb_p1.00_f1.00", 5, seed=0)
    assert first != tool.pick_sentences(sentences, "espeak-en-us_p1.00_f1.00", 5, seed=1)


def test_skip_existing_does_not_rewrite_and_fills_gaps(tool: ModuleType, corpus: Path, texts: Path,
                                                       engines: str) -> None:
    wavs = sorted(corpus.glob("*/*.wav"))
    before = {p: p.stat().st_mtime_ns for p in wavs}
    wavs[0].unlink()
    assert tool.main([*_arguments(corpus, texts, engines), "--skip_existing"]) == 0
    after = {p: p.stat().st_mtime_ns for p in sorted(corpus.glob("*/*.wav"))}
    assert set(after) == set(before)
    assert {p for p in before if before[p] != after[p]} == {wavs[0]}
    assert not list(corpus.glob("*/.*"))  # no temporary file left behind


# --------------------------------------------------------------------------------------------------
# Shifts
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def espeak_wav(tool: ModuleType) -> np.ndarray:
    return tool.synthesize(tool.EngineVoice("espeak", "en-us", "en-us"), SENTENCES[3])


@pytest.mark.parametrize("pitch", [1.2, 0.85])
def test_pitch_shift_scales_f0(tool: ModuleType, espeak_wav: np.ndarray, pitch: float) -> None:
    shifted = tool.shift_voice(espeak_wav, SAMPLE_RATE, pitch, 1.0)
    assert len(shifted) == len(espeak_wav)
    ratio = _f0(shifted) / _f0(espeak_wav)
    assert abs(ratio / pitch - 1.0) < 0.10


@pytest.mark.parametrize("formant", [1.2, 0.83])
def test_formant_shift_moves_the_envelope_and_keeps_f0(tool: ModuleType, espeak_wav: np.ndarray,
                                                       formant: float) -> None:
    shifted = tool.shift_voice(espeak_wav, SAMPLE_RATE, 1.0, formant)
    ratio = _centroid(shifted) / _centroid(espeak_wav)
    assert (ratio > 1.05) if formant > 1 else (ratio < 0.95)
    assert abs(_f0(shifted) / _f0(espeak_wav) - 1.0) < 0.05


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def test_missing_text_file_is_one_error_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "out"), "--texts", str(tmp_path / "no.txt")],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--engines", "espeak,sapi"], ["--shifts", "1.1"]])
def test_bad_options_are_one_error_line(tool: ModuleType, texts: Path, tmp_path: Path, option: list[str],
                                        capsys: pytest.CaptureFixture) -> None:
    assert tool.main([str(tmp_path / "out"), "--texts", str(texts), *option]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.strip().count("\n") == 0


def test_list_voices_includes_espeak_variants(tool: ModuleType, capsys: pytest.CaptureFixture) -> None:
    assert tool.main(["--list_voices", "--engines", "espeak"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert "espeak-en-us" in names and any(n.startswith("espeak-en-us+f") for n in names)


def test_ljspeech_metadata_uses_the_normalized_column(tool: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_text("LJ001-0001|Dr. Smith, 1st|Doctor Smith, first\nLJ001-0002|only two|\n\n", encoding="utf-8")
    assert tool.read_sentences(path) == [tool.Sentence("LJ001-0001", "Doctor Smith, first"),
                                         tool.Sentence("LJ001-0002", "only two")]


def test_voices_and_sentence_lengths_can_be_chosen(tool: ModuleType, texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "chosen"
    assert tool.main([str(out), "--texts", str(texts), "--engines", "espeak",
                      "--voices", "espeak-en-us,espeak-en-us+f2", "--shifts", "1.0:1.0",
                      "--sentences_per_speaker", "3", "--max_chars", "46", "-n", "1"]) == 0
    assert (sorted(p.name for p in out.iterdir() if p.is_dir())
            == ["espeak-en-us+f2_p1.00_f1.00", "espeak-en-us_p1.00_f1.00"])
    spoken = {path.read_text(encoding="utf-8").strip() for path in out.glob("*/*.txt")}
    assert spoken and all(len(text) <= 46 for text in spoken)
    assert spoken <= {s for s in SENTENCES if len(s) <= 46}


def test_voice_patterns_matching_nothing_are_one_error_line(tool: ModuleType, texts: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    assert tool.main([str(tmp_path / "out"), "--texts", str(texts), "--engines", "espeak", "--voices", "nobody-*"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nobody-*" in err and err.strip().count("\n") == 0
    assert tool.main([str(tmp_path / "out"), "--texts", str(texts), "--min_chars", "500"]) == 1
    assert "no sentence" in capsys.readouterr().err


def test_a_pattern_matching_no_voice_among_others_is_a_warning(tool: ModuleType, texts: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "some"
    assert tool.main([str(out), "--texts", str(texts), "--engines", "espeak", "--voices", "espeak-en-us,nobody",
                      "--shifts", "1.0:1.0", "--sentences_per_speaker", "1", "-n", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: no installed voice matches 'nobody'" in err and "1 base voice" in err
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["espeak-en-us_p1.00_f1.00"]
