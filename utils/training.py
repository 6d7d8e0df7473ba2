"""Training-loop plumbing shared by the three trainers: options, hparams, resume, saving, logging.

Each model package's ``train.py`` holds only what is specific to its model (data, loss, schedule,
sample plots); everything else is here, once:

* :func:`add_training_arguments` / :class:`TrainingOptions`: the flags every trainer takes.
* :func:`resolve_hparams`: defaults ← stored checkpoint ← ``--config`` JSON ← ``--hparams`` overrides.
  Overrides are ``key=value`` with JSON values, so lists such as ``tts_schedule`` pass (RTVC split
  on commas and could not, quirk 28).
* :class:`TrainingSession`: run folder, resume with the same step count, atomic saves and periodic
  backups, ``--max_steps``, SIGINT/SIGTERM → save and stop, mixed precision on CUDA, TensorBoard and
  a tqdm bar on rank 0, and all of it correct under ``torchrun``.

How a run ends, the same for the three trainers (:meth:`TrainingSession.close`):

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

import argparse
import ast
import contextlib
import dataclasses
import json
import math
import random
import shutil
import signal
import sys
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
)
from utils.distributed import (
    DistributedContext,
    any_rank,
    barrier,
    broadcast_object,
    unwrap_model,
)
from utils.hparams import HParams, HParamsError

H = TypeVar("H", bound=HParams)


class TrainingError(RuntimeError):
    """A problem the user can fix (bad option, unusable data or checkpoint): one sentence."""


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


def add_training_arguments(
    parser: argparse.ArgumentParser,
    *,
    save_every: int = 1000,
    backup_every: int = 25_000,
    sample_every: int = 500,
    num_workers: int = 2,
) -> None:
    """Add the flags shared by every trainer (``run_id`` first, then the trainer adds its data path)."""
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
    group.add_argument("-s", "--save_every", type=int, default=save_every,
                       help="Save <run>/<model>.pt every this many steps; 0 saves only at the end (default: %(default)s).")
    group.add_argument("-b", "--backup_every", type=int, default=backup_every,
                       help="Keep a copy <run>/<model>_<step>.pt every this many steps; 0 = never (default: %(default)s).")
    group.add_argument("--max_steps", type=int, default=None,
                       help="Stop once the step count (including earlier runs of this run_id) reaches this.")
    group.add_argument("--log_every", type=int, default=10, help="Log scalars every this many steps (default: %(default)s).")
    group.add_argument("--sample_every", type=int, default=sample_every,
                       help="Write sample plots/audio every this many steps; 0 = never (default: %(default)s).")
    group.add_argument("-f", "--force_restart", action="store_true",
                       help="Start from scratch even if the run already has a checkpoint (it is overwritten).")
    group.add_argument("--cpu", action="store_true", help="Train on the CPU even if CUDA is available.")
    group.add_argument("--no_amp", action="store_true", help="Disable mixed precision on CUDA.")
    group.add_argument("--cpu_bf16", action="store_true",
                       help="On the CPU, run matrix products in bfloat16 (autocast; weights and optimizer stay "
                            "float32). For large models on CPUs with native bf16 (AVX512-BF16, AMX): an "
                            "RTVC-size synthesizer step ran 1.9 times faster on 2 AMD EPYC cores.")
    group.add_argument("--seed", type=int, default=None, help="Seed for weights, data order and dropout.")
    group.add_argument("--num_workers", type=int, default=num_workers,
                       help="DataLoader worker processes per rank (default: %(default)s).")
    group.add_argument("--no_tensorboard", action="store_true", help="Do not write TensorBoard logs.")
    group.add_argument("--quiet", action="store_true", help="No progress bar (log lines only).")


def options_from_args(args: argparse.Namespace) -> TrainingOptions:
    """Build :class:`TrainingOptions` from the parsed flags of :func:`add_training_arguments`."""
    for name in ("save_every", "backup_every", "log_every", "sample_every", "num_workers"):
        if getattr(args, name) < 0:
            raise TrainingError(f"--{name} cannot be negative.")
    if args.max_steps is not None and args.max_steps < 1:
        raise TrainingError("--max_steps must be at least 1.")
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
        init_from=getattr(args, "init_from", None),
        cpu=args.cpu,
        amp=not args.no_amp,
        cpu_bf16=args.cpu_bf16,
        seed=args.seed,
        num_workers=args.num_workers,
        tensorboard=not args.no_tensorboard,
        progress=not args.quiet,
    )


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
            raise TrainingError(f"The config file '{config}' is not valid JSON ({error.msg}, line {error.lineno}).") from None
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
    seed = seed + context.rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Give every DataLoader worker its own NumPy/random stream (torch already does that for itself)."""
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
    """TensorBoard scalars/images/audio on rank 0; silently nothing elsewhere or when disabled."""

    def __init__(self, log_dir: Path | None) -> None:
        self.writer = None
        if log_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is in requirements.txt, but a run must not die without it
            warnings.warn("TensorBoard is not installed (pip install tensorboard); training continues without logs.",
                          stacklevel=2)
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def figure(self, tag: str, figure: Any, step: int) -> None:
        if self.writer is not None:
            self.writer.add_figure(tag, figure, step, close=True)
        else:
            import matplotlib.pyplot as plt

            plt.close(figure)

    def audio(self, tag: str, wav: np.ndarray, sample_rate: int, step: int) -> None:
        if self.writer is not None:
            clipped = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
            self.writer.add_audio(tag, torch.from_numpy(clipped)[None], step, sample_rate=sample_rate)

    def text(self, tag: str, text: str, step: int) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


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


