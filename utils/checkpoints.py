"""Checkpoint I/O shared by the three models: RTVC's files and our own, atomic writes, clear errors.

Two layouts are read:

* **RTVC** (the published ``encoder.pt`` / ``synthesizer.pt`` / ``vocoder.pt``): ``{"model_state",
  "optimizer_state"[, "step"]}`` with no hyperparameters, so the model is built from the defaults.
  Very old vocoder files are a bare state_dict.
* **Ours**: the same keys plus ``"model_type"``, ``"format_version"`` and ``"hparams"`` (a plain dict),
  and for the synthesizer ``"symbols"``, so a file always rebuilds its own model.

Every failure becomes a :class:`CheckpointError` whose message is one sentence naming the file, what it
is, and what differs.

Examples
--------
>>> import tempfile, torch
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "tiny.pt"
>>> save_checkpoint(path, {"model_state": torch.nn.Linear(2, 2).state_dict()})
>>> sorted(load_checkpoint_file(path, "test model"))
['model_state']
"""

from __future__ import annotations

import errno
import functools
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from utils.atomic_write import atomic_write
from utils.errors import REASON_LIMIT, UserError, one_line
from utils.hparams import HParams, HParamsError

FORMAT_VERSION = 1
H = TypeVar("H", bound=HParams)
M = TypeVar("M", bound=nn.Module)

# A key that only one of the three architectures has: lets an error say "this is a vocoder file".
_SIGNATURE_KEYS = {
    "encoder": "lstm.weight_ih_l0",
    "synthesizer": "encoder.embedding.weight",
    "vocoder": "upsample.resnet.conv_in.weight",
}


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


class NonFiniteOutputError(CheckpointError):
    """A model produced NaN or infinite values: its weights are damaged or its training diverged.

    A :class:`CheckpointError`, since the file is what the user can replace; every caller that reports
    bad checkpoints in one line (the CLI, the toolbox) reports this one too.
    """


def non_finite_message(what: str, output: str, path: str | Path | None) -> str:
    """The one-line message of :class:`NonFiniteOutputError`, naming the checkpoint when there is one.

    Examples
    --------
    >>> non_finite_message("vocoder", "audio", "saved_models/default/vocoder.pt")
    "The vocoder checkpoint 'saved_models/default/vocoder.pt' produced NaN or infinite audio: its weights are damaged or its training diverged."
    """  # noqa: E501 (a doctest's expected output is one line)
    source = f"{_describe(Path(path), what)}" if path is not None else f"The {what}"
    return f"{source} produced NaN or infinite {output}: its weights are damaged or its training diverged."


def require_finite(values: Any, what: str, output: str, path: str | Path | None = None) -> None:
    """Raise :class:`NonFiniteOutputError` unless every value of ``values`` (a tensor or an array) is finite.

    Every stage checks its output with this, so a damaged model stops at the stage that made the
    NaN, named, instead of passing it on (or, for WaveRNN, sampling a "successful" noise from it).

    Examples
    --------
    >>> require_finite(torch.zeros(3), "encoder", "speaker embeddings")
    >>> require_finite(torch.tensor([0.0, float("nan")]), "encoder", "speaker embeddings")
    Traceback (most recent call last):
      ...
    utils.checkpoints.NonFiniteOutputError: The encoder produced NaN or infinite speaker embeddings: its weights are damaged or its training diverged.
    """  # noqa: E501 (a doctest's expected output is one line)
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(values)
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise NonFiniteOutputError(non_finite_message(what, output, path))


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _describe(path: Path, what: str) -> str:
    return f"The {what} checkpoint '{path}'"


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


