"""Map a function over items in worker processes with a progress bar; one bad item never stops the run.

Workers are spawned (no inherited threads or locks), so ``function`` must be a module-level function
or a :func:`functools.partial` of one; ``n_processes <= 1`` runs in this process.

>>> from functools import partial
>>> results = list(parallel_map(partial(divmod, 12), [5, 0, 3], n_processes=1, show_progress=False))
>>> [(r.item, r.value) for r in results if r.ok]
[(5, (2, 2)), (3, (4, 0))]
>>> [r.error for r in results if not r.ok]
['ZeroDivisionError: integer division or modulo by zero']
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tqdm import tqdm

from utils.errors import describe_error

__all__ = ["TaskResult", "parallel_map"]

T = TypeVar("T")


@dataclass(frozen=True)
class TaskResult(Generic[T]):
    """Outcome of one item: its ``index`` and ``item``, and its ``value`` or one-line ``error``."""

    index: int
    item: Any
    value: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _run_guarded(function: Callable[[Any], T], item: Any) -> tuple[T | None, str | None]:
    try:
        return function(item), None
    except Exception as error:  # noqa: BLE001 - one bad item must not end the run (Ctrl-C still does)
        return None, describe_error(error)


def parallel_map(
    function: Callable[[Any], T],
    items: Iterable[Any],
    n_processes: int | None = 1,
    desc: str | None = None,
    *,
    unit: str = "item",
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    show_progress: bool = True,
) -> Iterator[TaskResult[T]]:
    """Apply ``function`` to every item, yielding a :class:`TaskResult` per item in input order.

    Exceptions of ``function`` are recorded, not raised. ``initializer(*initargs)`` runs once per worker (or
    once here); in a worker its failure breaks the pool and fails every item."""
    work = list(items)
    n_workers = min(n_processes or 1, len(work))
    with tqdm(total=len(work), desc=desc, unit=unit, disable=not show_progress, dynamic_ncols=True) as bar:
        if n_workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            for index, item in enumerate(work):
                value, error = _run_guarded(function, item)
                bar.update()
                yield TaskResult(index, item, value, error)
            return

        context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(n_workers, mp_context=context, initializer=initializer, initargs=initargs)
        try:
            futures = [executor.submit(_run_guarded, function, item) for item in work]
            for index, (item, future) in enumerate(zip(work, futures)):
                try:
                    value, error = future.result()
                except Exception as failure:  # noqa: BLE001 - a worker died, or a result did not pickle
                    value, error = None, f"worker process failed: {describe_error(failure)}"
                bar.update()
                yield TaskResult(index, item, value, error)
        finally:
            # Also reached when the caller stops iterating early or presses Ctrl-C: drop queued work.
            executor.shutdown(wait=True, cancel_futures=True)
