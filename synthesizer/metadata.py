"""Read and write the synthesizer's ``train.txt`` index in RTVC's format:
``audio-<b>.npy|mel-<b>.npy|embed-<b>.npy|<samples>|<frames>|<text>``, the text split off last.

>>> entry = TrainEntry.from_basename("p240_001", 38921, 195, "Please call Stella.")
>>> entry.to_line()
'audio-p240_001.npy|mel-p240_001.npy|embed-p240_001.npy|38921|195|Please call Stella.'
>>> TrainEntry.from_line(entry.to_line()) == entry, entry.basename
(True, 'p240_001')
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from utils.atomic_write import atomic_write
from utils.errors import UserError

__all__ = ["MetadataError", "TrainEntry", "append_train_txt", "read_train_txt", "write_train_txt"]

AUDIO_FOLDER = "audio"
MEL_FOLDER = "mels"
EMBED_FOLDER = "embeds"


class MetadataError(UserError, ValueError):
    """``train.txt`` cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class TrainEntry:
    """One line of ``train.txt``: three file names, sample and frame counts, the uncleaned text."""

    audio_name: str
    mel_name: str
    embed_name: str
    n_samples: int
    n_frames: int
    text: str

    @classmethod
    def from_basename(cls, basename: str, n_samples: int, n_frames: int, text: str) -> TrainEntry:
        return cls(f"audio-{basename}.npy", f"mel-{basename}.npy", f"embed-{basename}.npy",
                   int(n_samples), int(n_frames), text)

    @property
    def basename(self) -> str:
        """``<b>`` of ``audio-<b>.npy`` (the audio file name without prefix and extension)."""
        return self.audio_name.removeprefix("audio-").removesuffix(".npy")

    def to_line(self) -> str:
        """The line, without a newline; ``ValueError`` when a field contains ``|`` or a line break."""
        fields = [self.audio_name, self.mel_name, self.embed_name, str(self.n_samples), str(self.n_frames)]
        for value in (*fields, self.text):
            if "|" in value or "\n" in value or "\r" in value:
                raise ValueError(f"train.txt fields cannot contain '|' or line breaks: {value!r}")
        return "|".join([*fields, self.text])

    @classmethod
    def from_line(cls, line: str) -> TrainEntry:
        """Parse one line; ``ValueError`` for fewer than six columns or non-integer counts."""
        fields = line.rstrip("\r\n").split("|", 5)
        if len(fields) != 6:
            raise ValueError(f"expected 6 '|'-separated columns, found {len(fields)}")
        audio, mel, embed, samples, frames, text = fields
        try:
            return cls(audio, mel, embed, int(samples), int(frames), text)
        except ValueError:
            raise ValueError(f"the sample and frame counts must be integers, not {samples!r} and {frames!r}") from None


def read_train_txt(path: str | Path) -> list[TrainEntry]:
    """Every entry of a ``train.txt``; :class:`MetadataError` for a missing, unreadable or malformed file."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MetadataError(f"'{path}' does not exist; run the synthesizer preprocessing first.") from None
    except UnicodeDecodeError:
        raise MetadataError(f"'{path}' is not UTF-8 text.") from None
    except OSError as error:
        raise MetadataError(f"Cannot read '{path}' ({error.strerror or error}).") from None
    entries = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(TrainEntry.from_line(line))
        except ValueError as error:
            raise MetadataError(f"'{path}' line {number} is malformed: {error}.") from None
    return entries


def write_train_txt(path: str | Path, entries: Iterable[TrainEntry]) -> Path:
    """Write ``entries`` as a complete ``train.txt``, atomically (a crash leaves the old file intact)."""
    path = Path(path)
    text = io.StringIO()
    for entry in entries:
        text.write(entry.to_line() + "\n")
    with atomic_write(path) as stream:
        stream.write(text.getvalue().encode("utf-8"))
    return path


def append_train_txt(path: str | Path, entries: Iterable[TrainEntry]) -> int:
    """Append whole lines to ``train.txt`` (created if missing) and flush; how many were written."""
    lines = "".join(entry.to_line() + "\n" for entry in entries)
    if lines:
        with open(path, "a", encoding="utf-8", newline="\n") as stream:
            stream.write(lines)
            stream.flush()
    return lines.count("\n")
