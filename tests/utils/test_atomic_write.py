"""utils.atomic_write: temporary names that always fit, and names refused before any work (issue 18)."""

from __future__ import annotations

import pytest

from utils.atomic_write import NAME_MAX, atomic_write, check_target_name, open_temp_file


@pytest.mark.parametrize("name", ["a" * 250 + ".wav", "é" * 125 + ".pt"])  # 254 and 128+125*2-... bytes
def test_a_legal_long_name_is_written(tmp_path, name):
    # The hidden temporary name was 18 bytes longer than the target: a legal 250-byte name failed
    # with ENAMETOOLONG only when the data was ready to be written.
    target = tmp_path / name
    assert len(target.name.encode()) <= NAME_MAX
    with atomic_write(target) as stream:
        stream.write(b"data")
    assert target.read_bytes() == b"data"
    assert [path.name for path in tmp_path.iterdir()] == [name]


def test_temporary_names_fit_and_stay_next_to_the_target(tmp_path):
    handle, temp = open_temp_file(tmp_path / ("x" * 255))
    try:
        assert temp.parent == tmp_path and temp.name.startswith(".x") and len(temp.name.encode()) <= NAME_MAX
    finally:
        import os

        os.close(handle)


def test_an_illegal_name_is_refused_up_front_in_one_sentence():
    check_target_name("b" * 255)
    with pytest.raises(ValueError, match=r"is 260 bytes long; file systems allow at most 255\.$"):
        check_target_name("b" * 256 + ".wav")
