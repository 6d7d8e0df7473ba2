"""Issue 18 for the shared training session: one trainer per run, TensorBoard failures, stop signals
inside long steps, seeds checked while parsing. Real processes, real signals, a real full tmpfs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from encoder.hparams import EncoderHParams
from encoder.model import build_speaker_encoder
from encoder.train import build_parser
from utils.distributed import DistributedContext
from utils.training import (
    MAX_SEED,
    StopNow,
    TrainingError,
    TrainingOptions,
    TrainingSession,
    resolve_hparams,
    run_cli,
)

REPO = Path(__file__).resolve().parents[2]
TINY = {"hidden_size": 16, "embedding_size": 8, "num_layers": 1}
pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _options(models_dir: Path, **changes) -> TrainingOptions:
    settings = dict(run_id="run", models_dir=models_dir, save_every=0, backup_every=0, seed=0, progress=False,
                    tensorboard=False)
    settings.update(changes)
    return TrainingOptions(**settings)


# ----------------------------------------------------------------------------------------------
# One trainer per run


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from utils.distributed import DistributedContext
    from utils.training import TrainingOptions, TrainingSession
    session = TrainingSession("encoder", TrainingOptions("run", models_dir=Path(sys.argv[1]), tensorboard=False,
                                                         progress=False), DistributedContext())
    print("ready", flush=True)
    time.sleep(120)
""")


