"""Training-loop plumbing shared by the trainers: options, hparams, resume, saving, logging.

Each model package's ``train.py`` holds only what is specific to its model (data, loss, schedule,
sample plots); everything else is here, once:

* :func:`options_from_args` / :class:`TrainingOptions`: the flags every trainer takes
  (:func:`utils.arguments.training_parser`).
* :func:`resolve_hparams`: defaults ← stored checkpoint ← ``--config`` JSON ← ``--hparams`` overrides.
  Overrides are ``key=value`` with JSON values, so lists such as ``tts_schedule`` pass (RTVC split
  on commas and could not, quirk 28).
* :class:`TrainingSession`: run folder, resume with the same step count, atomic saves and periodic
  backups, ``--max_steps``, SIGINT/SIGTERM → save and stop, mixed precision on CUDA, TensorBoard and
  a tqdm bar on rank 0, and all of it correct under ``torchrun``.

How a run ends, the same for the five trainers, which all run inside :func:`training_session`
(:meth:`TrainingSession.close`):

* a clean end (``--max_steps``, the end of the schedule, Ctrl-C/SIGTERM, which stop after the step in
  progress) saves the checkpoint;
* an exception (a bug, a full disk, unreadable data, a diverged run) saves it only if steps were
  completed since the last save, the last step finished (the error did not come between the weight
  update and the step count) and every weight and buffer is finite. Otherwise the file on disk, the
  last periodic save, is left as it was, and a line on rank 0 says which case it was. That save is
  made by rank 0 alone, with no collective, as the other ranks may be stuck or gone.

Examples
--------
>>> parse_hparam_overrides(["speakers_per_batch=4", "tts_schedule=[[2, 1e-3, 10, 4]]", "name=abc"])
{'speakers_per_batch': 4, 'tts_schedule': [[2, 0.001, 10, 4]], 'name': 'abc'}
>>> parse_hparam_overrides(["hidden_size=64,num_layers=2"])  # RTVC's comma-separated form also works
{'hidden_size': 64, 'num_layers': 2}
"""

from __future__ import annotations

import _thread
import argparse
import ast
import contextlib
import dataclasses
import errno
import json
import math
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from utils.checkpoints import (
    CheckpointError,
    check_state_dict,
    extract_state_dict,
    load_checkpoint_file,
    make_payload,
    save_checkpoint,
    write_failure_message,
)
from utils.distributed import (
    DistributedContext,
    any_rank,
    barrier,
    broadcast_object,
    init_distributed,
    shutdown_distributed,
    unwrap_model,
)
from utils.arguments import MAX_SEED
from utils.default_models import DEFAULT_SUBDIR, SHIPPED_MODELS_DIR
from utils.errors import UserError, os_reason
from utils.hparams import HParams, HParamsError

H = TypeVar("H", bound=HParams)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX), as ``--cpu_bf16`` needs."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TrainingError(UserError, RuntimeError):
    """A problem the user can fix (bad option, unusable data or checkpoint): one sentence."""


class DivergedError(TrainingError):
    """The weights became NaN or infinite: nothing is saved over the last good checkpoint."""


# ----------------------------------------------------------------------------------------------
# Options


@dataclass
class TrainingOptions:
    """Run settings common to all trainers (model sizes and schedules live in the hparams)."""

    run_id: str
    models_dir: Path = Path("saved_models")
    config: Path | None = None
    hparam_overrides: dict[str, Any] = field(default_factory=dict)
    save_every: int = 1000
    backup_every: int = 25_000
    max_steps: int | None = None
    log_every: int = 10
    sample_every: int = 500
    force_restart: bool = False
    init_from: Path | None = None
    cpu: bool = False
    amp: bool = True
    cpu_bf16: bool = False
    seed: int | None = None
    num_workers: int = 2
    tensorboard: bool = True
    progress: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.models_dir) / self.run_id


def options_from_args(args: argparse.Namespace) -> TrainingOptions:
    """Run settings from the flags of :func:`utils.arguments.training_parser`, checked before any data is read."""
    for name in ("save_every", "backup_every", "log_every", "sample_every"):
        if getattr(args, name) < 0:
            raise TrainingError(f"--{name} cannot be negative.")
    if args.max_steps is not None and args.max_steps < 1:
        raise TrainingError("--max_steps must be at least 1.")
    check_run_folder(args.run_id, args.models_dir)
    return TrainingOptions(
        run_id=args.run_id,
        models_dir=args.models_dir,
        config=args.config,
        hparam_overrides=parse_hparam_overrides(args.hparams),
        save_every=args.save_every,
        backup_every=args.backup_every,
        max_steps=args.max_steps,
        log_every=max(1, args.log_every),
        sample_every=args.sample_every,
        force_restart=args.force_restart,
        init_from=args.init_from,
        **runtime_options(args),
    )


