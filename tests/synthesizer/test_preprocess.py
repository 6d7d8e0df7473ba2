"""synthesizer.preprocess and synthesizer.metadata on espeak-ng corpora and on real speech.

Saved arrays are checked against the public front-ends applied to the source files, train.txt columns
against the arrays, and embeddings against the pretrained encoder applied to the saved audio.
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

from encoder.audio import preprocess_wav
from synthesizer.audio import load_wav
from utils.mel import melspectrogram
from synthesizer.hparams import SynthesizerHParams
from synthesizer.metadata import (
    MetadataError,
    TrainEntry,
    append_train_txt,
    read_train_txt,
    write_train_txt,
)
from synthesizer.preprocess import main, parse_hparams_overrides, split_on_silences
from tests.conftest import LIBRISPEECH_DIR, REPO_ROOT, librispeech_utterances
from utils.corpora import Alignment
from utils.hparams import HParamsError

HP = SynthesizerHParams()
RATE = HP.sample_rate
FIRST = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"
SECOND = "SHE SELLS SEA SHELLS BY THE SEA SHORE EVERY SINGLE SUMMER MORNING"
WHOLE = "A journey of a thousand miles begins with one small step forward."
EXPECTED_BASENAMES = [
    "1006-135212-0000_00", "1006-135212-0000_01", "1006-135212-0001", "84_121123_000007_000001",
    "LJ001-0001", "mine_alice_take1", "mine_bob_take1", "p225_001",
]


def write_aligned_utterance(espeak, chapter: Path, utterance_id: str) -> tuple[float, float]:
    """``FIRST``, a pause, "YES", a pause, ``SECOND``, with its alignment line; returns (start, end) of part 1.

    RTVC splits at both pauses (>= 0.4 s), then joins the too-short "YES" to its shorter neighbour (FIRST).
    """
    pieces, words, end_times, clock = [], [], [], 0.0

    def pause(seconds: float) -> None:
        nonlocal clock
        pieces.append(np.zeros(int(seconds * RATE), np.float32))
        clock += len(pieces[-1]) / RATE
        words.append("")
        end_times.append(clock)

    def say(text: str) -> None:
        nonlocal clock
        wav, _ = soundfile.read(espeak(chapter / ".part.wav", text.lower()), dtype="float32")
        start, seconds = clock, len(wav) / RATE
        pieces.append(wav)
        clock += seconds
        spoken = text.split()
        words.extend(spoken)
        end_times.extend(start + seconds * (i + 1) / len(spoken) for i in range(len(spoken)))

    pause(0.3)
    say(FIRST)
    pause(0.6)
    say("YES")
    first_end = clock
    pause(0.5)
    say(SECOND)
    pause(0.3)
    (chapter / ".part.wav").unlink()
    soundfile.write(chapter / f"{utterance_id}.flac", np.concatenate(pieces), RATE)
    times = ",".join(f"{t:.3f}" for t in end_times)
    with open(chapter / f"{utterance_id.rsplit('-', 1)[0]}.alignment.txt", "a") as stream:
        stream.write(f'{utterance_id} "{",".join(words)}" "{times}"\n')
    return 0.3, round(first_end, 3)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory, espeak) -> Path:
    root = tmp_path_factory.mktemp("synthesizer_corpora")
    chapter = root / "LibriSpeech" / "train-clean-100" / "1006" / "135212"
    chapter.mkdir(parents=True)
    write_aligned_utterance(espeak, chapter, "1006-135212-0000")
    espeak(chapter / "1006-135212-0001.flac", WHOLE)
    espeak(chapter / "1006-135212-0002.flac", "Hi.")  # too short
    (chapter / "1006-135212.trans.txt").write_text(
        f"1006-135212-0000 {FIRST} YES {SECOND}\n1006-135212-0001 {WHOLE.upper()}\n1006-135212-0002 HI\n")

    vctk = root / "VCTK-Corpus-0.92"
    for mic, pitch in ((1, 40), (2, 60)):
        espeak(vctk / "wav48_silence_trimmed" / "p225" / f"p225_001_mic{mic}.flac", "Please call Stella, ask her "
               "to bring these things with her from the store.", voice="en-gb", pitch=pitch)
    (vctk / "txt" / "p225").mkdir(parents=True)
    (vctk / "txt" / "p225" / "p225_001.txt").write_text("Please call Stella.  Ask her to bring these things.\n")

    espeak(root / "LJSpeech-1.1" / "wavs" / "LJ001-0001.wav", "It cost five dollars and twenty cents in the old shop.")
    (root / "LJSpeech-1.1" / "metadata.csv").write_text(
        "LJ001-0001|It cost $5.20 in the old shop.|It cost five dollars and twenty cents in the old shop.\n")

    tts = root / "LibriTTS" / "dev-clean" / "84" / "121123"
    sentence = "Go, do you hear the music playing in the garden tonight?"
    espeak(tts / "84_121123_000007_000001.wav", sentence)
    (tts / "84_121123_000007_000001.normalized.txt").write_text(sentence)

    mine = root / "mine"
    for speaker, pitch in (("alice", 80), ("bob", 20)):
        espeak(mine / speaker / "take1.wav", WHOLE, pitch=pitch)
        (mine / speaker / "take1.txt").write_text(f'"{WHOLE}" | said {speaker}.\n')
    espeak(mine / "bob" / "emoji.wav", "Smile for the camera, everybody, right now please.")
    (mine / "bob" / "emoji.txt").write_text("🙂")  # nothing the synthesizer can say
    espeak(mine / "bob" / "untranscribed.wav", SECOND.lower())
    return root


@pytest.fixture(scope="module")
def audio_output(corpus_root, tmp_path_factory) -> Path:
    """One audio-stage run over the whole espeak root (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("synthesizer_out") / "synthesizer"
    assert main([str(corpus_root), "-o", str(out), "-n", "1", "--no_embeds"]) == 0
    return out


def load_entries(out: Path) -> dict[str, TrainEntry]:
    return {entry.basename: entry for entry in read_train_txt(out / "train.txt")}


# --------------------------------------------------------------------------------------------------
# Audio stage
# --------------------------------------------------------------------------------------------------
def test_train_txt_matches_the_saved_arrays(audio_output):
    entries = load_entries(audio_output)
    assert sorted(entries) == EXPECTED_BASENAMES
    for basename, entry in entries.items():
        assert (entry.audio_name, entry.mel_name, entry.embed_name) == (
            f"audio-{basename}.npy", f"mel-{basename}.npy", f"embed-{basename}.npy")
        wav = np.load(audio_output / "audio" / entry.audio_name)
        mel = np.load(audio_output / "mels" / entry.mel_name)
        assert wav.dtype == mel.dtype == np.float32 and wav.ndim == 1
        assert len(wav) == entry.n_samples >= HP.utterance_min_duration * RATE
        assert mel.shape == (entry.n_frames, HP.num_mels) and entry.n_frames == 1 + len(wav) // HP.hop_size
        assert entry.n_frames <= HP.max_mel_frames
        np.testing.assert_array_equal(mel, melspectrogram(wav, HP).T)  # the mel is of the stored wave
        assert np.abs(wav).max() <= HP.rescaling_max + 1e-6


def test_texts_come_from_each_layout(audio_output):
    texts = {name: entry.text for name, entry in load_entries(audio_output).items()}
    assert texts["1006-135212-0000_00"] == f"{FIRST} YES"
    assert texts["1006-135212-0000_01"] == SECOND
    assert texts["1006-135212-0001"] == WHOLE.upper()
    assert texts["p225_001"] == "Please call Stella. Ask her to bring these things."
    assert texts["LJ001-0001"] == "It cost five dollars and twenty cents in the old shop."
    assert texts["84_121123_000007_000001"] == "Go, do you hear the music playing in the garden tonight?"
    assert texts["mine_alice_take1"] == f"{WHOLE} said alice."  # quotes and the '|' removed


def test_whole_utterance_audio_is_rescaled_and_trimmed(audio_output, corpus_root):
    source = corpus_root / "LibriSpeech/train-clean-100/1006/135212/1006-135212-0001.flac"
    expected = preprocess_wav(load_wav(source, HP), normalize=False)
    np.testing.assert_array_equal(np.load(audio_output / "audio" / "audio-1006-135212-0001.npy"), expected)


def test_aligned_utterance_is_split_as_rtvc(audio_output, corpus_root):
    chapter = corpus_root / "LibriSpeech/train-clean-100/1006/135212"
    line = (chapter / "1006-135212.alignment.txt").read_text().split()
    words = tuple(line[1].strip('"').split(","))
    end_times = tuple(float(t) for t in line[2].strip('"').split(","))
    segments = split_on_silences(Alignment(words, end_times), HP)
    assert [text for _, _, text in segments] == [f"{FIRST} YES", SECOND]
    start, end, _ = segments[0]
    wav = load_wav(chapter / "1006-135212-0000.flac", HP)
    expected = preprocess_wav(wav[int(start * RATE): int(end * RATE)], normalize=False)
    np.testing.assert_array_equal(np.load(audio_output / "audio" / "audio-1006-135212-0000_00.npy"), expected)


def test_no_alignments_uses_whole_utterances(corpus_root, tmp_path, capsys):
    out = tmp_path / "synthesizer"
    assert main([str(corpus_root), "-o", str(out), "-n", "1", "--no_embeds", "--no_alignments",
                 "-d", "LibriSpeech"]) == 0
    entries = load_entries(out)
    assert sorted(entries) == ["1006-135212-0000", "1006-135212-0001"]
    assert entries["1006-135212-0000"].text == f"{FIRST} YES {SECOND}"
    assert "dropped: 1 too short." in capsys.readouterr().out


def test_drops_are_counted_by_reason(corpus_root, tmp_path, capsys):
    # 100 frames (1.25 s) is below the 1.6 s minimum: whatever is long enough is too long.
    out = tmp_path / "synthesizer"
    assert main([str(corpus_root), "-o", str(out), "-n", "1", "--no_embeds", "-d", "mine,LibriSpeech",
                 "--no_alignments", "--hparams", "max_mel_frames=100"]) == 0
    output = capsys.readouterr().out
    assert "dropped: 1 no transcript, 1 no speakable text, 1 too short, 4 too long." in output
    assert read_train_txt(out / "train.txt") == [] and not list((out / "mels").iterdir())


def test_skip_existing_keeps_files_and_appends(audio_output, corpus_root, tmp_path, espeak, capsys):
    root = tmp_path / "root"
    shutil.copytree(corpus_root / "LJSpeech-1.1", root / "LJSpeech-1.1")
    out = tmp_path / "synthesizer"
    assert main([str(root), "-o", str(out), "-n", "1", "--no_embeds"]) == 0
    old_text = (out / "train.txt").read_text()
    old_files = sorted(out.rglob("*.npy"))
    old_times = {p: p.stat().st_mtime_ns for p in old_files}

    espeak(root / "LJSpeech-1.1" / "wavs" / "LJ001-0002.wav", WHOLE)
    with open(root / "LJSpeech-1.1" / "metadata.csv", "a") as stream:
        stream.write(f"LJ001-0002|{WHOLE}|{WHOLE}\n")
    capsys.readouterr()
    assert main([str(root), "-o", str(out), "-n", "1", "--no_embeds", "-s"]) == 0
    assert "Audio: 1 new utterances, 1 already preprocessed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in old_files} == old_times
    text = (out / "train.txt").read_text()
    assert text.startswith(old_text) and text[len(old_text):].startswith("audio-LJ001-0002.npy|")
    assert [e.basename for e in read_train_txt(out / "train.txt")] == ["LJ001-0001", "LJ001-0002"]

    # A listed utterance whose files were deleted is recomputed, without a second train.txt line.
    (out / "mels" / "mel-LJ001-0001.npy").unlink()
    assert main([str(root), "-o", str(out), "-n", "1", "--no_embeds", "-s"]) == 0
    assert (out / "mels" / "mel-LJ001-0001.npy").exists()
    assert [e.basename for e in read_train_txt(out / "train.txt")] == ["LJ001-0001", "LJ001-0002"]


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------
def test_embeddings_equal_the_encoder_on_the_saved_audio(audio_output, tmp_path, encoder_checkpoint, real_encoder,
                                                         torch_single_thread, capsys):
    out = tmp_path / "synthesizer"
    shutil.copytree(audio_output, out)
    for entry in read_train_txt(out / "train.txt")[3:]:  # keep the embedding test short
        (out / "audio" / entry.audio_name).unlink()
    write_train_txt(out / "train.txt", read_train_txt(out / "train.txt")[:3])
    args = [str(tmp_path), "-o", str(out), "-n", "1", "--embeds_only", "-e", str(encoder_checkpoint)]
    assert main(args) == 0
    assert "Embeddings: 3 computed, 0 kept, 0 failed." in capsys.readouterr().out
    for entry in read_train_txt(out / "train.txt"):
        embedding = np.load(out / "embeds" / entry.embed_name)
        assert embedding.shape == (256,) and embedding.dtype == np.float32
        assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
        wav = np.load(out / "audio" / entry.audio_name)
        np.testing.assert_allclose(embedding, real_encoder.embed_utterance(real_encoder.preprocess(wav)), atol=1e-5)

    times = {p: p.stat().st_mtime_ns for p in (out / "embeds").iterdir()}
    assert main([*args, "--skip_existing"]) == 0
    assert "Embeddings: 0 computed, 3 kept, 0 failed." in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "embeds").iterdir()} == times


