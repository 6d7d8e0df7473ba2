"""Find speech corpora under a datasets root for the toolbox's dataset browser.

The layouts it recognises: docs/corpora.md.

>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> for speaker in ("alice", "bob"):
...     (root / "my_voices" / speaker).mkdir(parents=True)
...     (root / "my_voices" / speaker / "take1.wav").touch()
>>> [(d.name, d.kind, d.speakers) for d in discover_datasets(root)]
[('my_voices', 'speaker_folders', ['alice', 'bob'])]
>>> discover_datasets(root)[0].utterances("bob")[0].speaker
'my_voices_bob'
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from utils.corpora import (
    CorpusError, Kind, check_datasets_root, fsdd_parts, fsdd_speakers, has_audio, is_audio, list_folder, natural_key,
    walk_audio,
)

LIBRI_SUBSETS = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)
# (path relative to the datasets root, kind): RTVC's recognised datasets plus the VCTK 0.92 and
# VoxCeleb2 test_wav spellings that its encoder config uses.
KNOWN_LAYOUTS: tuple[tuple[str, str], ...] = (
    *((f"LibriSpeech/{subset}", Kind.LIBRISPEECH) for subset in LIBRI_SUBSETS),
    *((f"LibriTTS/{subset}", Kind.LIBRITTS) for subset in LIBRI_SUBSETS),
    ("LJSpeech-1.1", Kind.LJSPEECH),
    ("VoxCeleb1/wav", Kind.VOXCELEB),
    ("VoxCeleb1/test_wav", Kind.VOXCELEB),
    ("VoxCeleb2/dev/aac", Kind.VOXCELEB),
    ("VoxCeleb2/test/aac", Kind.VOXCELEB),
    ("VoxCeleb2/test_wav", Kind.VOXCELEB),
    ("VCTK-Corpus/wav48", Kind.VCTK),
    ("VCTK-Corpus-0.92/wav48_silence_trimmed", Kind.VCTK),
)
_LIBRI_SUBSET_NAME = re.compile(r"^(train|dev|test)-(clean|other)(-\d+)?$")
# How deep below a candidate speaker folder audio may sit (speaker/chapter/file is 1, VoxCeleb's
# speaker/video/file too); bounded so discovery never walks a whole corpus.
_SPEAKER_SEARCH_DEPTH = 2

Rng = random.Random | np.random.Generator


@dataclass(frozen=True)
class DatasetUtterance:
    """One audio file of a dataset, named the way RTVC's toolbox names loaded utterances."""

    path: Path  # absolute
    dataset: str  # the dataset's name (its path relative to the datasets root)
    speaker: str  # Dataset.speaker_label of its speaker
    name: str  # file path relative to the datasets root, posix


@dataclass
class Dataset:
    """A corpus found under a datasets root; ``speakers`` in natural order. ``datasets_root`` (what
    utterance names are relative to) defaults to the one ``root`` and ``name`` imply.

    >>> ds = Dataset("voices", Path("/data/voices"), "speaker_folders", ["alice", "bob"])
    >>> ds.datasets_root
    PosixPath('/data')
    >>> ds.random_speaker(random.Random(0)) in ds.speakers
    True
    """

    name: str  # path relative to the datasets root, e.g. "LibriSpeech/train-clean-100"
    root: Path  # absolute path of the dataset folder
    kind: str  # a utils.corpora.Kind
    speakers: list[str]
    datasets_root: Path | None = None

    def __post_init__(self) -> None:
        if self.datasets_root is None:
            depth = len(Path(self.name).parts)
            self.datasets_root = self.root.parents[depth - 1] if depth else self.root

    def speaker_label(self, speaker: str) -> str:
        """RTVC's speaker name for utterances of ``speaker``: ``<dataset>_<speaker>``.

        >>> Dataset("LibriSpeech/train-clean-100", Path("/d/LibriSpeech/train-clean-100"),
        ...         "librispeech", ["19"]).speaker_label("19")
        'LibriSpeech_train-clean-100_19'
        """
        return f"{self.name.replace('/', '_')}_{speaker}"

    def utterances(self, speaker: str) -> list[DatasetUtterance]:
        """All audio files of ``speaker`` (recursive, hidden folders skipped), in natural order; a
        :class:`CorpusError` when ``speaker`` is not one of :attr:`speakers`."""
        if speaker not in self.speakers:
            raise CorpusError(f"'{speaker}' is not a speaker of the dataset {self.name}.")
        if self.kind == Kind.FSDD:
            audio = _list_folder(self.root).audio
            paths = [self.root / file for file in audio if (parts := fsdd_parts(file)) and parts[1] == speaker]
        elif self.kind == Kind.LJSPEECH:
            paths = [self.root / "wavs" / file for file in _list_folder(self.root / "wavs").audio]
        else:
            paths = walk_audio(self.root / speaker)
        base = self.datasets_root
        label = self.speaker_label(speaker)
        items = [
            DatasetUtterance(path, self.name, label, path.relative_to(base).as_posix()) for path in paths
        ]
        return sorted(items, key=lambda item: natural_key(item.name))

    def random_speaker(self, rng: Rng | None = None) -> str:
        """A speaker id drawn with ``rng`` (a ``random.Random`` or numpy ``Generator``); a
        :class:`CorpusError` when the dataset has no speakers."""
        if not self.speakers:
            raise CorpusError(f"The dataset {self.name} has no speakers.")
        return self.speakers[_random_index(len(self.speakers), rng)]

    def random_utterance(self, speaker: str | None = None, rng: Rng | None = None) -> DatasetUtterance:
        """An utterance of ``speaker`` (a random speaker when ``None``) drawn with ``rng``; a
        :class:`CorpusError` for an unknown speaker or one without audio files."""
        if speaker is None:
            speaker = self.random_speaker(rng)
        items = self.utterances(speaker)
        if not items:
            raise CorpusError(f"The speaker '{speaker}' of the dataset {self.name} has no audio files.")
        return items[_random_index(len(items), rng)]