class StopRequested:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so a stopped run saves before it exits."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread): keep defaults
                pass

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class TrainingSession:
    """One training run's mechanics, shared by the three trainers.

    Typical use (``encoder/train.py`` is the shortest complete example)::

        session = TrainingSession("encoder", options, context)
        checkpoint = session.checkpoint_to_resume()
        hparams = resolve_hparams(EncoderHParams, session.stored_hparams(checkpoint),
                                  options.config, options.hparam_overrides)
        model = build_speaker_encoder(hparams).to(context.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=hparams.learning_rate_init)
        session.attach(model, optimizer, hparams, checkpoint)
        while not session.finished:
            with session.autocast():
                loss = ...
            session.backward(loss)
            session.unscale_gradients()          # before clipping
            session.optimizer_step()
            session.end_step({"loss": loss.item()})
        session.close()

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
        self.run_dir = options.run_dir
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
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.rate = StepRate()
        self.stop = StopRequested()
        self.stop_reason = ""
        self._start_step = 0
        self._running_losses: dict[str, list[float]] = {}
        self._bar = None
        if context.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise TrainingError(f"Cannot create the run folder '{self.run_dir}': {error.strerror or error}.") from None
        barrier(context)
        self.logger = TrainingLogger(self.run_dir / "tensorboard" if options.tensorboard and context.is_main else None)

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

    def attach(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        hparams: HParams,
        checkpoint: Mapping[str, Any] | None = None,
        *,
        model_step: Callable[[nn.Module], int] | None = None,
        set_model_step: Callable[[nn.Module, int], None] | None = None,
        extra_state: Callable[[], dict[str, Any]] | None = None,
    ) -> int:
        """Adopt the model and optimizer, restore them from ``checkpoint`` and return the step.

        Parameters
        ----------
        model
            The bare model (not DDP-wrapped), already on its device.
        optimizer
            Its optimizer.
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
        """Atomically write the checkpoint (rank 0 only; with ``sync`` the others wait for it)."""
        path = self.backup_path(self.step) if backup else self.checkpoint_path
        if self.context.is_main:
            if backup and self.checkpoint_path.exists() and self._saved_step == self.step:
                temporary = path.with_name(f".{path.name}.copy.tmp")
                shutil.copyfile(self.checkpoint_path, temporary)
                temporary.replace(path)
            else:
                save_checkpoint(path, self.payload())
        if not backup:
            self._saved_step = self.step
        if sync:
            barrier(self.context)
        return path if self.context.is_main else None

    _saved_step = -1
    _resumed = False
    _step_open = False

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
            self.logger.close()
        if save and self.context.is_main and self.model is not None:  # not after a failure: nothing was saved
            reason = f" ({self.stop_reason})" if self.stop_reason else ""
            verb = "Saved" if unsaved else "Nothing to train: the checkpoint stays"
            print(f"{verb} {self.checkpoint_path} at step {self.step}{reason}.", flush=True)

    def _close_after_error(self, error: BaseException) -> None:
        message = None
        try:
            reason = self.unsafe_to_save()
            if reason is None:
                try:
                    self.save(sync=False)  # no barrier: the other ranks may be stuck or gone
                    message = f"Saved {self.checkpoint_path} at step {self.step}, the last finished step, after the error."
                except Exception as save_error:  # noqa: BLE001 - the original error is the one to report
                    message = f"Could not save {self.checkpoint_path} after the error ({save_error})."
            elif self.model is not None and self.step != self._start_step and self._saved_step != self.step:
                # (Nothing is lost when no step finished since the last save: no line for that.)
                if self._saved_step >= 0 or self._resumed:
                    kept = f"{self.checkpoint_path} stays at step {max(self._saved_step, self._start_step)}"
                else:
                    kept = "no checkpoint was written"
                message = f"Not saving after the error: {reason}; {kept}."
        finally:
            self.stop.uninstall()
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self.logger.close()
        if message and self.context.is_main:
            print(message, flush=True)


def run_cli(main: Callable[..., Any], *args: Any) -> int:
    """Run a command's body with one-line errors instead of tracebacks.

    ``main(*args)`` may return an exit status; anything else it returns (a trained model) means 0.
    """
    try:
        result = main(*args)
    except (TrainingError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr, flush=True)
        return 130
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
