"""Ground-truth-aligned (GTA) mels for vocoder training: ``python -m vocoder.preprocess <datasets_root>``.

A trained synthesizer is run teacher-forced over every utterance of ``<in_dir>/train.txt`` (the
decoder sees the real previous frame at each step), so its post-net mels line up frame for frame with
the recorded audio while carrying the synthesizer's own artefacts; a vocoder trained on them copes
with what the synthesizer really produces. RTVC's procedure (reference §4.6), with these differences:

* the Tacotron is rebuilt with pre-net dropout 0 and put in eval mode, whatever checkpoint it comes
  from (RTVC's own or ours), so the same file always gives the same mels;
* batches group utterances of similar length (less padding, faster) instead of file order;
* under ``torchrun --nproc_per_node=N`` the batches are shared among the ranks (RTVC's multi-GPU
  GTA crashed, quirk 25); each ``.npy`` is written atomically, ``--skip_existing`` resumes a run;
* a duration synthesizer file (``architecture="duration"``, the shipped offline one) works too: its
  mels are decoded along the monotonic alignment of the real mel, exactly as in its training step.
  They feed ``python -m vocoder.istft.train --gta_dir`` as well as the WaveRNN trainer.

Output: ``<out_dir>/mels_gta/<mel name of train.txt>`` as ``(T, num_mels)`` float32, cropped to the
ground-truth length, and ``<out_dir>/synthesized.txt``: the ``train.txt`` lines that have a GTA mel.

Examples
--------
>>> build_parser().parse_args(["data", "--skip_existing"]).batch_size
16
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthesizer import registry as synthesizers
from synthesizer.metadata import write_train_txt
from utils.atomic_write import atomic_write
from utils.distributed import (
    DistributedContext,
    barrier,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from utils.training import TrainingError, run_cli

GTA_FOLDER = "mels_gta"
SYNTHESIZED_TXT = "synthesized.txt"


@dataclass
class GtaSummary:
    """What a GTA run did (summed over ranks)."""

    out_dir: Path
    written: int = 0
    skipped: int = 0
    frames: int = 0
    audio_hours: float = 0.0
    seconds: float = 0.0
    listed: int = 0

    def describe(self) -> str:
        """The one-line report printed at the end.

        Examples
        --------
        >>> GtaSummary(Path("out"), written=3, frames=600, audio_hours=0.002, seconds=1.5, listed=3).describe()
        'GTA mels: 3 written, 0 already there, 600 frames (0.00 h of audio) in 1.5 s; out/synthesized.txt lists 3 utterances.'
        """  # noqa: E501 (a doctest's expected output is one line)
        return (
            f"GTA mels: {self.written} written, {self.skipped} already there, "
            f"{self.frames:,} frames ({self.audio_hours:.2f} h of audio) in {self.seconds:.1f} s; "
            f"{self.out_dir / SYNTHESIZED_TXT} lists {self.listed} utterances."
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vocoder.preprocess",
        description="Make ground-truth-aligned mels for vocoder training with a trained synthesizer "
                    "(teacher-forced, dropout off). Run under torchrun to share the work among GPUs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("datasets_root", type=Path,
                        help="Folder holding SV2TTS/ (the defaults of --in_dir and --out_dir live under it).")
    parser.add_argument("-s", "--syn_model_fpath", type=Path, default=Path("saved_models/default/synthesizer.pt"),
                        help="Synthesizer checkpoint (RTVC's or ours).")
    parser.add_argument("-i", "--in_dir", type=Path, default=None,
                        help="Synthesizer data folder (train.txt, mels/, embeds/); "
                             "default <datasets_root>/SV2TTS/synthesizer.")
    parser.add_argument("-o", "--out_dir", type=Path, default=None,
                        help="Output folder (mels_gta/, synthesized.txt); default <datasets_root>/SV2TTS/vocoder.")
    parser.add_argument("--batch_size", type=int, default=16, help="Utterances per teacher-forced batch.")
    parser.add_argument("--skip_existing", action="store_true",
                        help="Keep GTA mels that already exist instead of computing them again.")
    parser.add_argument("-n", "--num_workers", type=int, default=2, help="DataLoader processes reading the inputs.")
    parser.add_argument("--cpu", action="store_true", help="Run on the CPU even if CUDA is available.")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")
    return parser


def length_sorted_batches(frame_counts: list[int], indices: list[int], batch_size: int) -> list[list[int]]:
    """``indices`` grouped into batches of similar frame counts, longest first.

    Examples
    --------
    >>> length_sorted_batches([5, 90, 40, 91, 7], [0, 1, 2, 3, 4], 2)
    [[3, 1], [2, 4], [0]]
    """
    order = sorted(indices, key=lambda i: (-frame_counts[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary file and a rename: a killed run never leaves half an array."""
    with atomic_write(path) as stream:
        np.save(stream, array)


