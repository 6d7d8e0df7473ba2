"""Phoneme front-end: symbol table, blanks, espeak-ng through phonemizer."""

from __future__ import annotations

import shutil

import pytest

from synthesizer.duration.phonemes import BLANK, PhonemeFrontEnd, Phonemizer, SymbolTable

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")


def test_table_starts_with_blank_and_has_unique_symbols():
    table = SymbolTable.default()
    assert table.symbols[0] == BLANK
    assert len(set(table.symbols)) == len(table)
    with pytest.raises(ValueError):
        SymbolTable("ab")
    with pytest.raises(ValueError):
        SymbolTable("_aa")


def test_encode_intersperses_blanks_and_skips_unknown_characters():
    table = SymbolTable.default()
    ids = table.encode("a☃b")
    assert ids[0::2] == [0, 0, 0]
    assert table.decode(ids) == "ab"
    assert table.unknown("a☃b☃") == ["☃"]


@needs_espeak
def test_phonemizer_gives_ipa_with_stress_and_punctuation():
    phonemizer = Phonemizer()
    [result] = phonemizer.phonemize(["hello, world!"])
    assert "ˈ" in result and "," in result and result.endswith("!")
    assert phonemizer.version.count(".") >= 1


@needs_espeak
def test_front_end_cleans_numbers_and_reports_nothing_dropped_for_english():
    [item] = PhonemeFrontEnd()(["Dr. Smith paid $5 on the 2nd."])
    assert "doctor" in item.cleaned and "five dollars" in item.cleaned and "second" in item.cleaned
    assert item.dropped == ()
    assert len(item.ids) == 2 * len(item.phonemes.replace(BLANK, "")) + 1


@needs_espeak
def test_phonemizer_notes_never_reach_the_users_log_handlers(caplog):
    # phonemizer logs "words count mismatch" for some sentences; with a handler on the root logger (as
    # any application may install) those notes used to reach the user's terminal.
    with caplog.at_level("DEBUG"):
        Phonemizer().phonemize(["the birch canoe slid on the smooth planks."])
    assert [record.getMessage() for record in caplog.records if "phonemizer" in record.name] == []


def _espeak_data_copy(folder, damage: str):
    """espeak-ng's data folder as links, with one file damaged: ``"phontab"`` garbage, ``"en_dict"`` cut."""
    import os
    import re
    import subprocess

    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    data = re.search(r"Data at: (.+)$", version.strip()).group(1)
    folder.mkdir()
    for entry in os.listdir(data):
        if entry != damage:
            (folder / entry).symlink_to(os.path.join(data, entry))
    original = open(os.path.join(data, damage), "rb").read()
    (folder / damage).write_bytes(original[:1000] if damage == "en_dict" else bytes(range(256)) * 12)
    return folder


@needs_espeak
@pytest.mark.parametrize("case", ["empty folder", "truncated en_dict", "garbage phontab", "bad library"])
def test_a_broken_espeak_is_one_line_and_never_ends_the_process(tmp_path, monkeypatch, case):
    """Issue 26: espeak-ng exited the process with its own message, or segfaulted (the toolbox window closed)."""
    from synthesizer.duration.phonemes import PhonemizerError

    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        monkeypatch.setenv("ESPEAK_DATA_PATH", str(tmp_path / "empty"))
        expected = r"espeak-ng is not usable with ESPEAK_DATA_PATH=.*phontab"
    elif case == "bad library":
        monkeypatch.setenv("PHONEMIZER_ESPEAK_LIBRARY", str(tmp_path / "libespeak-ng.so"))
        expected = "espeak-ng is not usable with PHONEMIZER_ESPEAK_LIBRARY="
    else:
        damage = case.split()[1]
        monkeypatch.setenv("ESPEAK_DATA_PATH", str(_espeak_data_copy(tmp_path / "data", damage)))
        expected = r"espeak-ng crashed \(SIGSEGV\) while loading its data with ESPEAK_DATA_PATH="
    with pytest.raises(PhonemizerError, match=expected) as info:
        PhonemeFrontEnd()(["Hello there."])
    assert "\n" not in str(info.value) and "fix or unset that setting" in str(info.value)
