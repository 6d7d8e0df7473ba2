"""Fine-tune a synthesizer on one speaker's recordings in one command.

Usage::

    python -m synthesizer.finetune <folder> --steps N [-s synthesizer.pt] [--run_id ID | -o OUT_DIR]
                                   [-e encoder.pt] [--lr 3e-5] [--batch_size 12] ...

``<folder>`` holds one speaker's transcribed recordings, either in LJSpeech format (``metadata.csv``
with ``id|text[|normalized text]`` lines + ``wavs/<id>.wav``) or as ``name.wav`` + ``name.txt`` pairs
(any audio format ``python -m synthesizer.preprocess`` reads). The command

1. preprocesses the folder with the synthesizer preprocessing (VAD trim, mels, ``train.txt``) into
   ``<out>/data/`` (or ``--work_dir``), using the checkpoint's own audio settings;
2. computes the speaker embeddings with the encoder (``-e``);
3. trains from the checkpoint (RTVC's ``synthesizer.pt`` or ours) for ``--steps`` more steps at a
   constant learning rate and the checkpoint's ``r``, writing ``<out>/synthesizer.pt`` (with samples
   and TensorBoard logs beside it, as ``python -m synthesizer.train``).

Running the same command again resumes: finished preprocessing is reused (``--skip_existing``) and
training continues from ``<out>/synthesizer.pt`` up to the same final step (the base checkpoint's step
+ ``--steps``), so an interrupted fine-tuning simply finishes. A larger ``--steps`` trains further.

Why 3e-5: RTVC's schedule trains at 3e-5 between steps 160k and 320k, and the published checkpoint
stopped inside that session (step ~295k). Continuing at the rate its weights were last trained with
adapts the voice without the large updates that would undo what a few minutes of one speaker cannot
teach again (the alignment, the pronunciation of unseen words).

Examples
--------
>>> args = build_parser().parse_args(["my_voice/", "--steps", "100"])
>>> args.syn_model_fpath, args.lr, args.batch_size
(PosixPath('saved_models/default/synthesizer.pt'), 3e-05, 12)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from synthesizer.hparams import SynthesizerHParams
from synthesizer.model import Tacotron
from utils.checkpoints import CheckpointError, extract_state_dict, guess_model_type, load_checkpoint_file, read_hparams
from utils.distributed import barrier, init_distributed
from utils.arguments import add_runtime_arguments
from utils.training import (TrainingError, TrainingOptions, check_run_folder, parse_hparam_overrides, run_cli,
                            runtime_options)

DEFAULT_CHECKPOINT = Path("saved_models/default/synthesizer.pt")
DEFAULT_LEARNING_RATE = 3e-5
DEFAULT_BATCH_SIZE = 12
#: Layouts of one speaker's recordings (see :func:`utils.corpora.detect_layout`).
SPEAKER_LAYOUTS = ("ljspeech", "text_folder")


def base_checkpoint_facts(path: Path) -> tuple[SynthesizerHParams, int, int]:
    """Hyperparameters, step and ``r`` of the checkpoint to fine-tune (RTVC's or ours).

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable or not a synthesizer.
    """
    checkpoint = load_checkpoint_file(path, "synthesizer")
    hparams = read_hparams(checkpoint, SynthesizerHParams, path, "synthesizer")
    state = extract_state_dict(checkpoint, path, "synthesizer")
    other = guess_model_type(state)
    if other not in (None, "synthesizer"):
        raise CheckpointError(f"The synthesizer checkpoint '{path}' is {'an' if other == 'encoder' else 'a'} {other} "
                              "checkpoint, not a synthesizer checkpoint.")
    if "decoder.r" not in state or "step" not in state:
        raise CheckpointError(f"The synthesizer checkpoint '{path}' has no decoder.r or step entry; "
                              "it is not a Tacotron.")
    step = int(checkpoint["step"]) if isinstance(checkpoint.get("step"), int) else int(state["step"].reshape(-1)[0])
    return hparams, step, int(state["decoder.r"])


def preprocess_speaker_folder(folder: Path, work_dir: Path, hparams: SynthesizerHParams, encoder: Path | None,
                              n_processes: int = 1, show_progress: bool = True) -> int:
    """Mels, audio, ``train.txt`` and embeddings of ``folder`` in ``work_dir``, reusing finished work.

    Returns
    -------
    int
        The number of utterances in ``train.txt``.

    Raises
    ------
    TrainingError
        The folder is not one speaker's transcribed recordings, nothing usable is left after
        preprocessing, or the encoder cannot be found.
    """
    from encoder.audio import webrtcvad_available
    from synthesizer.metadata import MetadataError, read_train_txt
    from synthesizer.preprocess import preprocess_audio, preprocess_embeddings, resolve_encoder_path
    from utils.corpora import Corpus, CorpusError, collect_utterances, detect_layout

    if not folder.is_dir():
        raise TrainingError(f"The recordings folder '{folder}' does not exist or is not a folder.")
    layout = detect_layout(folder)
    if layout is None or layout[0] not in SPEAKER_LAYOUTS:
        found = f" (it looks like {layout[0]})" if layout else ""
        raise TrainingError(f"The folder '{folder}' is neither LJSpeech format (metadata.csv + wavs/) nor audio "
                            f"files with a .txt transcript of the same name{found}.")
    if hparams.trim_silence and not webrtcvad_available():
        raise TrainingError("webrtcvad is not installed (pip install webrtcvad-wheels); install it or pass "
                            "--hparams trim_silence=false.")
    try:
        encoder_path = resolve_encoder_path(encoder)
    except FileNotFoundError as error:
        raise TrainingError(str(error)) from None
    try:
        utterances = collect_utterances([Corpus(folder.name, layout[1], layout[0])], with_text=True)
        if not utterances:
            raise TrainingError(f"The folder '{folder}' holds no transcribed recording.")
        print(f"Preprocessing {len(utterances)} recording(s) of '{folder}' into '{work_dir}'.", flush=True)
        report = preprocess_audio(utterances, work_dir, hparams, skip_existing=True, n_processes=n_processes,
                                  show_progress=show_progress)
        entries = read_train_txt(work_dir / "train.txt")
        if not entries:
            reasons = ", ".join(f"{count} {reason}" for reason, count in report.dropped.items()) or "none"
            raise TrainingError(f"No recording of '{folder}' is usable for training (dropped: {reasons}); "
                                f"utterances must last {hparams.utterance_min_duration:g} s to "
                                f"{hparams.max_mel_frames * hparams.hop_size / hparams.sample_rate:g} s.")
        computed, kept, failures = preprocess_embeddings(entries, work_dir, encoder_path,
                                                         sample_rate=hparams.sample_rate, skip_existing=True,
                                                         n_processes=n_processes, show_progress=show_progress)
    except (CorpusError, MetadataError) as error:
        raise TrainingError(str(error)) from None
    except OSError as error:
        raise TrainingError(f"Cannot write into '{work_dir}' ({error.strerror or error}).") from None
    if failures:
        raise TrainingError(f"{len(failures)} embedding(s) could not be computed (first: {failures[0][0]}: "
                            f"{failures[0][1]}).")
    print(f"{len(entries)} utterance(s) ready ({len(report.new_entries)} new, {computed} embedding(s) computed, "
          f"{kept} kept).", flush=True)
    return len(entries)


def finetune(
    folder: str | Path,
    steps: int,
    *,
    checkpoint: str | Path = DEFAULT_CHECKPOINT,
    out_dir: str | Path | None = None,
    run_id: str | None = None,
    work_dir: str | Path | None = None,
    encoder: str | Path | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    hparam_overrides: dict[str, Any] | None = None,
    n_processes: int = 1,
    **options: Any,
) -> Tacotron:
    """Preprocess ``folder`` and fine-tune ``checkpoint`` on it for ``steps`` more steps.

    Parameters
    ----------
    folder
        One speaker's recordings: LJSpeech format or ``name.wav`` + ``name.txt`` pairs.
    steps
        Steps to train beyond the base checkpoint's step.
    checkpoint
        The synthesizer to start from (RTVC's or ours).
    out_dir
        Where ``synthesizer.pt`` goes (default ``saved_models/<run_id>``).
    run_id
        Name of the run (default: the folder's name); ignored when ``out_dir`` is given.
    work_dir
        Preprocessed data (default ``<out_dir>/data``).
    encoder
        Speaker encoder for the embeddings (default ``saved_models/default/encoder.pt``).
    learning_rate, batch_size
        Constant rate and batch size of the single schedule session.
    hparam_overrides
        Other hyperparameters (architecture sizes must match the checkpoint).
    n_processes
        Preprocessing worker processes.
    **options
        Further :class:`~utils.training.TrainingOptions` fields (``save_every``, ``seed``, ``cpu``, ...).

    Returns
    -------
    Tacotron
        The fine-tuned model.
    """
    from synthesizer.train import train

    folder, checkpoint = Path(folder), Path(checkpoint)
    if steps < 1:
        raise TrainingError(f"--steps must be at least 1, not {steps}.")
    if not learning_rate > 0:
        raise TrainingError(f"--lr must be positive, not {learning_rate}.")
    if batch_size < 1:
        raise TrainingError(f"--batch_size must be at least 1, not {batch_size}.")
    if out_dir is None:
        out_dir = Path("saved_models") / (run_id or folder.resolve().name)
    out_dir = Path(out_dir)
    check_run_folder(out_dir.name, out_dir.parent)  # before minutes of preprocessing, not after
    work_dir = Path(work_dir) if work_dir is not None else out_dir / "data"

    if not folder.is_dir():
        raise TrainingError(f"The recordings folder '{folder}' does not exist or is not a folder.")
    if checkpoint == DEFAULT_CHECKPOINT and not checkpoint.exists():
        raise TrainingError(f"No synthesizer at {DEFAULT_CHECKPOINT}: download RTVC's with "
                            "'python -m utils.default_models synthesizer', or pass -s CHECKPOINT.")
    hparams, base_step, r = base_checkpoint_facts(checkpoint)
    overrides = dict(hparam_overrides or {})
    if overrides:
        try:
            hparams = hparams.replace(**overrides)
        except (ValueError, TypeError) as error:
            raise TrainingError(f"Invalid hyperparameters: {error}.") from None
    final_step = base_step + steps
    overrides["tts_schedule"] = [[r, learning_rate, final_step, batch_size]]

    # Under torchrun, rank 0 preprocesses while the others wait (train() joins the same group).
    context = init_distributed(use_cuda=not options.get("cpu", False))
    if context.is_main:
        print(f"Fine-tuning '{checkpoint}' (step {base_step}, r={r}) on '{folder}' up to step {final_step}, "
              f"lr {learning_rate:g}, batch {batch_size}.", flush=True)
        preprocess_speaker_folder(folder, work_dir, hparams, Path(encoder) if encoder else None, n_processes,
                                  show_progress=options.get("progress", True))
    barrier(context)
    training_options = TrainingOptions(run_id=out_dir.name, models_dir=out_dir.parent, hparam_overrides=overrides,
                                       init_from=checkpoint, **options)
    return train(training_options, work_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synthesizer.finetune",
        description="Fine-tune a synthesizer on one speaker's recordings (LJSpeech format or name.wav + name.txt "
                    "pairs): preprocess, embed and train in one command. Run it again to resume.",
    )
    parser.add_argument("folder", type=Path, help="The speaker's recordings with transcripts.")
    parser.add_argument("--steps", type=int, required=True, help="Training steps beyond the checkpoint's step.")
    parser.add_argument("-s", "--syn_model_fpath", type=Path, default=DEFAULT_CHECKPOINT,
                        help="Synthesizer to start from, RTVC's or ours (default: %(default)s).")
    parser.add_argument("-o", "--out_dir", type=Path, default=None,
                        help="Folder for synthesizer.pt, samples and logs (default: saved_models/<run_id>).")
    parser.add_argument("--run_id", default=None, help="Run name when -o is not given (default: the folder's name).")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="Folder for the preprocessed data (default: <out_dir>/data).")
    parser.add_argument("-e", "--enc_model_fpath", type=Path, default=None,
                        help="Speaker encoder for the embeddings (default: saved_models/default/encoder.pt, else the "
                             "copy in the resemblyzer package).")
    parser.add_argument("--lr", type=float, default=DEFAULT_LEARNING_RATE,
                        help="Constant learning rate (default: %(default)s, where RTVC's pretrained model left off).")
    parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE, help="Batch size (default: %(default)s).")
    parser.add_argument("--hparams", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="Other hyperparameter overrides with JSON values (sizes must match the checkpoint).")
    parser.add_argument("-n", "--n_processes", type=int, default=min(4, os.cpu_count() or 1),
                        help="Preprocessing worker processes (default: %(default)s).")
    parser.add_argument("--save_every", type=int, default=500,
                        help="Save every this many steps (default: %(default)s).")
    parser.add_argument("--sample_every", type=int, default=500,
                        help="Write sample plots/audio every this many steps; 0 = never (default: %(default)s).")
    add_runtime_arguments(parser)
    return parser


def finetune_from_args(argv: list[str] | None = None) -> Tacotron:
    """Parse the command line and fine-tune; returns the fine-tuned model."""
    args = build_parser().parse_args(argv)
    for name in ("save_every", "sample_every"):
        if getattr(args, name) < 0:
            raise TrainingError(f"--{name} cannot be negative.")
    if args.n_processes < 1:
        raise TrainingError(f"--n_processes must be at least 1, not {args.n_processes}.")
    return finetune(
        args.folder, args.steps, checkpoint=args.syn_model_fpath, out_dir=args.out_dir, run_id=args.run_id,
        work_dir=args.work_dir, encoder=args.enc_model_fpath, learning_rate=args.lr, batch_size=args.batch_size,
        hparam_overrides=parse_hparam_overrides(args.hparams), n_processes=args.n_processes,
        save_every=args.save_every, backup_every=0, sample_every=args.sample_every, **runtime_options(args),
    )


#: ``train_from_args`` under the name the distributed test harness expects.
train_from_args = finetune_from_args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: exit status 0, or 1 with one ``error:`` line."""
    return run_cli(finetune_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
