"""Fetch the pretrained default models into ``<models_dir>/default/``.

The three published RTVC checkpoints (``encoder.pt``, ``synthesizer.pt`` and
``vocoder.pt``) are identified by their byte size and, where it is known, their
SHA-256. The upstream project publishes no checksums: the encoder's is pinned
from the byte-identical copy in the ``resemblyzer`` package; the synthesizer's
and vocoder's could not be obtained without downloading them, so for those two
the exact size is still the only check (a right-size wrong file is accepted).
A file whose hash is pinned and differs is refused, removed and fetched again.

Where each file comes from, in order of preference:

* a local folder (``source_dir`` / ``--models_source`` / ``SV2TTS_MODELS_SOURCE``)
  holding the files, copied without any network access;
* for the encoder only, the PyPI package ``resemblyzer``, whose
  ``pretrained.pt`` is byte-identical to RTVC's ``encoder.pt``;
* an HTTP(S) download from ``base_url`` (``--models_url`` /
  ``SV2TTS_MODELS_URL``), by default the Hugging Face repository
  ``CorentinJ/SV2TTS``.

Downloads go to ``<file>.part``, resume with an HTTP ``Range`` request after an
interruption (with ``If-Range``, so that a file changed on the server since is
downloaded again whole instead of being spliced onto old bytes), are size- and
hash-checked and then renamed atomically, so a final file of the right size is
always complete. Every failure surfaces as a
:class:`ModelDownloadError` carrying one line that says what went wrong and how
to get the file otherwise.

Examples
--------
>>> from utils.default_models import ensure_default_models
>>> paths = ensure_default_models("saved_models")  # doctest: +SKIP
>>> paths["vocoder"]  # doctest: +SKIP
PosixPath('saved_models/default/vocoder.pt')

From a shell::

    python -m utils.default_models --models_dir saved_models
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import importlib.util
import logging
import math
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from utils.atomic_write import open_temp_file

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODELS_DIR",
    "DEFAULT_MODEL_FILES",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "MIN_PROGRESS_BYTES",
    "MODELS_SOURCE_ENV",
    "MODELS_URL_ENV",
    "ModelDownloadError",
    "ModelFile",
    "check_timeout",
    "check_url",
    "default_model_path",
    "download_file",
    "ensure_default_models",
    "file_sha256",
    "install_encoder_from_resemblyzer",
    "main",
    "missing_default_models",
    "resemblyzer_encoder_path",
    "resolve_model_path",
    "SHIPPED_MODELS_DIR",
    "shipped_model_path",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://huggingface.co/CorentinJ/SV2TTS/resolve/main"
DEFAULT_MODELS_DIR = "saved_models"
DEFAULT_SUBDIR = "default"
DEFAULT_TIMEOUT = 30.0
#: Longest timeout accepted, in seconds. An hour without a byte is a dead connection, and far larger
#: values overflow the socket layer's clock ("timestamp out of range").
MAX_TIMEOUT = 3600.0
#: A download that receives fewer bytes than this within one timeout period has stalled: a server
#: that trickles a byte now and then would otherwise keep it alive forever (each read succeeds, so
#: the socket timeout never fires). 64 KiB per 30 s is about 2 KB/s, below any usable link.
MIN_PROGRESS_BYTES = 64 * 1024
#: URL schemes a mirror may use.
URL_SCHEMES = ("http", "https", "file")
MODELS_URL_ENV = "SV2TTS_MODELS_URL"
MODELS_SOURCE_ENV = "SV2TTS_MODELS_SOURCE"
RESEMBLYZER_ENCODER_FILENAME = "pretrained.pt"
PART_SUFFIX = ".part"
#: This project's own synthesizer and vocoder, trained offline and committed with the code
#: (``saved_models/shipped/``; see its README.md model card). They are the fallback when RTVC's
#: published weights were never downloaded, so a clone works on a machine without internet.
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[1] / "saved_models" / "shipped"
#: Environment variable naming another folder of shipped models (an empty folder turns the fallback off).
SHIPPED_MODELS_ENV = "SV2TTS_SHIPPED_MODELS_DIR"

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelFile:
    """One entry of the default-model registry.

    Parameters
    ----------
    name : str
        Model role: ``"encoder"``, ``"synthesizer"`` or ``"vocoder"``.
    filename : str
        File name, both on the server and inside ``<models_dir>/default/``.
    size : int
        Exact size in bytes.
    description : str
        One human-readable line for listings and error messages.
    sha256 : str or None
        Lower-case hex SHA-256 of the file, or None where no trustworthy value is known (then the
        size is the only check).

    Examples
    --------
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


