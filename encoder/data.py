"""Speaker-encoder training data: ``<clean_data_root>/<speaker>/*.npy`` as GE2E batches (docs/design.md).

>>> cycler = RandomCycler("abc", np.random.default_rng(0))
>>> draws = cycler.sample(6)
>>> sorted(draws[:3]), sorted(draws[3:])  # two full cycles: each letter once per cycle
(['a', 'b', 'c'], ['a', 'b', 'c'])
>>> crop_bounds(200, 160, np.random.default_rng(0)) in range(0, 41)
True
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from encoder.hparams import EncoderHParams
from utils.training import TrainingError, worker_init_fn

T = TypeVar("T")

SOURCES_FILE = "_sources.txt"
#: What to run when there is no data (named in error messages).
PREPROCESS_HINT = "run python -m encoder.preprocess first"


# ----------------------------------------------------------------------------------------------
# Sampling


class RandomCycler(Generic[T]):
    """Draw items once per cycle in a fresh random order each cycle (RTVC's sampler), never repeating an
    item within one :meth:`sample` of at most ``len(items)``.

    >>> cycler = RandomCycler(range(4), np.random.default_rng(1))
    >>> [len(set(cycler.sample(3))) for _ in range(8)]  # never a repeat inside one draw
    [3, 3, 3, 3, 3, 3, 3, 3]
    """

    def __init__(self, items: Iterable[T], rng: np.random.Generator) -> None:
        self.items: list[T] = list(items)
        if not self.items:
            raise ValueError("RandomCycler needs at least one item")
        self.rng = rng
        self._pending: list[int] = []  # indices left in the current cycle, next first

    def _new_cycle(self, avoid: set[int]) -> list[int]:
        order = [int(i) for i in self.rng.permutation(len(self.items))]
        # Stable move of the indices drawn earlier in this call to the back: still one of each per cycle.
        return [i for i in order if i not in avoid] + [i for i in order if i in avoid]

    def sample(self, count: int) -> list[T]:
        if count < 0:
            raise ValueError(f"count must be non-negative, not {count}")
        drawn: list[int] = []
        while len(drawn) < count:
            if not self._pending:
                # Avoid what this call drew since its last whole multiple of len(items): a call of
                # more than len(items) draws must repeat items, one of fewer never does.
                since_whole_cycle = drawn[len(drawn) - len(drawn) % len(self.items):]
                self._pending = self._new_cycle(set(since_whole_cycle))
            take = min(count - len(drawn), len(self._pending))
            drawn.extend(self._pending[:take])
            self._pending = self._pending[take:]
        return [self.items[i] for i in drawn]


def crop_bounds(n_available: int, n_frames: int, rng: np.random.Generator) -> int:
    """Start of a uniformly random ``n_frames`` window inside ``n_available`` frames (last start included)."""
    if n_available < n_frames:
        raise ValueError(f"cannot crop {n_frames} frames out of {n_available}")
    return int(rng.integers(0, n_available - n_frames + 1))


# ----------------------------------------------------------------------------------------------
# The corpus on disk


@dataclass(frozen=True)
class EncoderUtterance:
    """One preprocessed utterance: its mel file, where it came from, and its length in frames."""

    frames_path: Path
    n_frames: int
    source: str | None = None

    def load(self) -> np.ndarray:
        return np.load(self.frames_path).astype(np.float32, copy=False)

    def crop(self, start: int, n_frames: int) -> np.ndarray:
        """Frames ``[start, start + n_frames)``, reading only those."""
        frames = np.load(self.frames_path, mmap_mode="r")
        return np.array(frames[start:start + n_frames], dtype=np.float32)


@dataclass(frozen=True)
class EncoderSpeaker:
    """A speaker folder and its usable utterances (sorted by file name)."""

    name: str
    utterances: tuple[EncoderUtterance, ...]


@dataclass
class SpeakerScan:

    name: str
    usable: list[EncoderUtterance] = field(default_factory=list)
    too_short: int = 0
    wrong_shape: int = 0
    unreadable: int = 0
    missing: int = 0
    other_bands: dict[int, int] = field(default_factory=dict)  # (T, n) float arrays with n != mel_n_channels


def read_sources(path: Path) -> list[tuple[str, str | None]]:
    """``(npy name, source path)`` pairs of a ``_sources.txt``, split at the first comma only (RTVC quirk 23,
    docs/rtvc-quirks.md); repeated names are kept once.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "_sources.txt"
    >>> _ = path.write_text("a.npy,/data/Smith, John/a.flac\\nb.npy,/data/b.flac\\n\\na.npy,/x.flac\\n")
    >>> read_sources(path)
    [('a.npy', '/data/Smith, John/a.flac'), ('b.npy', '/data/b.flac')]
    """
    pairs: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        name, sep, source = line.partition(",")
        name = name.strip()
        if name and name not in pairs:
            pairs[name] = source.strip() if sep else None
    return list(pairs.items())


#: numpy parses ``.npy`` headers with ``ast.literal_eval``, which CPython before 3.11.8 cannot run in
#: two threads at once ("SystemError: AST constructor recursion depth mismatch", gh-106905); the
#: speaker scan runs in a thread pool, so header reads take turns (the data is memory-mapped, not read).
_NPY_HEADER_LOCK = threading.Lock()


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    try:
        with _NPY_HEADER_LOCK:
            array = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return None
    return tuple(array.shape), array.dtype


def scan_speaker(folder: Path, hparams: EncoderHParams) -> SpeakerScan:
    """A speaker folder's usable utterances: those of ``_sources.txt`` when present, else every ``*.npy``."""
    scan = SpeakerScan(folder.name)
    sources_path = folder / SOURCES_FILE
    if sources_path.is_file():
        entries = read_sources(sources_path)
    else:
        entries = [(path.name, None) for path in folder.glob("*.npy")]
    for name, source in sorted(entries):
        path = folder / name
        if not path.is_file():
            scan.missing += 1
            continue
        described = _npy_shape(path)
        if described is None:
            scan.unreadable += 1
            continue
        shape, dtype = described
        if len(shape) == 2 and dtype.kind == "f" and shape[1] != hparams.mel_n_channels:
            scan.other_bands[int(shape[1])] = scan.other_bands.get(int(shape[1]), 0) + 1
            scan.wrong_shape += 1
        elif len(shape) != 2 or dtype.kind != "f":
            scan.wrong_shape += 1
        elif shape[0] < hparams.partials_n_frames:
            scan.too_short += 1
        else:
            scan.usable.append(EncoderUtterance(path, int(shape[0]), source))
    return scan


@dataclass(frozen=True)
class SpeakerCorpus:
    """The speakers of a preprocessed encoder data folder that have enough usable utterances."""

    root: Path
    speakers: tuple[EncoderSpeaker, ...]
    n_folders: int
    n_small_speakers: int  # folders with fewer than utterances_per_speaker usable utterances
    n_too_short: int
    n_wrong_shape: int
    n_unreadable: int
    n_missing: int
    n_usable_elsewhere: int = 0  # usable utterances of the folders with too few of them
    other_bands: dict[int, int] = field(default_factory=dict)  # mel band count → files, when not mel_n_channels

    @property
    def n_utterances(self) -> int:
        return sum(len(speaker.utterances) for speaker in self.speakers)

    def summary(self) -> str:
        text = (f"{len(self.speakers)} speakers, {self.n_utterances} utterances in '{self.root}'")
        skipped = []
        if self.n_small_speakers:
            skipped.append(f"{self.n_small_speakers} speaker folders with too few utterances")
        if self.n_too_short:
            skipped.append(f"{self.n_too_short} utterances shorter than 1.6 s")
        if self.n_wrong_shape:
            skipped.append(f"{self.n_wrong_shape} files that are not (T, n_mels) float arrays")
        if self.n_unreadable:
            skipped.append(f"{self.n_unreadable} unreadable files")
        if self.n_missing:
            skipped.append(f"{self.n_missing} files listed in _sources.txt but missing")
        return text + (f" (skipped {', '.join(skipped)})" if skipped else "")

    @classmethod
    def load(cls, root: str | Path, hparams: EncoderHParams, threads: int | None = None) -> SpeakerCorpus:
        """Scan ``root`` and keep the speakers with enough usable utterances; :class:`TrainingError` when
        the folder is missing or empty or has fewer than ``speakers_per_batch`` of them."""
        root = Path(root)
        if not root.exists():
            raise TrainingError(f"The encoder data folder '{root}' does not exist ({PREPROCESS_HINT}).")
        if not root.is_dir():
            raise TrainingError(f"The encoder data path '{root}' is a file, not a folder of speaker folders.")
        folders = sorted((path for path in root.iterdir() if path.is_dir()), key=lambda path: path.name)
        if not folders:
            raise TrainingError(f"The encoder data folder '{root}' has no speaker sub-folders ({PREPROCESS_HINT}).")
        # Reading the headers of a million small files is I/O-bound: threads overlap the waits.
        workers = threads or min(16, (os.cpu_count() or 1) * 2)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            scans = list(pool.map(lambda folder: scan_speaker(folder, hparams), folders))
        needed = hparams.utterances_per_speaker
        speakers = tuple(EncoderSpeaker(scan.name, tuple(scan.usable)) for scan in scans if len(scan.usable) >= needed)
        corpus = cls(
            root=root,
            speakers=speakers,
            n_folders=len(folders),
            n_small_speakers=len(folders) - len(speakers),
            n_too_short=sum(scan.too_short for scan in scans),
            n_wrong_shape=sum(scan.wrong_shape for scan in scans),
            n_unreadable=sum(scan.unreadable for scan in scans),
            n_missing=sum(scan.missing for scan in scans),
            n_usable_elsewhere=sum(len(scan.usable) for scan in scans if len(scan.usable) < needed),
            other_bands=_merge_counts(scan.other_bands for scan in scans),
        )
        corpus.check_mel_bands(hparams)
        corpus.check_enough_speakers(hparams)
        return corpus

    def check_mel_bands(self, hparams: EncoderHParams) -> None:
        """:class:`TrainingError` when most utterances have another number of mel bands (docs/design.md)."""
        n_other = sum(self.other_bands.values())
        if not n_other or n_other < self.n_utterances + self.n_usable_elsewhere:
            return
        bands, count = max(self.other_bands.items(), key=lambda item: item[1])
        raise TrainingError(
            f"The encoder data in '{self.root}' has {bands} mel bands ({count} utterances) but mel_n_channels is "
            f"{hparams.mel_n_channels}: pass --hparams mel_n_channels={bands}, or preprocess again with "
            f"mel_n_channels={hparams.mel_n_channels}."
        )

    def check_enough_speakers(self, hparams: EncoderHParams) -> None:
        found, wanted = len(self.speakers), hparams.speakers_per_batch
        if found >= wanted:
            return
        needed = hparams.utterances_per_speaker
        rejected = self.n_too_short + self.n_wrong_shape + self.n_unreadable + self.n_missing
        if self.n_utterances + self.n_usable_elsewhere + rejected == 0:
            raise TrainingError(f"The encoder data folder '{self.root}' has {self.n_folders} sub-folders but no "
                                f"preprocessed utterances (.npy files) in them ({PREPROCESS_HINT}).")
        if found < 2:
            advice = "add more speakers (GE2E needs at least 2 per batch)"
        else:
            advice = f"add speakers or pass --hparams speakers_per_batch={found}"
        raise TrainingError(
            f"Only {found} speaker(s) in '{self.root}' have at least {needed} utterances of "
            f"{hparams.partials_n_frames} frames or more, fewer than speakers_per_batch={wanted}; {advice}."
        )


def _merge_counts(counts: Iterable[dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for count in counts:
        for key, value in count.items():
            merged[key] = merged.get(key, 0) + value
    return merged


# ----------------------------------------------------------------------------------------------
# Batches


@dataclass
class SpeakerBatch:

    frames: np.ndarray  # (N·M, n_frames, n_mels) float32, speaker-major
    speakers: list[str]  # (N,) speaker names, in batch order
    utterances: list[EncoderUtterance]  # (N·M,)
    starts: np.ndarray  # (N·M,) int64 first frame of each crop


class SpeakerBatchDrawer:
    """Draws GE2E batches: speakers by one :class:`RandomCycler`, utterances by one per speaker."""

    def __init__(self, speakers: Sequence[EncoderSpeaker], speakers_per_batch: int, utterances_per_speaker: int,
                 n_frames: int, rng: np.random.Generator) -> None:
        if speakers_per_batch > len(speakers):
            raise ValueError(f"{speakers_per_batch} speakers per batch but only {len(speakers)} speakers")
        self.speakers_per_batch = speakers_per_batch
        self.utterances_per_speaker = utterances_per_speaker
        self.n_frames = n_frames
        self.rng = rng
        self.speaker_cycler = RandomCycler(speakers, rng)
        self.utterance_cyclers = {speaker.name: RandomCycler(speaker.utterances, rng) for speaker in speakers}

    def draw(self) -> SpeakerBatch:
        speakers = self.speaker_cycler.sample(self.speakers_per_batch)
        utterances: list[EncoderUtterance] = []
        for speaker in speakers:
            utterances.extend(self.utterance_cyclers[speaker.name].sample(self.utterances_per_speaker))
        starts = np.array([crop_bounds(u.n_frames, self.n_frames, self.rng) for u in utterances], dtype=np.int64)
        frames = np.stack([u.crop(int(start), self.n_frames) for u, start in zip(utterances, starts)])
        return SpeakerBatch(frames, [speaker.name for speaker in speakers], utterances, starts)


class SpeakerBatchStream(IterableDataset):
    """Endless stream of ``(N·M, n_frames, n_mels)`` float32 batches for ``DataLoader(batch_size=None)``.

    Each worker and rank draws from its own stream seeded from ``(seed, rank, worker, start_step)``;
    ``seed=None`` draws fresh entropy once."""

    def __init__(self, speakers: Sequence[EncoderSpeaker], speakers_per_batch: int, utterances_per_speaker: int,
                 n_frames: int, seed: int | None = None, rank: int = 0, start_step: int = 0) -> None:
        super().__init__()
        self.speakers = list(speakers)
        self.speakers_per_batch = speakers_per_batch
        self.utterances_per_speaker = utterances_per_speaker
        self.n_frames = n_frames
        self.entropy = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        self.rank = rank
        self.start_step = start_step

    def rng_for_worker(self, worker_id: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.entropy, self.rank, worker_id, self.start_step]))

    def __iter__(self) -> Iterator[torch.Tensor]:
        worker = get_worker_info()
        rng = self.rng_for_worker(worker.id if worker is not None else 0)
        drawer = SpeakerBatchDrawer(self.speakers, self.speakers_per_batch, self.utterances_per_speaker,
                                    self.n_frames, rng)
        while True:
            yield torch.from_numpy(drawer.draw().frames)


def make_batch_loader(stream: SpeakerBatchStream, num_workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over :class:`SpeakerBatchStream` (batches are made whole by the stream)."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def projection_set(speakers: Sequence[EncoderSpeaker], n_speakers: int, n_utterances: int,
                   n_frames: int) -> tuple[np.ndarray, list[str]]:
    """``(frames, labels)``: fixed centre crops of the first speakers' first utterances, for the UMAP
    plots."""
    chosen = sorted(speakers, key=lambda speaker: speaker.name)[:n_speakers]
    frames, labels = [], []
    for speaker in chosen:
        for utterance in speaker.utterances[:n_utterances]:
            start = (utterance.n_frames - n_frames) // 2
            frames.append(utterance.crop(start, n_frames))
            labels.append(speaker.name)
    return np.stack(frames), labels
