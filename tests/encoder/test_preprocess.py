"""encoder.preprocess on espeak-ng corpora and on real LibriSpeech speakers.

The expected mel frames are recomputed from the source files with the public front-end
(``wav_to_mel_spectrogram(preprocess_wav(file))``), so the test checks the whole file-to-npy path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from encoder.audio import preprocess_wav, wav_to_mel_spectrogram
from encoder.hparams import EncoderHParams
from encoder.preprocess import SOURCES_FILE, main, parse_source_line, read_sources
from tests.conftest import REPO_ROOT, librispeech_utterances

HP = EncoderHParams()
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore every single summer morning.",
    "A journey of a thousand miles begins with one small step forward.",
)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory, espeak) -> Path:
    """LibriSpeech-style speakers, a speaker folder with a comma in its name, and files that must fail."""
    root = tmp_path_factory.mktemp("encoder_corpora")
    base = root / "LibriSpeech" / "train-clean-100"
    for speaker, pitch in (("1006", 30), ("19", 70)):
        chapter = base / speaker / "135212"
        for index, sentence in enumerate(SENTENCES[:2]):
            espeak(chapter / f"{speaker}-135212-000{index}.flac", sentence, pitch=pitch)
        espeak(chapter / f"{speaker}-135212-0009.flac", "Hi.", pitch=pitch)  # about 0.5 s: too short
        (chapter / f"{speaker}-135212.trans.txt").write_text("unused by the encoder\n")
    espeak(root / "voices" / "Smith, John" / "take, 1.wav", SENTENCES[2], voice="en-gb")
    soundfile.write(root / "voices" / "Smith, John" / "silent.wav", np.zeros(32000, np.float32), 16000)
    (root / "voices" / "Smith, John" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    return root


def run_main(root: Path, out: Path, *extra: str, capsys=None) -> tuple[int, str]:
    code = main([str(root), "-o", str(out), "-n", "1", *extra])
    output = capsys.readouterr().out if capsys is not None else ""
    return code, output


def test_writes_rtvc_layout_and_exact_mels(corpus_root, tmp_path, capsys):
    out = tmp_path / "encoder"
    code, output = run_main(corpus_root, out, capsys=capsys)
    assert code == 0
    speaker_dir = out / "LibriSpeech_train-clean-100_1006"
    assert sorted(p.name for p in speaker_dir.iterdir()) == [
        "135212_1006-135212-0000.npy", "135212_1006-135212-0001.npy", SOURCES_FILE,
    ]
    source = corpus_root / "LibriSpeech/train-clean-100/1006/135212/1006-135212-0001.flac"
    frames = np.load(speaker_dir / "135212_1006-135212-0001.npy")
    assert frames.dtype == np.float32 and frames.shape[1] == 40 and frames.shape[0] >= HP.partials_n_frames
    np.testing.assert_array_equal(frames, wav_to_mel_spectrogram(preprocess_wav(source)))
    assert read_sources(speaker_dir / SOURCES_FILE)["135212_1006-135212-0001.npy"] == str(source)

    # Two "Hi." files too short, one silent and one broken file failed; the run still finished.
    assert "Done: 3 speakers, 5 utterances kept" in output
    assert "2 dropped as shorter than 160 frames, 2 failed." in output
    logs = {p.name: p.read_text() for p in out.glob("Log_*.txt")}
    assert set(logs) == {"Log_LibriSpeech_train-clean-100.txt", "Log_voices.txt"}
    libri_log = logs["Log_LibriSpeech_train-clean-100.txt"]
    for expected in ("Utterances kept: 4", "shorter than 160 frames: 2", "partials_n_frames: 160", "median:"):
        assert expected in libri_log
    assert "Failed (unreadable, silent or no speech): 2" in logs["Log_voices.txt"]
    assert "silent.wav" in logs["Log_voices.txt"] and "broken.wav" in logs["Log_voices.txt"]


def test_paths_with_commas_round_trip_through_sources(corpus_root, tmp_path):
    out = tmp_path / "encoder"
    assert main([str(corpus_root), "-o", str(out), "-n", "1", "-d", "voices"]) == 0
    speaker_dir = out / "voices_Smith_John"
    lines = (speaker_dir / SOURCES_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    name, source = parse_source_line(lines[0])
    assert name == "take_1.npy" and Path(source) == corpus_root / "voices" / "Smith, John" / "take, 1.wav"
    np.testing.assert_array_equal(np.load(speaker_dir / name), wav_to_mel_spectrogram(preprocess_wav(source)))


def test_skip_existing_keeps_files_and_appends(corpus_root, tmp_path, espeak):
    root = tmp_path / "root"
    shutil.copytree(corpus_root / "LibriSpeech", root / "LibriSpeech")
    out = tmp_path / "encoder"
    assert main([str(root), "-o", str(out), "-n", "1"]) == 0
    speaker_dir = out / "LibriSpeech_train-clean-100_19"
    old_files = sorted(speaker_dir.glob("*.npy"))
    old_times = {p: p.stat().st_mtime_ns for p in old_files}
    old_sources = (speaker_dir / SOURCES_FILE).read_text()

    espeak(root / "LibriSpeech/train-clean-100/19/135212/19-135212-0005.flac", SENTENCES[2], pitch=70)
    assert main([str(root), "-o", str(out), "-n", "1", "--skip_existing"]) == 0
    assert {p: p.stat().st_mtime_ns for p in old_files} == old_times
    sources = (speaker_dir / SOURCES_FILE).read_text()
    assert sources.startswith(old_sources)
    assert sources[len(old_sources):].startswith("135212_19-135212-0005.npy,")
    assert len(read_sources(speaker_dir / SOURCES_FILE)) == len(sources.splitlines()) == 3

    # Without --skip_existing everything is recomputed and _sources.txt is rewritten (same content).
    assert main([str(root), "-o", str(out), "-n", "1"]) == 0
    assert all(p.stat().st_mtime_ns != old_times[p] for p in old_files)
    assert len((speaker_dir / SOURCES_FILE).read_text().splitlines()) == 3


def test_no_trim_really_keeps_silences(corpus_root, tmp_path):
    out = tmp_path / "encoder"
    assert main([str(corpus_root), "-o", str(out), "-n", "1", "--no_trim", "-d", "LibriSpeech/train-clean-100"]) == 0
    source = corpus_root / "LibriSpeech/train-clean-100/19/135212/19-135212-0000.flac"
    untrimmed = np.load(out / "LibriSpeech_train-clean-100_19" / "135212_19-135212-0000.npy")
    np.testing.assert_array_equal(untrimmed, wav_to_mel_spectrogram(preprocess_wav(source, trim_silence=False)))
    assert len(untrimmed) > len(wav_to_mel_spectrogram(preprocess_wav(source)))


def run_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "encoder.preprocess", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["{tmp}/missing"], "does not exist"),
        (["{tmp}", "-d", "nope"], "The dataset 'nope'"),
        (["{tmp}", "-n", "0"], "--n_processes must be at least 1"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, arguments, expected):
    done = run_cli(*(argument.format(tmp=tmp_path) for argument in arguments))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cli_with_two_worker_processes_matches_in_process(corpus_root, tmp_path):
    done = run_cli(str(corpus_root), "-o", str(tmp_path / "parallel"), "-n", "2", "-d", "LibriSpeech/train-clean-100")
    assert done.returncode == 0, done.stderr
    assert "Done: 2 speakers, 4 utterances kept" in done.stdout
    assert main([str(corpus_root), "-o", str(tmp_path / "serial"), "-n", "1", "-d", "LibriSpeech/train-clean-100"]) == 0
    parallel = sorted((tmp_path / "parallel").rglob("*.npy"))
    serial = sorted((tmp_path / "serial").rglob("*.npy"))
    assert ([p.relative_to(tmp_path / "parallel") for p in parallel]
            == [p.relative_to(tmp_path / "serial") for p in serial])
    for a, b in zip(parallel, serial):
        np.testing.assert_array_equal(np.load(a), np.load(b))


def test_help_describes_the_options():
    done = run_cli("--help")
    assert done.returncode == 0
    for option in ("--out_dir", "--datasets", "--skip_existing", "--no_trim", "--n_processes", "librispeech_other"):
        assert option in done.stdout


def test_real_librispeech_speakers(librispeech_dir, tmp_path, capsys):
    """Three real speakers linked into a private datasets root; 19's 2 s utterance is too short once trimmed."""
    chosen = {speaker: path for speaker, path in librispeech_utterances(librispeech_dir)
              if speaker in ("19", "328", "5561")}
    if len(chosen) != 3:
        pytest.skip("the expected LibriSpeech speakers are not in the shared dataset")
    subset = tmp_path / "root" / "LibriSpeech" / "train-clean-100"
    subset.mkdir(parents=True)
    for speaker in chosen:
        os.symlink(librispeech_dir / speaker, subset / speaker, target_is_directory=True)
    out = tmp_path / "encoder"
    assert main([str(tmp_path / "root"), "-o", str(out), "-n", "1"]) == 0
    output = capsys.readouterr().out
    kept = sorted(out.glob("*/*.npy"))
    assert [p.parent.name for p in kept] == ["LibriSpeech_train-clean-100_328", "LibriSpeech_train-clean-100_5561"]
    assert "2 utterances kept" in output and "1 dropped as shorter than 160 frames, 0 failed." in output
    for npy in kept:
        speaker = npy.parent.name.rsplit("_", 1)[1]
        source = chosen[speaker]
        assert npy.name == f"{source.parent.name}_{source.stem}.npy"
        np.testing.assert_array_equal(np.load(npy), wav_to_mel_spectrogram(preprocess_wav(source)))
        expected_source = subset / speaker / source.parent.name / source.name
        assert read_sources(npy.parent / SOURCES_FILE) == {npy.name: str(expected_source)}
