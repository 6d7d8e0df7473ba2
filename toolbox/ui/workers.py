"""Run blocking controller calls off the GUI thread and report back through Qt signals.

A :class:`Worker` wraps one call. The call receives a :class:`WorkerHooks` whose ``progress`` and
``chunk`` methods it can pass straight to the controller's ``progress=`` and ``on_chunk=``
arguments; the hooks re-emit them as signals, which Qt delivers in the GUI thread (queued
connections), so slots may touch widgets freely.

Examples
--------
>>> worker = Worker(lambda hooks: controller.synthesize(text, names, progress=hooks.progress))  # doctest: +SKIP
>>> worker.signals.finished.connect(show_spectrogram)  # doctest: +SKIP
>>> pool.start(worker)  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from PyQt5.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

from pipeline import MissingModelError
from synthesizer.text import TextError
from toolbox.datasets import DatasetError
from toolbox.devices import AudioUnavailable
from utils.audio_io import AudioError
from utils.checkpoints import CheckpointError
from utils.default_models import ModelDownloadError
from utils.hparams import HParamsError

# Errors whose message is written for the user (one sentence saying what to do); anything else is a
# bug or an environment problem, shown with its type so that a report can be searched for.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    AudioError, AudioUnavailable, CheckpointError, DatasetError, HParamsError, MissingModelError,
    ModelDownloadError, TextError, ValueError, KeyError, OSError,
)


def one_line(text: object) -> str:
    """Collapse whitespace and newlines so a message fits the status bar."""
    return " ".join(str(text).split())


def describe_error(error: BaseException) -> str:
    """The one-line message shown to the user for ``error``.

    Examples
    --------
    >>> describe_error(ValueError("Select a reference first."))
    'Select a reference first.'
    >>> describe_error(ZeroDivisionError("division by zero"))
    'Unexpected error: ZeroDivisionError: division by zero'
    """
    if isinstance(error, KeyError) and error.args:
        message = one_line(error.args[0])  # str(KeyError) adds quotes around the message
    else:
        message = one_line(error)
    if isinstance(error, EXPECTED_ERRORS) and message:
        return message
    return f"Unexpected error: {type(error).__name__}: {message or 'no message'}"


class WorkerSignals(QObject):
    """Signals of a :class:`Worker` (a ``QRunnable`` is not a ``QObject`` and cannot own signals)."""

    progress = pyqtSignal(float, str)  # fraction in [0, 1], what is happening
    chunk = pyqtSignal(object)  # np.ndarray of audio, as soon as it is made
    finished = pyqtSignal(object)  # the call's return value
    failed = pyqtSignal(str)  # one-line message
    done = pyqtSignal()  # after finished or failed: lets the owner release the job slot


class WorkerHooks:
    """What the wrapped call gets: callbacks that forward to the worker's signals."""

    def __init__(self, signals: WorkerSignals) -> None:
        self._signals = signals

    def progress(self, fraction: float, message: str = "") -> None:
        self._signals.progress.emit(float(min(max(fraction, 0.0), 1.0)), str(message))

    def chunk(self, samples: np.ndarray) -> None:
        # A copy: the producer may reuse its buffer once the callback has returned.
        self._signals.chunk.emit(np.array(samples, dtype=np.float32, copy=True))


class Worker(QRunnable):
    """One blocking call run on a thread pool.

    Parameters
    ----------
    call
        ``call(hooks) -> result``; exceptions become :attr:`WorkerSignals.failed`.
    name
        What the job is, for the log ("Loading 'a.wav'").
    """

    def __init__(self, call: Callable[[WorkerHooks], Any], name: str = "") -> None:
        super().__init__()
        self.call = call
        self.name = name
        self.signals = WorkerSignals()
        self.hooks = WorkerHooks(self.signals)
        # The pool must not delete the C++ object while Python still holds the worker and its signals.
        self.setAutoDelete(False)

    def run(self) -> None:  # runs on a pool thread
        try:
            result = self.call(self.hooks)
        except BaseException as error:  # noqa: BLE001 -- nothing may escape a pool thread
            message = describe_error(error)
            if message.startswith("Unexpected error"):
                traceback.print_exc(file=sys.stderr)
            self.signals.failed.emit(message)
        else:
            self.signals.finished.emit(result)
        finally:
            self.signals.done.emit()


class WorkerPool:
    """A thread pool that keeps its running workers alive until they report ``done``.

    Parameters
    ----------
    max_threads
        Two by default: one foreground job and one background analysis (the UMAP projection).
    """

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
        """Workers started and not yet done."""
        return len(self._running)

    def wait(self, milliseconds: int = -1) -> bool:
        """Block until every worker has returned (used when the window closes)."""
        return self.pool.waitForDone(milliseconds)
