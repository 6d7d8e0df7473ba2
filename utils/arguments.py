"""Command-line arguments shared by the CLIs (the trainers' common flags, ``--seed``); no torch, so ``--help`` is quick.

Examples
--------
>>> seed_argument("42")
42
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: Largest seed accepted: torch.manual_seed takes 64-bit seeds, and a larger one used to fail only after the
#: models (or the training data) were loaded.
MAX_SEED = 2**64 - 1


def seed_argument(text: str) -> int:
    """``argparse`` type for ``--seed``: an integer from 0 to :data:`MAX_SEED`, refused while parsing.

    Examples
    --------
    >>> seed_argument(str(2**64))
    Traceback (most recent call last):
      ...
    argparse.ArgumentTypeError: the seed must be an integer from 0 to 18446744073709551615, not 18446744073709551616
    """
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the seed must be an integer from 0 to {MAX_SEED}, not {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"the seed must be an integer from 0 to {MAX_SEED}, not {value}")
    return value


def training_parser(prog: str, description: str, *, init_from: str, save_every: int = 1000,
                    backup_every: int = 25_000, sample_every: int = 500,
                    num_workers: int = 2) -> argparse.ArgumentParser:
    """A trainer's parser with the flags every trainer takes; the trainer adds its data path and own flags.

    ``init_from`` names what ``--init_from`` accepts, e.g. ``"vocoder weights (RTVC's or ours)"``.
    :func:`utils.training.options_from_args` turns the parsed flags into run settings.

    Examples
    --------
    >>> parser = training_parser("train", "Train.", init_from="weights")
    >>> args = parser.parse_args(["run", "--hparams", "a=1", "--hparams", "b=2", "-s", "5", "--seed", "7"])
    >>> args.run_id, args.hparams, args.save_every, args.seed, args.init_from, args.no_tensorboard
    ('run', ['a=1', 'b=2'], 5, 7, None, False)
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run_id", help="Name of the run: checkpoints, logs and samples go to <models_dir>/<run_id>/.")
    group = parser.add_argument_group("run")
    group.add_argument("-m", "--models_dir", type=Path, default=Path("saved_models"),
                       help="Folder holding one sub-folder per run (default: %(default)s).")
    group.add_argument("--config", type=Path, default=None,
                       help="JSON file of hyperparameters (all or some fields; e.g. a run's hparams.json).")
    group.add_argument("--hparams", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                       help="Hyperparameter overrides with JSON values, e.g. speakers_per_batch=16 "
                            "'tts_schedule=[[2,1e-3,20000,12]]'. Applied after --config; repeating "
                            "--hparams adds to the list.")
    group.add_argument("--init_from", type=Path, default=None, metavar="CHECKPOINT",
                       help=f"Start a new run from these {init_from} instead of random ones; ignored when the "
                            "run already has a checkpoint.")
    group.add_argument("-s", "--save_every", type=int, default=save_every,
                       help="Save <run>/<model>.pt every this many steps; 0 saves only at the end "
                            "(default: %(default)s).")
    group.add_argument("-b", "--backup_every", type=int, default=backup_every,
                       help="Keep a copy <run>/<model>_<step>.pt every this many steps; 0 = never "
                            "(default: %(default)s).")
    group.add_argument("--max_steps", type=int, default=None,
                       help="Stop once the step count (including earlier runs of this run_id) reaches this.")
    group.add_argument("--log_every", type=int, default=10,
                       help="Log scalars every this many steps (default: %(default)s).")
    group.add_argument("--sample_every", type=int, default=sample_every,
                       help="Write sample plots/audio every this many steps; 0 = never (default: %(default)s).")
    group.add_argument("-f", "--force_restart", action="store_true",
                       help="Start from scratch even if the run already has a checkpoint (it is overwritten).")
    add_runtime_arguments(group, num_workers=num_workers)
    return parser


def add_runtime_arguments(group: argparse._ActionsContainer, *, num_workers: int = 2) -> None:
    """The flags of how a run executes (device, precision, seed, workers, logs), for trainers and fine-tuning."""
    group.add_argument("--cpu", action="store_true", help="Train on the CPU even if CUDA is available.")
    group.add_argument("--no_amp", action="store_true", help="Disable mixed precision on CUDA.")
    group.add_argument("--cpu_bf16", action="store_true",
                       help="On the CPU, run matrix products in bfloat16 (autocast; weights and optimizer stay "
                            "float32). For large models on CPUs with native bf16 (AVX512-BF16, AMX): an "
                            "RTVC-size synthesizer step ran 1.9 times faster on 2 AMD EPYC cores.")
    group.add_argument("--seed", type=seed_argument, default=None,
                       help=f"Seed for weights, data order and dropout (0 to {MAX_SEED}).")
    group.add_argument("--num_workers", type=int, default=num_workers,
                       help="DataLoader worker processes per rank (default: %(default)s).")
    group.add_argument("--no_tensorboard", action="store_true", help="Do not write TensorBoard logs.")
    group.add_argument("--quiet", action="store_true", help="No progress bar (log lines only).")
