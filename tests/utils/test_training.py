"""Tests of the shared training plumbing with a real (tiny) speaker encoder and real checkpoint files."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from encoder.hparams import EncoderHParams
from encoder.inference import Encoder
from encoder.model import build_speaker_encoder
from utils.checkpoints import CheckpointError
from utils.distributed import DistributedContext, all_reduce_mean, any_rank, broadcast_object, init_distributed
from utils.training import (
    TrainingError,
    cpu_has_native_bf16,
    TrainingOptions,
    TrainingSession,
    parse_hparam_overrides,
    resolve_hparams,
    run_cli,
)

TINY = {"hidden_size": 16, "embedding_size": 8, "num_layers": 1}


def train_tiny_encoder(models_dir: Path, max_steps: int, on_step=None, **option_changes) -> TrainingSession:
    """Train a tiny GE2E encoder on random frames through a TrainingSession, like encoder/train.py does."""
    settings = dict(save_every=2, backup_every=3, seed=0, progress=False, tensorboard=False)
    settings.update(option_changes)
    options = TrainingOptions(run_id="run", models_dir=models_dir, max_steps=max_steps, **settings)
    # As the trainers do (utils.training.training_session): the session ends, and unlocks the run, either way.
    with TrainingSession("encoder", options, DistributedContext()) as session:
        checkpoint = session.checkpoint_to_resume()
        hparams = resolve_hparams(EncoderHParams, session.stored_hparams(checkpoint), None, TINY)
        model = build_speaker_encoder(hparams)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        session.attach(model, optimizer, hparams, checkpoint)
        generator = torch.Generator().manual_seed(session.step)
        while not session.finished:
            frames = torch.rand(8, 20, 40, generator=generator)
            loss = model.loss(model(frames).reshape(4, 2, -1))
            session.backward(loss)
            session.unscale_gradients()
            session.optimizer_step()
            session.end_step({"loss": loss.item()})
            if on_step is not None:
                on_step(session)
    return session


def test_overrides_take_json_values_lists_and_plain_strings():
    assert parse_hparam_overrides(["a=1", "b=[[2, 0.001, 10, 4]]", "c=true", "d=RAW"]) == {
        "a": 1, "b": [[2, 0.001, 10, 4]], "c": True, "d": "RAW"}
    # RTVC's comma-separated single string, with a list that itself contains commas; Python literals too.
    assert parse_hparam_overrides("x=1, sched=[[1,2],[3,4]], name='a,b', t=((2, 1e-3),), flag=False") == {
        "x": 1, "sched": [[1, 2], [3, 4]], "name": "a,b", "t": ((2, 1e-3),), "flag": False}
    with pytest.raises(TrainingError, match="key=value"):
        parse_hparam_overrides(["no_equals_sign"])


def test_resolve_hparams_precedence_and_errors(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hidden_size": 32, "num_layers": 2}))
    hparams = resolve_hparams(EncoderHParams, stored={"hidden_size": 8, "embedding_size": 4},
                              config=config, overrides={"num_layers": 1})
    assert (hparams.hidden_size, hparams.embedding_size, hparams.num_layers) == (32, 4, 1)

    with pytest.raises(TrainingError, match="unknown EncoderHParams field"):
        resolve_hparams(EncoderHParams, overrides={"hiden_size": 3})
    # Overrides are checked against each field's type; lossless widenings pass.
    with pytest.raises(TrainingError, match="hidden_size expects int, not 'lots'"):
        resolve_hparams(EncoderHParams, overrides={"hidden_size": "lots"})
    with pytest.raises(TrainingError, match="hidden_size expects int, not 1.5"):
        resolve_hparams(EncoderHParams, overrides={"hidden_size": 1.5})
    assert resolve_hparams(EncoderHParams, overrides={"learning_rate_init": 1}).learning_rate_init == 1.0
    config.write_text("{not json")
    with pytest.raises(TrainingError, match="not valid JSON"):
        resolve_hparams(EncoderHParams, config=config)
    config.write_text("[1, 2]")
    with pytest.raises(TrainingError, match="JSON object"):
        resolve_hparams(EncoderHParams, config=config)
    with pytest.raises(TrainingError, match="Cannot read"):
        resolve_hparams(EncoderHParams, config=tmp_path / "missing.json")


def test_session_saves_backs_up_and_resumes_with_the_same_step(tmp_path):
    train_tiny_encoder(tmp_path, max_steps=5)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.pt")) == ["encoder.pt", "encoder_000003.pt"]
    checkpoint = torch.load(run / "encoder.pt", weights_only=True)
    assert checkpoint["step"] == 5 and checkpoint["model_type"] == "encoder"
    assert checkpoint["hparams"]["hidden_size"] == 16
    assert json.loads((run / "hparams.json").read_text())["hidden_size"] == 16
    assert torch.load(run / "encoder_000003.pt", weights_only=True)["step"] == 3
    # Adam counts its own steps: restored optimizer state continues from 5, not 0.
    adam_steps = {int(s["step"]) for s in checkpoint["optimizer_state"]["state"].values()}
    assert adam_steps == {5}

    session = train_tiny_encoder(tmp_path, max_steps=8)
    assert session.step == 8
    checkpoint = torch.load(run / "encoder.pt", weights_only=True)
    assert checkpoint["step"] == 8
    assert {int(s["step"]) for s in checkpoint["optimizer_state"]["state"].values()} == {8}
    assert (run / "encoder_000006.pt").exists()
    # The trained file is a normal encoder checkpoint for inference.
    encoder = Encoder.from_checkpoint(run / "encoder.pt")
    assert encoder.embedding_size == 8


def test_force_restart_starts_from_zero_and_init_from_loads_weights_only(tmp_path):
    train_tiny_encoder(tmp_path, max_steps=4)
    restarted = train_tiny_encoder(tmp_path, max_steps=2, force_restart=True)
    assert restarted.step == 2
    assert torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)["step"] == 2

    source = tmp_path / "run" / "encoder.pt"
    weights = torch.load(source, weights_only=True)["model_state"]
    seen = {}

    def record_first_weights(session):
        seen.setdefault("optimizer_steps", len(session.optimizer.state))

    other = tmp_path / "other"
    options_dir = other
    session = train_tiny_encoder(options_dir, max_steps=3, init_from=source, on_step=record_first_weights)
    assert session.step == 3  # continued from the source's step 2
    first_file = torch.load(options_dir / "run" / "encoder.pt", weights_only=True)
    assert first_file["step"] == 3
    # One step of Adam from the source's weights: close to them, not to a fresh random init.
    drift = max((first_file["model_state"][k] - weights[k]).abs().max().item() for k in weights)
    assert drift < 0.01


def test_stop_signal_saves_and_ends_the_run(tmp_path):
    def send_sigterm_at_step_2(session):
        if session.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    session = train_tiny_encoder(tmp_path, max_steps=1000, on_step=send_sigterm_at_step_2, save_every=0)
    # The signal arrives after step 2 ended; the step in progress (3) completes, then the run saves.
    assert session.step == 3 and session.stop_reason == "stop requested"
    assert torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)["step"] == 3
    # Default handlers are back once the session is closed.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_full_disk_keeps_the_previous_checkpoint_and_reports_one_line(tmp_path, full_disk, capsys):
    (full_disk / "filler.bin").unlink()  # room for the first checkpoint only
    train_tiny_encoder(full_disk, max_steps=2)
    before = (full_disk / "run" / "encoder.pt").read_bytes()
    with open(full_disk / "filler.bin", "wb") as stream:  # leave no room for the next checkpoint
        try:
            while True:
                stream.write(b"\0" * (1 << 20))
        except OSError:
            pass

    def train_more() -> int:
        train_tiny_encoder(full_disk, max_steps=4)
        return 0

    assert run_cli(train_more) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("error: Not enough disk space")
    assert (full_disk / "run" / "encoder.pt").read_bytes() == before
    assert not [p for p in (full_disk / "run").iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_run_cli_turns_user_errors_into_one_line(capsys):
    def fail() -> int:
        raise TrainingError("The data folder 'x' does not exist.")

    assert run_cli(fail) == 1
    assert capsys.readouterr().err == "error: The data folder 'x' does not exist.\n"

    def bad_checkpoint() -> int:
        raise CheckpointError("The encoder checkpoint 'y' is truncated.")

    assert run_cli(bad_checkpoint) == 1


def test_distributed_helpers_are_identities_in_a_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = init_distributed(use_cuda=False)
    assert (context.rank, context.world_size, context.is_main, context.device.type) == (0, 1, True, "cpu")
    assert all_reduce_mean(torch.tensor(3.0), context) == 3.0
    assert any_rank(False, context) is False and any_rank(True, context) is True
    assert broadcast_object({"step": 7}, context) == {"step": 7}


# ----------------------------------------------------------------------------------------------
# How a run ends on an exception (issues 17 and 15): the same rule for every trainer.


class InjectedFailure(RuntimeError):
    """The exception the tests below raise inside a training run."""


def inject_failure(monkeypatch, where: str, at_step: int) -> None:
    """Make every TrainingSession fail at step ``at_step``.

    ``where`` is ``"between"`` (after the step was counted: it finished), ``"mid_step"`` (after the
    optimizer updated the weights, before the step was counted) or ``"nan"`` (the step finished but
    left a NaN weight). Used by the five trainers' tests too, so all of them are held to one rule.
    """
    from utils.distributed import unwrap_model

    original_end_step, original_optimizer_step = TrainingSession.end_step, TrainingSession.optimizer_step

    def end_step(self, losses=None):
        original_end_step(self, losses)
        if where in ("between", "nan") and self.step == at_step:
            if where == "nan":
                with torch.no_grad():
                    weights = (p for p in unwrap_model(self.model).parameters() if p.is_floating_point())
                    next(weights).view(-1)[0] = float("nan")  # (WaveRNN's first parameter is its integer step)
            raise InjectedFailure(f"injected {where} at step {at_step}")

    def optimizer_step(self):
        original_optimizer_step(self)
        if where == "mid_step" and self.step + 1 == at_step:
            raise InjectedFailure(f"injected {where} at step {at_step}")

    monkeypatch.setattr(TrainingSession, "end_step", end_step)
    monkeypatch.setattr(TrainingSession, "optimizer_step", optimizer_step)


#: For a run with ``--save_every 2``: the step to fail at, the step ``<run>/<model>.pt`` holds after the
#: failure, and the line the run prints. ``mid_step`` fails in step 4, after step 3 finished unsaved.
FAILURES = {
    "between": (3, 3, "at step 3, the last finished step, after the error."),
    "mid_step": (4, 2, "Not saving after the error: the error came in the middle of step 4, after the weights "
                       "were updated;"),
    "nan": (3, 2, "Not saving after the error: some weights are NaN or infinite;"),
}


def check_end_after_failure(checkpoint_path: Path, where: str, stdout: str) -> None:
    """The checkpoint and the printed line after a run with ``--save_every 2`` failed as ``FAILURES`` says."""
    _, step, line = FAILURES[where]
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert checkpoint["step"] == step
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint["model_state"].values() if t.is_floating_point())
    assert line in stdout, stdout
    if where != "between":
        assert f"{checkpoint_path} stays at step 2." in stdout


@pytest.mark.parametrize("where", ["between", "mid_step", "nan"])
def test_session_saves_after_an_exception_only_a_finished_finite_step(tmp_path, monkeypatch, capsys, where):
    inject_failure(monkeypatch, where, at_step=FAILURES[where][0])
    sessions = []

    def keep(session):
        sessions.append(session)

    original_attach = TrainingSession.attach
    monkeypatch.setattr(TrainingSession, "attach",
                        lambda self, *a, **k: (keep(self), original_attach(self, *a, **k))[1])
    with pytest.raises(InjectedFailure):
        train_tiny_encoder(tmp_path, max_steps=10, save_every=2, backup_every=0)
    check_end_after_failure(tmp_path / "run" / "encoder.pt", where, capsys.readouterr().out)
    assert signal.getsignal(signal.SIGTERM) != sessions[0].stop._handle  # handlers restored on this path too


def test_failure_before_any_step_writes_nothing(tmp_path, capsys):
    options = TrainingOptions(run_id="run", models_dir=tmp_path, progress=False, tensorboard=True)
    session = TrainingSession("encoder", options, DistributedContext())
    hparams = resolve_hparams(EncoderHParams, None, None, TINY)
    model = build_speaker_encoder(hparams)
    session.attach(model, torch.optim.Adam(model.parameters()), hparams, None)
    session.close(error=TrainingError("The training data produced no batch."))
    assert not (tmp_path / "run" / "encoder.pt").exists() and capsys.readouterr().out == ""
    assert session.logger.writer is None  # the TensorBoard writer (and its thread) is closed


@pytest.mark.skipif(cpu_has_native_bf16(), reason="this CPU has native bfloat16, so --cpu_bf16 is allowed")
def test_cpu_bf16_is_refused_in_one_line_without_native_bfloat16(tmp_path):
    from utils.distributed import DistributedContext

    options = TrainingOptions(run_id="bf16", models_dir=tmp_path, cpu_bf16=True, tensorboard=False, progress=False)
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(TrainingError, match="native bfloat16") as info:
        TrainingSession("encoder", options, context)
    assert "\n" not in str(info.value)
