"""Training data of the duration synthesizer: the Tacotron's preprocessed folder plus phonemes cached
in ``phonemes.tsv`` (rebuilt when espeak-ng or the texts change).

>>> batches = frame_budget_batches([100, 400, 120, 390, 110], batch_frames=400, max_items=8,
...                                rng=np.random.default_rng(0))
>>> sorted(sorted(batch) for batch in batches)
[[0, 2, 4], [1], [3]]
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthesizer.duration.phonemes import PhonemeFrontEnd
from synthesizer.duration.pitch import PITCH_FOLDER, continuous_log_f0, pitch_file_name
from synthesizer.metadata import EMBED_FOLDER, MEL_FOLDER, TrainEntry, read_train_txt
from utils.atomic_write import atomic_write

PHONEME_CACHE = "phonemes.tsv"


@dataclass(frozen=True)
class Item:
    entry: TrainEntry
    ids: list[int]


def load_phonemes(syn_dir: Path, entries: Sequence[TrainEntry], front_end: PhonemeFrontEnd) -> dict[str, str]:
    """``mel name → phonemes`` for every entry, from the cache or espeak-ng (then cached atomically)."""
    path = syn_dir / PHONEME_CACHE
    version = f"espeak-ng {front_end.phonemizer.version}"
    cached: dict[str, tuple[str, str]] = {}
    if path.exists():
        with path.open(encoding="utf-8", newline="") as stream:
            rows = list(csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
        if rows and rows[0] == ["#", version]:
            cached = {row[0]: (row[1], row[2]) for row in rows[1:] if len(row) == 3}
    todo = [e for e in entries if cached.get(e.mel_name, ("",))[0] != e.text]
    if todo:
        print(f"Phonemizing {len(todo)} texts with {version}...", flush=True)
        results = front_end([e.text for e in todo])
        cached.update({e.mel_name: (e.text, r.phonemes) for e, r in zip(todo, results)})
        lines = [f"#\t{version}\n"] + [f"{name}\t{text}\t{phonemes}\n" for name, (text, phonemes) in cached.items()]
        with atomic_write(path) as stream:
            stream.write("".join(lines).encode("utf-8"))
    return {e.mel_name: cached[e.mel_name][1] for e in entries}


def frame_budget_batches(frame_counts: Sequence[int], batch_frames: int, max_items: int,
                         rng: np.random.Generator) -> list[list[int]]:
    """Indices grouped by similar length so that ``items × longest ≤ batch_frames``; batches shuffled."""
    order = np.argsort(np.asarray(frame_counts) + rng.uniform(0, 30, len(frame_counts)))  # jitter mixes neighbours
    batches, current, longest = [], [], 0
    for index in order:
        longest_if_added = max(longest, int(frame_counts[index]))
        if current and (longest_if_added * (len(current) + 1) > batch_frames or len(current) >= max_items):
            batches.append(current)
            current, longest_if_added = [], int(frame_counts[index])
        current.append(int(index))
        longest = longest_if_added
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


class DurationDataset:
    """Utterances of a preprocessed synthesizer folder with phoneme ids.

    ``oversample`` lists ``(pattern, factor)``: entries whose mel name matches are listed ``factor`` times.
    ``with_pitch`` adds ``log_f0`` from ``f0/``."""

    def __init__(self, syn_dir: str | Path, front_end: PhonemeFrontEnd, max_mel_frames: int,
                 oversample: Sequence[tuple[str, int]] = (), with_pitch: bool = False) -> None:
        self.syn_dir = Path(syn_dir)
        self.with_pitch = with_pitch
        entries = read_train_txt(self.syn_dir / "train.txt")
        phonemes = load_phonemes(self.syn_dir, entries, front_end)
        items = []
        for entry in entries:
            ids = front_end.table.encode(phonemes[entry.mel_name])
            if entry.n_frames > max_mel_frames or len(ids) < 3 or len(ids) > entry.n_frames:
                continue
            factor = max([f for pattern, f in oversample if re.search(pattern, entry.mel_name)], default=1)
            items += [Item(entry, ids)] * factor
        if not items:
            raise ValueError(f"No usable utterances in '{self.syn_dir / 'train.txt'}' (all too long or too short).")
        if with_pitch:
            missing = [item.entry for item in items
                       if not (self.syn_dir / PITCH_FOLDER / pitch_file_name(item.entry.mel_name)).is_file()]
            if missing:
                raise ValueError(f"{len(missing)} utterances have no F0 contour (first '{missing[0].mel_name}'): "
                                 f"run `python -m synthesizer.duration.pitch {self.syn_dir}` first")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    @property
    def frame_counts(self) -> list[int]:
        return [item.entry.n_frames for item in self.items]

    def collate(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Padded batch: ``ids``, ``lengths``, ``mels`` (padding −4), ``frame_lengths``, ``speakers``."""
        items = [self.items[i] for i in indices]
        mels = [np.load(self.syn_dir / MEL_FOLDER / item.entry.mel_name) for item in items]  # each (T, 80)
        speakers = np.stack([np.load(self.syn_dir / EMBED_FOLDER / item.entry.embed_name) for item in items])
        n_symbols = max(len(item.ids) for item in items)
        n_frames = max(len(mel) for mel in mels)
        ids = torch.zeros(len(items), n_symbols, dtype=torch.long)
        padded = torch.full((len(items), mels[0].shape[1], n_frames), -4.0)
        for row, (item, mel) in enumerate(zip(items, mels)):
            ids[row, : len(item.ids)] = torch.tensor(item.ids)
            padded[row, :, : len(mel)] = torch.from_numpy(mel.T)
        return {
            "ids": ids,
            "lengths": torch.tensor([len(item.ids) for item in items]),
            "mels": padded,
            "frame_lengths": torch.tensor([len(mel) for mel in mels]),
            "speakers": torch.from_numpy(speakers.astype(np.float32)),
            **({"log_f0": self._log_f0(items, n_frames)} if self.with_pitch else {}),
        }

    def _log_f0(self, items: Sequence[Item], n_frames: int) -> torch.Tensor:
        """``(B, T)`` continuous log F0, each row's last value repeated over its padding."""
        rows = torch.zeros(len(items), n_frames)
        for row, item in enumerate(items):
            f0 = np.load(self.syn_dir / PITCH_FOLDER / pitch_file_name(item.entry.mel_name))
            contour = torch.from_numpy(continuous_log_f0(f0))[:n_frames]
            rows[row, : len(contour)] = contour
            rows[row, len(contour):] = contour[-1]
        return rows