def test_real_speech_end_to_end(librispeech_dir, tmp_path, encoder_checkpoint, real_encoder, torch_single_thread,
                                capsys):
    """Real LibriSpeech speakers (19's 2 s utterance is too short once trimmed) and two LJSpeech clips."""
    chosen = {speaker: path for speaker, path in librispeech_utterances(librispeech_dir)
              if speaker in ("19", "328", "8226")}
    lj_source = LIBRISPEECH_DIR.parents[1] / "LJSpeech-mini"
    if len(chosen) != 3 or not (lj_source / "metadata.csv").is_file():
        pytest.skip("the expected LibriSpeech speakers or LJSpeech-mini are not in the shared datasets")
    root = tmp_path / "root"
    subset = root / "LibriSpeech" / "train-clean-100"
    subset.mkdir(parents=True)
    for speaker in chosen:
        os.symlink(librispeech_dir / speaker, subset / speaker, target_is_directory=True)
    (root / "LJ" / "wavs").mkdir(parents=True)
    lines = [line for line in (lj_source / "metadata.csv").read_text().splitlines()
             if line.split("|")[0] in ("LJ001-0002", "LJ001-0008")]
    (root / "LJ" / "metadata.csv").write_text("\n".join(lines) + "\n")
    for line in lines:
        name = line.split("|")[0]
        os.symlink(lj_source / "wavs" / f"{name}.wav", root / "LJ" / "wavs" / f"{name}.wav")

    out = tmp_path / "synthesizer"
    assert main([str(root), "-o", str(out), "-n", "1", "-e", str(encoder_checkpoint)]) == 0
    output = capsys.readouterr().out
    entries = load_entries(out)
    assert {"328-129766-0000", "8226-274369-0000"} <= set(entries) and "19-198-0000" not in entries
    assert "too short" in output and "0 failed" in output
    transcripts = (chosen["328"].parent / f"328-{chosen['328'].parent.name}.trans.txt").read_text()
    assert transcripts.split(" ", 1)[1].strip() == entries["328-129766-0000"].text
    for entry in entries.values():
        wav = np.load(out / "audio" / entry.audio_name)
        mel = np.load(out / "mels" / entry.mel_name)
        assert len(wav) == entry.n_samples and mel.shape == (entry.n_frames, 80)
        embedding = np.load(out / "embeds" / entry.embed_name)
        np.testing.assert_allclose(embedding, real_encoder.embed_utterance(real_encoder.preprocess(wav)), atol=1e-5)
    # LJSpeech audio is 22.05 kHz: it is stored resampled to 16 kHz.
    lj = [e for e in entries.values() if e.basename.startswith("LJ")]
    assert lj and all(abs(e.n_samples / RATE - e.n_frames * HP.hop_size / RATE) < 0.02 for e in lj)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthesizer.preprocess", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["{tmp}/missing", "--no_embeds"], "does not exist"),
        (["{tmp}", "--no_embeds", "--hparams", "max_mel_frames=lots"], "max_mel_frames expects int"),
        (["{tmp}", "--no_embeds", "--hparams", "no_such_key=1"], "unknown SynthesizerHParams field(s): no_such_key"),
        (["{tmp}", "--embeds_only", "-e", "{tmp}/missing.pt"], "The encoder checkpoint"),
        (["{tmp}", "--embeds_only", "-o", "{tmp}/out"], "train.txt' does not exist"),
        (["{tmp}", "--no_embeds"], "No recognised dataset"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, arguments, expected):
    done = run_cli(*(argument.format(tmp=tmp_path) for argument in arguments))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cli_help():
    done = run_cli("--help")
    assert done.returncode == 0
    for option in ("--no_alignments", "--hparams", "--encoder_model_fpath", "--no_embeds", "--embeds_only"):
        assert option in done.stdout


