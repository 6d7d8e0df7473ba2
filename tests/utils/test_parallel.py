"""utils.parallel: order, failures recorded per item, worker processes, initializers, dead workers."""

from __future__ import annotations

import os
from functools import partial

from utils.parallel import TaskResult, parallel_map

_initialised_in: list[int] = []


# Module-level so that spawned workers can import them.
def scaled_inverse(scale: float, value: int) -> float:
    return scale / value


def pid_and_square(value: int) -> tuple[int, int]:
    if value == 3:
        raise ValueError(f"The value {value} is unlucky.")
    return os.getpid(), value * value


def die_on_two(value: int) -> int:
    if value == 2:
        os._exit(3)  # a crash that no exception handler sees (like a segfault in a C library)
    return value


def record_initialisation(tag: str) -> None:
    _initialised_in.append(os.getpid())
    os.environ["PARALLEL_TEST_TAG"] = tag


def read_tag(_: int) -> tuple[int, str]:
    return os.getpid(), os.environ.get("PARALLEL_TEST_TAG", "")


def test_in_process_keeps_order_and_records_failures():
    results = list(parallel_map(partial(scaled_inverse, 6.0), [1, 0, 3], n_processes=1, show_progress=False))
    assert [r.index for r in results] == [0, 1, 2]
    assert [(r.item, r.value, r.ok) for r in results] == [(1, 6.0, True), (0, None, False), (3, 2.0, True)]
    assert results[1].error == "ZeroDivisionError: float division by zero"
    assert all(isinstance(r, TaskResult) for r in results)


def test_empty_input_and_progress_bar(capsys):
    assert list(parallel_map(pid_and_square, [], n_processes=4, desc="nothing")) == []
    list(parallel_map(pid_and_square, [1, 2], n_processes=1, desc="squares", unit="number"))
    assert "squares: 100%" in capsys.readouterr().err


def test_worker_processes_in_order_with_failures():
    items = [1, 2, 3, 4, 5, 6]
    results = list(parallel_map(pid_and_square, items, n_processes=2, show_progress=False))
    assert [r.item for r in results] == items
    assert [r.value[1] for r in results if r.ok] == [1, 4, 16, 25, 36]
    failed = [r for r in results if not r.ok]
    assert [(r.index, r.error) for r in failed] == [(2, "The value 3 is unlucky.")]
    worker_pids = {r.value[0] for r in results if r.ok}
    assert os.getpid() not in worker_pids and 1 <= len(worker_pids) <= 2


def test_initializer_runs_in_each_worker_or_in_process(monkeypatch):
    monkeypatch.delenv("PARALLEL_TEST_TAG", raising=False)
    results = list(parallel_map(read_tag, range(4), n_processes=2, show_progress=False,
                                initializer=record_initialisation, initargs=("worker",)))
    assert all(r.value[1] == "worker" for r in results)
    assert "PARALLEL_TEST_TAG" not in os.environ  # the workers' environment, not ours

    _initialised_in.clear()
    results = list(parallel_map(read_tag, range(3), n_processes=1, show_progress=False,
                                initializer=record_initialisation, initargs=("here",)))
    assert _initialised_in == [os.getpid()] and {r.value for r in results} == {(os.getpid(), "here")}


def test_a_dead_worker_fails_items_instead_of_hanging():
    results = list(parallel_map(die_on_two, [1, 2, 3, 4], n_processes=2, show_progress=False))
    assert len(results) == 4
    assert not results[1].ok and results[1].error.startswith("worker process failed")
    assert all(r.ok or r.error.startswith("worker process failed") for r in results)


def test_stopping_early_does_not_hang():
    results = parallel_map(pid_and_square, range(1, 50), n_processes=2, show_progress=False)
    first = next(results)
    results.close()  # runs the generator's cleanup: queued work is cancelled
    assert first.value[1] == 1
