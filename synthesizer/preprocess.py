"""Preprocess transcribed speech into the synthesizer's training set (RTVC's ``synthesizer_preprocess_*.py``).

Stages, splitting and resuming: docs/synthesizer.md.

>>> from utils.corpora import Alignment
>>> alignment = Alignment(("", "HELLO", "", "THERE", ""), (0.3, 1.0, 1.6, 3.5, 3.8))
>>> # The 0.6 s pause cuts it in two, then the 0.7 s first part is too short and is joined back.
>>> split_on_silences(alignment, SynthesizerHParams())
[(0.3, 3.5, 'HELLO THERE')]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from encoder.audio import preprocess_wav, webrtcvad_available
from encoder.hparams import EncoderHParams
from synthesizer.audio import load_wav
from utils.mel import melspectrogram
from synthesizer.hparams import SynthesizerHParams
from synthesizer.metadata import (
    AUDIO_FOLDER,
    EMBED_FOLDER,
    MEL_FOLDER,
    MetadataError,
    TrainEntry,
    append_train_txt,
    read_train_txt,
    write_train_txt,
)
from synthesizer.text import SYMBOLS, TextError, TextWarning, clean_text, encode_text
from utils.atomic_write import atomic_write
from utils.audio_io import AudioWarning
from utils.corpora import (
    Alignment,
    CorpusError,
    CorpusUtterance,
    collect_utterances,
    select_corpora,
)
from utils.hparams import HParamsError
from utils.parallel import parallel_map
from utils.arguments import add_corpus_arguments, cannot_write, fail, interrupted, warn_failures
from utils.training import TrainingError, parse_hparam_overrides, resolve_hparams


TRAIN_TXT = "train.txt"
DEFAULT_ENCODER = Path("saved_models/default/encoder.pt")
DROP_REASONS = ("no transcript", "no speakable text", "too short", "too long", "unreadable")


@dataclass(frozen=True)
class TrainingSegment:
    """A part of an utterance to turn into one training example (``start``/``end`` in seconds; ``None``:
    the file's own)."""

    basename: str
    text: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class SynthesizerJob:

    utterance: CorpusUtterance
    segments: tuple[TrainingSegment, ...]


@dataclass
class JobResult:
    entries: list[TrainEntry] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)


# -- Segments --------------------------------------------------------------------------------------
def _clean_transcript(text: str) -> str:
    """One line without ``"`` (RTVC) nor ``|`` (the ``train.txt`` separator)."""
    return " ".join(text.replace('"', " ").replace("|", " ").split())


def split_on_silences(alignment: Alignment, hparams: SynthesizerHParams) -> list[tuple[float, float, str]]:
    """RTVC's split of an aligned utterance at its pauses: ``(start s, end s, text)`` per segment
    (docs/synthesizer.md)."""
    words = list(alignment.words)
    end_times = [float(t) for t in alignment.end_times]
    # RTVC asserts that the alignment starts and ends with a silence; add empty ones instead of failing.
    if words[0] != "":
        words, end_times = ["", *words], [0.0, *end_times]
    if words[-1] != "":
        words, end_times = [*words, ""], [*end_times, end_times[-1]]
    start_times = [0.0, *end_times[:-1]]
    breaks = [
        index for index, word in enumerate(words)
        if index in (0, len(words) - 1)
        or (word == "" and end_times[index] - start_times[index] >= hparams.silence_min_duration_split)
    ]
    segments = list(itertools.pairwise(breaks))
    durations = [start_times[end] - end_times[start] for start, end in segments]
    longest = hparams.hop_size * hparams.max_mel_frames / hparams.sample_rate

    index = 0
    while index < len(segments) and len(segments) > 1:
        if durations[index] >= hparams.utterance_min_duration:
            index += 1
            continue
        left = float("inf") if index == 0 else durations[index - 1]
        right = float("inf") if index == len(segments) - 1 else durations[index + 1]
        joined = durations[index] + min(left, right)
        if joined > longest:
            index += 1
            continue
        first = index - 1 if left <= right else index
        segments[first] = (segments[first][0], segments[first + 1][1])
        durations[first] = joined
        del segments[first + 1], durations[first + 1]

    return [
        (end_times[start], start_times[end], " ".join(word for word in words[start + 1 : end] if word))
        for start, end in segments
    ]


def plan_segments(utterance: CorpusUtterance, hparams: SynthesizerHParams,
                  use_alignments: bool = True) -> list[TrainingSegment]:
    """The training examples an utterance gives, before any audio is read: silence-split pieces
    ``<name>_<NN>`` when aligned, else the whole utterance; nothing without text."""
    if utterance.text is None:
        return []
    if use_alignments and utterance.alignment is not None:
        parts = split_on_silences(utterance.alignment, hparams)
        return [
            TrainingSegment(f"{utterance.name}_{number:02d}", _clean_transcript(text), start, end)
            for number, (start, end, text) in enumerate(parts)
        ]
    return [TrainingSegment(utterance.name, _clean_transcript(utterance.text))]


