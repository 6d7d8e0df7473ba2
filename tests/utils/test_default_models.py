"""Tests for utils.default_models against a real HTTP server on 127.0.0.1.

The served files are genuine torch checkpoints in RTVC's layout
(``{"model_state": ..., "optimizer_state": ...}``) of small modules, and a
registry with their real byte sizes stands in for the published one.
"""

from __future__ import annotations

import http.server
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from utils import download
from utils.default_models import (
    DEFAULT_MODEL_FILES,
    ModelFile,
    default_model_path,
    ensure_default_models,
    install_encoder_from_resemblyzer,
    missing_default_models,
    resemblyzer_encoder_path,
    resolve_model,
)
from utils.download import MODELS_SOURCE_ENV, MODELS_URL_ENV, ModelDownloadError, download_file

REPO_ROOT = Path(__file__).resolve().parents[2]
RESEMBLYZER_ENCODER_SIZE = 17_090_379


# ----------------------------------------------------------------------------
# Checkpoints in RTVC's format
# ----------------------------------------------------------------------------

class _TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.linear = nn.Linear(16, 8)
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.linear(out[:, -1]) * self.similarity_weight + self.similarity_bias


def _checkpoint(module: nn.Module, path: Path, inputs: torch.Tensor, **extra) -> None:
    """Save ``module`` after one real Adam step, as RTVC's training does."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    out = module(inputs)
    if isinstance(out, tuple):
        out = out[0]
    out.pow(2).mean().backward()
    optimizer.step()
    torch.save({**extra, "model_state": module.state_dict(),
                "optimizer_state": optimizer.state_dict()}, path)


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> tuple[Path, tuple[ModelFile, ...]]:
    """A folder of small real checkpoints and a registry with their sizes."""
    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(1234)
    _checkpoint(_TinyEncoder(), root / "encoder.pt", torch.randn(2, 5, 8), step=1)
    _checkpoint(nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 20)),
                root / "synthesizer.pt", torch.randn(3, 12))
    _checkpoint(nn.GRU(6, 24, batch_first=True), root / "vocoder.pt", torch.randn(2, 4, 6))
    files = tuple(ModelFile(name, f"{name}.pt", (root / f"{name}.pt").stat().st_size, "tiny")
                  for name in ("encoder", "synthesizer", "vocoder"))
    # Large enough that a cut after 1000 bytes really is a partial file.
    assert all(f.size > 5000 for f in files)
    assert len({f.size for f in files}) == 3
    return root, files


# ----------------------------------------------------------------------------
# A small, real HTTP server
# ----------------------------------------------------------------------------

@dataclass
class Behaviour:
    """Knobs a test turns to make the server misbehave."""

    ignore_range: bool = False          # answer 200 with the whole file to a Range request
    cut_after: int | None = None        # close the connection after this many body bytes
    advertised_length: int | None = None  # lie in Content-Length
    omit_length: bool = False           # send no Content-Length at all
    force_status: int | None = None     # e.g. 404 for every request
    trickle_every: float | None = None  # send the body trickle_bytes at a time, one write per this many seconds...
    trickle_bytes: int = 1
    trickle_for: float = 8.0            # ...for at most this long, then close (old code must not hang)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    etag: str | None = None             # send this ETag and honour If-Range against it
    if_ranges: list[str | None] = field(default_factory=list)  # the If-Range header of each request


@dataclass
class Server:
    url: str
    root: Path
    behaviour: Behaviour


def _make_handler(root: Path, behaviour: Behaviour, lock: threading.Lock):
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so closing the socket ends a body.
        protocol_version = "HTTP/1.0"

        def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            with lock:
                behaviour.requests.append((self.path, range_header))
                behaviour.if_ranges.append(if_range)
            if behaviour.force_status is not None:
                self.send_error(behaviour.force_status)
                return
            name = self.path.lstrip("/")
            path = root / name
            if "/" in name or ".." in name or not path.is_file():
                self.send_error(404, "File not found")
                return
            data = path.read_bytes()
            status, start = 200, 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            # RFC 9110: a Range whose If-Range does not match the current file gets the whole file.
            stale = if_range is not None and if_range != behaviour.etag
            if match and not behaviour.ignore_range and not stale:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            if behaviour.etag is not None:
                self.send_header("ETag", behaviour.etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            if not behaviour.omit_length:
                length = (behaviour.advertised_length if behaviour.advertised_length is not None
                          else len(body))
                self.send_header("Content-Length", str(length))
            self.end_headers()
            if behaviour.cut_after is not None:
                body = body[:behaviour.cut_after]
            interval = behaviour.trickle_every  # read once: a test may change it while this runs
            if interval is not None:
                stop = time.monotonic() + behaviour.trickle_for
                for start in range(0, len(body), behaviour.trickle_bytes):
                    if time.monotonic() > stop:
                        break
                    try:
                        self.wfile.write(body[start:start + behaviour.trickle_bytes])
                        self.wfile.flush()
                    except OSError:  # the client gave up: what a stall check should do
                        return
                    time.sleep(interval)
                return
            self.wfile.write(body)
            self.wfile.flush()

    return Handler


@pytest.fixture
def server(served) -> Server:
    root, _ = served
    behaviour = Behaviour()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), _make_handler(root, behaviour, threading.Lock()))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, behaviour)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def dead_url() -> str:
    """URL of a port that was just closed, so connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # A developer's own mirror settings must not leak into the tests.
    monkeypatch.delenv(MODELS_URL_ENV, raising=False)
    monkeypatch.delenv(MODELS_SOURCE_ENV, raising=False)


