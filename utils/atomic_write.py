"""Atomic writes: write a temporary file next to the target, then ``os.replace`` it.

Unlike :func:`tempfile.mkstemp` (mode ``0o600`` whatever the umask, kept through the rename), the
temporary file gets the permissions ``open(path, "wb")`` would give.

>>> import os, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> handle, temp = open_temp_file(folder / "out.wav")
>>> os.close(handle); temp.parent == folder and temp.name.startswith(".out.wav.")
True
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def open_temp_file(target: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """``(OS handle, path)`` of a new hidden file ``.<target name>.<hex><suffix>`` beside ``target``,
    with umask permissions; the name is shortened to fit :data:`NAME_MAX`."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    stem = _temp_stem(target.name, suffix)
    for _ in range(100):
        temp = target.parent / f".{stem}.{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to '{target}'")


#: Longest file name (in bytes) that common file systems accept (ext4, XFS, btrfs, APFS, NTFS in UTF-16 units).
NAME_MAX = 255


def _temp_stem(name: str, suffix: str) -> str:
    """``name`` shortened so the temporary name fits :data:`NAME_MAX` (else a legal target name would
    fail only after all the work)."""
    room = NAME_MAX - len(f"..{'0' * 12}{suffix}".encode())
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= room:
        return name
    return encoded[:room].decode("utf-8", "ignore")  # "ignore" drops a multi-byte character cut in two


def check_target_name(target: str | Path) -> None:
    """``ValueError`` (one sentence), before any work, for a file name no common file system can hold.

    >>> check_target_name("out/" + "a" * 255 + "")
    >>> check_target_name("a" * 256 + ".wav")
    Traceback (most recent call last):
      ...
    ValueError: The file name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...a.wav' is 260 bytes long; file systems allow at most 255.
    """  # noqa: E501 (a doctest's expected output is one line)
    name = Path(target).name
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > NAME_MAX:
        shown = name if len(name) <= 60 else f"{name[:40]}...{name[-5:]}"
        raise ValueError(f"The file name '{shown}' is {size} bytes long; file systems allow at most {NAME_MAX}.")


@contextmanager
def atomic_write(target: str | Path) -> Iterator[BinaryIO]:
    """Binary stream whose content replaces ``target`` only if the ``with`` block completes.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "data.bin"
    >>> with atomic_write(target) as stream:
    ...     _ = stream.write(b"complete")
    >>> target.read_bytes()
    b'complete'
    """
    target = Path(target)
    handle, temp = open_temp_file(target)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
