"""Run blocking controller calls off the GUI thread and report back through Qt signals.

A :class:`Worker` wraps one call, which gets :class:`WorkerHooks` to pass as the controller's
``progress=`` and ``on_chunk=``; they re-emit as signals delivered in the GUI thread. Cancelling is
cooperative: the hooks raise :class:`~toolbox.controller.Cancelled` once :meth:`Worker.cancel` is asked.

>>> worker = Worker(lambda hooks: controller.synthesize(text, names, progress=hooks.progress))  # doctest: +SKIP
>>> worker.signals.finished.connect(show_spectrogram)  # doctest: +SKIP
>>> pool.start(worker)  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from PyQt5.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

from toolbox.controller import Cancelled
from utils.errors import SELF_EXPLAINING_ERRORS, one_line

# Errors whose message is written for the user; anything else is a bug or an environment problem, shown
# with its type so that a report can be searched for. KeyError too: the window's look-ups raise it with a
# sentence for the user.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (*SELF_EXPLAINING_ERRORS, KeyError)


def describe_error(error: BaseException) -> str:
    """The one-line message shown to the user for ``error``.

    >>> describe_error(ValueError("Select a reference first."))
    'Select a reference first.'
    >>> describe_error(ZeroDivisionError("division by zero"))
    'Unexpected error: ZeroDivisionError: division by zero'
    """
    message = one_line(error)
    if isinstance(error, EXPECTED_ERRORS) and str(error).strip():
        return message
    return f"Unexpected error: {type(error).__name__}: {message if str(error).strip() else 'no message'}"


class WorkerSignals(QObject):
    """Signals of a :class:`Worker` (a ``QRunnable`` is not a ``QObject`` and cannot own signals)."""

    progress = pyqtSignal(float, str)  # fraction in [0, 1], what is happening
    chunk = pyqtSignal(object)  # np.ndarray of audio, as soon as it is made
    finished = pyqtSignal(object)  # the call's return value
    failed = pyqtSignal(str)  # one-line message
    cancelled = pyqtSignal(object)  # what was made before the cancel (Cancelled.partial), or None
    done = pyqtSignal()  # after finished, failed or cancelled: lets the owner release the job slot


class WorkerHooks:
    """What the wrapped call gets: callbacks that forward to the worker's signals."""

    def __init__(self, signals: WorkerSignals, cancel_flag: threading.Event | None = None) -> None:
        self._signals = signals
        self._cancel = cancel_flag or threading.Event()

    def check(self) -> None:
        """Raise :class:`Cancelled` once the job was asked to stop."""
        if self._cancel.is_set():
            raise Cancelled()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, fraction: float, message: str = "") -> None:
        self.check()
        _emit(self._signals.progress, float(min(max(fraction, 0.0), 1.0)), str(message))

    def chunk(self, samples: np.ndarray) -> None:
        self.check()
        # A copy: the producer may reuse its buffer once the callback has returned.
        _emit(self._signals.chunk, np.array(samples, dtype=np.float32, copy=True))


def _emit(signal, *args: object) -> None:  # noqa: ANN001 (a bound pyqtSignal)
    """Emit unless the signals object is gone: when the window closed while the job ran, Qt may have
    deleted it already, and there is nobody left to tell (RuntimeError: wrapped C/C++ object …)."""
    try:
        signal.emit(*args)
    except RuntimeError:
        pass


class Worker(QRunnable):
    """One blocking ``call(hooks) -> result`` run on a thread pool; ``name`` says what it is for the log."""

    def __init__(self, call: Callable[[WorkerHooks], Any], name: str = "") -> None:
        super().__init__()
        self.call = call
        self.name = name
        self.signals = WorkerSignals()
        self._cancel = threading.Event()
        self.hooks = WorkerHooks(self.signals, self._cancel)
        # The pool must not delete the C++ object while Python still holds the worker and its signals.
        self.setAutoDelete(False)

    def cancel(self) -> None:
        """Ask the call to stop at its next progress report or audio piece (any thread)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # runs on a pool thread
        try:
            result = self.call(self.hooks)
        except Cancelled as cancelled:
            _emit(self.signals.cancelled, cancelled.partial)
        except BaseException as error:  # noqa: BLE001 -- nothing may escape a pool thread
            message = describe_error(error)
            if message.startswith("Unexpected error") and not self._cancel.is_set():
                traceback.print_exc(file=sys.stderr)
            _emit(self.signals.failed, message)
        else:
            # Also after a late cancel: the work is done, so it is kept.
            _emit(self.signals.finished, result)
        finally:
            _emit(self.signals.done)


class WorkerPool:
    """A thread pool that keeps its running workers alive until they report ``done``; two threads: one
    foreground job and the background UMAP projection."""

    def __init__(self, max_threads: int = 2) -> None:
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[Worker] = set()

    def start(self, worker: Worker) -> Worker:
        self._running.add(worker)
        worker.signals.done.connect(lambda: self._running.discard(worker))
        self.pool.start(worker)
        return worker

    @property
    def active(self) -> int:
        return len(self._running)

    def wait(self, milliseconds: int = -1) -> bool:
        """Block until every worker has returned (used when the window closes)."""
        return self.pool.waitForDone(milliseconds)