def _entry(files, name) -> ModelFile:
    return next(f for f in files if f.name == name)


# ----------------------------------------------------------------------------
# Registry and paths
# ----------------------------------------------------------------------------

def test_registry_matches_published_sizes():
    sizes = {f.name: (f.filename, f.size) for f in DEFAULT_MODEL_FILES}
    assert sizes == {"encoder": ("encoder.pt", 17_090_379),
                     "synthesizer": ("synthesizer.pt", 370_554_559),
                     "vocoder": ("vocoder.pt", 53_845_290)}
    with pytest.raises(Exception):
        DEFAULT_MODEL_FILES[0].size = 1  # frozen


def test_default_model_path(tmp_path):
    assert default_model_path(tmp_path, "vocoder") == tmp_path / "default" / "vocoder.pt"
    assert default_model_path("saved_models", "encoder") == Path("saved_models/default/encoder.pt")


def test_missing_default_models(tmp_path, served):
    root, files = served
    assert [f.name for f in missing_default_models(tmp_path, files=files)] == \
        ["encoder", "synthesizer", "vocoder"]
    (tmp_path / "default").mkdir()
    shutil.copy(root / "vocoder.pt", tmp_path / "default" / "vocoder.pt")
    (tmp_path / "default" / "encoder.pt").write_bytes(b"short")
    assert [f.name for f in missing_default_models(tmp_path, files=files)] == \
        ["encoder", "synthesizer"]
    assert missing_default_models(tmp_path, ["vocoder"], files=files) == []
    with pytest.raises(ValueError, match="(?i)unknown model name"):
        missing_default_models(tmp_path, ["nope"], files=files)


# ----------------------------------------------------------------------------
# Downloads
# ----------------------------------------------------------------------------

def test_full_download_loads_and_matches(tmp_path, server, served):
    root, files = served
    calls: list[tuple[int, int]] = []
    paths = ensure_default_models(tmp_path, ("synthesizer", "vocoder"), base_url=server.url,
                                  files=files, show_progress=False,
                                  progress_callback=lambda d, t: calls.append((d, t)))
    assert set(paths) == {"synthesizer", "vocoder"}
    for name in ("synthesizer", "vocoder"):
        path = paths[name]
        assert path == tmp_path / "default" / f"{name}.pt"
        assert path.stat().st_size == _entry(files, name).size
        assert path.read_bytes() == (root / f"{name}.pt").read_bytes()
        assert not path.with_name(path.name + ".part").exists()
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        assert set(checkpoint) == {"model_state", "optimizer_state"}
        assert set(checkpoint["optimizer_state"]) == {"state", "param_groups"}
    assert [p for p, _ in server.behaviour.requests] == ["/synthesizer.pt", "/vocoder.pt"]
    assert all(r is None for _, r in server.behaviour.requests)
    # Progress is monotonic per file and ends at the full size.
    assert calls[-1] == (_entry(files, "vocoder").size,) * 2
    assert (_entry(files, "synthesizer").size,) * 2 in calls


