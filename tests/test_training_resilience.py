"""A trainer killed with SIGKILL (no chance to clean up) resumes from its last checkpoint intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.inference import Encoder

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_ENCODER = ["hidden_size=16", "embedding_size=8", "num_layers=1", "speakers_per_batch=3",
                "utterances_per_speaker=2"]


def write_encoder_training_data(root: Path, n_speakers: int = 4, n_utterances: int = 3) -> Path:
    """The encoder's preprocessed layout: one folder per speaker of (T, 40) mel .npy files."""
    rng = np.random.default_rng(0)
    for speaker in range(n_speakers):
        folder = root / f"speaker_{speaker}"
        folder.mkdir(parents=True)
        lines = []
        for index in range(n_utterances):
            name = f"utt_{index}.npy"
            np.save(folder / name, rng.random((200, 40), dtype=np.float32) * (speaker + 1))
            lines.append(f"{name},synthetic/{speaker}/{index}.wav")
        (folder / "_sources.txt").write_text("\n".join(lines) + "\n")
    return root


def trainer_command(data: Path, models: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "encoder.train", "run", str(data), "-m", str(models), "--quiet",
            "--no_tensorboard", "--umap_every", "0", "--num_workers", "0", "--seed", "0",
            "--hparams", *TINY_ENCODER, *extra]


def saved_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


@pytest.mark.timeout(240)
def test_sigkilled_encoder_trainer_resumes_from_its_last_checkpoint(tmp_path):
    data = write_encoder_training_data(tmp_path / "data")
    models = tmp_path / "models"
    checkpoint = models / "run" / "encoder.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(trainer_command(data, models, "--save_every", "1", "--max_steps", "100000"),
                               cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        # Wait until a few checkpoints have been written, then kill while it keeps saving every step.
        while time.monotonic() < deadline:
            if checkpoint.exists():
                try:
                    if saved_step(checkpoint) >= 5:
                        break
                except Exception:  # noqa: BLE001 — replaced between exists() and load: try again
                    pass
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("the trainer wrote no checkpoint in time")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    killed_at = saved_step(checkpoint)  # loads: the file is whole, never half-written
    assert killed_at >= 5
    Encoder.from_checkpoint(checkpoint)

    done = subprocess.run(trainer_command(data, models, "--max_steps", str(killed_at + 3)),
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"Resuming encoder at step {killed_at}." in done.stdout
    assert saved_step(checkpoint) == killed_at + 3
    assert not list(checkpoint.parent.glob(".*.tmp")), "temporary files of the killed save were left behind"
