"""Alignment files from Whisper's word timestamps (tools/align_with_whisper.py), read back by the
corpus reader and used by synthesizer preprocessing to split at pauses."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import speak
from utils.asr import asr_available
from utils.corpora import collect_utterances, find_corpora

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "align_with_whisper.py"
FIRST = "The old lighthouse keeper climbed the stairs every evening"
SECOND = "and watched the ships sail slowly past the rocks"

pytestmark = pytest.mark.skipif(not asr_available(), reason="faster-whisper or the Whisper base packages are missing")


def _tool():
    spec = importlib.util.spec_from_file_location("align_with_whisper", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory, espeak) -> Path:
    """One speaker, one chapter: a 2-part utterance with a 0.8 s pause, and its transcript."""
    root = tmp_path_factory.mktemp("src") / "LibriSpeech" / "train-clean-100"
    chapter = root / "7" / "11"
    first = soundfile.read(speak(chapter / "a.wav", FIRST))[0]
    second = soundfile.read(speak(chapter / "b.wav", SECOND))[0]
    for name in ("a.wav", "b.wav"):
        (chapter / name).unlink()
    wav = np.concatenate([first, np.zeros(12800), second])
    soundfile.write(chapter / "7-11-0000.flac", wav, 16000)
    (chapter / "7-11.trans.txt").write_text(f"7-11-0000 {FIRST.upper()} {SECOND.upper()}\n", encoding="utf-8")
    return root


def test_alignment_marks_the_pause_and_preprocessing_splits_there(librispeech, tmp_path):
    tool = _tool()
    out = tmp_path / "datasets" / "LibriSpeech" / "train-clean-100"
    assert tool.main([str(librispeech), str(out), "--threads", "1"]) == 0
    assert (out / "7" / "11" / "7-11-0000.flac").is_symlink()  # audio is linked, not copied
    assert not list(librispeech.rglob("*.alignment.txt"))  # the source is left untouched

    [utterance] = collect_utterances(find_corpora(tmp_path / "datasets"), with_text=True)
    alignment = utterance.alignment
    assert alignment is not None
    words = [w for w in alignment.words if w]
    expected = f"{FIRST} {SECOND}".upper().split()
    assert len(set(words) & set(expected)) >= 0.6 * len(set(expected)), words  # Whisper base on espeak: close
    assert list(alignment.end_times) == sorted(alignment.end_times)
    # The longest pause listed is the 0.8 s of silence between the two parts.
    pauses = [(end - start, i) for i, (word, start, end) in
              enumerate(zip(alignment.words, (0.0, *alignment.end_times[:-1]), alignment.end_times)) if not word]
    length, index = max(pauses)
    assert 0.5 < length < 1.1
    assert alignment.words[index - 1] in ("EVENING", "EVENINGS"), alignment.words

    from synthesizer.hparams import SynthesizerHParams
    from synthesizer.preprocess import split_on_silences

    pieces = split_on_silences(alignment, SynthesizerHParams(utterance_min_duration=1.0))
    assert len(pieces) == 2
    assert "KEEPER" in pieces[0][2] and "ROCKS" in pieces[1][2], pieces


def test_bad_folders_are_one_error_line(tmp_path, capsys):
    tool = _tool()
    assert tool.main([str(tmp_path / "absent"), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("error:")
    assert tool.main([str(tmp_path), str(tmp_path)]) == 1
    assert "another folder" in capsys.readouterr().err