def test_download_file_with_progress_bar(tmp_path, server, served, capsys):
    root, files = served
    target = tmp_path / "sub" / "vocoder.pt"
    download_file(f"{server.url}/vocoder.pt", target, _entry(files, "vocoder").size,
                  chunk_size=4096)
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()
    assert "vocoder.pt" in capsys.readouterr().err  # tqdm bar on stderr


def test_interrupted_download_resumes_with_range(tmp_path, server, served):
    root, files = served
    size = _entry(files, "synthesizer").size
    target = tmp_path / "default" / "synthesizer.pt"
    part = target.with_name("synthesizer.pt.part")

    server.behaviour.cut_after = 1000
    with pytest.raises(ModelDownloadError, match="resume") as info:
        ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=files,
                              show_progress=False)
    assert "\n" not in str(info.value)
    assert not target.exists()
    assert part.stat().st_size == 1000
    assert part.read_bytes() == (root / "synthesizer.pt").read_bytes()[:1000]

    server.behaviour.cut_after = None
    paths = ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=files,
                                  show_progress=False)
    assert server.behaviour.requests[-1] == ("/synthesizer.pt", "bytes=1000-")
    assert paths["synthesizer"].stat().st_size == size
    assert paths["synthesizer"].read_bytes() == (root / "synthesizer.pt").read_bytes()
    assert not part.exists()
    torch.load(paths["synthesizer"], weights_only=True)


def test_server_ignoring_range_restarts_cleanly(tmp_path, server, served, caplog):
    root, files = served
    target = tmp_path / "vocoder.pt"
    part = tmp_path / "vocoder.pt.part"
    part.write_bytes(b"\xff" * 777)  # garbage that must not survive
    server.behaviour.ignore_range = True
    with caplog.at_level(logging.WARNING, logger="utils.default_models"):
        download_file(f"{server.url}/vocoder.pt", target, _entry(files, "vocoder").size,
                      show_progress=False)
    assert server.behaviour.requests == [("/vocoder.pt", "bytes=777-")]
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()
    assert not part.exists()
    assert "does not support resuming" in caplog.text


def test_oversized_part_restarts_without_range(tmp_path, server, served):
    root, files = served
    size = _entry(files, "vocoder").size
    target = tmp_path / "vocoder.pt"
    (tmp_path / "vocoder.pt.part").write_bytes(b"\0" * (size + 10))
    download_file(f"{server.url}/vocoder.pt", target, size, show_progress=False)
    assert server.behaviour.requests == [("/vocoder.pt", None)]
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()


def test_complete_part_is_finalised_without_request(tmp_path, server, served):
    root, files = served
    target = tmp_path / "vocoder.pt"
    shutil.copy(root / "vocoder.pt", tmp_path / "vocoder.pt.part")
    download_file(f"{server.url}/vocoder.pt", target, _entry(files, "vocoder").size,
                  show_progress=False)
    assert server.behaviour.requests == []
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()


def test_unsatisfiable_range_restarts(tmp_path, server, served):
    """Without an expected size, a .part as long as the file gets a 416 and a restart."""
    root, _ = served
    target = tmp_path / "vocoder.pt"
    shutil.copy(root / "vocoder.pt", tmp_path / "vocoder.pt.part")
    download_file(f"{server.url}/vocoder.pt", target, None, show_progress=False)
    size = (root / "vocoder.pt").stat().st_size
    assert server.behaviour.requests == [("/vocoder.pt", f"bytes={size}-"), ("/vocoder.pt", None)]
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()