def runtime_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainingOptions` fields set by :func:`utils.arguments.add_runtime_arguments`."""
    if args.num_workers < 0:
        raise TrainingError("--num_workers cannot be negative.")
    return dict(cpu=args.cpu, amp=not args.no_amp, cpu_bf16=args.cpu_bf16, seed=args.seed,
                num_workers=args.num_workers, tensorboard=not args.no_tensorboard, progress=not args.quiet)


# ----------------------------------------------------------------------------------------------
# Run folders


#: Folders of ``--models_dir`` that hold models a run must never overwrite: RTVC's downloaded files
#: (``default/``) and this project's committed ones (``shipped/``).
RESERVED_RUN_NAMES = (DEFAULT_SUBDIR, SHIPPED_MODELS_DIR.name)


def check_run_folder(run_id: str, models_dir: str | Path) -> Path:
    """The run folder ``<models_dir>/<run_id>``, once ``run_id`` is known to be a plain, free name.

    A run name with a separator or ``..`` wrote outside ``--models_dir``, and the name ``shipped``
    resumed and overwrote the committed model with a training checkpoint. A run folder that is a
    link elsewhere, or to a reserved folder, is refused too.

    Raises
    ------
    TrainingError
        One line naming the problem.

    Examples
    --------
    >>> check_run_folder("my_run", "saved_models").as_posix()
    'saved_models/my_run'
    >>> check_run_folder("../x", "saved_models")
    Traceback (most recent call last):
      ...
    utils.training.TrainingError: The run name '../x' must be a plain folder name inside --models_dir (no '/', '\\', '..' or drive).
    """  # noqa: E501 (a doctest's expected output is one line)
    name = str(run_id)
    plain = (name.strip() not in ("", ".", "..") and "\0" not in name
             and not any(separator in name for separator in ("/", "\\", ":")))
    if not plain:
        raise TrainingError(f"The run name {name!r} must be a plain folder name inside --models_dir "
                            "(no '/', '\\', '..' or drive).")
    run_dir = Path(models_dir) / name
    resolved = run_dir.resolve()
    reserved = {item.lower() for item in RESERVED_RUN_NAMES}
    if name.strip().rstrip(".").lower() in reserved or resolved.name.lower() in reserved:
        raise TrainingError(f"The run name {name!r} is reserved for the downloaded and shipped models "
                            f"({', '.join(RESERVED_RUN_NAMES)}); choose another name.")
    if resolved.parent != Path(models_dir).resolve() or resolved == SHIPPED_MODELS_DIR.resolve():
        raise TrainingError(f"The run folder '{run_dir}' leads outside --models_dir (to '{resolved}'); "
                            "choose another name.")
    return run_dir


# ----------------------------------------------------------------------------------------------
# Hyperparameters


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes (RTVC's ``"a=1,b=2"`` and list/tuple values both work)."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_hparam_overrides(items: list[str] | str | None) -> dict[str, Any]:
    """Parse ``key=value`` overrides; values are JSON (numbers, lists, booleans) or else plain strings."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    overrides: dict[str, Any] = {}
    for item in items:
        for part in split_top_level(item):
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise TrainingError(f"Hyperparameter override '{part}' is not of the form key=value.")
            overrides[key] = _parse_override_value(raw.strip())
    return overrides


def _parse_override_value(raw: str) -> Any:
    """JSON first (``[[2, 1e-3, 10, 4]]``, ``true``), then Python literals (``((2, 1e-3, 10, 4),)``,
    ``False``), else the bare word itself (a cleaner name, ``RAW``)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    return {"true": True, "false": False}.get(raw.lower(), raw)


def _coerce_to_field_type(name: str, value: Any, default: Any) -> Any:
    """Check an override against the type of the field's default; widen where that is lossless.

    ``1`` for a float field becomes ``1.0``, a bare word for a tuple-of-strings field becomes a
    one-element tuple (``tts_cleaner_names=basic_cleaners``), ``yes``/``no``/``1``/``0`` are booleans.
    """
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if str(value).lower() in words:
            return words[str(value).lower()]
        raise TrainingError(f"Invalid hyperparameters: {name} expects true or false, not {value!r}.")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple) and isinstance(value, str):
        return (value,)
    if isinstance(default, tuple) and isinstance(value, list):
        return value  # from_dict turns nested lists into tuples
    if default is not None and not isinstance(value, type(default)) or (
        isinstance(default, int) and isinstance(value, bool)
    ):
        raise TrainingError(f"Invalid hyperparameters: {name} expects {type(default).__name__}, not {value!r}.")
    return value


def resolve_hparams(
    hparams_cls: type[H],
    stored: Mapping[str, Any] | None = None,
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> H:
    """Hyperparameters of a run: defaults ← stored (resumed checkpoint) ← config file ← overrides.

    Examples
    --------
    >>> from encoder.hparams import EncoderHParams
    >>> resolve_hparams(EncoderHParams, stored={"hidden_size": 64}, overrides={"num_layers": 2}).hidden_size
    64
    """
    values: dict[str, Any] = dict(stored or {})
    if config is not None:
        try:
            loaded = json.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as error:
            raise TrainingError(f"Cannot read the config file '{config}': {error.strerror or error}.") from None
        except json.JSONDecodeError as error:
            raise TrainingError(f"The config file '{config}' is not valid JSON "
                                f"({error.msg}, line {error.lineno}).") from None
        if not isinstance(loaded, dict):
            raise TrainingError(f"The config file '{config}' must hold a JSON object of hyperparameters.")
        values.update(loaded)
    defaults = {field.name: field.default for field in dataclasses.fields(hparams_cls)}
    for name, value in (overrides or {}).items():
        values[name] = _coerce_to_field_type(name, value, defaults[name]) if name in defaults else value
    try:
        return hparams_cls.from_dict(values)
    except (HParamsError, TypeError, ValueError) as error:
        raise TrainingError(f"Invalid hyperparameters: {error}.") from None


# ----------------------------------------------------------------------------------------------
# Reproducibility and data


def seed_everything(seed: int | None, context: DistributedContext) -> None:
    """Seed Python, NumPy and torch; each rank gets its own stream so ranks draw different batches."""
    if seed is None:
        return
    seed = (seed + context.rank) % (MAX_SEED + 1)  # stays a valid 64-bit seed on every rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_window_fits_data(name: str, value: int, longest: int, unit: str = "samples",
                           sample_rate: int | None = None) -> None:
    """Refuse a training window longer than the longest utterance of the data, before any step.

    Utterances shorter than a window are padded to it, so an absurd window (``voc_seq_len=1000000``,
    62 s) made every item that long and grew to 21 GB before the first step, for no data at all.

    Raises
    ------
    TrainingError
        Naming the hyperparameter, its value and the longest utterance.

    Examples
    --------
    >>> check_window_fits_data("voc_seq_len", 1000, 48_000, sample_rate=16_000)
    >>> check_window_fits_data("voc_seq_len", 1_000_000, 48_000, sample_rate=16_000)
    Traceback (most recent call last):
      ...
    utils.training.TrainingError: voc_seq_len=1000000 samples (62.5 s) is longer than the longest utterance of the training data (48000 samples, 3 s); use at most 48000.
    """  # noqa: E501 (a doctest's expected output is one line)
    if value <= longest:
        return

    def seconds(count: int) -> str:
        return f", {count / sample_rate:.3g} s" if sample_rate else ""

    shown = f"{value} {unit}" + (f" ({value / sample_rate:.3g} s)" if sample_rate else "")
    raise TrainingError(f"{name}={shown} is longer than the longest utterance of the training data "
                        f"({longest} {unit}{seconds(longest)}); use at most {longest}.")


def check_batch_fits_data(name: str, batch_size: int, n_items: int, context: DistributedContext,
                          what: str = "utterances") -> None:
    """Refuse a batch larger than the data can fill (for loaders that drop incomplete batches).

    Such a run produced no batch at all and stopped only after loading everything; under torchrun
    every rank needs its own full batch.

    Examples
    --------
    >>> check_batch_fits_data("batch_size", 16, 20, DistributedContext())
    >>> check_batch_fits_data("batch_size", 16, 20, DistributedContext(world_size=2))
    Traceback (most recent call last):
      ...
    utils.training.TrainingError: batch_size=16 needs 32 usable utterances (16 per rank x 2 ranks) but the training data has 20; lower batch_size to at most 10.
    """  # noqa: E501 (a doctest's expected output is one line)
    needed = batch_size * context.world_size
    if needed <= n_items:
        return
    per_rank = f" ({batch_size} per rank x {context.world_size} ranks)" if context.world_size > 1 else ""
    most = n_items // context.world_size
    advice = f"lower {name} to at most {most}" if most >= 1 else "add data"
    raise TrainingError(f"{name}={batch_size} needs {needed} usable {what}{per_rank} but the training data has "
                        f"{n_items}; {advice}.")


def worker_init_fn(worker_id: int) -> None:
    """Give every DataLoader worker its own NumPy/random stream (torch already does that for itself),
    and leave stop signals to the trainer.

    Ctrl-C, ``timeout``, ``kill -- -PGID`` and service managers signal the whole process group: a
    worker killed by them made the trainer fail with a traceback ("DataLoader worker ... is killed by
    signal") instead of saving and stopping. The trainer shuts its workers down itself (and they exit
    on their own when it dies).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def epochs_of_batches(make_loader: Callable[[int], Any], start_epoch: int = 0) -> Iterator[tuple[int, Any]]:
    """Endless ``(epoch, batch)`` stream; ``make_loader(epoch)`` builds (or re-seeds) each epoch's loader."""
    epoch = start_epoch
    while True:
        produced = False
        for batch in make_loader(epoch):
            produced = True
            yield epoch, batch
        if not produced:
            raise TrainingError("The training data produced no batch (is the dataset smaller than one batch?).")
        epoch += 1


# ----------------------------------------------------------------------------------------------
# Logging


class TrainingLogger:
    """TensorBoard scalars/images/audio on rank 0; silently nothing elsewhere or when disabled.

    A failure to write the logs (a full disk, a folder removed under the run) is reported once, as a
    :class:`TrainingError` naming the folder and the cause, raised from the call that found it; the
    writer is then dropped, so the trainer ends through its normal error path (which saves the last
    finished step when that is safe). TensorBoard writes from a background thread: that thread's own
    traceback is silenced (see :func:`_silence_writer_thread_errors`), as its error is re-raised on
    the next call and reported here, in one line, instead of interleaved with the main thread's.
    """

    def __init__(self, log_dir: Path | None) -> None:
        self.writer = None
        self.log_dir = log_dir
        self.failed = False
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is in requirements.txt, but a run must not die without it
            warnings.warn("TensorBoard is not installed (pip install tensorboard); training continues without logs.",
                          stacklevel=2)
            return
        _silence_writer_thread_errors()
        try:
            # The writer creates its event file and writes the first record at once: a full disk at
            # the start of a run shows up here.
            self.writer = SummaryWriter(log_dir=str(log_dir))
        except Exception as error:  # noqa: BLE001 - OSError, or whatever the writer wrapped it in
            self.failed = True
            raise TrainingError(self._failure_message(error)) from None

    def _failure_message(self, error: BaseException) -> str:
        return (f"Cannot write the TensorBoard logs in '{self.log_dir}' ({os_reason(error)}); training "
                "stopped (--no_tensorboard trains without these logs).")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.writer is None:
            return
        try:
            getattr(self.writer, method)(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - see the class docstring
            self._abandon()
            raise TrainingError(self._failure_message(error)) from None

    def _abandon(self) -> None:
        """Drop a writer that failed; closing it would only raise the same error again."""
        writer, self.writer, self.failed = self.writer, None, True
        with contextlib.suppress(Exception):
            writer.close()

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            self._call("add_scalar", name, value, step)

    def figure(self, tag: str, figure: Any, step: int) -> None:
        if self.writer is not None:
            self._call("add_figure", tag, figure, step, close=True)
        else:
            import matplotlib.pyplot as plt

            plt.close(figure)

    def audio(self, tag: str, wav: np.ndarray, sample_rate: int, step: int) -> None:
        if self.writer is not None:
            clipped = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
            self._call("add_audio", tag, torch.from_numpy(clipped)[None], step, sample_rate=sample_rate)

    def text(self, tag: str, text: str, step: int) -> None:
        self._call("add_text", tag, text, step)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        """Flush and close; a failure here is reported like any other (once)."""
        if self.writer is not None:
            try:
                self._call("close")
            finally:
                self.writer = None


def _silence_writer_thread_errors() -> None:
    """Keep TensorBoard's writer thread from printing its own traceback when a write fails.

    The thread stores the exception, and the writer raises it again on the main thread at the next
    call, where :class:`TrainingLogger` reports it in one line. Without this, a full disk printed
    the same error twice, from two threads, interleaved. Installed once; other threads' errors are
    passed to the previous hook unchanged.
    """
    global _WRITER_HOOK_INSTALLED
    if _WRITER_HOOK_INSTALLED:
        return
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, Exception):
            return
        previous(args)

    threading.excepthook = hook
    _WRITER_HOOK_INSTALLED = True


_WRITER_HOOK_INSTALLED = False


class StepRate:
    """Steps per second over the last ``window`` steps."""

    def __init__(self, window: int = 50) -> None:
        self.times: deque[float] = deque(maxlen=window + 1)

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    @property
    def steps_per_second(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


# ----------------------------------------------------------------------------------------------
# Session


class StopNow(KeyboardInterrupt):
    """A stop signal whose step did not end within :attr:`StopRequested.grace_seconds` (or a second signal).

    Raised in the main thread wherever the step was; the trainer's error path then saves the last
    finished step if that is safe (:meth:`TrainingSession.close`). :func:`run_cli` treats it as the
    requested stop it is: exit status 0.
    """


class StopRequested:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so a stopped run saves before it exits.

    The step in progress may finish if it does so within ``grace_seconds``; past that (a long step:
    big batches, a slow data loader, an RTVC-size model on a CPU) :class:`StopNow` is raised in the
    main thread, so that a stop is honoured within about a second whatever the step length. A second
    signal stops at once. Neither happens while a checkpoint is being written (:meth:`deferring`):
    the step boundary that follows ends the run normally.
    """

    grace_seconds = 1.0

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None
        self._expired = False
        self._deferred = 0

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.requested:
            self.requested = True
            self._timer = threading.Timer(self.grace_seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()
            return
        # A second signal, or the grace period's end delivered as one (see _expire).
        if self._deferred == 0 and self._previous:
            self.step_ended()
            raise StopNow(f"stopped by {signal.Signals(signum).name} in the middle of a step")

    def _expire(self) -> None:
        # Runs in the timer thread; the exception must come from the main thread, so it is delivered
        # as a simulated SIGINT, which calls _handle there (our handler is installed).
        self._expired = True
        if self.requested and self._previous:
            with contextlib.suppress(Exception):
                _thread.interrupt_main(signal.SIGINT)

    def step_ended(self) -> None:
        """The step boundary was reached: the flag alone stops the run, no exception is needed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """No :class:`StopNow` inside this block (a checkpoint write); the flag is still set."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread): keep defaults
                pass

    def uninstall(self) -> None:
        self.step_ended()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class RunLock:
    """``<run>/.lock``: one trainer per run folder, with the owner's PID inside.

    Two trainers on one run used to delete each other's temporary checkpoints and overwrite each
    other's saves (the step went backwards). The lock is an exclusive ``flock`` on the file, which
    the kernel drops when its process dies however it dies, so a lock left by a killed trainer is
    stale by construction and simply taken over (with a note naming the dead PID). Where ``flock``
    is unavailable (Windows, some network file systems) the PID in the file is checked instead.

    Examples
    --------
    >>> import tempfile
    >>> lock = RunLock(Path(tempfile.mkdtemp()), "demo")
    >>> lock.acquire()
    >>> int(lock.path.read_text().split()[0]) == os.getpid()
    True
    >>> lock.release(); lock.path.exists()
    False
    """

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.path = Path(run_dir) / ".lock"
        self.run_id = run_id
        self._fd: int | None = None

    def _refuse(self, owner: str) -> TrainingError:
        return TrainingError(f"run {self.run_id} is already being trained by PID {owner or '(unknown)'}.")

    def acquire(self) -> None:
        """Take the lock or raise :class:`TrainingError` ("run X is already being trained by PID n")."""
        try:
            import fcntl
        except ImportError:
            fcntl = None
        key = str(self.path.resolve())
        leaked = _HELD_LOCKS.get(key)
        if leaked is not None and leaked is not self:
            # A session of this very process that was never closed (e.g. an exception escaped a
            # script's loop) still holds it; this process is the one trainer, so it takes it back.
            leaked.release()
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as error:
                raise TrainingError(f"Cannot create the lock file '{self.path}': {error.strerror or error}.") from None
            previous = _read_owner(fd)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as error:
                    os.close(fd)
                    if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise self._refuse(self._current_owner() or previous) from None
                    fcntl = None  # ENOLCK, EOPNOTSUPP...: no locking here, fall back to the PID
                    continue
                # The previous owner may have removed the file between our open and our flock: then
                # we hold a lock on a deleted file. Start again on the current one.
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            elif previous and previous != str(os.getpid()) and _pid_alive(previous):
                os.close(fd)
                raise self._refuse(previous)
            self._fd = fd
            _HELD_LOCKS[key] = self
            if previous and previous != str(os.getpid()):
                print(f"Taking over the lock of run {self.run_id} left by PID {previous}, which is no longer "
                      "running.", flush=True)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            except OSError:
                pass  # a full disk: the flock is the lock, the PID only names the owner in messages
            return
        raise TrainingError(f"Cannot take the lock file '{self.path}': it keeps changing.")

    def _current_owner(self) -> str:
        # The holder writes its PID just after taking the lock: give it a moment if it is that new.
        for _ in range(5):
            try:
                words = self.path.read_text(encoding="utf-8", errors="replace").split()
            except OSError:
                words = []
            if words and words[0].isdigit():
                return words[0]
            time.sleep(0.05)
        return ""

    def release(self) -> None:
        """Remove the lock file (while still holding it, so nobody takes a file about to vanish)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        for key, holder in list(_HELD_LOCKS.items()):
            if holder is self:
                del _HELD_LOCKS[key]
        try:
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:  # still our file, not a successor's
                self.path.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


#: The run locks this process holds, by lock file path.
_HELD_LOCKS: dict[str, RunLock] = {}


def _read_owner(fd: int) -> str:
    """The PID written in a lock file ("" when empty or unreadable)."""
    try:
        words = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        return ""
    return words[0] if words and words[0].isdigit() else ""


def _pid_alive(pid: str) -> bool:
    """Whether a process with this PID exists on this machine (the fallback without ``flock``)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, int(pid))  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but belongs to someone else / unparsable: do not take the lock over
    except OSError:
        return True
    return True


class TrainingSession:
    """One training run's mechanics, shared by the trainers.

    Typical use, through :func:`training_session` (``encoder/train.py`` is the shortest complete example)::

        with training_session("encoder", options) as session:
            checkpoint = session.checkpoint_to_resume()
            hparams = session.resolve_hparams(EncoderHParams, checkpoint)
            model = build_speaker_encoder(hparams).to(session.context.device)
            optimizer = torch.optim.Adam(model.parameters(), lr=hparams.learning_rate_init)
            session.attach(model, optimizer, hparams, checkpoint)
            while not session.finished:
                with session.autocast():
                    loss = ...
                session.backward(loss)
                session.unscale_gradients()          # before clipping
                session.optimizer_step()
                session.end_step({"loss": loss.item()})

    Parameters
    ----------
    model_type
        "encoder", "synthesizer" or "vocoder": the checkpoint name (``<run>/<model_type>.pt``) and the
        ``model_type`` stored in it.
    options
        The run settings.
    context
        From :func:`utils.distributed.init_distributed`.
    """

    def __init__(self, model_type: str, options: TrainingOptions, context: DistributedContext) -> None:
        self.model_type = model_type
        self.options = options
        self.context = context
        self.run_dir = check_run_folder(options.run_id, options.models_dir)
        self.step = 0
        self.epoch = 0
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.hparams: HParams | None = None
        self.set_model_step: Callable[[nn.Module, int], None] | None = None
        self.extra_state: Callable[[], dict[str, Any]] | None = None
        self.use_amp = options.amp and context.device.type == "cuda"
        self.use_cpu_bf16 = options.cpu_bf16 and context.device.type == "cpu"
        if self.use_cpu_bf16 and not torch.backends.mkldnn.is_available():
            raise TrainingError("--cpu_bf16 needs a PyTorch build with oneDNN (mkldnn)")
        if self.use_cpu_bf16 and not cpu_has_native_bf16():
            # Emulated bfloat16 is many times slower than float32, and oneDNN has no bf16 LSTM for it.
            raise TrainingError(f"--cpu_bf16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this one has "
                                f"{torch.backends.cpu.get_cpu_capability()} only, so train without it (float32 is "
                                "faster here).")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.rate = StepRate()
        self.stop = StopRequested()
        self.stop_reason = ""
        self._start_step = 0
        self._running_losses: dict[str, list[float]] = {}
        self._bar = None
        self.lock: RunLock | None = None
        # Rank 0 alone makes the folder and holds the run's lock (the other ranks are its helpers, not
        # rival trainers); its verdict is shared so that every rank stops with the same line.
        problem = None
        if context.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                lock = RunLock(self.run_dir, options.run_id)
                lock.acquire()
                self.lock = lock
            except OSError as error:
                problem = f"Cannot create the run folder '{self.run_dir}': {error.strerror or error}."
            except TrainingError as error:
                problem = str(error)
        problem = broadcast_object(problem, context)
        if problem:
            raise TrainingError(problem)
        try:
            self.logger = TrainingLogger(self.run_dir / "tensorboard" if options.tensorboard and context.is_main
                                         else None)
        except BaseException:
            self._release_lock()
            raise

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        """End the run as :meth:`close` says: a clean end saves, an exception saves only a safe state."""
        self.close(error=error)

    # -- paths ------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / f"{self.model_type}.pt"

    def backup_path(self, step: int) -> Path:
        return self.run_dir / f"{self.model_type}_{step:06d}.pt"

    @property
    def samples_dir(self) -> Path:
        return self.run_dir / "samples"

    # -- resume -----------------------------------------------------------------------------------

    def checkpoint_to_resume(self) -> dict | None:
        """The run's own checkpoint (resume), else ``--init_from`` (fine-tune), else None (fresh start).

        A run's checkpoint carries ``"resume": True`` in the returned dict; an ``--init_from`` one
        ``False``, so :meth:`attach` restores the optimizer and step only when resuming.
        """
        if self.checkpoint_path.exists() and not self.options.force_restart:
            checkpoint = self._load_own_type(self.checkpoint_path)
            checkpoint["resume"] = True
            return checkpoint
        if self.options.init_from is not None:
            checkpoint = self._load_own_type(self.options.init_from)
            checkpoint["resume"] = False
            return checkpoint
        return None

    def _load_own_type(self, path: Path) -> dict:
        # Our files name their model: say "a synthesizer checkpoint" before its hparams confuse resolve_hparams.
        checkpoint = dict(load_checkpoint_file(path, self.model_type, map_location="cpu"))
        stored = checkpoint.get("model_type")
        if isinstance(stored, str) and stored != self.model_type:
            def article(noun: str) -> str:
                return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"

            raise CheckpointError(f"The {self.model_type} checkpoint '{path}' is {article(stored)} checkpoint, "
                                  f"not {article(self.model_type)} checkpoint.")
        return checkpoint

    @staticmethod
    def stored_hparams(checkpoint: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The hyperparameters saved in our checkpoints (RTVC's have none: defaults apply)."""
        if checkpoint is None:
            return None
        stored = checkpoint.get("hparams")
        return dict(stored) if isinstance(stored, Mapping) else None

    def resolve_hparams(self, hparams_cls: type[H], checkpoint: Mapping[str, Any] | None) -> H:
        """The run's hyperparameters: defaults ← ``checkpoint``'s ← ``--config`` ← ``--hparams``."""
        return resolve_hparams(hparams_cls, self.stored_hparams(checkpoint), self.options.config,
                               self.options.hparam_overrides)

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, hparams: HParams,
               checkpoint: Mapping[str, Any] | None = None, *, model_step: Callable[[nn.Module], int] | None = None,
               set_model_step: Callable[[nn.Module, int], None] | None = None,
               extra_state: Callable[[], dict[str, Any]] | None = None) -> int:
        """Adopt the model and optimizer, restore them from ``checkpoint`` and return the step.

        Parameters
        ----------
        model
            The bare model (not DDP-wrapped), already on its device.
        hparams
            The run's hyperparameters (saved in every checkpoint and as ``hparams.json``).
        checkpoint
            From :meth:`checkpoint_to_resume`.
        model_step
            Reads the step from a restored model, for RTVC files that keep it in the model
            (Tacotron's ``step`` buffer, WaveRNN's ``step`` parameter) instead of a ``"step"`` key.
        set_model_step
            Writes the session's step into the model before each save, for the same reason.
        extra_state
            More entries for every checkpoint (e.g. the epoch).
        """
        if checkpoint is not None:
            path = self.checkpoint_path if checkpoint.get("resume") else self.options.init_from
            state = extract_state_dict(checkpoint, path, self.model_type)
            check_state_dict(state, model, path, self.model_type)
            model.load_state_dict(state)
            if checkpoint.get("resume"):
                if "optimizer_state" in checkpoint:
                    try:
                        optimizer.load_state_dict(checkpoint["optimizer_state"])
                    except (ValueError, KeyError) as error:
                        raise TrainingError(
                            f"The optimizer state in '{path}' does not fit this model ({error}); "
                            "use --force_restart to start over."
                        ) from None
                if "scaler_state" in checkpoint and self.use_amp:
                    self.scaler.load_state_dict(checkpoint["scaler_state"])
                self.epoch = int(checkpoint.get("epoch", 0))
            if "step" in checkpoint:
                self.step = int(checkpoint["step"])
            elif model_step is not None:
                self.step = int(model_step(model))
        # Adopted only once restored: after a failed restore, close() must not save over the checkpoint.
        self.model, self.optimizer, self.hparams = model, optimizer, hparams
        self.set_model_step, self.extra_state = set_model_step, extra_state
        # Every rank must agree on where it starts, whatever its file system showed it.
        self._resumed = bool(checkpoint is not None and checkpoint.get("resume"))
        self.step = int(broadcast_object(self.step, self.context))
        self._start_step = self.step
        if self.options.max_steps is not None and self.step >= self.options.max_steps:
            # A resumed run already at --max_steps must not train one more step before noticing.
            self.stop_reason = f"already at --max_steps {self.options.max_steps}"
        if self.context.is_main:
            self._remove_stale_temporaries()
            hparams.save_json(self.run_dir / "hparams.json")
        if self.step and self.context.is_main:
            source = "Resuming" if checkpoint is not None and checkpoint.get("resume") else "Fine-tuning from"
            print(f"{source} {self.model_type} at step {self.step}.", flush=True)
        self.stop.install()
        if self.context.is_main and self.options.progress:
            from tqdm import tqdm

            total = self.options.max_steps
            self._bar = tqdm(total=total, initial=self.step, desc=f"{self.model_type} {self.options.run_id}",
                             unit="step", dynamic_ncols=True)
        self.rate.tick()
        return self.step

    def _release_lock(self) -> None:
        if self.lock is not None:
            with contextlib.suppress(OSError):
                self.lock.release()
            self.lock = None

    def _remove_stale_temporaries(self) -> None:
        # A run killed while saving leaves its hidden temporary file (the real checkpoint is intact).
        for stale in self.run_dir.glob(f".{self.model_type}*.tmp"):
            stale.unlink(missing_ok=True)

    # -- the step ---------------------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision: float16 with loss scaling on CUDA unless ``--no_amp``; bfloat16 on the CPU with
        ``--cpu_bf16`` (same exponent range as float32, so no loss scaling); else a no-op."""
        if self.use_amp:
            return torch.autocast("cuda", dtype=torch.float16)
        if self.use_cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled when mixed precision is on."""
        self.scaler.scale(loss).backward()

    def unscale_gradients(self) -> None:
        """Bring gradients back to their true scale (call before clipping or inspecting them)."""
        assert self.optimizer is not None
        self.scaler.unscale_(self.optimizer)

    def optimizer_step(self) -> None:
        """Optimizer step (skipped by the scaler if gradients overflowed), then zero the gradients."""
        assert self.optimizer is not None
        # From here until end_step() counts it, the weights belong to no step number: not savable.
        self._step_open = True
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def set_learning_rate(self, lr: float) -> None:
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def learning_rate(self) -> float:
        assert self.optimizer is not None
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def finished(self) -> bool:
        """True once ``--max_steps`` is reached or a stop was requested (checked on every rank)."""
        return bool(self.stop_reason)

    def due(self, every: int) -> bool:
        """Whether periodic work (samples, UMAP) is due at the current step."""
        return every > 0 and self.step % every == 0

    def end_step(self, losses: Mapping[str, float] | None = None) -> None:
        """Count the step; log, save, back up and decide whether to stop.

        ``losses`` are this rank's values; logged values are averaged over the last ``log_every``
        steps (and over ranks when distributed).
        """
        self.step += 1
        self._step_open = False
        if self.set_model_step is not None and self.model is not None:
            self.set_model_step(unwrap_model(self.model), self.step)  # every rank's model knows its step
        if self.stop.requested:
            self.stop.step_ended()  # the boundary came within the grace period: a normal stop
        self.rate.tick()
        for name, value in (losses or {}).items():
            if not math.isfinite(float(value)):
                warnings.warn(f"{name} is {value} at step {self.step}.", stacklevel=2)
            self._running_losses.setdefault(name, []).append(float(value))
        if self.step % self.options.log_every == 0:
            self._log_running()
        if self.options.save_every and self.step % self.options.save_every == 0:
            self.save()
        if self.options.backup_every and self.step % self.options.backup_every == 0:
            self.save(backup=True)
        if self.options.max_steps is not None and self.step >= self.options.max_steps:
            self.stop_reason = f"reached --max_steps {self.options.max_steps}"
        if any_rank(self.stop.requested, self.context) and not self.stop_reason:
            self.stop_reason = "stop requested"
        if self._bar is not None:
            self._bar.update(1)

    def request_stop(self, reason: str) -> None:
        """End the run after this step (e.g. the last schedule session is done)."""
        self.stop_reason = self.stop_reason or reason

    def _log_running(self) -> None:
        from utils.distributed import all_reduce_mean

        means = {name: all_reduce_mean(float(np.mean(values)), self.context)
                 for name, values in sorted(self._running_losses.items())}
        self._running_losses.clear()
        scalars = {f"train/{name}": value for name, value in means.items()}
        scalars["train/learning_rate"] = self.learning_rate
        scalars["train/steps_per_second"] = self.rate.steps_per_second
        self.logger.scalars(scalars, self.step)
        if self._bar is not None:
            postfix = {name: f"{value:.4g}" for name, value in means.items()}
            postfix["lr"] = f"{self.learning_rate:.2g}"
            self._bar.set_postfix(postfix, refresh=False)
        elif self.context.is_main:
            shown = " | ".join(f"{name} {value:.4g}" for name, value in means.items())
            print(f"step {self.step} | {shown} | {self.rate.steps_per_second:.2f} steps/s", flush=True)

    # -- saving -----------------------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        """What a checkpoint holds: RTVC's keys, our hparams and type, the step, optimizer and scaler."""
        assert self.model is not None and self.hparams is not None
        model = unwrap_model(self.model)
        if self.set_model_step is not None:
            self.set_model_step(model, self.step)
        extra: dict[str, Any] = {"step": self.step, "epoch": self.epoch}
        if self.use_amp:
            extra["scaler_state"] = self.scaler.state_dict()
        if self.extra_state is not None:
            extra.update(self.extra_state())
        return make_payload(model, self.model_type, self.hparams, self.optimizer, **extra)

    def save(self, backup: bool = False, *, sync: bool = True) -> Path | None:
        """Atomically write the checkpoint (rank 0 only; with ``sync`` the others wait for it).

        Raises
        ------
        DivergedError
            Some weight is NaN or infinite: the file on disk (a good one) is left as it was. Every
            rank checks its own copy (they are identical), so all of them stop together.
        """
        if self.model is not None and not self.weights_are_finite():
            raise DivergedError(f"The {self.model_type}'s weights became NaN or infinite by step {self.step} (the "
                                f"training diverged: lower the learning rate or check the data); {self._kept()}.")
        path = self.backup_path(self.step) if backup else self.checkpoint_path
        if self.context.is_main:
            with self.stop.deferring():  # a stop signal never interrupts a write: it ends the run after it
                if backup and self.checkpoint_path.exists() and self._saved_step == self.step:
                    self._copy_checkpoint(path)
                else:
                    save_checkpoint(path, self.payload())
        if not backup:
            self._saved_step = self.step
        if sync:
            barrier(self.context)
        return path if self.context.is_main else None

    def _copy_checkpoint(self, path: Path) -> None:
        """The backup of a step just saved is a copy of the checkpoint, atomically, like a save."""
        temporary = path.with_name(f".{path.name}.copy.tmp")
        try:
            shutil.copyfile(self.checkpoint_path, temporary)
            temporary.replace(path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise CheckpointError(write_failure_message(path, error, "checkpoint backup")) from None

    _saved_step = -1
    _resumed = False
    _step_open = False

    def _kept(self) -> str:
        """What is on disk when the current state is not saved: the last save, or nothing."""
        if self._saved_step >= 0 or self._resumed:
            return f"{self.checkpoint_path} stays at step {max(self._saved_step, self._start_step)}"
        return "no checkpoint was written"

    def weights_are_finite(self) -> bool:
        """Whether every parameter and floating-point buffer of the model is finite (False without a model)."""
        if self.model is None:
            return False
        tensors = list(unwrap_model(self.model).parameters()) + list(unwrap_model(self.model).buffers())
        return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())

    def unsafe_to_save(self) -> str | None:
        """Why the current state must not be saved after an exception; None when it may be.

        Examples
        --------
        >>> session = TrainingSession("encoder", TrainingOptions("run", tensorboard=False), DistributedContext())
        >>> session.unsafe_to_save()
        'no model was attached'
        >>> session.close(save=False)  # ends the session and unlocks the run
        """
        if self.model is None:
            return "no model was attached"
        if self.step == self._start_step or self._saved_step == self.step:
            return "no step finished since the last save"
        if self._step_open:
            return f"the error came in the middle of step {self.step + 1}, after the weights were updated"
        if not self.weights_are_finite():
            return "some weights are NaN or infinite"
        return None

    def close(self, save: bool = True, *, error: BaseException | None = None) -> None:
        """End the run: save, flush and close the logs and the progress bar, restore signal handlers.

        Parameters
        ----------
        save
            On a clean end, write the final checkpoint (unless nothing was trained).
        error
            The exception that ends the run, if any. Then the checkpoint is written only when
            :meth:`unsafe_to_save` finds no reason against it, by rank 0 alone and without a
            collective; a save that fails then is reported and never hides ``error``.
        """
        if error is not None:
            self._close_after_error(error)
            return
        unsaved = self.step != self._start_step or not self._resumed
        try:
            if save and self.model is not None and unsaved and self._saved_step != self.step:
                self.save()
        finally:
            self.stop.uninstall()
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            try:
                self.logger.close()
            finally:
                self._release_lock()
        if save and self.context.is_main and self.model is not None:  # not after a failure: nothing was saved
            reason = f" ({self.stop_reason})" if self.stop_reason else ""
            verb = "Saved" if unsaved else "Nothing to train: the checkpoint stays"
            print(f"{verb} {self.checkpoint_path} at step {self.step}{reason}.", flush=True)

    def _close_after_error(self, error: BaseException) -> None:
        message = None
        after = "the stop signal" if isinstance(error, StopNow) else "the error"
        try:
            reason = self.unsafe_to_save()
            if reason is None:
                try:
                    self.save(sync=False)  # no barrier: the other ranks may be stuck or gone
                    message = (f"Saved {self.checkpoint_path} at step {self.step}, the last finished step, "
                               f"after {after}.")
                except Exception as save_error:  # noqa: BLE001 - the original error is the one to report
                    message = f"Could not save {self.checkpoint_path} after {after} ({save_error})."
            elif (self.model is not None and self.step != self._start_step and self._saved_step != self.step
                  and not isinstance(error, DivergedError)):  # (that error already says what was kept)
                # (Nothing is lost when no step finished since the last save: no line for that.)
                message = f"Not saving after {after}: {reason}; {self._kept()}."
        finally:
            self.stop.uninstall()
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            with contextlib.suppress(Exception):  # the error being handled is the one to report
                self.logger.close()
            self._release_lock()
        if message and self.context.is_main:
            print(message, flush=True)


@contextlib.contextmanager
def training_session(model_type: str, options: TrainingOptions) -> Iterator[TrainingSession]:
    """The one way every trainer runs: join the process group, open the run, end it, leave the group.

    The body resumes (:meth:`TrainingSession.checkpoint_to_resume`, :meth:`~TrainingSession.attach`)
    and trains; leaving the block ends the run as :meth:`TrainingSession.close` says, whether the
    body returned, raised or was stopped by a signal. DDP-wrapped models hold the process group: a
    body that returns normally deletes them before it ends. ``options.cpu`` keeps the run off CUDA.
    """
    context = init_distributed(use_cuda=not options.cpu)
    try:
        with TrainingSession(model_type, options, context) as session:
            yield session
    finally:
        shutdown_distributed(context)


def run_cli(main: Callable[..., Any], *args: Any) -> int:
    """Run a command's body with one-line errors instead of tracebacks.

    ``main(*args)`` may return an exit status; anything else it returns (a trained model) means 0.
    """
    try:
        result = main(*args)
    except (TrainingError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except StopNow:
        return 0  # a requested stop; close() has said what was saved
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr, flush=True)
        return 130
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