def _start_holder(models_dir: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(models_dir)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_a_second_trainer_on_the_same_run_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    holder = _start_holder(tmp_path)
    try:
        # The first trainer is writing a checkpoint: the second one's start-up clean-up used to delete it.
        in_progress = tmp_path / "run" / ".encoder.pt.0123456789ab.tmp"
        in_progress.write_bytes(b"being written")
        with pytest.raises(TrainingError) as caught:
            TrainingSession("encoder", _options(tmp_path), DistributedContext())
        assert str(caught.value) == f"run run is already being trained by PID {holder.pid}."
        assert in_progress.exists()
    finally:
        holder.kill()  # SIGKILL: its lock file stays behind, naming a process that no longer exists
        holder.wait()
    assert (tmp_path / "run" / ".lock").read_text().split()[0] == str(holder.pid)

    session = TrainingSession("encoder", _options(tmp_path), DistributedContext())
    assert f"left by PID {holder.pid}, which is no longer running" in capsys.readouterr().out
    assert (tmp_path / "run" / ".lock").read_text().split()[0] == str(os.getpid())
    session.close(save=False)
    assert not (tmp_path / "run" / ".lock").exists()
    TrainingSession("encoder", _options(tmp_path), DistributedContext()).close(save=False)  # free again


def test_the_command_line_refuses_a_locked_run_in_one_line(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        done = subprocess.run([sys.executable, "-m", "encoder.train", "run", str(tmp_path / "no_data"), "-m",
                               str(tmp_path), "--no_tensorboard", "--quiet"], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: run run is already being trained by PID {holder.pid}."


def test_only_rank_0_takes_the_lock(tmp_path):
    (tmp_path / "run").mkdir()
    session = TrainingSession("encoder", _options(tmp_path), DistributedContext(rank=1, world_size=1))
    assert session.lock is None and not (tmp_path / "run" / ".lock").exists()
    session.close(save=False)


# ----------------------------------------------------------------------------------------------
# TensorBoard on a full disk


def test_a_full_disk_at_start_is_one_line_without_writer_thread_tracebacks(full_disk, capfd):
    def start() -> int:
        TrainingSession("encoder", _options(full_disk, tensorboard=True), DistributedContext())
        return 0

    assert run_cli(start) == 1
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot write the TensorBoard logs in ")
    assert "No space left on device" in lines[0]
    assert not (full_disk / "run" / ".lock").exists()  # the run is unlocked again


def test_a_full_disk_during_training_stops_it_with_one_line(tmp_path, full_disk, capfd):
    (full_disk / "filler.bin").unlink()  # room to start

    def fill_up() -> None:
        with open(full_disk / "filler.bin", "wb") as stream:
            try:
                while True:
                    stream.write(b"\0" * (1 << 16))
            except OSError:
                pass

    def train() -> int:
        session = TrainingSession("encoder", _options(full_disk, tensorboard=True, log_every=1), DistributedContext())
        hparams = resolve_hparams(EncoderHParams, None, None, TINY)
        model = build_speaker_encoder(hparams)
        session.attach(model, torch.optim.Adam(model.parameters()), hparams, None)
        try:
            for step in range(50):
                loss = model.loss(model(torch.rand(8, 20, 40)).reshape(4, 2, -1))
                session.backward(loss)
                session.optimizer_step()
                session.end_step({"loss": loss.item()})
                if step == 1:
                    fill_up()
                session.logger.flush()
        except BaseException as error:
            session.close(error=error)
            raise
        return 0

    assert run_cli(train) == 1
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: Cannot write the TensorBoard logs")


# ----------------------------------------------------------------------------------------------
# Stop signals inside a long step


def test_sigterm_inside_a_long_step_stops_within_about_a_second_and_saves_the_last_finished_step(tmp_path, capsys):
    session = TrainingSession("encoder", _options(tmp_path), DistributedContext())
    hparams = resolve_hparams(EncoderHParams, None, None, TINY)
    model = build_speaker_encoder(hparams)
    session.attach(model, torch.optim.Adam(model.parameters()), hparams, None)
    sent_at = []

    def send() -> None:
        sent_at.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        with pytest.raises(StopNow):
            try:
                while not session.finished:
                    loss = model.loss(model(torch.rand(8, 20, 40)).reshape(4, 2, -1))
                    session.backward(loss)
                    if session.step == 2:  # the third step is a long one (a slow loader, a huge batch)
                        threading.Timer(0.3, send).start()
                        for _ in range(400):  # 20 s of work in small pieces, as a real step is
                            time.sleep(0.05)
                    session.optimizer_step()
                    session.end_step({"loss": loss.item()})
            except BaseException as error:
                session.close(error=error)
                raise
    finally:
        stopped_at = time.monotonic()
    assert sent_at and stopped_at - sent_at[0] < 3.0  # about a second of grace, not the 20 s step
    saved = torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)
    assert saved["step"] == 2  # the last finished step; the interrupted one is not half-saved
    assert "after the stop signal" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert not (tmp_path / "run" / ".lock").exists()


def test_run_cli_treats_a_stop_inside_a_step_as_a_requested_stop():
    def stopped() -> int:
        raise StopNow("stopped by SIGTERM in the middle of a step")

    assert run_cli(stopped) == 0


# ----------------------------------------------------------------------------------------------
# Seeds


@pytest.mark.parametrize("seed", [str(MAX_SEED + 1), "-1", "1e3"])
def test_seed_outside_64_bits_fails_at_argument_parsing(seed, capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["run", "data", "--seed", seed])
    assert caught.value.code == 2
    assert "the seed must be an integer from 0 to 18446744073709551615" in capsys.readouterr().err


def test_the_largest_seed_trains(tmp_path):
    args = build_parser().parse_args(["run", "data", "--seed", str(MAX_SEED)])
    assert args.seed == MAX_SEED
    from utils.training import seed_everything

    seed_everything(args.seed, DistributedContext(rank=3, world_size=4))  # rank offset wraps, no overflow


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_the_whole_process_group_saves_and_stops_cleanly(tmp_path, signal_number):
    # Ctrl-C, `timeout` and service managers signal the whole group, DataLoader workers included: a
    # worker killed by the signal used to end the trainer with a traceback instead of a save.
    import numpy as np

    from synthesizer.metadata import TrainEntry, write_train_txt

    syn = tmp_path / "syn"
    (syn / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for number in range(4):
        np.save(syn / "audio" / f"audio-u{number}.npy", (0.1 * rng.standard_normal(16000)).astype(np.float32))
        entries.append(TrainEntry.from_basename(f"u{number}", 16000, 81, "text"))
    write_train_txt(syn / "train.txt", entries)
    process = subprocess.Popen(
        [sys.executable, "-m", "vocoder.istft.train", "run", str(syn), "-m", str(tmp_path / "models"),
         "--num_workers", "1", "--no_tensorboard", "--quiet", "--log_every", "1", "--sample_every", "0",
         "--hparams", "channels=8", "num_blocks=1", "batch_size=2", "segment_frames=8"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:  # wait for the first steps
            line = process.stdout.readline()
            if line.startswith("step 3 "):
                break
        os.killpg(process.pid, signal_number)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert "Traceback" not in err and "killed by signal" not in err, err
    assert process.returncode == 0, err
    assert "(stop requested)" in out
    assert torch.load(tmp_path / "models" / "run" / "vocoder.pt", weights_only=True)["step"] >= 3