def test_size_mismatch_from_content_length(tmp_path, server, served):
    _, files = served
    real = _entry(files, "vocoder").size
    wrong = tuple(ModelFile(f.name, f.filename, f.size - 7, f.description) for f in files)
    with pytest.raises(ModelDownloadError) as info:
        ensure_default_models(tmp_path, ("vocoder",), base_url=server.url, files=wrong,
                              show_progress=False)
    message = str(info.value)
    assert str(real) in message and str(real - 7) in message
    assert "vocoder.pt" in message and "different file" in message
    assert "\n" not in message
    assert not (tmp_path / "default" / "vocoder.pt").exists()
    assert not (tmp_path / "default" / "vocoder.pt.part").exists()


def test_size_mismatch_without_content_length(tmp_path, server, served):
    """No Content-Length: the size is checked after the body and the .part is deleted."""
    _, files = served
    real = _entry(files, "vocoder").size
    server.behaviour.omit_length = True
    for expected in (real + 123, real - 123):
        with pytest.raises(ModelDownloadError) as info:
            download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt", expected,
                          show_progress=False)
        assert str(expected) in str(info.value)
        assert "vocoder.pt" in str(info.value)
        assert not (tmp_path / "vocoder.pt").exists()
        assert not (tmp_path / "vocoder.pt.part").exists()
    with pytest.raises(ModelDownloadError, match=f"has {real} bytes but {real + 1}"):
        download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt", real + 1,
                      show_progress=False)


def test_advertised_wrong_size_is_rejected_before_body(tmp_path, server, served):
    _, files = served
    size = _entry(files, "vocoder").size
    server.behaviour.advertised_length = size * 2
    with pytest.raises(ModelDownloadError,
                       match=rf"offers vocoder\.pt with {size * 2} bytes but {size} were expected"):
        download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt", size,
                      show_progress=False)
    assert not (tmp_path / "vocoder.pt.part").exists()
    assert not (tmp_path / "vocoder.pt").exists()


def test_server_down_gives_clear_error_quickly(tmp_path, dead_url, served):
    _, files = served
    start = time.monotonic()
    with pytest.raises(ModelDownloadError) as info:
        ensure_default_models(tmp_path, ("synthesizer",), base_url=dead_url, files=files,
                              show_progress=False, timeout=2)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Cannot reach 127.0.0.1")
    assert f"{dead_url}/synthesizer.pt" in message
    assert str(tmp_path / "default" / "synthesizer.pt") in message
    for hint in ("--models_url", MODELS_URL_ENV, "--models_source", MODELS_SOURCE_ENV,
                 "train your own"):
        assert hint in message


