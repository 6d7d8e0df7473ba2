"""Fetch the pretrained default models into ``<models_dir>/default/`` and decide which file each model uses.

RTVC publishes no checksums: files are checked by exact size, and the encoder also by the SHA-256 of its
byte-identical copy in ``resemblyzer``. The transfer itself is :mod:`utils.download`.

>>> paths = ensure_default_models("saved_models")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from utils.download import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    MIN_PROGRESS_BYTES,
    MODELS_SOURCE_ENV,
    MODELS_URL_ENV,
    ModelDownloadError,
    check_timeout,
    check_url,
    copy_atomically,
    download_file,
    fetch_advice,
    file_size,
    hash_matches,
    one_line,
    setting_or_env,
)
from utils.progress import ProgressCallback

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://huggingface.co/CorentinJ/SV2TTS/resolve/main"
DEFAULT_MODELS_DIR = "saved_models"
DEFAULT_SUBDIR = "default"
RESEMBLYZER_ENCODER_FILENAME = "pretrained.pt"
#: This project's own synthesizer and vocoder, trained offline and committed with the code
#: (``saved_models/shipped/``; see its README.md model card). They are the fallback when RTVC's
#: published weights were never downloaded, so a clone works on a machine without internet.
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[1] / "saved_models" / "shipped"
#: Environment variable naming another folder of shipped models (an empty folder turns the fallback off).
SHIPPED_MODELS_ENV = "SV2TTS_SHIPPED_MODELS_DIR"

@dataclass(frozen=True)
class ModelFile:
    """One default model: role, file name, exact size, description and SHA-256 (``None``: size only).

    >>> ModelFile("vocoder", "vocoder.pt", 53_845_290, "WaveRNN vocoder").size
    53845290
    """

    name: str
    filename: str
    size: int
    description: str
    sha256: str | None = None


# A tuple of frozen records, so the registry cannot be mutated at run time.
DEFAULT_MODEL_FILES: tuple[ModelFile, ...] = (
    # Computed from resemblyzer 0.1.4's pretrained.pt, byte-identical to RTVC's encoder.pt.
    ModelFile("encoder", "encoder.pt", 17_090_379,
              "GE2E speaker encoder (3-layer LSTM, 256-d embeddings)",
              "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"),
    # No SHA-256 for these two: RTVC publishes none, and this project was written offline, with no
    # copy of the files to hash. Pin them here once computed from a download that loads and
    # synthesizes correctly; until then the exact size is their only check.
    ModelFile("synthesizer", "synthesizer.pt", 370_554_559,
              "Tacotron synthesizer conditioned on speaker embeddings"),
    ModelFile("vocoder", "vocoder.pt", 53_845_290,
              "WaveRNN (fatchord) vocoder"),
)
DEFAULT_MODEL_NAMES: tuple[str, ...] = tuple(f.name for f in DEFAULT_MODEL_FILES)


def _registry_entry(files: Sequence[ModelFile], name: str) -> ModelFile:
    for entry in files:
        if entry.name == name:
            return entry
    known = ", ".join(f.name for f in files)
    raise ValueError(f"Unknown model name {name!r}; choose from: {known}.")


def default_model_path(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                       name: str = "encoder") -> Path:
    """Where the default model ``name`` lives (maybe not yet).

    >>> default_model_path("saved_models", "vocoder").as_posix()
    'saved_models/default/vocoder.pt'
    """
    return Path(models_dir) / DEFAULT_SUBDIR / f"{name}.pt"


def shipped_model_path(name: str, shipped_dir: str | os.PathLike | None = "") -> Path | None:
    """This project's shipped ``name`` model, or None when absent; ``shipped_dir=""`` means
    ``$SV2TTS_SHIPPED_MODELS_DIR`` else :data:`SHIPPED_MODELS_DIR`, ``None`` means none.

    >>> path = shipped_model_path("synthesizer")
    >>> path is None or path.name == "synthesizer.pt"
    True
    >>> shipped_model_path("synthesizer", None) is None
    True
    """
    if shipped_dir is None:
        return None
    path = Path(shipped_dir or os.environ.get(SHIPPED_MODELS_ENV) or SHIPPED_MODELS_DIR) / f"{name}.pt"
    return path if path.is_file() else None


@dataclass(frozen=True)
class ResolvedModel:
    """The file chosen for one model; ``source`` is ``explicit``, ``downloaded``, ``installed``,
    ``resemblyzer``, ``shipped`` or ``missing`` (``path`` is then where the download would go)."""

    path: Path
    source: str


def resolve_model(name: str, models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                  explicit: str | os.PathLike | None = None, *,
                  shipped_dir: str | os.PathLike | None = "") -> ResolvedModel:
    """The one place that decides which checkpoint a model comes from; nothing is downloaded.

    In order: the ``explicit`` file, RTVC's downloaded default, this project's shipped model, and for the
    encoder the ``resemblyzer`` copy (installed into ``<models_dir>/default`` when writable).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     shipped = Path(root, "shipped"); shipped.mkdir(); _ = Path(shipped, "vocoder.pt").write_bytes(b"x")
    ...     print(resolve_model("vocoder", root, shipped_dir=shipped).source)
    ...     _ = Path(root, "default").mkdir(); _ = Path(root, "default", "vocoder.pt").write_bytes(b"x")
    ...     print(resolve_model("vocoder", root, shipped_dir=shipped).source)
    ...     print(resolve_model("vocoder", root, "mine.pt").source)
    ...     print(resolve_model("synthesizer", root, shipped_dir=None).source)
    shipped
    downloaded
    explicit
    missing
    """
    if explicit is not None:
        return ResolvedModel(Path(explicit), "explicit")
    downloaded = default_model_path(models_dir, name)
    if downloaded.exists():
        return ResolvedModel(downloaded, "downloaded")
    shipped = shipped_model_path(name, shipped_dir)
    if shipped is not None:
        return ResolvedModel(shipped, "shipped")
    bundled = resemblyzer_encoder_path() if name == "encoder" else None
    if bundled is not None:
        try:
            path = install_encoder_from_resemblyzer(models_dir)
        except ModelDownloadError as error:  # a read-only folder, another resemblyzer version
            logger.info("Using the encoder inside the resemblyzer package (%s).", error)
            return ResolvedModel(bundled, "resemblyzer")
        logger.info("Installed the default encoder at %s (copied from the resemblyzer package).", path)
        return ResolvedModel(path, "installed")
    return ResolvedModel(downloaded, "missing")


def resemblyzer_encoder_path() -> Path | None:
    """``resemblyzer/pretrained.pt`` found without importing the package (it pulls in webrtcvad and
    librosa), or ``None``.

    >>> path = resemblyzer_encoder_path()
    >>> path is None or path.name == "pretrained.pt"
    True
    """
    try:
        spec = importlib.util.find_spec("resemblyzer")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for location in locations:
        candidate = Path(location) / RESEMBLYZER_ENCODER_FILENAME
        if candidate.is_file():
            return candidate
    return None


def install_encoder_from_resemblyzer(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                                     *, expected_size: int = DEFAULT_MODEL_FILES[0].size
                                     ) -> Path:
    """Copy ``resemblyzer``'s encoder (byte-identical to RTVC's) to ``<models_dir>/default/encoder.pt``
    offline; :class:`ModelDownloadError` when it is missing or of the wrong size."""
    source = resemblyzer_encoder_path()
    if source is None:
        raise ModelDownloadError(
            "The default encoder ships in the 'resemblyzer' package: "
            "pip install --no-deps resemblyzer")
    size = source.stat().st_size
    if size != expected_size:
        raise ModelDownloadError(
            f"{source} has {size} bytes but {expected_size} were expected for encoder.pt; "
            f"this resemblyzer version does not bundle the RTVC encoder.")
    sha256 = DEFAULT_MODEL_FILES[0].sha256 if expected_size == DEFAULT_MODEL_FILES[0].size else None
    return copy_atomically(source, default_model_path(models_dir, "encoder"), expected_size, sha256)


def missing_default_models(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                           names: Sequence[str] = DEFAULT_MODEL_NAMES,
                           files: Sequence[ModelFile] = DEFAULT_MODEL_FILES) -> list[ModelFile]:
    """The entries of ``names`` whose file is absent or fails its size or SHA-256 check; downloads nothing.

    >>> [m.name for m in missing_default_models("/nonexistent", ["vocoder"])]
    ['vocoder']
    """
    missing = []
    for name in names:
        entry = _registry_entry(files, name)
        path = Path(models_dir) / DEFAULT_SUBDIR / entry.filename
        if file_size(path) != entry.size or not hash_matches(path, entry.sha256):
            missing.append(entry)
    return missing


def ensure_default_models(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                          names: Sequence[str] = DEFAULT_MODEL_NAMES, *,
                          base_url: str | None = None,
                          source_dir: str | os.PathLike | None = None,
                          files: Sequence[ModelFile] = DEFAULT_MODEL_FILES,
                          show_progress: bool = True,
                          progress_callback: ProgressCallback | None = None,
                          timeout: float = DEFAULT_TIMEOUT) -> dict[str, Path]:
    """Make sure the default models exist in ``<models_dir>/default/``; their paths by name.

    Files failing the size (or pinned SHA-256) check are fetched again; a wrong-size file is replaced only
    once the new copy is complete. Sources in order: ``source_dir`` (default ``$SV2TTS_MODELS_SOURCE``),
    ``resemblyzer`` for the encoder, then ``base_url`` (default ``$SV2TTS_MODELS_URL``, then
    :data:`DEFAULT_BASE_URL`). ``timeout`` is also the time in which a download must progress.
    :class:`ModelDownloadError` says how else to get a model; ``ValueError`` for an unknown name."""
    entries = [_registry_entry(files, name) for name in names]
    check_timeout(timeout)  # before anything is created: a bad value is a typo, not a network problem
    base = (setting_or_env(base_url, MODELS_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    if base_url is not None:
        check_url(base, "models URL")
    source = setting_or_env(source_dir, MODELS_SOURCE_ENV)
    default_dir = Path(models_dir) / DEFAULT_SUBDIR
    try:
        default_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(
            f"Cannot create the folder {default_dir}: {one_line(exc)}.") from exc

    paths: dict[str, Path] = {}
    for entry in entries:
        target = default_dir / entry.filename
        size = file_size(target)
        if size == entry.size and hash_matches(target, entry.sha256):
            logger.info("%s is present (%d bytes).", target, size)
            paths[entry.name] = target
            continue
        if size == entry.size:
            # Right size, wrong bytes (an error page padded to size, a damaged copy): never use it.
            logger.warning("%s has the right size but not the published SHA-256; removing it and "
                           "fetching it again.", target)
            try:
                target.unlink()
            except OSError as exc:
                raise ModelDownloadError(
                    f"{target} is not the published file (SHA-256 differs) and cannot be "
                    f"removed: {one_line(exc)}.") from exc
        elif size is not None:
            logger.warning("%s has %d bytes instead of %d; fetching it again.",
                           target, size, entry.size)
        paths[entry.name] = _fetch(entry, target, base, source, show_progress,
                                   progress_callback, timeout)
        # Same final assertion as upstream: a present file of the exact size.
        if file_size(target) != entry.size or not hash_matches(target, entry.sha256):
            raise ModelDownloadError(
                f"{target} is not {entry.size} bytes after fetching it: "
                f"{fetch_advice(base + '/' + entry.filename, target)}.")
    return paths


def _fetch(entry: ModelFile, target: Path, base_url: str, source_dir: str | None,
           show_progress: bool, progress_callback: ProgressCallback | None,
           timeout: float) -> Path:
    url = f"{base_url}/{entry.filename}"
    if source_dir is not None:
        source = Path(source_dir) / entry.filename
        if source.is_file():
            source_size = source.stat().st_size
            if source_size != entry.size:
                raise ModelDownloadError(
                    f"{source} has {source_size} bytes but {entry.size} were expected for "
                    f"{entry.filename}; {fetch_advice(url, target)}.")
            logger.info("Copying %s from %s.", entry.filename, source_dir)
            return copy_atomically(source, target, entry.size, entry.sha256)
        if entry.name != "encoder":
            raise ModelDownloadError(
                f"{entry.filename} is not in the local models folder {source_dir} "
                f"(--models_source / {MODELS_SOURCE_ENV}): put it there, or "
                f"{fetch_advice(url, target)}.")
    if entry.name == "encoder":
        bundled = resemblyzer_encoder_path()
        # Only when it is the very file the registry asks for (tests use small encoders).
        if bundled is not None and file_size(bundled) == entry.size:
            logger.info("Copying encoder.pt from the resemblyzer package (%s).", bundled)
            return copy_atomically(bundled, target, entry.size, entry.sha256)
        if bundled is None:
            logger.info("resemblyzer is not installed (pip install --no-deps resemblyzer "
                        "gives the encoder offline); downloading encoder.pt instead.")
    logger.info("Downloading %s from %s.", entry.filename, url)
    return download_file(url, target, entry.size, timeout=timeout, show_progress=show_progress,
                         progress_callback=progress_callback, sha256=entry.sha256)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m utils.default_models [names]``: 0, 1 when a model could not be obtained, 130 if interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.default_models",
        description="Fetch the pretrained default models into <models_dir>/default/.")
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"models to fetch, any of {', '.join(DEFAULT_MODEL_NAMES)} "
                             f"(default: all)")
    parser.add_argument("--models_dir", default=DEFAULT_MODELS_DIR,
                        help="root of the saved models (default: %(default)s)")
    parser.add_argument("--models_url", default=None,
                        help=f"mirror base URL (default: ${MODELS_URL_ENV} or {DEFAULT_BASE_URL})")
    parser.add_argument("--models_source", default=None,
                        help=f"local folder holding the .pt files to copy instead of "
                             f"downloading (default: ${MODELS_SOURCE_ENV})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"connect/read timeout in seconds, at most {MAX_TIMEOUT:g}; a download that "
                             f"receives under {MIN_PROGRESS_BYTES // 1024} KiB in this time is given up "
                             f"(default: %(default)s)")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    # Validated by hand: argparse mishandles choices with an empty nargs="*" list.
    unknown = [n for n in args.names if n not in DEFAULT_MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model name(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(DEFAULT_MODEL_NAMES)}")

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        paths = ensure_default_models(args.models_dir, tuple(args.names) or DEFAULT_MODEL_NAMES,
                                      base_url=args.models_url, source_dir=args.models_source,
                                      show_progress=not args.no_progress, timeout=args.timeout)
    except ModelDownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume the download.",
              file=sys.stderr)
        return 130
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