def discover_datasets(datasets_root: str | Path, max_depth: int = 3) -> list[Dataset]:
    """Every dataset under ``datasets_root``, sorted by name; ``max_depth`` bounds the search for
    datasets found by their shape (docs/corpora.md). :class:`CorpusError` when the root is not a folder.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> discover_datasets(root)
    []
    >>> discover_datasets(root / "missing")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    utils.corpora.CorpusError: The datasets root '...missing' does not exist.
    """
    root = check_datasets_root(datasets_root).resolve()

    found: dict[Path, Dataset] = {}
    for relative, kind in KNOWN_LAYOUTS:
        folder = root / relative
        if folder.is_dir():
            found[folder] = Dataset(relative, folder, kind, _sorted(_list_folder(folder).dirs), root)
    known = set(found)

    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        if folder in found:
            continue
        listing = _list_folder(folder)
        # The root itself only counts when it is the single corpus the user pointed at.
        dataset = None if depth == 0 and known else _identify(folder, listing, root, found)
        if dataset is not None:
            found[folder] = dataset
        elif depth < max_depth:
            pending.extend((folder / child, depth + 1) for child in listing.dirs)
    return sorted(found.values(), key=lambda dataset: natural_key(dataset.name))


class _Listing(NamedTuple):
    dirs: list[str]  # non-hidden sub-folder names
    audio: list[str]  # audio file names directly inside
    files: frozenset[str]  # every other plain file name


def _list_folder(folder: Path) -> _Listing:
    """One listing of ``folder``; unreadable folders look empty rather than failing the scan."""
    dirs, files = list_folder(folder)
    return _Listing(dirs, [file for file in files if is_audio(file)], frozenset(f for f in files if not is_audio(f)))


def _identify(folder: Path, listing: _Listing, root: Path, found: dict[Path, Dataset]) -> Dataset | None:
    """The dataset ``folder`` is, judged by its shape, or ``None``."""
    name = folder.relative_to(root).as_posix() if folder != root else folder.name
    base = root if folder != root else folder.parent
    parent = folder.parent.name.lower()

    if "metadata.csv" in listing.files and "wavs" in listing.dirs:
        return Dataset(name, folder, Kind.LJSPEECH, [folder.name], base)
    if listing.dirs and _LIBRI_SUBSET_NAME.match(folder.name):
        kind = Kind.LIBRITTS if "tts" in parent else Kind.LIBRISPEECH
        return Dataset(name, folder, kind, _sorted(listing.dirs), base)
    if listing.dirs and parent.startswith("vctk") and folder.name.startswith("wav48"):
        return Dataset(name, folder, Kind.VCTK, _sorted(listing.dirs), base)

    digit_speakers = fsdd_speakers(listing.audio)
    if digit_speakers:
        return Dataset(name, folder, Kind.FSDD, digit_speakers, base)

    candidates = [child for child in listing.dirs if folder / child not in found]
    children = {child: _list_folder(folder / child) for child in candidates}
    # A child that is a corpus of its own (e.g. FSDD's recordings/) is not a speaker of this folder.
    direct = [
        child
        for child, sub in children.items()
        if sub.audio and not fsdd_speakers(sub.audio) and "metadata.csv" not in sub.files
    ]
    if not direct:
        return None
    nested = [
        child
        for child, sub in children.items()
        if not sub.audio and has_audio(folder / child, _SPEAKER_SEARCH_DEPTH)
    ]
    return Dataset(name, folder, Kind.SPEAKER_FOLDERS, _sorted(direct + nested), base)


def _sorted(names) -> list[str]:
    return sorted(names, key=natural_key)


def _random_index(count: int, rng: Rng | None) -> int:
    if rng is None:
        rng = random.Random()
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(count))
    return rng.randrange(count)
