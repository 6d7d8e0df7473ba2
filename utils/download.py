"""Fetch one file over HTTP(S) or ``file://``, or copy it, so that a final file is always complete.

Every failure is a one-line :class:`ModelDownloadError` saying how to get the file otherwise."""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import math
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from utils.atomic_write import open_temp_file
from utils.errors import UserError, one_line
from utils.progress import ProgressCallback

logger = logging.getLogger(__name__)

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
PART_SUFFIX = ".part"


class ModelDownloadError(UserError, RuntimeError):
    """A default model could not be obtained; the message says what failed and how to get the file otherwise."""


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def _validator_path(target: Path) -> Path:
    # Beside the .part: the server's ETag or Last-Modified for the bytes it holds (for If-Range).
    return target.with_name(target.name + PART_SUFFIX + ".validator")


def _remove_part(target: Path) -> None:
    _part_path(target).unlink(missing_ok=True)
    _validator_path(target).unlink(missing_ok=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Lower-case hex SHA-256 of a file.

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


def hash_matches(path: Path, expected: str | None) -> bool:
    if expected is None:
        return True
    try:
        return file_sha256(path) == expected.lower()
    except OSError:
        return False


def file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _write_error(exc: OSError, disk_full: str, other: str) -> ModelDownloadError:
    """The error to raise for a failed write: ``disk_full`` when the disk is, else ``other`` and the reason."""
    return ModelDownloadError(disk_full if _is_disk_full(exc) else f"{other}: {one_line(exc)}.")


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


def fetch_advice(url: str, target: Path) -> str:
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
    """``url`` if it is a well-formed http(s):// or file:// URL, else a one-sentence :class:`ModelDownloadError`.

    >>> check_url("https://huggingface.co/CorentinJ/SV2TTS/resolve/main")
    'https://huggingface.co/CorentinJ/SV2TTS/resolve/main'
    >>> check_url("http://[::1")
    Traceback (most recent call last):
      ...
    utils.download.ModelDownloadError: The download URL 'http://[::1' is malformed (Invalid IPv6 URL); give an http://, https:// or file:// URL.
    """  # noqa: E501 (a doctest's expected output is one line)
    hint = "give an http://, https:// or file:// URL"
    try:
        parts = urllib.parse.urlsplit(str(url))
        parts.port  # parsed lazily: an out-of-range or non-numeric port raises only here
    except ValueError as exc:
        raise ModelDownloadError(f"The {what} {url!r} is malformed ({one_line(exc)}); {hint}.") from None
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ModelDownloadError(f"The {what} {url!r} is not an http://, https:// or file:// URL; {hint}.")
    if parts.scheme.lower() != "file" and not parts.hostname:
        raise ModelDownloadError(f"The {what} {url!r} names no host; {hint}.")
    return url


def check_timeout(timeout: float) -> float:
    """``timeout`` if it is finite, above 0 and at most :data:`MAX_TIMEOUT`, else :class:`ModelDownloadError`.

    >>> check_timeout(30)
    30
    >>> check_timeout(float("inf"))
    Traceback (most recent call last):
      ...
    utils.download.ModelDownloadError: The timeout must be above 0 and at most 3600 seconds, not inf.
    """
    try:
        valid = math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT
    except TypeError:
        valid = False
    if not valid:
        raise ModelDownloadError(f"The timeout must be above 0 and at most {MAX_TIMEOUT:g} seconds, not {timeout!r}.")
    return timeout


def setting_or_env(value: str | os.PathLike | None, env_name: str) -> str | None:
    if value is not None and str(value) != "":
        return str(value)
    # An empty variable is treated as unset so `VAR= cmd` can disable it.
    return os.environ.get(env_name) or None


def _check_free_space(directory: Path, needed: int, what: str) -> None:
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # Unknown: let the write itself fail if space runs out.
    if free < needed:
        raise ModelDownloadError(
            f"Not enough disk space in {directory}: {what} needs {needed} more bytes "
            f"but only {free} are free.")


def copy_atomically(source: Path, target: Path, expected_size: int | None,
                     sha256: str | None = None) -> Path:
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
        if not hash_matches(tmp, sha256):
            raise ModelDownloadError(
                f"{source} has the right size but not the published SHA-256 of {target.name}; "
                f"it is a different or damaged file and was not copied.")
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(exc, f"Not enough disk space in {target.parent} to copy {target.name} "
                                f"({expected_size or 'unknown'} bytes needed).",
                           f"Cannot copy {source} to {target}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _open_response(url: str, target: Path, offset: int, expected_size: int | None,
                   timeout: float) -> tuple[http.client.HTTPResponse, int, int | None]:
    """Open ``url``, resuming at ``offset`` if the server allows it; return the response, the offset the
    body starts at and the full size the server announced (``None`` if unknown)."""
    alternatives = fetch_advice(url, target)
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
            code, reason = exc.code, one_line(exc.reason)
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
                why = one_line(reason) or type(reason).__name__
            raise ModelDownloadError(
                f"Cannot reach {_host(url)} to download {target.name} ({why}): "
                f"{alternatives}.") from exc
        except ValueError as exc:
            raise ModelDownloadError(
                f"Invalid download URL {url!r} ({one_line(exc)}): {alternatives}.") from exc

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
    """Record the ``ETag`` (or ``Last-Modified``) of a fresh download for a later ``If-Range``."""
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
    """Download ``url`` to ``target`` with resume, size and hash checks and an atomic rename.

    ``expected_size`` (bytes) and ``sha256`` are checked when given; ``timeout`` bounds connecting and each
    read and is also the period in which a transfer must progress. :class:`ModelDownloadError` for any
    failure; an interrupted, stalled or disk-full transfer keeps its ``.part`` for resuming
    (docs/design.md)."""
    check_url(url)
    check_timeout(timeout)
    target = Path(target)
    part = _part_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(
            f"Cannot create the folder {target.parent}: {one_line(exc)}.") from exc

    offset = file_size(part) or 0
    if expected_size is not None and offset > expected_size:
        logger.warning("%s is larger than the expected %d bytes; restarting the download.",
                       part, expected_size)
        _remove_part(target)
        offset = 0
    if expected_size is not None and offset == expected_size and offset > 0:
        # A previous run received every byte but stopped before the rename.
        if hash_matches(part, sha256):
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
    if not hash_matches(part, sha256):
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
    """Append the response body to ``<target>.part``; its final size. Gives up on a stall."""
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
                        f"{downloaded} bytes ({one_line(exc) or type(exc).__name__}); run the "
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
        raise _write_error(exc, f"Not enough disk space in {target.parent} to download {target.name}; free "
                                f"some space and run again: {part} is kept and the download will resume.",
                           f"Cannot write {part}") from exc
    return downloaded