class ModelDownloadError(RuntimeError):
    """A default model could not be obtained.

    The message is a single line meant to be shown to the user as is: what
    failed and how to get the file another way.

    Examples
    --------
    >>> str(ModelDownloadError("Cannot reach example.org."))
    'Cannot reach example.org.'
    """


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------

def _one_line(text: object) -> str:
    # Error strings from sockets/SSL can contain newlines; the user gets one line.
    return " ".join(str(text).split())


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def _validator_path(target: Path) -> Path:
    # Beside the .part: the server's ETag or Last-Modified for the bytes it holds (for If-Range).
    return target.with_name(target.name + PART_SUFFIX + ".validator")


def _remove_part(target: Path) -> None:
    _part_path(target).unlink(missing_ok=True)
    _validator_path(target).unlink(missing_ok=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Lower-case hex SHA-256 of a file, read in 1 MiB pieces.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc"); f.flush(); file_sha256(f.name)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_matches(path: Path, expected: str | None) -> bool:
    """True when nothing is pinned, else whether the file's SHA-256 is the pinned one."""
    if expected is None:
        return True
    try:
        return file_sha256(path) == expected.lower()
    except OSError:
        return False


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened
    # this way on Windows, where the rename is already journaled.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    # Append mode because Windows refuses fsync on read-only handles.
    with open(path, "ab") as fh:
        os.fsync(fh.fileno())


def _write_all(fh, data: bytes) -> None:
    # Unbuffered file objects may write partially; loop until all is written.
    view = memoryview(data)
    while view:
        written = fh.write(view)
        view = view[written:]


def _alternatives(url: str, target: Path) -> str:
    return (f"download {url} by hand into {target}, use a mirror "
            f"(--models_url URL or {MODELS_URL_ENV}), a local folder holding the "
            f"file (--models_source DIR or {MODELS_SOURCE_ENV}), or train your own model")


def _host(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.hostname or parts.netloc or url
    except ValueError:  # a malformed URL is reported by check_url; a message must never raise
        return url


def check_url(url: str, what: str = "download URL") -> str:
    """Return ``url`` if it is a well-formed http(s):// or file:// URL, else raise one sentence.

    Raises
    ------
    ModelDownloadError
        A URL that does not parse (``http://[::1``), has a bad port, another scheme, or no host.

    Examples
    --------
    >>> check_url("https://huggingface.co/CorentinJ/SV2TTS/resolve/main")
    'https://huggingface.co/CorentinJ/SV2TTS/resolve/main'
    >>> check_url("http://[::1")
    Traceback (most recent call last):
      ...
    utils.default_models.ModelDownloadError: The download URL 'http://[::1' is malformed (Invalid IPv6 URL); give an http://, https:// or file:// URL.
    """
    hint = "give an http://, https:// or file:// URL"
    try:
        parts = urllib.parse.urlsplit(str(url))
        parts.port  # parsed lazily: an out-of-range or non-numeric port raises only here
    except ValueError as exc:
        raise ModelDownloadError(f"The {what} {url!r} is malformed ({_one_line(exc)}); {hint}.") from None
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ModelDownloadError(f"The {what} {url!r} is not an http://, https:// or file:// URL; {hint}.")
    if parts.scheme.lower() != "file" and not parts.hostname:
        raise ModelDownloadError(f"The {what} {url!r} names no host; {hint}.")
    return url


def check_timeout(timeout: float) -> float:
    """Return ``timeout`` if it is a finite number of seconds above 0 and at most :data:`MAX_TIMEOUT`.

    Raises
    ------
    ModelDownloadError
        For 0, negative, NaN, infinite or absurdly large values (which overflow the socket clock).

    Examples
    --------
    >>> check_timeout(30)
    30
    >>> check_timeout(float("inf"))
    Traceback (most recent call last):
      ...
    utils.default_models.ModelDownloadError: The timeout must be above 0 and at most 3600 seconds, not inf.
    """
    try:
        valid = math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT
    except TypeError:
        valid = False
    if not valid:
        raise ModelDownloadError(f"The timeout must be above 0 and at most {MAX_TIMEOUT:g} seconds, not {timeout!r}.")
    return timeout


def _env_or(value: str | os.PathLike | None, env_name: str) -> str | None:
    if value is not None and str(value) != "":
        return str(value)
    # An empty variable is treated as unset so `VAR= cmd` can disable it.
    return os.environ.get(env_name) or None


def _registry_entry(files: Sequence[ModelFile], name: str) -> ModelFile:
    for entry in files:
        if entry.name == name:
            return entry
    known = ", ".join(f.name for f in files)
    raise ValueError(f"Unknown model name {name!r}; choose from: {known}.")


def _check_free_space(directory: Path, needed: int, what: str) -> None:
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # Unknown: let the write itself fail if space runs out.
    if free < needed:
        raise ModelDownloadError(
            f"Not enough disk space in {directory}: {what} needs {needed} more bytes "
            f"but only {free} are free.")


def _copy_atomically(source: Path, target: Path, expected_size: int | None,
                     sha256: str | None = None) -> Path:
    """Copy ``source`` over ``target`` via a temporary file and ``os.replace`` (size and hash checked)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if expected_size is not None:
        _check_free_space(target.parent, expected_size, target.name)
    # Same directory as the target so that os.replace is a rename, not a copy.
    fd, tmp = open_temp_file(target)  # permissions follow the umask, unlike mkstemp's 0600
    try:
        with open(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if expected_size is not None and size != expected_size:
            raise ModelDownloadError(
                f"Copying {source} gave {size} bytes but {expected_size} were expected "
                f"for {target.name}; the source file is probably incomplete or a different model.")
        if not _hash_matches(tmp, sha256):
            raise ModelDownloadError(
                f"{source} has the right size but not the published SHA-256 of {target.name}; "
                f"it is a different or damaged file and was not copied.")
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise ModelDownloadError(
                f"Not enough disk space in {target.parent} to copy {target.name} "
                f"({expected_size or 'unknown'} bytes needed).") from exc
        raise ModelDownloadError(
            f"Cannot copy {source} to {target}: {_one_line(exc)}.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

def default_model_path(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                       name: str = "encoder") -> Path:
    """Return where the default model ``name`` lives.

    Parameters
    ----------
    models_dir : str or os.PathLike
        Root of the saved models (``saved_models`` by default).
    name : str
        ``"encoder"``, ``"synthesizer"`` or ``"vocoder"``.

    Returns
    -------
    pathlib.Path
        ``<models_dir>/default/<name>.pt`` (the file may not exist yet).

    Examples
    --------
    >>> default_model_path("saved_models", "vocoder").as_posix()
    'saved_models/default/vocoder.pt'
    """
    return Path(models_dir) / DEFAULT_SUBDIR / f"{name}.pt"


def shipped_model_path(name: str, shipped_dir: str | os.PathLike | None = None) -> Path | None:
    """This project's shipped ``name`` model (``saved_models/shipped/<name>.pt``), or None when absent.

    ``shipped_dir`` defaults to ``$SV2TTS_SHIPPED_MODELS_DIR``, else :data:`SHIPPED_MODELS_DIR`.

    Examples
    --------
    >>> path = shipped_model_path("synthesizer")
    >>> path is None or path.name == "synthesizer.pt"
    True
    """
    if shipped_dir is None:
        shipped_dir = os.environ.get(SHIPPED_MODELS_ENV) or SHIPPED_MODELS_DIR
    path = Path(shipped_dir) / f"{name}.pt"
    return path if path.is_file() else None


def resolve_model_path(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR, name: str = "synthesizer",
                       shipped_dir: str | os.PathLike | None = None) -> Path:
    """The default ``name`` model to use: RTVC's downloaded file first, else the shipped one.

    Parameters
    ----------
    models_dir
        Root of the saved models; ``<models_dir>/default/<name>.pt`` is RTVC's downloaded file.
    name
        ``"encoder"``, ``"synthesizer"`` or ``"vocoder"``.
    shipped_dir
        Folder of the shipped models (default :data:`SHIPPED_MODELS_DIR`).

    Returns
    -------
    pathlib.Path
        The downloaded file when it exists, else the shipped file when there is one, else the
        downloaded file's path (missing: loading it reports how to get it).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     shipped = Path(root, "shipped"); shipped.mkdir(); _ = Path(shipped, "vocoder.pt").write_bytes(b"x")
    ...     print(resolve_model_path(root, "vocoder", shipped) == shipped / "vocoder.pt")
    ...     _ = Path(root, "default").mkdir(); _ = Path(root, "default", "vocoder.pt").write_bytes(b"x")
    ...     print(resolve_model_path(root, "vocoder", shipped) == Path(root, "default", "vocoder.pt"))
    True
    True
    """
    downloaded = default_model_path(models_dir, name)
    if downloaded.exists():
        return downloaded
    return shipped_model_path(name, shipped_dir) or downloaded


def resemblyzer_encoder_path() -> Path | None:
    """Locate ``resemblyzer/pretrained.pt`` without importing ``resemblyzer``.

    Importing the package would pull in webrtcvad and librosa, so only its
    import spec is consulted.

    Returns
    -------
    pathlib.Path or None
        Path of the bundled encoder checkpoint, or ``None`` when the package
        (or the file inside it) is not installed.

    Examples
    --------
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
    """Copy the encoder bundled in the ``resemblyzer`` package into place.

    ``resemblyzer/pretrained.pt`` is byte-identical to RTVC's ``encoder.pt``,
    so the encoder can be installed without any network access.

    Parameters
    ----------
    models_dir : str or os.PathLike
        Root of the saved models; the file goes to ``<models_dir>/default/encoder.pt``.
    expected_size : int
        Required size in bytes (17,090,379 for the published encoder).

    Returns
    -------
    pathlib.Path
        Path of the installed ``encoder.pt``.

    Raises
    ------
    ModelDownloadError
        If ``resemblyzer`` is not installed or its file has another size.

    Examples
    --------
    >>> install_encoder_from_resemblyzer("saved_models")  # doctest: +SKIP
    PosixPath('saved_models/default/encoder.pt')
    """
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
    return _copy_atomically(source, default_model_path(models_dir, "encoder"), expected_size, sha256)


def _open_response(url: str, target: Path, offset: int, expected_size: int | None,
                   timeout: float) -> tuple[http.client.HTTPResponse, int, int | None]:
    """Open ``url``, resuming at ``offset`` if the server allows it.

    Returns the response, the offset the body starts at and the full file
    size announced by the server (``None`` if unknown).
    """
    part = _part_path(target)
    alternatives = _alternatives(url, target)
    validator = None
    # At most one restart: after it, offset is 0 and no Range is sent.
    for _ in range(2):
        headers = {"User-Agent": "sv2tts-toolbox/default_models"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            # If-Range: "the rest, if the file is still the one you described then; else all of it".
            # Without it a file replaced on the server would be spliced onto the old .part's bytes.
            validator = _read_validator(target)
            if validator:
                headers["If-Range"] = validator
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            code, reason = exc.code, _one_line(exc.reason)
            exc.close()
            if code == 416 and offset:
                # The .part does not fit the server's file: start over.
                logger.warning("The server rejected resuming %s at byte %d; restarting "
                               "the download from the beginning.", target.name, offset)
                _remove_part(target)
                offset = 0
                continue
            raise ModelDownloadError(
                f"The server at {_host(url)} answered HTTP {code} ({reason}) for {url}: "
                f"{alternatives}.") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                why = f"timed out after {timeout:g} s"
            else:
                why = _one_line(reason) or type(reason).__name__
            raise ModelDownloadError(
                f"Cannot reach {_host(url)} to download {target.name} ({why}): "
                f"{alternatives}.") from exc
        except ValueError as exc:
            raise ModelDownloadError(
                f"Invalid download URL {url!r} ({_one_line(exc)}): {alternatives}.") from exc

        # file:// responses carry no status; they always send the whole file.
        status = getattr(response, "status", None) or 200
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if offset and status == 206:
            match = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)",
                             response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                response.close()
                logger.warning("The server resumed %s at an unexpected position; restarting "
                               "the download from the beginning.", target.name)
                _remove_part(target)
                offset = 0
                continue
            total = (int(match.group(3)) if match.group(3) != "*"
                     else (offset + length if length is not None else None))
            return response, offset, total
        if offset and validator:
            logger.warning("%s changed on the server at %s since the partial download; "
                           "downloading it again from the beginning.", target.name, _host(url))
        elif offset:
            logger.warning("The server at %s does not support resuming; downloading %s "
                           "again from the beginning.", _host(url), target.name)
        _write_validator(target, response)
        return response, 0, length
    raise AssertionError("unreachable: the second attempt never sends a Range header")


def _read_validator(target: Path) -> str | None:
    try:
        text = _validator_path(target).read_text(encoding="ascii").strip()
    except (OSError, UnicodeError):
        return None
    return text or None


def _write_validator(target: Path, response) -> None:
    """Remember what identifies the file being downloaded from scratch, for a later ``If-Range``.

    A strong ``ETag`` is preferred; weak ones (``W/...``) are not allowed in ``If-Range``, so then
    ``Last-Modified`` is used. Without either nothing is written, and a resume sends ``Range``
    alone (where a SHA-256 is pinned, the final check still catches a spliced file).
    """
    etag = response.headers.get("ETag") or ""
    value = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified") or ""
    path = _validator_path(target)
    try:
        if value and value.isascii() and "\n" not in value:
            path.write_text(value + "\n", encoding="ascii")
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass  # only costs a full download instead of a resume later


def download_file(url: str, target: str | os.PathLike, expected_size: int | None, *,
                  timeout: float = DEFAULT_TIMEOUT, show_progress: bool = True,
                  progress_callback: ProgressCallback | None = None,
                  chunk_size: int = 1 << 20, sha256: str | None = None) -> Path:
    """Download ``url`` to ``target`` with resume, size and hash checks and atomic rename.

    Bytes go to ``<target>.part``. An existing ``.part`` is resumed with an
    HTTP ``Range: bytes=N-`` request, with ``If-Range`` naming the server's
    ``ETag`` (or ``Last-Modified``) of the first attempt; if the server answers
    200 instead of 206 (it cannot resume, or the file changed) or the ``.part``
    is larger than ``expected_size`` the download restarts from zero. On
    success the file is fsynced, its SHA-256 checked and it is renamed to ``target``.

    Parameters
    ----------
    url : str
        HTTP(S) (or ``file://``) URL of the file.
    target : str or os.PathLike
        Final path; its parent directory is created if needed.
    expected_size : int or None
        Exact size in bytes, checked against ``Content-Length`` before the body
        is read and against the downloaded size at the end. ``None`` skips both.
    timeout : float
        Seconds allowed for connecting and for each read, in (0, :data:`MAX_TIMEOUT`]; a transfer that
        receives fewer than :data:`MIN_PROGRESS_BYTES` in this many seconds is given up as stalled.
    show_progress : bool
        Show a tqdm progress bar on stderr.
    progress_callback : callable, optional
        Called as ``progress_callback(downloaded, total)`` after each chunk
        (``total`` is 0 when unknown), e.g. to drive a GUI progress bar.
    chunk_size : int
        Bytes read per iteration.
    sha256 : str, optional
        Expected lower-case hex SHA-256; a complete file with another hash is discarded.

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    ModelDownloadError
        Malformed URL or timeout, host unreachable, HTTP error, size or hash mismatch (the file is
        discarded), interrupted or stalled transfer (the ``.part`` is kept for resuming) or full
        disk (``.part`` kept).

    Examples
    --------
    >>> download_file("https://huggingface.co/CorentinJ/SV2TTS/resolve/main/vocoder.pt",
    ...               "saved_models/default/vocoder.pt", 53_845_290)  # doctest: +SKIP
    PosixPath('saved_models/default/vocoder.pt')
    """
    check_url(url)
    check_timeout(timeout)
    target = Path(target)
    part = _part_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(
            f"Cannot create the folder {target.parent}: {_one_line(exc)}.") from exc

    offset = _file_size(part) or 0
    if expected_size is not None and offset > expected_size:
        logger.warning("%s is larger than the expected %d bytes; restarting the download.",
                       part, expected_size)
        _remove_part(target)
        offset = 0
    if expected_size is not None and offset == expected_size and offset > 0:
        # A previous run received every byte but stopped before the rename.
        if _hash_matches(part, sha256):
            _fsync_file(part)
            os.replace(part, target)
            _validator_path(target).unlink(missing_ok=True)
            _fsync_dir(target.parent)
            return target
        logger.warning("%s is complete but not the published file (SHA-256 differs); "
                       "downloading it again.", part)
        _remove_part(target)
        offset = 0

    response, offset, total = _open_response(url, target, offset, expected_size, timeout)
    with response:
        if expected_size is not None and total is not None and total != expected_size:
            raise ModelDownloadError(
                f"The server at {url} offers {target.name} with {total} bytes but "
                f"{expected_size} were expected — is the mirror serving a different file?")
        final_size = expected_size if expected_size is not None else total
        if final_size is not None:
            _check_free_space(target.parent, final_size - offset, target.name)
        downloaded = _stream_to_part(response, url, target, offset, final_size,
                                     show_progress, progress_callback, chunk_size, timeout)

    if total is not None and downloaded < total:
        # The server promised more bytes: a dropped connection, resumable later.
        raise ModelDownloadError(
            f"The download of {target.name} from {_host(url)} stopped after {downloaded} of "
            f"{total} bytes; run the same command again to resume from {part}.")
    if expected_size is not None and downloaded != expected_size:
        _remove_part(target)
        raise ModelDownloadError(
            f"Downloaded {target.name} from {url} has {downloaded} bytes but {expected_size} "
            f"were expected; the file was discarded — is the server offering a different file?")
    if not _hash_matches(part, sha256):
        _remove_part(target)
        raise ModelDownloadError(
            f"Downloaded {target.name} from {url} has the right size but not the published "
            f"SHA-256; the file was discarded — is the server offering a different file (an "
            f"error page, another model)?")
    os.replace(part, target)
    _validator_path(target).unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return target


def _stream_to_part(response, url: str, target: Path, offset: int, total: int | None,
                    show_progress: bool, progress_callback: ProgressCallback | None,
                    chunk_size: int, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Append the response body to ``<target>.part``; return its final size.

    Gives up (keeping the ``.part``) when fewer than :data:`MIN_PROGRESS_BYTES` (or the rest of the
    file) arrive within ``timeout`` seconds; the check runs after each read, so a stall is reported
    within about twice the timeout.
    """
    part = _part_path(target)
    downloaded = offset
    # read1 returns what one socket read brings; read(n) would wait for all n bytes, so a trickling
    # server could hold it for ever without the stall check below ever running.
    read = getattr(response, "read1", None) or response.read
    window_start, window_bytes = time.monotonic(), downloaded
    # Resuming appends; anything else truncates a stale .part the server made us drop.
    mode = "ab" if offset else "wb"
    try:
        # Unbuffered, so a full disk is reported by write() itself and close()
        # never raises a second, masking error.
        with open(part, mode, buffering=0) as fh, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                     unit_divisor=1024, desc=target.name, disable=not show_progress,
                     dynamic_ncols=True) as bar:
            while True:
                try:
                    chunk = read(chunk_size)
                except (OSError, http.client.HTTPException) as exc:
                    raise ModelDownloadError(
                        f"The download of {target.name} from {_host(url)} was interrupted after "
                        f"{downloaded} bytes ({_one_line(exc) or type(exc).__name__}); run the "
                        f"same command again to resume from {part}.") from exc
                if not chunk:
                    break
                if total is not None and downloaded + len(chunk) > total:
                    # Keeping more bytes than the expected size can never give a valid file.
                    fh.close()
                    _remove_part(target)
                    raise ModelDownloadError(
                        f"The server at {url} sent at least {downloaded + len(chunk)} bytes "
                        f"for {target.name} but {total} were expected; the file was "
                        f"discarded — is the mirror serving a different file?")
                _write_all(fh, chunk)
                downloaded += len(chunk)
                bar.update(len(chunk))
                if progress_callback is not None:
                    progress_callback(downloaded, total or 0)
                needed = MIN_PROGRESS_BYTES if total is None else min(MIN_PROGRESS_BYTES, total - window_bytes)
                if downloaded - window_bytes >= needed:
                    window_start, window_bytes = time.monotonic(), downloaded
                elif time.monotonic() - window_start >= timeout:
                    raise ModelDownloadError(
                        f"The download of {target.name} from {_host(url)} stalled: only "
                        f"{downloaded - window_bytes} bytes arrived in {timeout:g} s (at least "
                        f"{needed} are needed per timeout period); run the same command again to "
                        f"resume from {part}.")
            os.fsync(fh.fileno())
    except OSError as exc:
        if _is_disk_full(exc):
            raise ModelDownloadError(
                f"Not enough disk space in {target.parent} to download {target.name}; free "
                f"some space and run again: {part} is kept and the download will resume.") from exc
        raise ModelDownloadError(
            f"Cannot write {part}: {_one_line(exc)}.") from exc
    return downloaded


def missing_default_models(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                           names: Sequence[str] = DEFAULT_MODEL_NAMES,
                           files: Sequence[ModelFile] = DEFAULT_MODEL_FILES) -> list[ModelFile]:
    """List the default models that are absent, or have the wrong size or (where pinned) SHA-256.

    Nothing is downloaded; this lets a command line explain what is missing.

    Parameters
    ----------
    models_dir : str or os.PathLike
        Root of the saved models.
    names : sequence of str
        Models to check.
    files : sequence of ModelFile
        Registry giving file names and expected sizes.

    Returns
    -------
    list of ModelFile
        Registry entries whose file is missing, of the wrong size or (where a hash is pinned) of
        the wrong content.

    Examples
    --------
    >>> [m.name for m in missing_default_models("/nonexistent", ["vocoder"])]
    ['vocoder']
    """
    missing = []
    for name in names:
        entry = _registry_entry(files, name)
        path = Path(models_dir) / DEFAULT_SUBDIR / entry.filename
        if _file_size(path) != entry.size or not _hash_matches(path, entry.sha256):
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
    """Make sure the default models exist in ``<models_dir>/default/``.

    Files of the exact expected size (and SHA-256, where pinned) are kept;
    missing ones (or ones of the wrong size, with a logged notice) are fetched,
    and a right-size file with the wrong SHA-256 is removed and fetched again. Sources, in order: the
    local folder ``source_dir``; for the encoder, the ``resemblyzer`` package
    when its bundled file has the registry's size; otherwise a download from
    ``base_url``. A wrong-size file is only replaced once the new copy is complete.

    Parameters
    ----------
    models_dir : str or os.PathLike
        Root of the saved models (``saved_models`` by default).
    names : sequence of str
        Models to ensure, any of ``"encoder"``, ``"synthesizer"``, ``"vocoder"``.
    base_url : str, optional
        Mirror to download from (``<base_url>/<filename>``). Defaults to the
        ``SV2TTS_MODELS_URL`` environment variable, then :data:`DEFAULT_BASE_URL`.
    source_dir : str or os.PathLike, optional
        Folder holding the files to copy instead of downloading. Defaults to the
        ``SV2TTS_MODELS_SOURCE`` environment variable.
    files : sequence of ModelFile
        Registry of file names and sizes (tests use small files).
    show_progress : bool
        Show tqdm progress bars for downloads.
    progress_callback : callable, optional
        ``progress_callback(downloaded, total)``, called per chunk of each download.
    timeout : float
        Connect/read timeout in seconds for downloads, in (0, :data:`MAX_TIMEOUT`]; also the period
        in which a download must make progress (see :func:`download_file`).

    Returns
    -------
    dict of str to pathlib.Path
        Path of each requested model.

    Raises
    ------
    ModelDownloadError
        When a model cannot be obtained; the message says how to get it otherwise.
    ValueError
        For a name that is not in ``files``.

    Examples
    --------
    >>> paths = ensure_default_models("saved_models", ["encoder"])  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['encoder']
    """
    entries = [_registry_entry(files, name) for name in names]
    check_timeout(timeout)  # before anything is created: a bad value is a typo, not a network problem
    base = (_env_or(base_url, MODELS_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    if base_url is not None:
        check_url(base, "models URL")
    source = _env_or(source_dir, MODELS_SOURCE_ENV)
    default_dir = Path(models_dir) / DEFAULT_SUBDIR
    try:
        default_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(
            f"Cannot create the folder {default_dir}: {_one_line(exc)}.") from exc

    paths: dict[str, Path] = {}
    for entry in entries:
        target = default_dir / entry.filename
        size = _file_size(target)
        if size == entry.size and _hash_matches(target, entry.sha256):
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
                    f"removed: {_one_line(exc)}.") from exc
        elif size is not None:
            logger.warning("%s has %d bytes instead of %d; fetching it again.",
                           target, size, entry.size)
        paths[entry.name] = _fetch(entry, target, base, source, show_progress,
                                   progress_callback, timeout)
        # Same final assertion as upstream: a present file of the exact size.
        if _file_size(target) != entry.size or not _hash_matches(target, entry.sha256):
            raise ModelDownloadError(
                f"{target} is not {entry.size} bytes after fetching it: "
                f"{_alternatives(base + '/' + entry.filename, target)}.")
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
                    f"{entry.filename}; {_alternatives(url, target)}.")
            logger.info("Copying %s from %s.", entry.filename, source_dir)
            return _copy_atomically(source, target, entry.size, entry.sha256)
        if entry.name != "encoder":
            raise ModelDownloadError(
                f"{entry.filename} is not in the local models folder {source_dir} "
                f"(--models_source / {MODELS_SOURCE_ENV}): put it there, or "
                f"{_alternatives(url, target)}.")
    if entry.name == "encoder":
        bundled = resemblyzer_encoder_path()
        # Only when it is the very file the registry asks for (tests use small encoders).
        if bundled is not None and _file_size(bundled) == entry.size:
            logger.info("Copying encoder.pt from the resemblyzer package (%s).", bundled)
            return _copy_atomically(bundled, target, entry.size, entry.sha256)
        if bundled is None:
            logger.info("resemblyzer is not installed (pip install --no-deps resemblyzer "
                        "gives the encoder offline); downloading encoder.pt instead.")
    logger.info("Downloading %s from %s.", entry.filename, url)
    return download_file(url, target, entry.size, timeout=timeout, show_progress=show_progress,
                         progress_callback=progress_callback, sha256=entry.sha256)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m utils.default_models``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        0 on success, 1 when a model could not be obtained, 130 if interrupted.

    Examples
    --------
    >>> main(["--models_dir", "saved_models", "encoder"])  # doctest: +SKIP
    0
    """
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