#: Suffix of the checksum file kept beside a checkpoint (``synthesizer.pt.sha256``, ``sha256sum`` format).
CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: str | Path) -> Path:
    """Where the SHA-256 of ``path`` is kept: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def write_checksum(path: str | Path) -> Path:
    """Store the SHA-256 of ``path`` beside it (``sha256sum -c`` reads the file too); returns its path."""
    from utils.download import file_sha256

    target = checksum_path(path)
    target.write_text(f"{file_sha256(path)}  {Path(path).name}\n", encoding="ascii")
    return target


def check_checksum(path: str | Path, what: str) -> None:
    """Compare ``path`` with the SHA-256 stored beside it, if any (the shipped models have one).

    Raises
    ------
    CheckpointError
        The file was changed or damaged since its checksum was written (or the checksum file is unreadable).
    """
    stored = checksum_path(path)
    if not stored.is_file():
        return
    status = Path(path).stat()
    if not _checksum_matches(str(path), status.st_size, status.st_mtime_ns, stored.stat().st_mtime_ns):
        raise CheckpointError(f"{_describe(Path(path), what)} does not match the SHA-256 in '{stored.name}': it was "
                              "changed or damaged; restore it (git checkout -- <file>, or download it again).")


@functools.lru_cache(maxsize=32)
def _checksum_matches(path: str, size: int, modified_ns: int, checksum_modified_ns: int) -> bool:
    # Cached per file version: the toolbox loads the same shipped files again and again.
    from utils.download import file_sha256

    try:
        words = checksum_path(path).read_text(encoding="ascii", errors="replace").split()
        return bool(words) and file_sha256(path) == words[0].lower()
    except OSError:
        return False


def load_checkpoint_file(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and return its top-level dict.

    Parameters
    ----------
    path
        The ``.pt`` file.
    what
        What the file should be ("synthesizer", "vocoder", ...), used in error messages.
    map_location
        Device for the tensors.

    Raises
    ------
    CheckpointError
        When the file is missing, empty, truncated, not a PyTorch file, or not a dictionary.
    """
    path = Path(path)
    prefix = _describe(path, what)
    if not path.exists():
        raise CheckpointError(f"{prefix} does not exist.")
    if path.is_dir():
        raise CheckpointError(f"{prefix} is a folder, not a file.")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{prefix} is empty (0 bytes); download or train it again.")
    check_checksum(path, what)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # junk bytes, reported below
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise CheckpointError(f"{prefix} ({size:,} bytes) needs more memory to load than is available.") from None
    except Exception as error:  # noqa: BLE001 - the safe unpickler chokes variously on damaged bytes
        # Not only RuntimeError, EOFError, BadZipFile, UnpicklingError...: one flipped byte in a zip
        # record can also raise AssertionError ("storage key ... not found") or any other type, and
        # every one of them means the same thing to the user: this file is damaged.
        text = _ANSI_ESCAPE.sub("", str(error)).strip()  # torch's messages contain terminal bold codes
        # torch's weights-only message starts with advice about weights_only=False; the cause comes after
        # "WeightsUnpickler error:". "Unsupported global" means a pickled Python object (a class instance,
        # a function); anything else ("Unsupported operand 60") means the bytes are not a pickle at all.
        cause = text.split("WeightsUnpickler error:", 1)[-1].strip()
        if "Unsupported global" in cause:
            culprit = re.search(r"GLOBAL ([\w.]+)", cause)
            what_object = f" ({culprit.group(1)})" if culprit else ""
            raise CheckpointError(
                f"{prefix} contains Python objects that are not plain weights{what_object}, so it is not "
                "loaded for safety; only load files from sources you trust."
            ) from None
        raise CheckpointError(
            f"{prefix} ({size:,} bytes) is truncated or not a PyTorch checkpoint "
            f"({one_line(cause or error, REASON_LIMIT)}); download or train it again."
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{prefix} holds a {type(checkpoint).__name__}, not a checkpoint dictionary.")
    return checkpoint


def extract_state_dict(checkpoint: Mapping[str, Any], path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Return the model weights of a checkpoint: ``model_state`` or, for legacy files, the dict itself."""
    if "model_state" in checkpoint:
        state = checkpoint["model_state"]
    elif checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        state = checkpoint  # legacy RTVC vocoder files are a bare state_dict
    else:
        keys = ", ".join(sorted(map(str, checkpoint))[:6]) or "nothing"
        raise CheckpointError(f"{_describe(Path(path), what)} has no 'model_state' entry (it holds {keys}).")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{_describe(Path(path), what)} has a 'model_state' that is not a dictionary.")
    # torch.load(weights_only=True) accepts strings, numbers and lists as values too; they would fail
    # later inside load_state_dict or an export with a traceback instead of a sentence about the file.
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{_describe(Path(path), what)} is damaged: its weight {str(key)[:80]!r} is "
                f"{_a(type(value).__name__)}, not a tensor."
            )
    return dict(state)


def guess_model_type(state: Mapping[str, Any]) -> str | None:
    """Which of encoder/synthesizer/vocoder a state_dict belongs to, or None."""
    for model_type, key in _SIGNATURE_KEYS.items():
        if key in state:
            return model_type
    return None


def _short_list(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_state_dict(state: Mapping[str, Any], model: nn.Module, path: str | Path, what: str) -> None:
    """Compare keys and shapes of ``state`` with ``model`` and raise one readable sentence if they differ.

    This replaces PyTorch's multi-line ``size mismatch`` dump with the first differences and a hint
    (another model type, a fork with another symbol table, other hyperparameters).
    """
    prefix = _describe(Path(path), what)
    file_type = guess_model_type(state)
    if file_type is not None and file_type != what:
        raise CheckpointError(f"{prefix} is {_a(file_type)} checkpoint, not {_a(what)} checkpoint.")
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} is {tuple(state[key].shape)} in the file but {tuple(expected[key].shape)} in the model"
        for key in expected
        if key in state and isinstance(state[key], torch.Tensor) and state[key].shape != expected[key].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape(s) differ ({_short_list(mismatched, 2)})")
    if missing:
        problems.append(f"{len(missing)} key(s) are missing ({_short_list(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({_short_list(unexpected)})")
    hint = ""
    embedding = state.get("encoder.embedding.weight")
    if what == "synthesizer" and isinstance(embedding, torch.Tensor) and embedding.shape[0] != 66:
        hint = f" It was trained with {embedding.shape[0]} text symbols (ours has 66): it comes from a fork."
    raise CheckpointError(f"{prefix} does not fit this {what}: {'; '.join(problems)}.{hint}")


def check_state_dict_before_building(state: Mapping[str, Any], build: Callable[[H], nn.Module], hparams: H,
                                     path: str | Path, what: str) -> None:
    """Compare ``state`` with the model ``build(hparams)`` would make, without allocating that model.

    The model is built on PyTorch's ``meta`` device, where tensors have shapes but no storage, so a
    few-KB file whose stored hyperparameters describe a huge model (``bits=16`` gives a 65,536-wide
    output layer, a 100,000-unit RNN...) is refused by its shapes before gigabytes are allocated.
    A builder that cannot run on the meta device (it reads values) is simply not pre-checked: the
    check after the real build still runs.

    Raises
    ------
    CheckpointError
        The weights' keys or shapes differ from the model's (see :func:`check_state_dict`).

    Examples
    --------
    >>> state = torch.nn.Linear(2, 3).state_dict()
    >>> check_state_dict_before_building(state, lambda n: torch.nn.Linear(2, n), 3, "x.pt", "model")
    >>> check_state_dict_before_building(state, lambda n: torch.nn.Linear(2, n), 10**6, "x.pt", "model")
    Traceback (most recent call last):
      ...
    utils.checkpoints.CheckpointError: The model checkpoint 'x.pt' does not fit this model: 2 shape(s) differ (weight is (3, 2) in the file but (1000000, 2) in the model, bias is (3,) in the file but (1000000,) in the model).
    """  # noqa: E501 (a doctest's expected output is one line)
    try:
        # The device mode must be the inner one so that _SkipRandomFills sees the fills first.
        with _SkipRandomFills(), torch.device("meta"):
            skeleton = build(hparams)
    except Exception:  # noqa: BLE001 - not meta-compatible, or unbuildable: the real build reports it
        return
    check_state_dict(state, skeleton, path, what)


class _SkipRandomFills(TorchFunctionMode):
    """Turns random weight initialisation of meta tensors into a no-op.

    On the meta device ``normal_`` goes through torch's reference implementations, which import
    ``torch._dynamo`` (2 s on a small CPU) for a result without any values anyway.
    """

    FILLS = frozenset({"normal_", "uniform_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                       "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "random_", "bernoulli_",
                       "exponential_", "geometric_", "log_normal_", "cauchy_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        if getattr(func, "__name__", "") in self.FILLS and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def read_hparams(checkpoint: Mapping[str, Any], hparams_cls: type[H], path: str | Path, what: str) -> H:
    """Our files store their hyperparameters; RTVC's do not, so they get the RTVC defaults."""
    stored = checkpoint.get("hparams")
    if stored is None:
        return hparams_cls()
    stored_type = checkpoint.get("model_type")
    if stored_type is not None and stored_type != what:
        raise CheckpointError(
            f"{_describe(Path(path), what)} is {_a(stored_type)} checkpoint, not {_a(what)} checkpoint."
        )
    try:
        return hparams_cls.from_dict(stored)
    except (HParamsError, TypeError, ValueError) as error:
        raise CheckpointError(f"{_describe(Path(path), what)} has hyperparameters this version cannot use: "
                              f"{error}.") from None


def load_model(
    path: str | Path,
    what: str,
    hparams_cls: type[H],
    build: Callable[[H], M],
    device: str | torch.device = "cpu",
    checkpoint: Mapping[str, Any] | None = None,
) -> tuple[M, H, dict]:
    """Load a checkpoint (RTVC or ours) into a freshly built model.

    Parameters
    ----------
    path
        The checkpoint file.
    what
        "encoder", "synthesizer" or "vocoder".
    hparams_cls
        The package's hyperparameter dataclass.
    build
        Function building the model from hyperparameters.
    device
        Where the model ends up.
    checkpoint
        The file's contents when the caller has read it already (to pick the architecture).

    Returns
    -------
    model, hparams, checkpoint
        The model (in eval mode, on ``device``), its hyperparameters, and the raw checkpoint dict
        (for ``step``, ``symbols`` and the like; optimizer state is left untouched).
    """
    checkpoint = dict(checkpoint) if checkpoint is not None else load_checkpoint_file(path, what)
    hparams = read_hparams(checkpoint, hparams_cls, path, what)
    state = extract_state_dict(checkpoint, path, what)
    check_state_dict_before_building(state, build, hparams, path, what)
    try:
        model = build(hparams)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{_describe(Path(path), what)} describes a model that cannot be built: "
                              f"{error}.") from None
    except (MemoryError, RuntimeError) as error:  # RuntimeError: torch's "not enough memory" on allocation
        raise CheckpointError(f"{_describe(Path(path), what)} describes a model too large to build here "
                              f"({one_line(error, REASON_LIMIT)}).") from None
    check_state_dict(state, model, path, what)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, hparams, checkpoint


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically: a crash or a full disk never leaves half a file.

    The data goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"Cannot write the checkpoint '{path}': it is an existing folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as stream:
            torch.save(dict(payload), stream)
    except (OSError, RuntimeError) as error:
        # torch's zip writer turns a failed write into RuntimeError("... unexpected pos ...") with the
        # OSError as its context: look through it for the real cause. atomic_write has already removed
        # its temporary file and left the previous checkpoint as it was.
        raise CheckpointError(write_failure_message(path, error, "checkpoint")) from None


def write_failure_message(path: str | Path, error: BaseException, what: str = "file") -> str:
    """One line saying why writing ``path`` failed, from an OSError or torch's wrapped one.

    Examples
    --------
    >>> write_failure_message("a/b.pt", OSError(errno.ENOSPC, "No space left on device"), "checkpoint")
    "Not enough disk space to write the checkpoint 'a/b.pt'; the previous file, if any, is unchanged."
    >>> write_failure_message("a/b.pt", PermissionError(errno.EACCES, "Permission denied"), "checkpoint")
    "Cannot write the checkpoint 'a/b.pt': Permission denied."
    """
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Not enough disk space to write the {what} '{path}'; the previous file, if any, is unchanged."
    if isinstance(cause, OSError):
        reason = cause.strerror or one_line(cause, REASON_LIMIT)
        if cause.errno == errno.ENAMETOOLONG:
            reason = f"the file name is too long ({len(Path(path).name.encode())} bytes; most file systems allow 255)"
        return f"Cannot write the {what} '{path}': {reason}."
    text = _ANSI_ESCAPE.sub("", str(error)).strip()
    if "unexpected pos" in text or "file write failed" in text:
        # The zip writer lost bytes without an OSError we can see: on every system met so far, a full disk.
        return (f"Writing the {what} '{path}' failed part-way (the disk is probably full); "
                "the previous file, if any, is unchanged.")
    return f"Cannot write the {what} '{path}' ({one_line(text or error, REASON_LIMIT)})."


def make_payload(
    model: nn.Module,
    model_type: str,
    hparams: HParams,
    optimizer: torch.optim.Optimizer | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Our checkpoint layout: RTVC's keys (so RTVC can read the weights) plus what rebuilds the model."""
    payload: dict[str, Any] = {
        "model_state": model.state_dict(),
        "model_type": model_type,
        "format_version": FORMAT_VERSION,
        "hparams": hparams.to_dict(),
    }
    if optimizer is not None:
        payload["optimizer_state"] = optimizer.state_dict()
    payload.update(extra)
    return payload


def inspect_checkpoint(path: str | Path) -> str | None:
    """Which model a checkpoint file holds ("encoder", "synthesizer", "vocoder"), or None if unusable.

    Cheap enough to run over a whole models folder: the file is memory-mapped, so a 370 MB
    synthesizer is not read into memory just to look at its keys.
    """
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            # RTVC's encoder.pt predates the zip format, which mmap needs: read it the slow way.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any unreadable file simply is not offered  # noqa: BLE001
        return None
    if not isinstance(checkpoint, dict):
        return None
    stored = checkpoint.get("model_type")
    if stored in _SIGNATURE_KEYS:
        return stored
    state = checkpoint.get("model_state", checkpoint)
    return guess_model_type(state) if isinstance(state, Mapping) else None