# --------------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------------
def test_split_on_silences_follows_rtvc_merging():
    # Segments A (2.0 s), B (0.5 s), C (1.0 s) between long pauses: B joins C (its shorter neighbour),
    # then B+C (1.5 s) is still short and joins A.
    words = ("", "A", "", "B", "", "C", "")
    ends = (0.5, 2.5, 3.0, 3.5, 4.0, 5.0, 5.5)
    assert split_on_silences(Alignment(words, ends), HP) == [(0.5, 5.0, "A B C")]
    # A joined length above max_mel_frames hops (11.25 s) is not merged.
    long_words = ("", "LONG", "", "SHORT", "")
    assert split_on_silences(Alignment(long_words, (0.1, 11.1, 11.6, 12.1, 12.5)), HP) == [
        (0.1, 11.1, "LONG"), (11.6, 12.1, "SHORT"),
    ]
    # Short pauses do not split; a missing leading/trailing silence is tolerated.
    assert split_on_silences(Alignment(("HELLO", "", "WORLD"), (1.0, 1.2, 2.0)), HP) == [(0.0, 2.0, "HELLO WORLD")]


def test_parse_hparams_overrides():
    hp = parse_hparams_overrides(["rescaling_max=1", "tts_schedule=((2, 1e-3, 10, 4),),preemphasize=False"])
    assert hp.rescaling_max == 1.0 and isinstance(hp.rescaling_max, float)
    assert hp.tts_schedule == ((2, 1e-3, 10, 4),) and hp.preemphasize is False
    for bad in (["max_mel_frames"], ["rescale=maybe"], ["max_mel_frames=1.5"], ["nope=1"]):
        with pytest.raises(HParamsError):
            parse_hparams_overrides(bad)


