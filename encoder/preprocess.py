"""Preprocess speech corpora into mel frames for the speaker encoder (RTVC's ``encoder_preprocess.py``);
what it writes and what differs from RTVC: docs/corpora.md.

    python -m encoder.preprocess <datasets_root> [-o OUT] [-d DATASETS] [-s] [--no_trim] [-n N]

>>> parse_source_line("x.npy,/data/Smith, John/take1.wav")
('x.npy', '/data/Smith, John/take1.wav')
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np

import encoder.data
from encoder.audio import preprocess_wav, wav_to_mel_spectrogram, webrtcvad_available
from encoder.hparams import EncoderHParams
from utils.atomic_write import atomic_write
from utils.audio_io import AudioWarning
from utils.corpora import (
    Corpus,
    CorpusError,
    CorpusUtterance,
    group_by_speaker,
    select_corpora,
)
from utils.errors import describe_error
from utils.parallel import parallel_map
from utils.arguments import add_corpus_arguments, cannot_write, fail, interrupted, warn_failures


SOURCES_FILE = "_sources.txt"


@dataclass(frozen=True)
class SpeakerJob:

    speaker: str
    utterances: tuple[CorpusUtterance, ...]


@dataclass(kw_only=True)
class FileCounts:
    """What happened to some files; ``failures`` are ``(source path, reason)``, ``durations`` the trimmed
    seconds of each kept file."""

    kept: int = 0
    existing: int = 0
    too_short: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)

    def merge(self, counts: FileCounts) -> None:
        self.kept += counts.kept
        self.existing += counts.existing
        self.too_short += counts.too_short
        self.failures.extend(counts.failures)
        self.durations.extend(counts.durations)


@dataclass
class SpeakerReport(FileCounts):

    speaker: str


@dataclass
class DatasetReport(FileCounts):

    dataset: str
    speakers: int = 0

    def add(self, report: SpeakerReport) -> None:
        self.speakers += 1
        self.merge(report)


# -- _sources.txt ----------------------------------------------------------------------------------
def parse_source_line(line: str) -> tuple[str, str] | None:
    """``(npy name, source path)`` of one ``_sources.txt`` line split at its first comma; ``None`` if
    blank or malformed."""
    line = line.rstrip("\r\n")
    name, comma, source = line.partition(",")
    if not comma or not name:
        return None
    return name, source


def read_sources(path: str | Path) -> dict[str, str]:
    if not Path(path).is_file():
        return {}
    return {name: source for name, source in encoder.data.read_sources(Path(path)) if source is not None}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as stream:
        np.save(stream, array, allow_pickle=False)


# -- One speaker -----------------------------------------------------------------------------------
def _mel_frames(utterance: CorpusUtterance, hparams: EncoderHParams, trim: bool) -> tuple[np.ndarray, float]:
    with warnings.catch_warnings():
        # Clipping and low sample rates are common in corpora; a warning per file would drown the bar.
        warnings.simplefilter("ignore", AudioWarning)
        wav = preprocess_wav(utterance.audio_path, hparams=hparams, trim_silence=trim)
    if len(wav) == 0:
        raise ValueError("no speech is left after removing silences")
    return wav_to_mel_spectrogram(wav, hparams), len(wav) / hparams.sample_rate


def preprocess_speaker(
    job: SpeakerJob, *, out_dir: Path, hparams: EncoderHParams, skip_existing: bool = False, trim: bool = True
) -> SpeakerReport:
    """Write one speaker's mel frames and ``_sources.txt`` into ``<out_dir>/<speaker>/``.

    With ``skip_existing`` listed files that exist are skipped and new lines appended. Errors writing the
    output propagate (the speaker fails); errors reading a file do not."""
    speaker_dir = Path(out_dir) / job.speaker
    speaker_dir.mkdir(parents=True, exist_ok=True)
    sources_path = speaker_dir / SOURCES_FILE
    listed = read_sources(sources_path) if skip_existing else {}
    report = SpeakerReport(job.speaker)
    new_lines: list[str] = []
    for utterance in job.utterances:
        npy_name = f"{utterance.local_name}.npy"
        npy_path = speaker_dir / npy_name
        if skip_existing and npy_name in listed and npy_path.exists():
            report.existing += 1
            continue
        try:
            frames, seconds = _mel_frames(utterance, hparams, trim)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported and skipped
            report.failures.append((str(utterance.audio_path), describe_error(error)))
            continue
        if len(frames) < hparams.partials_n_frames:
            report.too_short += 1
            continue
        _save_npy(npy_path, frames.astype(np.float32, copy=False))
        if npy_name not in listed:
            new_lines.append(f"{npy_name},{utterance.audio_path}\n")
        report.kept += 1
        report.durations.append(seconds)

    if skip_existing:
        if new_lines:
            with open(sources_path, "a", encoding="utf-8") as stream:
                stream.writelines(new_lines)
    else:
        with atomic_write(sources_path) as stream:
            stream.write("".join(new_lines).encode("utf-8"))
    return report


# -- One dataset -----------------------------------------------------------------------------------
def _hparams_lines(hparams: EncoderHParams) -> list[str]:
    return [f"\t{f.name}: {getattr(hparams, f.name)}" for f in dataclasses.fields(hparams)]


def write_dataset_log(out_dir: Path, report: DatasetReport, hparams: EncoderHParams, started: datetime,
                      trim: bool) -> Path:
    durations = report.durations
    lines = [
        f"Speaker encoder preprocessing of {report.dataset}",
        f"Creation date: {started:%A %d %B %Y %H:%M:%S}",
        "-----",
        "Parameter values:",
        *_hparams_lines(hparams),
        f"\tvad_trimming: {trim}",
        "-----",
        f"Speakers: {report.speakers}",
        f"Utterances kept: {report.kept}",
        f"Already preprocessed (skipped): {report.existing}",
        f"Dropped, shorter than {hparams.partials_n_frames} frames: {report.too_short}",
        f"Failed (unreadable, silent or no speech): {len(report.failures)}",
        "-----",
        "Statistics of the kept utterance durations (seconds, after trimming):",
    ]
    if durations:
        lines += [
            f"\tmin: {min(durations):.3f}",
            f"\tmax: {max(durations):.3f}",
            f"\tmean: {statistics.fmean(durations):.3f}",
            f"\tmedian: {statistics.median(durations):.3f}",
            f"\ttotal hours: {sum(durations) / 3600:.3f}",
        ]
    else:
        lines.append("\t(no utterance kept in this run)")
    lines += ["-----", f"Finished on {datetime.now():%A %d %B %Y %H:%M:%S}"]
    for source, reason in report.failures:
        lines.append(f"failed: {source}: {reason}")
    path = out_dir / f"Log_{report.dataset.replace('/', '_')}.txt"
    with atomic_write(path) as stream:
        stream.write(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def preprocess_corpus(corpus: Corpus, out_dir: Path, hparams: EncoderHParams | None = None, *,
                      skip_existing: bool = False, trim: bool = True, n_processes: int = 1,
                      show_progress: bool = True) -> DatasetReport:
    """Preprocess every speaker of ``corpus`` and write its log; a speaker whose output could not be
    written counts all its files as failed."""
    hparams = hparams or EncoderHParams()
    started = datetime.now()
    jobs = [SpeakerJob(speaker, tuple(items))
            for speaker, items in group_by_speaker(corpus.utterances(with_text=False)).items()]
    report = DatasetReport(corpus.name)
    work = partial(preprocess_speaker, out_dir=out_dir, hparams=hparams, skip_existing=skip_existing, trim=trim)
    for result in parallel_map(work, jobs, n_processes, desc=corpus.name, unit="speaker",
                               show_progress=show_progress):
        if result.ok:
            report.add(result.value)
        else:
            failed = SpeakerReport(result.item.speaker)
            failed.failures = [(str(u.audio_path), result.error) for u in result.item.utterances]
            report.add(failed)
    write_dataset_log(out_dir, report, hparams, started, trim)
    return report


# -- Command line ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m encoder.preprocess",
        description=(
            "Turn speech corpora into mel-frame .npy files for training the speaker encoder: one folder per "
            "speaker under the output folder, with _sources.txt, plus a Log_<dataset>.txt per dataset."
        ),
    )
    add_corpus_arguments(
        parser,
        root_help="folder holding the corpora (LibriSpeech/, VoxCeleb1/, VCTK-Corpus/, your own...)",
        out_dir_help="output folder (default: <datasets_root>/SV2TTS/encoder)",
        datasets_help="comma-separated datasets: paths relative to the root (LibriSpeech/train-clean-100), "
                      "absolute paths, or RTVC's names librispeech_other, voxceleb1, voxceleb2 "
                      "(default: every recognised dataset under the root)",
        skip_existing_help="keep files already listed in _sources.txt (resume an interrupted run, add datasets)",
    )
    parser.add_argument("--no_trim", action="store_true",
                        help="do not remove silences with webrtcvad (RTVC's flag did not really disable trimming)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    trim = not args.no_trim
    if trim and not webrtcvad_available():
        return fail("webrtcvad is not installed (pip install webrtcvad-wheels); install it or pass --no_trim.")
    if args.n_processes < 1:
        return fail(f"--n_processes must be at least 1, not {args.n_processes}.")
    try:
        corpora = select_corpora(args.datasets_root, args.datasets.split(","))
    except CorpusError as error:
        return fail(str(error))
    out_dir = args.out_dir if args.out_dir is not None else args.datasets_root / "SV2TTS" / "encoder"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return fail(f"Cannot create the output folder '{out_dir}' ({error.strerror or error}).")

    print(f"Preprocessing {len(corpora)} dataset(s) into {out_dir}: {', '.join(c.name for c in corpora)}")
    hparams = EncoderHParams()
    reports = []
    try:
        for corpus in corpora:
            reports.append(preprocess_corpus(corpus, out_dir, hparams, skip_existing=args.skip_existing,
                                             trim=trim, n_processes=args.n_processes))
    except KeyboardInterrupt:
        return interrupted()
    except OSError as error:
        return cannot_write(out_dir, error)

    _print_summary(reports, hparams)
    return 0


def _print_summary(reports: list[DatasetReport], hparams: EncoderHParams) -> None:
    failures = [failure for report in reports for failure in report.failures]
    hours = sum(sum(report.durations) for report in reports) / 3600
    for report in reports:
        print(f"{report.dataset}: {report.speakers} speakers, {report.kept} kept, {report.existing} already done, "
              f"{report.too_short} too short, {len(report.failures)} failed")
    print(
        f"Done: {sum(r.speakers for r in reports)} speakers, {sum(r.kept for r in reports)} utterances kept "
        f"({hours:.2f} h), {sum(r.existing for r in reports)} already preprocessed, "
        f"{sum(r.too_short for r in reports)} dropped as shorter than {hparams.partials_n_frames} frames, "
        f"{len(failures)} failed."
    )
    warn_failures(failures, "more failed files are listed in the Log_*.txt files.")


if __name__ == "__main__":
    sys.exit(main())
