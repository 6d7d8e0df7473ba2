"""Temporary files for atomic writes (write to a temporary file, then ``os.replace`` it over the target).

:func:`tempfile.mkstemp` creates its file with mode ``0o600`` whatever the umask is, and that mode
survives the rename: every exported WAV or saved checkpoint would be readable by its owner only.
:func:`open_temp_file` creates the file like ``open(path, "wb")`` does (``0o666`` minus the umask).

Examples
--------
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
    """Create a new, empty hidden file next to ``target`` and return its OS handle and path.

    The name is ``.<target name>.<random hex><suffix>`` in ``target``'s folder (so that ``os.replace``
    is a rename on the same file system), with the target name shortened when the whole would exceed
    :data:`NAME_MAX` bytes. The permissions follow the umask, as for a normal ``open``.

    Raises
    ------
    OSError
        When the folder is not writable (or, very unlikely, no free name is found).
    """
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
    """``name``, shortened so that ``.<stem>.<12 hex><suffix>`` fits in :data:`NAME_MAX` bytes.

    Without this a legal 250-byte target name had an illegal 268-byte temporary name, and the
    write failed only after all the work that made the data.
    """
    room = NAME_MAX - len(f"..{'0' * 12}{suffix}".encode())
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= room:
        return name
    return encoded[:room].decode("utf-8", "ignore")  # "ignore" drops a multi-byte character cut in two


def check_target_name(target: str | Path) -> None:
    """Refuse, before any work, a file name that no common file system can hold.

    Raises
    ------
    ValueError
        With one sentence naming the file and its length in bytes.

    Examples
    --------
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

    The data is written to a hidden temporary file next to ``target``, flushed to disk, then renamed
    over it (``os.replace`` is atomic), so a crash, an exception or a full disk never leaves a
    half-written file. Errors propagate unchanged; the temporary file is always removed.

    Examples
    --------
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