def test_metadata_round_trip_and_errors(tmp_path):
    entries = [TrainEntry.from_basename("a", 32000, 161, "Hello, world."),
               TrainEntry.from_basename("b", 40000, 201, "Café | ünïcode")]
    with pytest.raises(ValueError, match="cannot contain"):
        entries[1].to_line()
    entries[1] = TrainEntry.from_basename("b", 40000, 201, "Café ünïcode")
    path = write_train_txt(tmp_path / "train.txt", entries)
    assert read_train_txt(path) == entries
    assert append_train_txt(path, [TrainEntry.from_basename("c", 1, 1, "x")]) == 1
    assert [e.basename for e in read_train_txt(path)] == ["a", "b", "c"]
    # A '|' inside the last column of a hand-written line stays in the text.
    path.write_text("audio-d.npy|mel-d.npy|embed-d.npy|10|1|a|b\n\n", encoding="utf-8")
    assert read_train_txt(path)[0].text == "a|b"
    path.write_text("audio-d.npy|mel-d.npy|10|1\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="line 1 is malformed"):
        read_train_txt(path)
    path.write_text("audio-d.npy|mel-d.npy|embed-d.npy|ten|1|x\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="must be integers"):
        read_train_txt(path)
    with pytest.raises(MetadataError, match="does not exist"):
        read_train_txt(tmp_path / "missing.txt")