def test_silent_server_times_out(tmp_path):
    """A server that accepts connections but never answers hits the timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/vocoder.pt"
        start = time.monotonic()
        with pytest.raises(ModelDownloadError, match="timed out after 0.5 s") as info:
            download_file(url, tmp_path / "vocoder.pt", 10, timeout=0.5, show_progress=False)
        assert time.monotonic() - start < 5
        assert "--models_url" in str(info.value)


def test_http_404_is_clear(tmp_path, server, served):
    _, files = served
    server.behaviour.force_status = 404
    with pytest.raises(ModelDownloadError) as info:
        ensure_default_models(tmp_path, ("vocoder",), base_url=server.url, files=files,
                              show_progress=False)
    message = str(info.value)
    assert "HTTP 404" in message and f"{server.url}/vocoder.pt" in message
    assert "--models_source" in message and "\n" not in message
    assert not (tmp_path / "default" / "vocoder.pt").exists()


def test_missing_file_on_mirror_is_404(tmp_path, server):
    with pytest.raises(ModelDownloadError, match="HTTP 404"):
        download_file(f"{server.url}/nothing.pt", tmp_path / "nothing.pt", 10,
                      show_progress=False)


def test_right_size_file_is_not_downloaded_again(tmp_path, server, served):
    root, files = served
    (tmp_path / "default").mkdir()
    for name in ("synthesizer", "vocoder"):
        shutil.copy(root / f"{name}.pt", tmp_path / "default" / f"{name}.pt")
    paths = ensure_default_models(tmp_path, ("synthesizer", "vocoder"), base_url=server.url,
                                  files=files, show_progress=False)
    assert server.behaviour.requests == []
    assert paths["vocoder"] == tmp_path / "default" / "vocoder.pt"


def test_wrong_size_file_is_replaced(tmp_path, server, served, caplog):
    root, files = served
    target = tmp_path / "default" / "vocoder.pt"
    target.parent.mkdir()
    target.write_bytes(b"truncated checkpoint")
    with caplog.at_level(logging.WARNING, logger="utils.default_models"):
        ensure_default_models(tmp_path, ("vocoder",), base_url=server.url, files=files,
                              show_progress=False)
    assert server.behaviour.requests == [("/vocoder.pt", None)]
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()
    assert "fetching it again" in caplog.text


def test_mirror_from_environment(tmp_path, server, served, monkeypatch):
    root, files = served
    monkeypatch.setenv(MODELS_URL_ENV, server.url + "/")  # trailing slash tolerated
    paths = ensure_default_models(tmp_path, ("synthesizer",), files=files, show_progress=False)
    assert server.behaviour.requests == [("/synthesizer.pt", None)]
    assert paths["synthesizer"].read_bytes() == (root / "synthesizer.pt").read_bytes()


def test_encoder_downloaded_when_registry_differs_from_resemblyzer(tmp_path, server, served):
    root, files = served
    paths = ensure_default_models(tmp_path, ("encoder",), base_url=server.url, files=files,
                                  show_progress=False)
    assert server.behaviour.requests == [("/encoder.pt", None)]
    checkpoint = torch.load(paths["encoder"], weights_only=True)
    assert set(checkpoint) == {"step", "model_state", "optimizer_state"}


def test_file_url_mirror(tmp_path, served):
    root, files = served
    paths = ensure_default_models(tmp_path, ("vocoder",), base_url=root.as_uri(), files=files,
                                  show_progress=False)
    assert paths["vocoder"].read_bytes() == (root / "vocoder.pt").read_bytes()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux /dev/full")
def test_disk_full_keeps_part(tmp_path, server, served):
    """Writes to /dev/full fail with ENOSPC, exactly like a full disk."""
    _, files = served
    part = tmp_path / "vocoder.pt.part"
    part.symlink_to("/dev/full")
    with pytest.raises(ModelDownloadError, match="Not enough disk space in") as info:
        download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt",
                      _entry(files, "vocoder").size, show_progress=False)
    assert "resume" in str(info.value)
    assert part.is_symlink()
    assert not (tmp_path / "vocoder.pt").exists()


# ----------------------------------------------------------------------------
# Local folder
# ----------------------------------------------------------------------------

def test_local_source_dir_copy(tmp_path, served, dead_url):
    root, files = served
    paths = ensure_default_models(tmp_path / "models", base_url=dead_url, source_dir=root,
                                  files=files, show_progress=False)
    assert set(paths) == {"encoder", "synthesizer", "vocoder"}
    for name, path in paths.items():
        assert path.read_bytes() == (root / f"{name}.pt").read_bytes()
        torch.load(path, weights_only=True)
    assert list((tmp_path / "models" / "default").glob(".*tmp")) == []


def test_local_source_from_environment(tmp_path, served, dead_url, monkeypatch):
    root, files = served
    monkeypatch.setenv(MODELS_SOURCE_ENV, str(root))
    paths = ensure_default_models(tmp_path, ("vocoder",), base_url=dead_url, files=files,
                                  show_progress=False)
    assert paths["vocoder"].read_bytes() == (root / "vocoder.pt").read_bytes()


def test_local_source_missing_or_wrong_file(tmp_path, served, dead_url):
    root, files = served
    source = tmp_path / "src"
    source.mkdir()
    with pytest.raises(ModelDownloadError, match="not in the local models folder") as info:
        ensure_default_models(tmp_path / "m", ("vocoder",), base_url=dead_url,
                              source_dir=source, files=files, show_progress=False)
    assert str(source) in str(info.value)
    (source / "vocoder.pt").write_bytes(b"x" * 10)
    with pytest.raises(ModelDownloadError,
                       match=rf"has 10 bytes but {_entry(files, 'vocoder').size} were expected"):
        ensure_default_models(tmp_path / "m", ("vocoder",), base_url=dead_url,
                              source_dir=source, files=files, show_progress=False)
    assert not (tmp_path / "m" / "default" / "vocoder.pt").exists()


# ----------------------------------------------------------------------------
# Encoder from resemblyzer
# ----------------------------------------------------------------------------

needs_resemblyzer = pytest.mark.skipif(
    resemblyzer_encoder_path() is None,
    reason="resemblyzer is not installed (pip install --no-deps resemblyzer)")


@needs_resemblyzer
def test_resolve_model_installs_the_missing_encoder_from_resemblyzer(tmp_path):
    installed = resolve_model("encoder", tmp_path, shipped_dir=None)
    assert installed.source == "installed" and installed.path == tmp_path / "default" / "encoder.pt"
    assert installed.path.read_bytes() == resemblyzer_encoder_path().read_bytes()
    assert resolve_model("encoder", tmp_path, shipped_dir=None).source == "downloaded"
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o500)
    if not os.access(read_only, os.W_OK):  # root writes anywhere
        assert resolve_model("encoder", read_only, shipped_dir=None).source == "resemblyzer"


@needs_resemblyzer
def test_encoder_from_resemblyzer(tmp_path):
    path = install_encoder_from_resemblyzer(tmp_path)
    assert path == tmp_path / "default" / "encoder.pt"
    assert path.stat().st_size == RESEMBLYZER_ENCODER_SIZE
    assert path.read_bytes() == resemblyzer_encoder_path().read_bytes()
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    print("resemblyzer pretrained.pt keys:", sorted(checkpoint))
    assert set(checkpoint) == {"step", "model_state", "optimizer_state"}
    assert checkpoint["step"] == 1_564_501
    assert checkpoint["model_state"]["lstm.weight_ih_l0"].shape == (4 * 256, 40)
    assert checkpoint["model_state"]["linear.weight"].shape == (256, 256)


@needs_resemblyzer
def test_default_encoder_is_offline(tmp_path, dead_url):
    paths = ensure_default_models(tmp_path, ("encoder",), base_url=dead_url,
                                  show_progress=False)
    assert paths["encoder"].stat().st_size == RESEMBLYZER_ENCODER_SIZE
    assert missing_default_models(tmp_path, ("encoder",)) == []


@needs_resemblyzer
def test_locating_resemblyzer_does_not_import_it(tmp_path):
    code = ("import sys; import utils.default_models as m; "
            f"m.install_encoder_from_resemblyzer({str(tmp_path)!r}); "
            "assert 'resemblyzer' not in sys.modules and 'librosa' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=120)


def test_encoder_without_resemblyzer(tmp_path, monkeypatch):
    # None in sys.modules is Python's own way of marking a module unavailable.
    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    assert resemblyzer_encoder_path() is None
    with pytest.raises(ModelDownloadError,
                       match=r"pip install --no-deps resemblyzer"):
        install_encoder_from_resemblyzer(tmp_path)


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (MODELS_URL_ENV, MODELS_SOURCE_ENV)}
    return subprocess.run([sys.executable, "-m", "utils.default_models", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_dead_url_exits_1_with_one_line(tmp_path, dead_url):
    result = _cli("--models_dir", str(tmp_path), "--models_url", dead_url, "--timeout", "2",
                  "vocoder")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "Cannot reach 127.0.0.1" in errors[0] and "--models_url" in errors[0]


def test_cli_size_mismatch_exits_1(tmp_path, server):
    # The tiny served vocoder is not the published 53,845,290-byte one.
    result = _cli("--models_dir", str(tmp_path), "--models_url", server.url, "vocoder")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "but 53845290 were expected" in result.stderr


def test_cli_unknown_name(tmp_path):
    result = _cli("--models_dir", str(tmp_path), "wavenet")
    assert result.returncode == 2
    assert "unknown model name" in result.stderr


@needs_resemblyzer
def test_cli_encoder_offline(tmp_path, dead_url):
    result = _cli("--models_dir", str(tmp_path), "--models_url", dead_url, "encoder")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"encoder: {tmp_path / 'default' / 'encoder.pt'}"


# ----------------------------------------------------------------------------
# Malformed values and stalled transfers (issue 17)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("http://[::1", "is malformed (Invalid IPv6 URL)"),
    ("http://127.0.0.1:99999", "is malformed (Port out of range"),
    ("ftp://example.org", "is not an http://, https:// or file:// URL"),
    ("http:///vocoder.pt", "names no host"),
])
def test_malformed_urls_are_one_error(tmp_path, served, url, expected):
    _, files = served
    with pytest.raises(ModelDownloadError, match=re.escape(expected)) as info:
        download_file(url + "/vocoder.pt", tmp_path / "vocoder.pt", 10, show_progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelDownloadError, match=re.escape(expected)):
        ensure_default_models(tmp_path, ["vocoder"], base_url=url, files=files, show_progress=False)
    assert not (tmp_path / "vocoder.pt.part").exists()


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, float("nan"), 0, -1, 3601])
def test_non_finite_or_absurd_timeouts_are_one_error(tmp_path, server, served, timeout):
    _, files = served
    with pytest.raises(ModelDownloadError, match="timeout must be above 0 and at most 3600 seconds"):
        ensure_default_models(tmp_path, ["vocoder"], base_url=server.url, files=files, show_progress=False,
                              timeout=timeout)
    with pytest.raises(ModelDownloadError, match="timeout must be above 0"):
        download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt", None, timeout=timeout,
                      show_progress=False)
    assert server.behaviour.requests == []  # refused before any connection


def test_trickling_server_is_given_up_after_the_timeout(tmp_path, server, served):
    """One byte every 50 ms keeps every socket read alive; the download must still stop."""
    _, files = served
    entry = _entry(files, "vocoder")
    server.behaviour.trickle_every = 0.05
    start = time.monotonic()
    with pytest.raises(ModelDownloadError, match="stalled: only \\d+ bytes arrived in 0.5 s") as info:
        download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt", entry.size, timeout=0.5,
                      show_progress=False)
    assert time.monotonic() - start < 3  # about one timeout period, not the whole trickle
    assert "run the same command again to resume" in str(info.value)
    part = tmp_path / "vocoder.pt.part"
    assert part.exists() and 0 < part.stat().st_size < entry.size  # kept for resuming
    server.behaviour.trickle_every = None
    assert download_file(f"{server.url}/vocoder.pt", tmp_path / "vocoder.pt", entry.size,
                         show_progress=False).stat().st_size == entry.size


def test_slow_but_steady_download_is_not_a_stall(tmp_path, server, served, monkeypatch):
    """A transfer that takes several timeout periods but brings enough bytes in each one completes."""
    _, files = served
    entry = _entry(files, "encoder")  # 61 kB: about 3 s at 1 kB per 50 ms, six timeout periods
    monkeypatch.setattr(download, "MIN_PROGRESS_BYTES", 4096)  # 1 kB per 50 ms is 10 kB per period
    server.behaviour.trickle_every, server.behaviour.trickle_bytes = 0.05, 1024
    path = download_file(f"{server.url}/encoder.pt", tmp_path / "encoder.pt", entry.size, timeout=0.5,
                         show_progress=False)
    assert path.read_bytes() == (server.root / "encoder.pt").read_bytes()


@pytest.mark.parametrize("args, expected", [
    (("--models_url", "http://[::1"), "Invalid IPv6 URL"),
    (("--timeout", "inf"), "not inf"),
    (("--timeout", "1e300"), "not 1e+300"),
    (("--timeout", "0"), "not 0.0"),
])
def test_cli_bad_url_or_timeout_exits_1_with_one_line(tmp_path, args, expected):
    result = _cli("--models_dir", str(tmp_path), *args, "vocoder", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


# ----------------------------------------------------------------------------
# Issue 18: pinned SHA-256, wrong files refused and fetched again, If-Range
# ----------------------------------------------------------------------------

@pytest.fixture
def pinned(served) -> tuple[ModelFile, ...]:
    import dataclasses

    root, files = served
    return tuple(dataclasses.replace(f, sha256=download.file_sha256(root / f.filename)) for f in files)


def test_published_encoder_hash_is_the_resemblyzer_files():
    entry = _entry(DEFAULT_MODEL_FILES, "encoder")
    assert entry.sha256 and re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    bundled = resemblyzer_encoder_path()
    if bundled is None:
        pytest.skip("resemblyzer is not installed")
    assert download.file_sha256(bundled) == entry.sha256
    # No invented hashes: the other two are unknown offline and stay size-checked only.
    assert _entry(DEFAULT_MODEL_FILES, "synthesizer").sha256 is None
    assert _entry(DEFAULT_MODEL_FILES, "vocoder").sha256 is None


@pytest.fixture
def impostor_server(tmp_path, served) -> Server:
    """Serves an HTML page padded to each real file's exact size."""
    root, files = served
    fake_root = tmp_path / "impostor"
    fake_root.mkdir()
    for f in files:
        page = b"<html><body>Please log in to download this file.</body></html>"
        (fake_root / f.filename).write_bytes(page + b" " * (f.size - len(page)))
    behaviour = Behaviour()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(fake_root, behaviour, threading.Lock()))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", fake_root, behaviour)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_right_size_wrong_download_is_refused_and_removed(tmp_path, impostor_server, pinned):
    with pytest.raises(ModelDownloadError, match="right size but not the published SHA-256") as info:
        ensure_default_models(tmp_path, ("vocoder",), base_url=impostor_server.url, files=pinned,
                              show_progress=False)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in (tmp_path / "default").iterdir()) == []  # neither the file nor a .part


