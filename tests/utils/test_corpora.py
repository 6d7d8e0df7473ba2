"""utils.corpora: layouts, names, transcripts, errors, and the real shared datasets.

Discovery never opens audio, so most layout trees here use empty placeholder files: if anything tried
to decode them it would fail, which is part of what these tests check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATASETS_DIR, LIBRISPEECH_DIR
from utils.corpora import (
    Alignment,
    Corpus,
    CorpusError,
    collect_utterances,
    detect_layout,
    find_corpora,
    group_by_speaker,
    parse_alignment_line,
    resolve_corpora,
    safe_name,
    select_corpora,
)


def touch(path: Path, text: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        path.touch()
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_librispeech(root: Path, subset: str = "train-clean-100") -> Path:
    base = root / "LibriSpeech" / subset
    chapter = base / "1006" / "135212"
    for index in range(2):
        touch(chapter / f"1006-135212-000{index}.flac")
    touch(chapter / "1006-135212.trans.txt", "1006-135212-0000 HELLO THERE\n1006-135212-0001 GOOD  BYE\n")
    touch(chapter / "1006-135212.alignment.txt", '1006-135212-0000 ",HELLO,,THERE," "0.2,0.6,1.2,1.8,2.0"\n')
    touch(base / "19" / "198" / "19-198-0000.flac")
    touch(base / "19" / "198" / "19-198.trans.txt", "19-198-0000 NORTHANGER ABBEY\n")
    return base


# --------------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------------
def test_librispeech_names_transcripts_and_alignments(tmp_path):
    make_librispeech(tmp_path)
    [corpus] = select_corpora(tmp_path, ["LibriSpeech/train-clean-100"])
    assert (corpus.name, corpus.kind) == ("LibriSpeech/train-clean-100", "librispeech")
    utterances = corpus.utterances()
    assert [(u.speaker, u.local_name, u.name, u.text) for u in utterances] == [
        ("LibriSpeech_train-clean-100_19", "198_19-198-0000", "19-198-0000", "NORTHANGER ABBEY"),
        ("LibriSpeech_train-clean-100_1006", "135212_1006-135212-0000", "1006-135212-0000", "HELLO THERE"),
        ("LibriSpeech_train-clean-100_1006", "135212_1006-135212-0001", "1006-135212-0001", "GOOD BYE"),
    ]
    assert utterances[1].alignment == Alignment(("", "HELLO", "", "THERE", ""), (0.2, 0.6, 1.2, 1.8, 2.0))
    assert utterances[0].alignment is None and utterances[2].alignment is None
    # The encoder does not need text: nothing is read.
    assert all(u.text is None and u.alignment is None for u in corpus.utterances(with_text=False))


def test_libritts_prefers_normalized_text(tmp_path):
    chapter = tmp_path / "LibriTTS" / "dev-clean" / "84" / "121123"
    touch(chapter / "84_121123_000007_000001.wav")
    touch(chapter / "84_121123_000007_000001.normalized.txt", "Go, do you hear?\n")
    touch(chapter / "84_121123_000007_000001.original.txt", "Go, do you hear ?")
    touch(chapter / "84_121123_000008_000000.wav")
    touch(chapter / "84_121123_000008_000000.original.txt", "But in less than five minutes.")
    touch(chapter / "84_121123.trans.tsv", "ignored")
    [corpus] = find_corpora(tmp_path)
    assert (corpus.name, corpus.kind) == ("LibriTTS/dev-clean", "libritts")
    assert [(u.name, u.text) for u in corpus.utterances()] == [
        ("84_121123_000007_000001", "Go, do you hear?"),
        ("84_121123_000008_000000", "But in less than five minutes."),
    ]


def test_voxceleb1_keeps_anglophone_speakers_from_the_metadata(tmp_path):
    for speaker in ("id10001", "id10002", "id10003"):
        touch(tmp_path / "VoxCeleb1" / "wav" / speaker / "1zcIwhmdeo4" / "00001.wav")
    touch(tmp_path / "VoxCeleb1" / "vox1_meta.csv",
          "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
          "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
          "id10002\tA.R._Rahman\tm\tIndia\tdev\n"
          "id10003\tAamir_Khan\tm\tUSA \tdev\n")
    [corpus] = select_corpora(tmp_path, ["voxceleb1"])
    assert (corpus.name, corpus.kind) == ("VoxCeleb1/wav", "voxceleb")
    utterances = corpus.utterances()
    assert [u.speaker for u in utterances] == ["VoxCeleb1_wav_id10001", "VoxCeleb1_wav_id10003"]
    assert utterances[0].local_name == "1zcIwhmdeo4_00001"
    assert utterances[0].name == "VoxCeleb1_wav_id10001_1zcIwhmdeo4_00001" and utterances[0].text is None

    (tmp_path / "VoxCeleb1" / "vox1_meta.csv").unlink()  # without metadata nobody is filtered out
    assert len(select_corpora(tmp_path, ["voxceleb1"])[0].utterances()) == 3


def test_voxceleb2_m4a(tmp_path):
    touch(tmp_path / "VoxCeleb2" / "dev" / "aac" / "id00012" / "21Uxsk56VDQ" / "00001.m4a")
    [corpus] = select_corpora(tmp_path, ["voxceleb2"])
    assert corpus.name == "VoxCeleb2/dev/aac"
    assert [u.speaker for u in corpus.utterances()] == ["VoxCeleb2_dev_aac_id00012"]


def test_vctk_092_uses_microphone_1_and_txt(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    for mic in (1, 2):
        touch(root / "wav48_silence_trimmed" / "p225" / f"p225_001_mic{mic}.flac")
    touch(root / "wav48_silence_trimmed" / "p315" / "p315_001_mic1.flac")  # p315 has no transcripts
    touch(root / "txt" / "p225" / "p225_001.txt", "Please call Stella.\n")
    [corpus] = select_corpora(tmp_path, ["VCTK-Corpus-0.92"])
    assert (corpus.name, corpus.kind) == ("VCTK-Corpus-0.92/wav48_silence_trimmed", "vctk")
    assert [(u.speaker, u.name, u.local_name, u.text) for u in corpus.utterances()] == [
        ("VCTK-Corpus-0.92_wav48_silence_trimmed_p225", "p225_001", "p225_001_mic1", "Please call Stella."),
        ("VCTK-Corpus-0.92_wav48_silence_trimmed_p315", "p315_001", "p315_001_mic1", None),
    ]


def test_vctk_old_layout(tmp_path):
    touch(tmp_path / "VCTK-Corpus" / "wav48" / "p240" / "p240_001.wav")
    touch(tmp_path / "VCTK-Corpus" / "txt" / "p240" / "p240_001.txt", "Please call Stella.")
    [corpus] = find_corpora(tmp_path)
    assert corpus.name == "VCTK-Corpus/wav48"
    assert [(u.name, u.text) for u in corpus.utterances()] == [("p240_001", "Please call Stella.")]


def test_ljspeech_uses_the_normalized_column(tmp_path):
    folder = tmp_path / "LJSpeech-1.1"
    for name in ("LJ001-0001", "LJ001-0002", "LJ001-0003"):
        touch(folder / "wavs" / f"{name}.wav")
    touch(folder / "metadata.csv",
          "LJ001-0001|It cost $5.|It cost five dollars.\nLJ001-0002|Only raw text\nLJ001-0003|Raw|\n")
    [corpus] = find_corpora(tmp_path)
    assert (corpus.name, corpus.kind) == ("LJSpeech-1.1", "ljspeech")
    assert [(u.speaker, u.name, u.text) for u in corpus.utterances()] == [
        ("LJSpeech-1.1", "LJ001-0001", "It cost five dollars."),
        ("LJSpeech-1.1", "LJ001-0002", "Only raw text"),
        ("LJSpeech-1.1", "LJ001-0003", "Raw"),
    ]


def test_text_folder_speakers_are_parent_folders(tmp_path):
    corpus_dir = tmp_path / "mine"
    touch(corpus_dir / "intro.wav")
    touch(corpus_dir / "intro.txt", "Hello.")
    touch(corpus_dir / "alice" / "s1" / "a.flac")
    touch(corpus_dir / "alice" / "s1" / "a.txt", "  Alice  speaks. \n")
    touch(corpus_dir / "bob" / "a.wav")  # no transcript: listed, text None
    [corpus] = select_corpora(tmp_path, ["mine"])
    assert corpus.kind == "text_folder"
    assert [(u.speaker, u.name, u.text) for u in corpus.utterances()] == [
        ("mine", "mine_intro", "Hello."),
        ("mine_alice_s1", "mine_alice_s1_a", "Alice speaks."),
        ("mine_bob", "mine_bob_a", None),
    ]


def test_speaker_folders_search_recursively_and_follow_links(tmp_path):
    touch(tmp_path / "voices" / "alice" / "day1" / "take.wav")
    touch(tmp_path / "voices" / "alice" / "day2" / "take.ogg")
    touch(tmp_path / "elsewhere" / "x.mp3")
    (tmp_path / "voices" / "bob").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    [corpus] = select_corpora(tmp_path, [str(tmp_path / "voices")])  # absolute path inside the root
    assert (corpus.name, corpus.kind) == ("voices", "speaker_folders")
    assert [(u.speaker, u.local_name) for u in corpus.utterances()] == [
        ("voices_alice", "day1_take"), ("voices_alice", "day2_take"), ("voices_bob", "x"),
    ]


def test_fsdd_speakers_come_from_file_names(tmp_path):
    for name in ("0_george_0", "7_jackson_12"):
        touch(tmp_path / "fsdd" / "recordings" / f"{name}.wav")
    [corpus] = find_corpora(tmp_path)
    assert (corpus.name, corpus.kind) == ("fsdd/recordings", "fsdd")
    assert [(u.speaker, u.text) for u in corpus.utterances()] == [
        ("fsdd_recordings_george", "zero"), ("fsdd_recordings_jackson", "seven"),
    ]


def test_detect_layout_of_a_vctk_root_points_at_its_audio(tmp_path):
    touch(tmp_path / "wav48" / "p225" / "p225_001.wav")
    (tmp_path / "txt").mkdir()
    assert detect_layout(tmp_path) == ("vctk", tmp_path / "wav48")
    assert detect_layout(tmp_path / "txt") is None


# --------------------------------------------------------------------------------------------------
# Selection and discovery
# --------------------------------------------------------------------------------------------------
def test_find_corpora_descends_but_not_into_output_or_hidden(tmp_path):
    make_librispeech(tmp_path)
    make_librispeech(tmp_path, "dev-clean")
    touch(tmp_path / "SV2TTS" / "encoder" / "spk" / "x.wav")  # would look like speaker folders
    touch(tmp_path / ".cache" / "spk" / "x.wav")
    touch(tmp_path / "notes" / "readme.txt")
    assert [(c.name, c.kind) for c in find_corpora(tmp_path)] == [
        ("LibriSpeech/dev-clean", "librispeech"), ("LibriSpeech/train-clean-100", "librispeech"),
    ]
    # A folder holding corpora stands for all of them.
    assert [c.name for c in resolve_corpora(tmp_path, "LibriSpeech")] == [
        "LibriSpeech/dev-clean", "LibriSpeech/train-clean-100",
    ]
    # Naming one twice (as alias, path or absolute path) lists it once.
    assert len(select_corpora(tmp_path, ["LibriSpeech/dev-clean", str(tmp_path / "LibriSpeech/dev-clean")])) == 1


def test_root_that_is_itself_a_corpus(tmp_path):
    touch(tmp_path / "alice" / "a.wav")
    touch(tmp_path / "bob" / "b.wav")
    [corpus] = find_corpora(tmp_path)
    assert (corpus.name, corpus.kind) == (tmp_path.name, "speaker_folders")
    assert {u.speaker for u in corpus.utterances()} == {f"{safe_name(tmp_path.name)}_alice",
                                                        f"{safe_name(tmp_path.name)}_bob"}


def test_alias_librispeech_other(tmp_path):
    make_librispeech(tmp_path, "train-other-500")
    [corpus] = select_corpora(tmp_path, ["librispeech_other"])
    assert corpus.name == "LibriSpeech/train-other-500"


def test_dataset_outside_the_root_is_named_after_its_folder(tmp_path):
    touch(tmp_path / "outside" / "voices" / "carol" / "c.wav")
    (tmp_path / "root").mkdir()
    [corpus] = select_corpora(tmp_path / "root", [str(tmp_path / "outside" / "voices")])
    assert corpus.name == "voices"
    assert corpus.utterances()[0].speaker == "voices_carol"


@pytest.mark.parametrize(
    "setup, datasets, expected",
    [
        (lambda root: None, None, "No recognised dataset under"),
        (lambda root: None, ["LibriSpeech/train-clean-360"], "does not exist under the datasets root"),
        (lambda root: touch(root / "texts" / "a.txt"), ["texts"], "matches no known layout"),
        (lambda root: touch(root / "flat" / "a.wav"), ["flat"], "matches no known layout"),
    ],
)
def test_errors_are_one_sentence(tmp_path, setup, datasets, expected):
    setup(tmp_path)
    with pytest.raises(CorpusError) as caught:
        select_corpora(tmp_path, datasets)
    message = str(caught.value)
    assert expected in message and "\n" not in message and message.endswith(".")


def test_missing_root(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        find_corpora(tmp_path / "missing")
    touch(tmp_path / "file")
    with pytest.raises(CorpusError, match="is not a folder"):
        select_corpora(tmp_path / "file", ["x"])


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------
def test_names_are_safe_and_unique(tmp_path):
    # Same file names for two speakers and in two corpora, odd characters, two extensions of one stem.
    for corpus_name in ("set a", "set|b"):
        for speaker in ("Smith, John", "Doe"):
            touch(tmp_path / corpus_name / speaker / "take 1.wav")
            touch(tmp_path / corpus_name / speaker / "take 1.txt", "Hello.")
    touch(tmp_path / "set a" / "Doe" / "take 1.flac")
    corpora = select_corpora(tmp_path, ["set a", "set|b"])
    utterances = collect_utterances(corpora)
    names = [u.name for u in utterances]
    assert len(set(names)) == len(names) == 5
    for u in utterances:
        for value in (u.name, u.local_name, u.speaker):
            assert not set(value) & set(",| /") and not value.startswith(".")
    assert {u.local_name for u in utterances if u.speaker == "set_a_Doe"} == {"take_1", "take_1-2"}
    assert "set_a_Smith_John" in group_by_speaker(utterances)


def test_colliding_corpus_ids_get_speaker_prefixes(tmp_path):
    for folder in ("LJSpeech-1.1", "LJSpeech-copy"):
        touch(tmp_path / folder / "wavs" / "LJ001-0001.wav")
        touch(tmp_path / folder / "metadata.csv", "LJ001-0001|Text.|Text.\n")
    utterances = collect_utterances(find_corpora(tmp_path))
    assert [u.name for u in utterances] == ["LJSpeech-1.1_LJ001-0001", "LJSpeech-copy_LJ001-0001"]


def test_parse_alignment_line_rejects_malformed_lines():
    assert parse_alignment_line("x \",A,\" \"0.1,0.5\"") is None  # 3 words, 2 times
    assert parse_alignment_line("x \",A,\" \"0.1,zz,0.9\"") is None
    assert parse_alignment_line("only two") is None


# --------------------------------------------------------------------------------------------------
# Real shared datasets
# --------------------------------------------------------------------------------------------------
def test_real_shared_datasets():
    if not LIBRISPEECH_DIR.is_dir():
        pytest.skip(f"the shared real datasets are absent ({DATASETS_DIR})")
    corpora = {c.name: c for c in find_corpora(DATASETS_DIR)}
    assert corpora["LibriSpeech/train-clean-100"].kind == "librispeech"
    libri = corpora["LibriSpeech/train-clean-100"].utterances()
    assert len(libri) == 251 and len({u.speaker for u in libri}) == 251
    assert all(u.text and u.text.isupper() and u.audio_path.suffix == ".flac" for u in libri)
    first = libri[0]
    assert (first.speaker, first.local_name) == ("LibriSpeech_train-clean-100_19", "198_19-198-0000")
    # The native speech of issue 23: complete test-clean and Mini LibriSpeech (Opus), VCTK p239.
    assert set(corpora) == {"LJSpeech-mini", "LibriSpeech/test-clean", "LibriSpeech/train-clean-5",
                            "LibriSpeech/train-clean-100", "english-misc", "english-native",
                            "free-spoken-digit-dataset/recordings", "speechocean762"}
    test_clean = corpora["LibriSpeech/test-clean"].utterances()
    assert len(test_clean) == 2620 and len({u.speaker for u in test_clean}) == 40
    assert all(u.text and u.audio_path.suffix == ".ogg" for u in test_clean)
    mini = corpora["LibriSpeech/train-clean-5"].utterances()
    assert len({u.speaker for u in mini}) == 22 and all(u.text for u in mini)
    held_out = {"19", "118", "669", "1088", "1737", "2136"}  # ../heldout: evaluation only
    assert not held_out & {u.speaker.rsplit("_", 1)[1] for u in mini}
    [p239] = {u.speaker for u in corpora["english-native"].utterances()}
    assert p239.endswith("vctk_p239") and len(corpora["english-native"].utterances()) == 503
    assert len({u.speaker for u in corpora["speechocean762"].utterances()}) == 128
    if "LJSpeech-mini" in corpora:
        lj = corpora["LJSpeech-mini"].utterances()
        assert len(lj) == 32 and lj[1].text == "in being comparatively modern."
    assert all(isinstance(c, Corpus) for c in corpora.values())
