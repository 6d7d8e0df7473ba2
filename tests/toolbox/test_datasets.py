"""toolbox.datasets: corpus discovery on the shared real datasets and on layouts built with real WAV files."""

from __future__ import annotations

import builtins
import io
import random
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from toolbox.datasets import Dataset, discover_datasets
from utils.corpora import CorpusError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "LibriSpeech").is_dir():
        pytest.skip(f"the shared real datasets are absent ({SHARED_DATASETS})")
    return SHARED_DATASETS


def write_wav(path: Path, seconds: float = 0.05, rate: int = 16000) -> Path:
    """A tiny real audio file (format from the suffix: .wav or .flac)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


def by_name(datasets: list[Dataset]) -> dict[str, Dataset]:
    return {dataset.name: dataset for dataset in datasets}


# ------------------------------------------------------------------------------------ shared corpora
def test_shared_datasets_are_found_quickly(shared_datasets: Path) -> None:
    start = time.perf_counter()
    datasets = discover_datasets(shared_datasets)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"discovery took {elapsed:.2f} s"
    # The corpora only: neither their speaker folders nor the FSDD parent folder nor texts/.
    assert [d.name for d in datasets] == [
        "english-misc",
        "english-native",
        "free-spoken-digit-dataset/recordings",
        "LibriSpeech/test-clean",
        "LibriSpeech/train-clean-5",
        "LibriSpeech/train-clean-100",
        "LJSpeech-mini",
        "speechocean762",
    ]


def test_shared_librispeech(shared_datasets: Path) -> None:
    libri = by_name(discover_datasets(shared_datasets))["LibriSpeech/train-clean-100"]
    assert libri.kind == "librispeech"
    assert len(libri.speakers) == 251
    assert libri.speakers[:3] == ["19", "26", "27"]  # natural (numeric) order
    utterances = libri.utterances("19")
    assert utterances and all(u.path.suffix == ".flac" and u.path.is_file() for u in utterances)
    first = utterances[0]
    assert first.speaker == "LibriSpeech_train-clean-100_19"
    assert first.dataset == "LibriSpeech/train-clean-100"
    assert first.name.startswith("LibriSpeech/train-clean-100/19/")
    assert (shared_datasets / first.name).resolve() == first.path.resolve()


def test_shared_ljspeech_is_one_speaker(shared_datasets: Path) -> None:
    lj = by_name(discover_datasets(shared_datasets))["LJSpeech-mini"]
    assert lj.kind == "ljspeech"
    assert lj.speakers == ["LJSpeech-mini"]
    utterances = lj.utterances("LJSpeech-mini")
    assert len(utterances) == 32
    assert utterances[0].name == "LJSpeech-mini/wavs/LJ001-0001.wav"
    assert utterances[-1].name == "LJSpeech-mini/wavs/LJ001-0032.wav"


def test_shared_free_spoken_digits(shared_datasets: Path) -> None:
    fsdd = by_name(discover_datasets(shared_datasets))["free-spoken-digit-dataset/recordings"]
    assert fsdd.kind == "fsdd"
    assert fsdd.speakers == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    theo = fsdd.utterances("theo")
    assert len(theo) == 500
    assert all("_theo_" in u.path.name for u in theo)
    assert theo[0].speaker == "free-spoken-digit-dataset_recordings_theo"
    assert [u.path.name for u in theo[:3]] == ["0_theo_0.wav", "0_theo_1.wav", "0_theo_2.wav"]


# --------------------------------------------------------------------------- layouts built on disk
def test_vctk_layouts(tmp_path: Path) -> None:
    for speaker in ("p225", "p226"):
        write_wav(tmp_path / "VCTK-Corpus" / "wav48" / speaker / f"{speaker}_001.wav")
        write_wav(tmp_path / "VCTK-Corpus-0.92" / "wav48_silence_trimmed" / speaker / f"{speaker}_001_mic1.flac")
    (tmp_path / "VCTK-Corpus" / "txt" / "p225").mkdir(parents=True)
    (tmp_path / "VCTK-Corpus" / "txt" / "p225" / "p225_001.txt").write_text("Please call Stella.")

    datasets = by_name(discover_datasets(tmp_path))
    assert set(datasets) == {"VCTK-Corpus/wav48", "VCTK-Corpus-0.92/wav48_silence_trimmed"}
    for dataset in datasets.values():
        assert dataset.kind == "vctk"
        assert dataset.speakers == ["p225", "p226"]
    (utterance,) = datasets["VCTK-Corpus-0.92/wav48_silence_trimmed"].utterances("p226")
    assert utterance.name == "VCTK-Corpus-0.92/wav48_silence_trimmed/p226/p226_001_mic1.flac"
    assert utterance.speaker == "VCTK-Corpus-0.92_wav48_silence_trimmed_p226"


def test_voxceleb1_layout(tmp_path: Path) -> None:
    vox = tmp_path / "VoxCeleb1"
    for video in ("1zcIwhmdeo4", "7gWzIy6yIIk"):
        for index in (1, 2):
            write_wav(vox / "wav" / "id10001" / video / f"{index:05d}.wav")
    write_wav(vox / "wav" / "id10002" / "abc" / "00001.wav")
    (vox / "vox1_meta.csv").write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n")

    (dataset,) = discover_datasets(tmp_path)
    assert (dataset.name, dataset.kind, dataset.speakers) == ("VoxCeleb1/wav", "voxceleb", ["id10001", "id10002"])
    utterances = dataset.utterances("id10001")
    assert [u.name for u in utterances] == [
        "VoxCeleb1/wav/id10001/1zcIwhmdeo4/00001.wav",
        "VoxCeleb1/wav/id10001/1zcIwhmdeo4/00002.wav",
        "VoxCeleb1/wav/id10001/7gWzIy6yIIk/00001.wav",
        "VoxCeleb1/wav/id10001/7gWzIy6yIIk/00002.wav",
    ]
    assert utterances[0].speaker == "VoxCeleb1_wav_id10001"


def test_libritts_and_other_libri_subsets(tmp_path: Path) -> None:
    chapter = tmp_path / "LibriTTS" / "train-clean-100" / "19" / "198"
    write_wav(chapter / "19_198_000000_000000.wav")
    (chapter / "19_198_000000_000000.normalized.txt").write_text("Hello.")
    # A subset RTVC does not list (Mini LibriSpeech) is recognised by its name, deeper in the tree.
    write_wav(tmp_path / "downloads" / "LibriSpeech" / "dev-clean-2" / "84" / "121123" / "84-121123-0000.flac")

    datasets = by_name(discover_datasets(tmp_path))
    assert set(datasets) == {"LibriTTS/train-clean-100", "downloads/LibriSpeech/dev-clean-2"}
    tts = datasets["LibriTTS/train-clean-100"]
    assert (tts.kind, tts.speakers) == ("libritts", ["19"])
    assert [u.name for u in tts.utterances("19")] == ["LibriTTS/train-clean-100/19/198/19_198_000000_000000.wav"]
    mini = datasets["downloads/LibriSpeech/dev-clean-2"]
    assert (mini.kind, mini.speakers) == ("librispeech", ["84"])


def test_speaker_folders_layout(tmp_path: Path) -> None:
    voices = tmp_path / "my_voices"
    write_wav(voices / "alice" / "take2.wav")
    write_wav(voices / "alice" / "take10.wav")
    write_wav(voices / "bob" / "hello.flac")
    write_wav(voices / "carol" / "session1" / "a.wav")  # a speaker with sessions counts too
    (voices / "notes").mkdir()  # a folder without audio is not a speaker
    (voices / "notes" / "todo.txt").write_text("record more")

    (dataset,) = discover_datasets(tmp_path)
    assert (dataset.name, dataset.kind, dataset.speakers) == (
        "my_voices",
        "speaker_folders",
        ["alice", "bob", "carol"],
    )
    alice = [u.name for u in dataset.utterances("alice")]
    assert alice == ["my_voices/alice/take2.wav", "my_voices/alice/take10.wav"]  # natural order
    assert [u.speaker for u in dataset.utterances("carol")] == ["my_voices_carol"]
    with pytest.raises(CorpusError, match="not a speaker"):
        dataset.utterances("notes")


def test_root_that_is_itself_a_dataset(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    write_wav(voices / "alice" / "a.wav")
    write_wav(voices / "bob" / "b.wav")
    (dataset,) = discover_datasets(voices)
    assert (dataset.name, dataset.speakers) == ("voices", ["alice", "bob"])
    assert dataset.utterances("bob")[0].name == "voices/bob/b.wav"


def test_flat_digit_folder_and_ljspeech_format(tmp_path: Path) -> None:
    for name in ("0_ann_0.wav", "1_ann_1.wav", "0_bo_b_0.wav"):
        write_wav(tmp_path / "digits" / "recordings" / name)
    mine = tmp_path / "finetune" / "my_corpus"
    write_wav(mine / "wavs" / "0001.wav")
    (mine / "metadata.csv").write_text("0001|Hello there.|Hello there.\n")

    datasets = by_name(discover_datasets(tmp_path))
    assert set(datasets) == {"digits/recordings", "finetune/my_corpus"}
    digits = datasets["digits/recordings"]
    assert (digits.kind, digits.speakers) == ("fsdd", ["ann", "bo_b"])
    assert [u.path.name for u in digits.utterances("ann")] == ["0_ann_0.wav", "1_ann_1.wav"]
    corpus = datasets["finetune/my_corpus"]
    assert (corpus.kind, corpus.speakers) == ("ljspeech", ["my_corpus"])
    assert [u.name for u in corpus.utterances("my_corpus")] == ["finetune/my_corpus/wavs/0001.wav"]


def test_depth_limit(tmp_path: Path) -> None:
    write_wav(tmp_path / "a" / "b" / "voices" / "alice" / "x.wav")  # dataset at depth 3
    write_wav(tmp_path / "a" / "b" / "c" / "deep" / "bob" / "y.wav")  # dataset at depth 4
    assert [d.name for d in discover_datasets(tmp_path)] == ["a/b/voices"]
    assert [d.name for d in discover_datasets(tmp_path, max_depth=4)] == ["a/b/c/deep", "a/b/voices"]
    assert discover_datasets(tmp_path, max_depth=2) == []


def test_hidden_folders_and_files_are_ignored(tmp_path: Path) -> None:
    write_wav(tmp_path / ".cache" / "voices" / "alice" / "x.wav")
    write_wav(tmp_path / "voices" / ".trash" / "old.wav")
    write_wav(tmp_path / "voices" / "bob" / "y.wav")
    write_wav(tmp_path / "voices" / "bob" / ".hidden" / "z.wav")
    (dataset,) = discover_datasets(tmp_path)
    assert (dataset.name, dataset.speakers) == ("voices", ["bob"])
    assert [u.name for u in dataset.utterances("bob")] == ["voices/bob/y.wav"]


def test_empty_missing_and_non_folder_roots(tmp_path: Path) -> None:
    assert discover_datasets(tmp_path) == []
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no audio here")
    assert discover_datasets(tmp_path) == []

    bad_roots = ((tmp_path / "missing", "does not exist"), (tmp_path / "docs" / "readme.txt", "not a folder"))
    for bad, fragment in bad_roots:
        with pytest.raises(CorpusError, match=fragment) as error:
            discover_datasets(bad)
        assert "\n" not in str(error.value) and str(bad) in str(error.value)
    assert issubclass(CorpusError, ValueError)


def test_discovery_never_opens_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_wav(tmp_path / "voices" / "alice" / "x.wav")
    write_wav(tmp_path / "LJSpeech-1.1" / "wavs" / "LJ001-0001.wav")
    (tmp_path / "LJSpeech-1.1" / "metadata.csv").write_text("LJ001-0001|a|a\n")

    def refuse(*args, **kwargs):
        raise AssertionError(f"discovery opened a file: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(io, "open", refuse)
    monkeypatch.setattr(soundfile, "SoundFile", refuse)
    datasets = discover_datasets(tmp_path)
    assert [(d.name, d.kind) for d in datasets] == [("LJSpeech-1.1", "ljspeech"), ("voices", "speaker_folders")]


def test_random_selection_is_reproducible(tmp_path: Path) -> None:
    for speaker in ("alice", "bob", "carol", "dan"):
        for index in range(5):
            write_wav(tmp_path / "voices" / speaker / f"{index}.wav", seconds=0.01)
    (dataset,) = discover_datasets(tmp_path)

    def draws(rng) -> list[tuple[str, str]]:
        picks = []
        for _ in range(8):
            speaker = dataset.random_speaker(rng)
            picks.append((speaker, dataset.random_utterance(speaker, rng).name))
        return picks

    first = draws(random.Random(7))
    assert first == draws(random.Random(7))
    assert draws(np.random.default_rng(7)) == draws(np.random.default_rng(7))
    assert len({speaker for speaker, _ in first}) > 1
    for speaker, name in first:
        assert name.startswith(f"voices/{speaker}/")
    utterance = dataset.random_utterance(rng=random.Random(3))  # random speaker as well
    assert utterance.speaker.startswith("voices_")


def test_random_from_an_empty_speaker_or_dataset(tmp_path: Path) -> None:
    empty = Dataset("x", tmp_path / "x", "speaker_folders", [])
    with pytest.raises(CorpusError, match="no speakers"):
        empty.random_speaker(random.Random(0))
    (tmp_path / "x" / "ghost").mkdir(parents=True)
    ghost = Dataset("x", tmp_path / "x", "speaker_folders", ["ghost"])
    with pytest.raises(CorpusError, match="no audio files"):
        ghost.random_utterance("ghost", random.Random(0))

