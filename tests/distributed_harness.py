"""Run a trainer under ``torchrun`` and record each rank's final weights, for the DDP tests.

Usage::

    torchrun --nproc_per_node=2 tests/distributed_harness.py <trainer module> <out dir> <trainer args...>

``<trainer module>`` (e.g. ``encoder.train``) must offer ``train_from_args(argv) -> nn.Module``, which
returns the bare trained model. Each rank writes ``<out dir>/rank<R>.pt``: its model's state_dict,
so a test can check that all ranks ended with identical weights; :func:`run_ranks` does all that
from a test.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path


def run_ranks(module_name: str, out_dir: Path, trainer_args: list[str], processes: int = 2,
              timeout: float = 300) -> list[dict]:
    """Run ``module_name``'s trainer under ``torchrun`` (one thread per process); assert that it
    succeeded and return each rank's final state_dict, rank 0 first."""
    import subprocess

    import torch

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    done = subprocess.run(
        ["torchrun", "--standalone", f"--nproc_per_node={processes}", str(Path(__file__).resolve()),
         module_name, str(out_dir), *trainer_args],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(Path(out_dir) / f"rank{rank}.pt") for rank in range(processes)]


def main() -> None:
    module_name, out_dir, *trainer_args = sys.argv[1:]
    # Python put this script's folder first on the path, where the test packages (tests/vocoder/...)
    # would shadow the project's own packages of the same names.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [str(Path(here).parent)] + [entry for entry in sys.path if str(Path(entry or ".").resolve()) != here]
    import torch

    module = importlib.import_module(module_name)
    model = module.train_from_args(trainer_args)
    rank = int(os.environ.get("RANK", "0"))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    torch.save({name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
               Path(out_dir) / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