def synthesize_gta(
    syn_model_fpath: str | Path,
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    batch_size: int = 16,
    skip_existing: bool = False,
    num_workers: int = 0,
    context: DistributedContext | None = None,
    progress: bool = True,
) -> GtaSummary:
    """Write the GTA mels of every utterance of ``<in_dir>/train.txt`` and ``<out_dir>/synthesized.txt``.

    Parameters
    ----------
    syn_model_fpath
        Synthesizer checkpoint (RTVC's or ours).
    in_dir
        Synthesizer data folder: ``train.txt``, ``mels/``, ``embeds/``.
    out_dir
        Receives ``mels_gta/`` and ``synthesized.txt``.
    batch_size
        Utterances per teacher-forced batch.
    skip_existing
        Keep GTA mels already present.
    num_workers
        DataLoader processes reading mels and embeddings.
    context
        This process's rank and device (default: one CPU process); batches are shared among ranks.
    progress
        tqdm bar on rank 0.

    Returns
    -------
    GtaSummary
        Counts over all ranks.

    Raises
    ------
    TrainingError
        Unusable inputs (no ``train.txt``, missing mels or embeddings, a bad batch size).
    utils.checkpoints.CheckpointError
        The synthesizer checkpoint is missing or unusable.
    """
    context = context or DistributedContext()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if batch_size < 1:
        raise TrainingError("--batch_size must be at least 1.")
    if not (in_dir / "train.txt").is_file():
        raise TrainingError(
            f"'{in_dir / 'train.txt'}' does not exist; preprocess a dataset with python -m synthesizer.preprocess "
            "first (or pass --in_dir)."
        )
    start = time.perf_counter()
    gta_dir = out_dir / GTA_FOLDER
    source = synthesizers.load(syn_model_fpath).gta_source(in_dir, context.device, num_workers)
    if context.is_main:
        try:
            gta_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrainingError(f"Cannot create the output folder '{gta_dir}': {error.strerror or error}.") from None
    barrier(context)

    entries = source.entries
    todo = [i for i, entry in enumerate(entries) if not (skip_existing and (gta_dir / entry.mel_name).is_file())]
    batches = length_sorted_batches([entry.n_frames for entry in entries], todo, batch_size)
    mine = batches[context.rank :: context.world_size]

    bar = None
    if progress and context.is_main:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(batch) for batch in mine), desc="GTA mels", unit="utt", dynamic_ncols=True)
    written = frames = 0
    for indices, mels in source.batches(mine):
        for index, mel in zip(indices, mels):
            save_npy(gta_dir / entries[index].mel_name, mel)
            written += 1
            frames += mel.shape[0]
        if bar is not None:
            bar.update(len(indices))
    if bar is not None:
        bar.close()

    counts = gather_objects((written, frames), context)
    summary = GtaSummary(
        out_dir,
        written=sum(c[0] for c in counts),
        skipped=len(entries) - len(todo),
        frames=sum(c[1] for c in counts),
    )
    summary.audio_hours = summary.frames * source.hop_size / source.sample_rate / 3600
    if context.is_main:
        done = [entry for entry in entries if (gta_dir / entry.mel_name).is_file()]
        write_train_txt(out_dir / SYNTHESIZED_TXT, done)
        summary.listed = len(done)
    summary.seconds = time.perf_counter() - start
    barrier(context)
    return summary


def run(argv: list[str] | None = None) -> GtaSummary:
    """Parse ``argv`` and make the GTA mels (under torchrun: this rank's share)."""
    args = build_parser().parse_args(argv)
    in_dir = args.in_dir or args.datasets_root / "SV2TTS" / "synthesizer"
    out_dir = args.out_dir or args.datasets_root / "SV2TTS" / "vocoder"
    if args.num_workers < 0:
        raise TrainingError("--num_workers cannot be negative.")
    context = init_distributed(use_cuda=not args.cpu)
    try:
        summary = synthesize_gta(
            args.syn_model_fpath, in_dir, out_dir,
            batch_size=args.batch_size, skip_existing=args.skip_existing, num_workers=args.num_workers,
            context=context, progress=not args.quiet,
        )
        if context.is_main:
            print(summary.describe(), flush=True)
        return summary
    finally:
        shutdown_distributed(context)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
