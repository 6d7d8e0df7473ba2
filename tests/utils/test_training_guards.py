"""Issue 26 for the shared training session: no save of non-finite weights ever replaces a good
checkpoint, and run names stay plain folder names inside --models_dir (never shipped/ or default/)."""

from __future__ import annotations

import pytest
import torch

from tests.utils.test_training import train_tiny_encoder
from utils.distributed import DistributedContext
from utils.training import DivergedError, TrainingError, TrainingOptions, TrainingSession, run_cli

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _poison_at(step: int):
    """An ``on_step`` hook that makes a weight NaN once ``step`` has ended (as a diverged update would)."""
    def on_step(session: TrainingSession) -> None:
        if session.step == step:
            with torch.no_grad():
                next(session.model.parameters()).view(-1)[0] = float("nan")
    return on_step


def _saved_step(path) -> int:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint["model_state"].values() if t.is_floating_point())
    return int(checkpoint["step"])


@pytest.mark.parametrize("max_steps", [4, 3], ids=["periodic_save", "final_save"])
def test_non_finite_weights_never_replace_the_good_checkpoint(tmp_path, capsys, max_steps):
    train_tiny_encoder(tmp_path, max_steps=2, save_every=2, backup_every=0)
    path = tmp_path / "run" / "encoder.pt"
    before = path.read_bytes()
    with pytest.raises(DivergedError, match="NaN or infinite by step") as info:
        train_tiny_encoder(tmp_path, max_steps=max_steps, save_every=2, backup_every=0, on_step=_poison_at(3))
    assert f"{path} stays at step 2" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before and _saved_step(path) == 2
    assert "Not saving" not in capsys.readouterr().out  # the error itself says what was kept: one line


def test_a_diverged_run_ends_the_command_with_one_error_line(tmp_path, capsys):
    def diverge():
        train_tiny_encoder(tmp_path, max_steps=1, save_every=0, backup_every=0, on_step=_poison_at(1))

    assert run_cli(diverge) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "no checkpoint was written" in captured.err
    assert not (tmp_path / "run" / "encoder.pt").exists()


def _open(models_dir, run_id):
    options = TrainingOptions(run_id=run_id, models_dir=models_dir, progress=False, tensorboard=False)
    return TrainingSession("encoder", options, DistributedContext())


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", ".", "", "C:x", "x\\y", "x\0y", "/abs"])
def test_run_names_that_are_paths_are_refused(tmp_path, run_id):
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(TrainingError, match="must be a plain folder name"):
        _open(models, run_id if run_id != "/abs" else str(tmp_path / "abs"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"] and not any(models.iterdir())


@pytest.mark.parametrize("run_id", ["shipped", "default", "Default", "shipped."])
def test_reserved_model_folders_are_refused(tmp_path, run_id):
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "encoder.pt").write_bytes(b"committed")
    with pytest.raises(TrainingError, match="reserved for the downloaded and shipped models"):
        _open(tmp_path, run_id)
    assert (tmp_path / "shipped" / "encoder.pt").read_bytes() == b"committed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]


def test_a_run_folder_linking_elsewhere_is_refused(tmp_path):
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir()
    elsewhere.mkdir()
    (models / "run").symlink_to(elsewhere, target_is_directory=True)
    (models / "alias").symlink_to(models / "default", target_is_directory=True)
    with pytest.raises(TrainingError, match="leads outside --models_dir"):
        _open(models, "run")
    with pytest.raises(TrainingError, match="reserved"):
        _open(models, "alias")
    assert not any(elsewhere.iterdir())