def test_right_size_wrong_file_in_place_is_removed_and_downloaded_again(tmp_path, server, served, pinned, caplog):
    root, _ = served
    target = tmp_path / "default" / "vocoder.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"<html>" + b" " * (_entry(pinned, "vocoder").size - 6))
    assert [m.name for m in missing_default_models(tmp_path, ["vocoder"], pinned)] == ["vocoder"]
    with caplog.at_level(logging.WARNING, logger="utils.default_models"):
        ensure_default_models(tmp_path, ("vocoder",), base_url=server.url, files=pinned, show_progress=False)
    assert "SHA-256" in caplog.text
    assert target.read_bytes() == (root / "vocoder.pt").read_bytes()
    assert server.behaviour.requests == [("/vocoder.pt", None)]
    assert missing_default_models(tmp_path, ["vocoder"], pinned) == []


def test_complete_part_with_the_wrong_hash_is_downloaded_again(tmp_path, server, served, pinned):
    root, _ = served
    entry = _entry(pinned, "synthesizer")
    part = tmp_path / "default" / "synthesizer.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * entry.size)
    ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=pinned, show_progress=False)
    assert (tmp_path / "default" / "synthesizer.pt").read_bytes() == (root / "synthesizer.pt").read_bytes()
    assert not part.exists()


