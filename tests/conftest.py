"""Shared test fixtures and helpers.

Paths
    ``SHARED_DIR`` (``../shared`` beside the project), ``DATASETS_DIR`` (real speech, see its README),
    ``LIBRISPEECH_DIR`` (LibriSpeech train-clean-100, one utterance per speaker), ``STATE_DICTS_FILE``
    (every state_dict key/shape/dtype of RTVC's three published checkpoints).

Helpers (plain functions, importable with ``from tests.conftest import ...``)
    ``parse_state_dicts(model)``: the entries of one model in ``STATE_DICTS_FILE``.
    ``speak(path, text, voice=..., pitch=..., speed=..., rate=...)``: synthetic speech with espeak-ng.
    ``librispeech_utterances(root)``: ``[(speaker id, flac path), ...]`` sorted by speaker.

Fixtures (each skips with a reason when what it needs is absent)
    ``librispeech_dir``: ``Path`` of LibriSpeech/train-clean-100.
    ``rtvc_state_dicts``: ``{"encoder": [...], "synthesizer": [...], "vocoder": [...]}`` of
    ``parse_state_dicts`` entries.
    ``espeak``: the ``speak`` function (needs ``espeak-ng`` and ``sox`` on PATH).
    ``encoder_checkpoint`` (session): ``Path`` of the real pretrained GE2E weights shipped inside the
    installed ``resemblyzer`` package (byte-identical to RTVC's ``encoder.pt``).
    ``real_encoder`` (session): ``encoder.inference.Encoder`` loaded from ``encoder_checkpoint`` on CPU.
    ``torch_single_thread``: runs the test with ``torch.set_num_threads(1)`` (restored afterwards).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

# Any test that touches Qt must never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS_DIR = SHARED_DIR / "datasets"
LIBRISPEECH_DIR = DATASETS_DIR / "LibriSpeech" / "train-clean-100"
STATE_DICTS_FILE = SHARED_DIR / "docs" / "rtvc_state_dicts.txt"

StateDictEntry = tuple[str, tuple[int, ...], str]  # (key, shape, dtype name such as "float32")

_SECTION = re.compile(r"^###\s+(\w+):\s+(\d+)\s+entries\s*$")


# --------------------------------------------------------------------------------------------------
# RTVC state-dict listing
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _parse_state_dicts_file(path: Path) -> dict[str, tuple[StateDictEntry, ...]]:
    sections: dict[str, list[StateDictEntry]] = {}
    declared: dict[str, int] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        header = _SECTION.match(line)
        if header:
            current = header.group(1)
            declared[current] = int(header.group(2))
            sections[current] = []
            continue
        fields = line.split("\t")
        if current is None or len(fields) != 3:
            continue  # comments ("# total elements ..."), summaries and notes between sections
        key, shape_text, dtype = fields
        shape = ast.literal_eval(shape_text)  # "(1024, 40)", "(1,)" or "()"
        sections[current].append((key, tuple(int(size) for size in shape), dtype.strip()))
    for model, count in declared.items():
        if len(sections[model]) != count:
            raise ValueError(f"{path}: section {model} declares {count} entries but lists {len(sections[model])}")
    return {model: tuple(entries) for model, entries in sections.items()}


def parse_state_dicts(model: str, path: Path = STATE_DICTS_FILE) -> list[StateDictEntry]:
    """Entries ``(key, shape, dtype)`` of RTVC's ``model`` checkpoint, in state_dict order.

    Parameters
    ----------
    model
        Section name in the file: ``"encoder"``, ``"synthesizer"`` or ``"vocoder"``.
    path
        The listing (lines ``key<TAB>(shape)<TAB>dtype`` under ``### model: N entries`` headers).

    Raises
    ------
    KeyError
        When the file has no such section.
    """
    sections = _parse_state_dicts_file(Path(path))
    if model not in sections:
        raise KeyError(f"{path} has no section for {model!r} (it has {', '.join(sections)})")
    return list(sections[model])


@pytest.fixture(scope="session")
def rtvc_state_dicts() -> dict[str, list[StateDictEntry]]:
    """``{model: [(key, shape, dtype), ...]}`` for every model listed in ``STATE_DICTS_FILE``."""
    if not STATE_DICTS_FILE.is_file():
        pytest.skip(f"RTVC state-dict listing not found at {STATE_DICTS_FILE}")
    return {model: parse_state_dicts(model) for model in _parse_state_dicts_file(STATE_DICTS_FILE)}


# --------------------------------------------------------------------------------------------------
# Real speech
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def librispeech_dir() -> Path:
    """LibriSpeech/train-clean-100 of the shared datasets (251 speakers, one FLAC each)."""
    if not LIBRISPEECH_DIR.is_dir():
        pytest.skip(f"LibriSpeech train-clean-100 not found at {LIBRISPEECH_DIR}")
    return LIBRISPEECH_DIR


def librispeech_utterances(root: Path = LIBRISPEECH_DIR) -> list[tuple[str, Path]]:
    """``(speaker id, first FLAC of the speaker)`` for every speaker folder, sorted by speaker id (as text)."""
    result = []
    for speaker in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        files = sorted(speaker.glob("*/*.flac"))
        if files:
            result.append((speaker.name, files[0]))
    return result


# --------------------------------------------------------------------------------------------------
# Synthetic speech
# --------------------------------------------------------------------------------------------------
def speak(path: Path, text: str, voice: str = "en-us", pitch: int = 50, speed: int = 160, rate: int = 16000) -> Path:
    """Write ``text`` spoken by espeak-ng to ``path`` (mono 16-bit WAV at ``rate`` Hz) and return ``path``.

    Runs ``espeak-ng -v VOICE -p PITCH -s SPEED -w tmp.wav TEXT`` (22.05 kHz) then
    ``sox -G tmp.wav -r RATE path`` (``-G`` lowers the gain just enough to avoid clipping in the
    resampler; espeak-ng writes close to full scale). Output is deterministic for given arguments.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_name(f".{path.stem}.espeak.wav")
    try:
        for command in (
            ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(raw), text],
            ["sox", "-G", str(raw), "-r", str(rate), str(path)],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:3])} failed: {done.stderr.strip()}")
    finally:
        raw.unlink(missing_ok=True)
    return path