# -- One utterance ---------------------------------------------------------------------------------
def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as stream:
        np.save(stream, array, allow_pickle=False)


def _speakable(text: str, hparams: SynthesizerHParams) -> bool:
    """Whether the cleaned text has a symbol besides spaces and the EOS ("🙂" alone has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TextWarning)  # dropped characters are expected in corpora
        ids = encode_text(text, hparams.tts_cleaner_names).ids
    return any(SYMBOLS[i] != " " for i in ids[:-1])


def _trim_hparams(hparams: SynthesizerHParams) -> EncoderHParams:
    return EncoderHParams().replace(sample_rate=hparams.sample_rate)


def process_utterance(job: SynthesizerJob, *, out_dir: Path, hparams: SynthesizerHParams) -> JobResult:
    """Write the mel and audio of a job's segments; their entries and the drops by reason.

    :class:`AudioError` for an unreadable, empty or silent file."""
    result = JobResult()
    segments = []
    for segment in job.segments:
        if _speakable(segment.text, hparams):
            segments.append(segment)
        else:
            result.dropped["no speakable text"] += 1
    if not segments:
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)  # clipping or low rates: common, not worth a line each
        wav = load_wav(job.utterance.audio_path, hparams)
    trim_hparams = _trim_hparams(hparams)
    rate = hparams.sample_rate
    for segment in segments:
        start = 0 if segment.start is None else int(segment.start * rate)
        end = len(wav) if segment.end is None else int(segment.end * rate)
        piece = wav[start:end]
        if hparams.trim_silence and len(piece):
            piece = preprocess_wav(piece, hparams=trim_hparams, normalize=False)
        if len(piece) < hparams.utterance_min_duration * rate:
            result.dropped["too short"] += 1
            continue
        mel = melspectrogram(piece, hparams)  # (80, T)
        if mel.shape[1] > hparams.max_mel_frames and hparams.clip_mels_length:
            result.dropped["too long"] += 1
            continue
        entry = TrainEntry.from_basename(segment.basename, len(piece), mel.shape[1], segment.text)
        _save_npy(out_dir / MEL_FOLDER / entry.mel_name, mel.T.astype(np.float32))
        _save_npy(out_dir / AUDIO_FOLDER / entry.audio_name, piece.astype(np.float32))
        result.entries.append(entry)
    return result


# -- Audio stage -----------------------------------------------------------------------------------
@dataclass
class AudioReport:

    new_entries: list[TrainEntry] = field(default_factory=list)
    existing: int = 0
    dropped: Counter = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _outputs_exist(out_dir: Path, basename: str) -> bool:
    return (out_dir / MEL_FOLDER / f"mel-{basename}.npy").exists() and (
        out_dir / AUDIO_FOLDER / f"audio-{basename}.npy"
    ).exists()


def preprocess_audio(utterances: Sequence[CorpusUtterance], out_dir: Path, hparams: SynthesizerHParams, *,
                     skip_existing: bool = False, use_alignments: bool = True, n_processes: int = 1,
                     show_progress: bool = True) -> AudioReport:
    for folder in (MEL_FOLDER, AUDIO_FOLDER, EMBED_FOLDER):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    train_txt = out_dir / TRAIN_TXT
    listed = {entry.basename for entry in read_train_txt(train_txt)} if skip_existing and train_txt.exists() else set()
    report = AudioReport()
    jobs = []
    for utterance in utterances:
        if utterance.text is None:
            report.dropped["no transcript"] += 1
            continue
        segments = plan_segments(utterance, hparams, use_alignments)
        todo = tuple(s for s in segments if not (s.basename in listed and _outputs_exist(out_dir, s.basename)))
        report.existing += len(segments) - len(todo)
        if todo:
            jobs.append(SynthesizerJob(utterance, todo))

    work = partial(process_utterance, out_dir=out_dir, hparams=hparams)
    for result in parallel_map(work, jobs, n_processes, desc="audio", unit="utterance", show_progress=show_progress):
        if not result.ok:
            report.dropped["unreadable"] += len(result.item.segments)
            report.failures.append((str(result.item.utterance.audio_path), result.error))
            continue
        report.dropped.update(result.value.dropped)
        fresh = [entry for entry in result.value.entries if entry.basename not in listed]
        report.new_entries.extend(fresh)
        if skip_existing:  # append as we go, so an interrupted run can be resumed
            append_train_txt(train_txt, fresh)
    if not skip_existing:
        write_train_txt(train_txt, report.new_entries)
    return report


# -- Embedding stage -------------------------------------------------------------------------------
_worker_encoder = None  # the Encoder of this process (set by _load_encoder)


def _load_encoder(path: Path, single_thread: bool) -> None:
    """Load the encoder once per process; workers use one torch thread each so they do not compete."""
    global _worker_encoder
    import torch

    from encoder.inference import Encoder

    if single_thread:
        torch.set_num_threads(1)
    _worker_encoder = Encoder.from_checkpoint(path, device="cpu")


def embed_entry(entry: TrainEntry, *, out_dir: Path, sample_rate: int) -> None:
    encoder = _worker_encoder
    if encoder is None:
        raise RuntimeError("the encoder is not loaded in this process")
    wav = np.load(out_dir / AUDIO_FOLDER / entry.audio_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)
        wav = encoder.preprocess(wav, source_sr=sample_rate)
    if len(wav) == 0:
        raise ValueError(f"{entry.audio_name} has no speech left for the encoder")
    embedding = encoder.embed_utterance(wav).astype(np.float32)
    _save_npy(out_dir / EMBED_FOLDER / entry.embed_name, embedding)


def preprocess_embeddings(entries: Sequence[TrainEntry], out_dir: Path, encoder_path: Path, *,
                          sample_rate: int, skip_existing: bool = False, n_processes: int = 1,
                          show_progress: bool = True) -> tuple[int, int, list[tuple[str, str]]]:
    """Compute the missing (without ``skip_existing``: all) embeddings; ``(written, kept, failures)``."""
    (out_dir / EMBED_FOLDER).mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if not (skip_existing and (out_dir / EMBED_FOLDER / e.embed_name).exists())]
    existing = len(entries) - len(todo)
    if not todo:
        return 0, existing, []
    work = partial(embed_entry, out_dir=out_dir, sample_rate=sample_rate)
    n_workers = min(n_processes, len(todo))
    computed, failures = 0, []
    for result in parallel_map(work, todo, n_workers, desc="embeddings", unit="utterance",
                               initializer=_load_encoder, initargs=(encoder_path, n_workers > 1),
                               show_progress=show_progress):
        if result.ok:
            computed += 1
        else:
            failures.append((result.item.audio_name, result.error))
    return computed, existing, failures


def resolve_encoder_path(requested: Path | None) -> Path:
    """The encoder checkpoint to use; ``FileNotFoundError`` when there is none."""
    from utils.default_models import resolve_model

    resolved = resolve_model("encoder", DEFAULT_ENCODER.parents[1], requested)
    if resolved.path.is_file():
        return resolved.path
    if resolved.source == "explicit":
        raise FileNotFoundError(f"The encoder checkpoint '{requested}' does not exist.")
    raise FileNotFoundError(
        f"No encoder at {DEFAULT_ENCODER}: run 'python -m utils.default_models encoder' "
        "(or pip install --no-deps resemblyzer), or pass -e ENCODER.pt."
    )


# -- Hyperparameters -------------------------------------------------------------------------------
def parse_hparams_overrides(overrides: Sequence[str], base: SynthesizerHParams | None = None) -> SynthesizerHParams:
    """Apply ``key=value`` overrides (comma-separated) to the synthesizer hparams, as the trainers'
    ``--hparams``; :class:`HParamsError` for a bad key, pair or value.

    >>> hp = parse_hparams_overrides(["max_mel_frames=1000,rescale=false", "tts_cleaner_names=basic_cleaners"])
    >>> hp.max_mel_frames, hp.rescale, hp.tts_cleaner_names
    (1000, False, ('basic_cleaners',))
    """
    base = base or SynthesizerHParams()
    try:
        return resolve_hparams(SynthesizerHParams, stored=base.to_dict(),
                               overrides=parse_hparam_overrides(list(overrides)))
    except TrainingError as error:
        raise HParamsError(str(error).removeprefix("Invalid hyperparameters: ").rstrip(".")) from None


# -- Command line ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synthesizer.preprocess",
        description=(
            "Turn transcribed speech corpora into the synthesizer's training set: mels/, audio/, embeds/ and "
            "train.txt in the output folder. The audio stage comes first, then speaker embeddings."
        ),
    )
    add_corpus_arguments(
        parser,
        root_help="folder holding the corpora (LibriSpeech/, LibriTTS/, VCTK-Corpus/, LJSpeech-1.1/...)",
        out_dir_help="output folder (default: <datasets_root>/SV2TTS/synthesizer)",
        datasets_help="comma-separated datasets: paths relative to the root (LibriSpeech/train-clean-100) "
                      "or absolute paths (default: every recognised dataset under the root)",
        skip_existing_help="keep utterances already in train.txt and existing embeddings; append new lines",
    )
    parser.add_argument("--no_alignments", action="store_true",
                        help="use whole LibriSpeech utterances even where *.alignment.txt files exist")
    parser.add_argument("--hparams", nargs="*", default=[], metavar="KEY=VALUE",
                        help="synthesizer hyperparameter overrides, e.g. max_mel_frames=1000 rescale=false "
                             "(comma-separated pairs also work)")
    parser.add_argument("-e", "--encoder_model_fpath", type=Path, default=None,
                        help=f"speaker encoder for the embeddings (default: {DEFAULT_ENCODER}, else the copy "
                             "bundled in the resemblyzer package)")
    stages = parser.add_mutually_exclusive_group()
    stages.add_argument("--no_embeds", action="store_true", help="only run the audio stage")
    stages.add_argument("--embeds_only", action="store_true",
                        help="only compute embeddings for an existing train.txt in the output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_processes < 1:
        return fail(f"--n_processes must be at least 1, not {args.n_processes}.")
    try:
        hparams = parse_hparams_overrides(args.hparams)
        clean_text("a", hparams.tts_cleaner_names)  # an unknown cleaner fails here, not in every worker
    except (HParamsError, TextError) as error:
        message = str(error)
        return fail(message if message.endswith(".") else f"{message}.")
    if hparams.trim_silence and not webrtcvad_available():
        return fail("webrtcvad is not installed (pip install webrtcvad-wheels); install it or pass "
                     "--hparams trim_silence=false.")
    encoder_path = None
    if not args.no_embeds:
        try:
            encoder_path = resolve_encoder_path(args.encoder_model_fpath)
        except FileNotFoundError as error:
            return fail(str(error))

    root = args.datasets_root
    # --embeds_only with -o only needs the output folder.
    if not root.is_dir() and not (args.embeds_only and args.out_dir is not None):
        return fail(f"The datasets root '{root}' does not exist or is not a folder.")
    out_dir = args.out_dir if args.out_dir is not None else root / "SV2TTS" / "synthesizer"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if args.embeds_only:
            entries = read_train_txt(out_dir / TRAIN_TXT)
            audio = None
        else:
            corpora = select_corpora(root, args.datasets.split(","))
            print(f"Preprocessing {len(corpora)} dataset(s) into {out_dir}: {', '.join(c.name for c in corpora)}")
            utterances = collect_utterances(corpora, with_text=True)
            audio = preprocess_audio(utterances, out_dir, hparams, skip_existing=args.skip_existing,
                                     use_alignments=not args.no_alignments, n_processes=args.n_processes)
            entries = read_train_txt(out_dir / TRAIN_TXT)
        embeds = None
        if encoder_path is not None:
            print(f"Speaker embeddings with {encoder_path}")
            embeds = preprocess_embeddings(entries, out_dir, encoder_path, sample_rate=hparams.sample_rate,
                                           skip_existing=args.skip_existing, n_processes=args.n_processes)
    except (CorpusError, MetadataError) as error:
        return fail(str(error))
    except OSError as error:
        return cannot_write(out_dir, error)
    except KeyboardInterrupt:
        return interrupted()

    _print_summary(entries, audio, embeds, hparams)
    return 0


def _print_summary(entries: list[TrainEntry], audio: AudioReport | None,
                   embeds: tuple[int, int, list[tuple[str, str]]] | None, hparams: SynthesizerHParams) -> None:
    failures: list[tuple[str, str]] = []
    if audio is not None:
        dropped = ", ".join(f"{audio.dropped[reason]} {reason}" for reason in DROP_REASONS if audio.dropped[reason])
        print(f"Audio: {len(audio.new_entries)} new utterances, {audio.existing} already preprocessed; "
              f"dropped: {dropped or 'none'}.")
        failures += audio.failures
    if embeds is not None:
        computed, existing, embed_failures = embeds
        print(f"Embeddings: {computed} computed, {existing} kept, {len(embed_failures)} failed.")
        failures += embed_failures
    frames = sum(e.n_frames for e in entries)
    samples = sum(e.n_samples for e in entries)
    print(
        f"train.txt: {len(entries)} utterances, {frames} mel frames, {samples / hparams.sample_rate / 3600:.2f} hours; "
        f"max text length {max((len(e.text) for e in entries), default=0)}, "
        f"max mel frames {max((e.n_frames for e in entries), default=0)}, "
        f"max audio samples {max((e.n_samples for e in entries), default=0)}."
    )
    warn_failures(failures, "more failures not shown.")


if __name__ == "__main__":
    sys.exit(main())
