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
    is a rename on the same file system). The permissions follow the umask, as for a normal ``open``.

    Raises
    ------
    OSError
        When the folder is not writable (or, very unlikely, no free name is found).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to '{target}'")


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