@pytest.fixture(scope="session")
def espeak():
    """The :func:`speak` function; skips when espeak-ng or sox is not installed."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install espeak-ng sox)")
    return speak


# --------------------------------------------------------------------------------------------------
# Pretrained speaker encoder
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def encoder_checkpoint() -> Path:
    """The real GE2E weights (``resemblyzer/pretrained.pt``, RTVC's encoder.pt: step 1,564,501)."""
    from utils.default_models import resemblyzer_encoder_path

    path = resemblyzer_encoder_path()
    if path is None or not Path(path).is_file():
        pytest.skip("the resemblyzer package (which ships the pretrained encoder) is not installed: "
                    "pip install --no-deps resemblyzer")
    return Path(path)


@pytest.fixture(scope="session")
def real_encoder(encoder_checkpoint):
    """``Encoder`` with the pretrained weights, on CPU (shared by the whole session: do not modify)."""
    from encoder.inference import Encoder

    return Encoder.from_checkpoint(encoder_checkpoint, device="cpu")


@pytest.fixture
def torch_single_thread():
    """Run the test with one torch CPU thread, then restore the previous setting.

    Small-batch LSTM inference (the encoder's 1.6 s windows) gains little from a second thread, and
    on a busy machine torch's spinning worker threads make it many times slower (measured with the
    pretrained encoder on 2 shared cores: 5 s single-threaded vs 80 s with 2 threads).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def full_disk(tmp_path):
    """A real, tiny tmpfs folder that is filled up to its last 4 KiB (skips when mounting is not allowed)."""
    mount_point = tmp_path / "full_disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk ({done.stderr.strip() or 'not root'})")
    try:
        filler = mount_point / "filler.bin"
        with open(filler, "wb", buffering=0) as stream:
            try:
                while True:
                    stream.write(b"\0" * 4096)
            except OSError:
                pass
        # Leave a little room so that creating files works but writing real content does not.
        with open(filler, "r+b") as stream:
            stream.truncate(max(0, filler.stat().st_size - 4096))
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system (a tmpfs mounted ``ro``): even root cannot write there, unlike a
    folder with mode 0o555. Skips when mounting is not allowed."""
    mount_point = tmp_path / "read_only"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs ({done.stderr.strip() or 'not root'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


@pytest.fixture(scope="session")
def rtvc_models_dir(tmp_path_factory, encoder_checkpoint) -> Path:
    """``<dir>/default/{encoder,synthesizer,vocoder}.pt``: the real encoder, and full-size random
    synthesizer and WaveRNN in RTVC's file format (see :mod:`tests.model_files`). Made once per run
    (about 420 MB); tests must not write into it."""
    from tests.model_files import make_models_dir

    return make_models_dir(tmp_path_factory.mktemp("rtvc_models"), encoder_checkpoint)