def test_resume_sends_if_range_and_a_changed_file_is_downloaded_whole(tmp_path, server, served, pinned, caplog):
    root, _ = served
    target = tmp_path / "default" / "synthesizer.pt"
    server.behaviour.etag = '"v1"'
    server.behaviour.cut_after = 1000
    with pytest.raises(ModelDownloadError, match="resume"):
        ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=pinned, show_progress=False)
    server.behaviour.cut_after = None
    ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=pinned, show_progress=False)
    assert server.behaviour.requests[-1] == ("/synthesizer.pt", "bytes=1000-")
    assert server.behaviour.if_ranges == [None, '"v1"']
    assert target.read_bytes() == (root / "synthesizer.pt").read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["synthesizer.pt"]  # no .part, no validator

    # The file changes on the server between two attempts: If-Range makes it send the whole file.
    target.unlink()
    server.behaviour.etag = '"v1"'
    server.behaviour.cut_after = 1000
    with pytest.raises(ModelDownloadError, match="resume"):
        ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=pinned, show_progress=False)
    server.behaviour.etag = '"v2"'
    server.behaviour.cut_after = None
    with caplog.at_level(logging.WARNING, logger="utils.default_models"):
        ensure_default_models(tmp_path, ("synthesizer",), base_url=server.url, files=pinned, show_progress=False)
    assert server.behaviour.if_ranges[-1] == '"v1"' and "changed on the server" in caplog.text
    assert target.read_bytes() == (root / "synthesizer.pt").read_bytes()
