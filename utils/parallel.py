"""Map a function over items in worker processes, with a progress bar, where one bad item never stops the run.

:func:`parallel_map` yields a :class:`TaskResult` per item, in input order: its ``value``, or the one-line
``error`` that the function raised for it. Callers count the failures and carry on.

Worker processes are started with the ``spawn`` method (no inherited threads or locks, the same on every
platform), so ``function`` must be importable: a module-level function, with fixed arguments bound by
:func:`functools.partial`. With ``n_processes <= 1`` everything runs in this process (no start-up cost,
easy to debug, what tests use).

Examples
--------
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
    """Outcome of one item.

    Attributes
    ----------
    index
        Position of the item in the input.
    item
        The item itself.
    value
        What the function returned (``None`` on failure).
    error
        One line describing the failure, ``None`` on success.
    """

    index: int
    item: Any
    value: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _run_guarded(function: Callable[[Any], T], item: Any) -> tuple[T | None, str | None]:
    """Call ``function(item)`` and turn an exception into its description (runs in the worker)."""
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

    Parameters
    ----------
    function
        Called once per item; in worker processes it must be picklable (module-level function or
        :func:`functools.partial` of one). Its exceptions are recorded, not raised.
    items
        The work; it is materialised into a list (the progress bar needs its length).
    n_processes
        Worker processes; ``None``/``0``/``1`` run in this process. Never more workers than items.
    desc, unit
        Progress-bar label and unit.
    initializer, initargs
        ``initializer(*initargs)`` runs once per worker process (for example to load a model), or once
        in this process when running in-process. In this process its exception is raised; in a worker it
        breaks the pool, and every item fails with "worker process failed" (check what it needs first).
    show_progress
        Display the tqdm bar (on stderr).

    Yields
    ------
    TaskResult
        One per item, in the order of ``items``.
    """
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
