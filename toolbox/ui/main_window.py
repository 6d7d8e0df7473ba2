"""The toolbox's main window: browse, record and select reference voices, generate speech, inspect it.

The window holds no model and computes nothing: every action is forwarded to a
:class:`~toolbox.controller.ToolboxController` on a worker thread (see :mod:`toolbox.ui.workers`),
and the results are displayed when the worker reports back. Its panels, each in its own module, hold
a :class:`~toolbox.ui.session.ToolboxSession` (never the window or each other) and talk through it:

* :class:`~toolbox.ui.reference_panel.ReferencePanel`: dataset browser, files, recording, sound devices;
* :class:`~toolbox.ui.history_panel.HistoryPanel`: the utterances, and the voice the selected ones make;
* :class:`~toolbox.ui.models_panel.ModelsPanel`: the models used, download and rescan;
* :class:`~toolbox.ui.generation_panel.GenerationPanel`: text, synthesis, vocoding, the outputs;
* :class:`~toolbox.ui.plots_panel.PlotsPanel`: the projection, embeddings, mels and attention.

The window itself runs the jobs: one foreground job at a time (the action buttons are disabled
meanwhile, the window stays responsive); the UMAP projection is recomputed in the background beside
it. Cancel (or Esc) stops any of them at its next progress report and keeps what was made; closing
the window cancels them too. It also owns the progress bar, the log, the keyboard shortcuts and drops.

Keyboard: Ctrl+Enter synthesize and vocode, Ctrl+Shift+Enter synthesize only, Ctrl+O browse,
Ctrl+R record/stop, Ctrl+E export, Esc cancel, Delete and F2 remove and rename in the history. Audio
files dropped on the window are loaded.

Examples
--------
>>> app = QApplication([])  # doctest: +SKIP
>>> window = ToolboxWindow(ToolboxController("saved_models"), "datasets", AudioDevices())  # doctest: +SKIP
>>> window.show(); app.exec_()  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PyQt5.QtWidgets import (QHBoxLayout, QMainWindow, QProgressBar, QPushButton, QShortcut, QSplitter, QVBoxLayout,
                             QWidget)

from toolbox.controller import GeneratedOutput, ToolboxController
from toolbox.ui.generation_panel import GenerationPanel
from toolbox.ui.history_panel import HistoryPanel
from toolbox.ui.models_panel import ModelsPanel
from toolbox.ui.plots_panel import PlotsPanel
from toolbox.ui.reference_panel import AUDIO_SUFFIXES, ReferencePanel
from toolbox.ui.session import ToolboxSession
from toolbox.ui.widgets import LogPanel, scrollable, short_name
from toolbox.ui.workers import Worker, WorkerHooks, one_line
from utils.audio_devices import AudioDevices

# Closing waits this long for cancelled jobs to stop; a job stuck in a step that cannot be interrupted
# (a UMAP fit) is left to the process exit (see demo_toolbox.py).
CLOSE_WAIT_MS = 1500
MINIMUM_SIZE = (1024, 640)


class ToolboxWindow(QMainWindow):
    """The SV2TTS toolbox window: its panels, wired to one controller.

    Parameters
    ----------
    controller
        Does all the work; the window only forwards actions and shows results.
    datasets_root
        Folder searched for speech corpora for the dataset browser (``None``: browser disabled).
    devices
        Sound devices; without any (a server, CI) recording and playback are disabled with the reason
        shown, everything else works.
    load_models
        Load the selected models in the background right away, so that errors in the files show up
        at start-up rather than at the first synthesis.
    """

    def __init__(self, controller: ToolboxController, datasets_root: str | Path | None = None,
                 devices: AudioDevices | None = None, *, load_models: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.devices = devices or AudioDevices()
        self.last_error = ""
        self.chunks_received = 0  # audio chunks streamed by the last generation job
        # Warnings and errors since the current job started (or since start-up): the status bar
        # points at them when the job ends, so they are not lost in the log.
        self._problems: list[str] = []

        self.session = ToolboxSession(controller, self.devices, self.run_job)
        self.pool = self.session.pool
        self.session.message.connect(self.log)  # queued from worker threads
        self.session.error.connect(self.report_error)
        self.session.actions_changed.connect(self.update_actions)

        self.setWindowTitle("SV2TTS toolbox")
        self.setAcceptDrops(True)
        self._build(random.Random(controller.seed))
        self.setMinimumSize(*MINIMUM_SIZE)
        self._build_shortcuts()
        self.reference.populate_devices()
        self.models.populate()
        self.reference.set_datasets_root(datasets_root)
        self.history.refresh()
        self.generation.refresh_outputs()
        self.plots.update_projection()
        self.update_actions()
        if self.reference.audio_reason:
            self.log(f"Audio: {self.reference.audio_reason}")
        if load_models:
            self.run_job("Loading the models", lambda hooks: controller.load_models(hooks.progress),
                         keep_problems=True)
        elif self._problems:
            self._show_problems("Ready")

    def _build(self, rng: random.Random) -> None:
        # Built before the panels that draw on it or report to it.
        self.log_panel = LogPanel()
        self.plots = PlotsPanel(self.session)
        self.reference = ReferencePanel(self.session, rng)
        self.history = HistoryPanel(self.session)
        self.models = ModelsPanel(self.session)
        self.generation = GenerationPanel(self.session)

        top = QSplitter(Qt.Horizontal)
        top.addWidget(scrollable(self.reference))
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        middle_layout.addWidget(self.history, 1)
        middle_layout.addWidget(self.models)
        top.addWidget(scrollable(middle))
        top.addWidget(scrollable(self.generation))
        self._top_splitter = top
        self._sized = False
        top.setChildrenCollapsible(False)

        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.progress_bar.setMaximumHeight(18)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job (Esc): synthesis, vocoding, the projection, a "
                                      "download or a recording. What was made so far is kept.")
        self.cancel_button.setMaximumHeight(22)
        self.cancel_button.clicked.connect(self.cancel)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        # About eight lines: start-up messages and a job's warnings stay visible.
        self.log_panel.setMinimumHeight(self.log_panel.fontMetrics().lineSpacing() * 5 + 10)
        bottom_layout.addLayout(progress_row)
        bottom_layout.addWidget(self.log_panel, 1)

        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.plots)
        splitter.addWidget(bottom)
        splitter.setSizes([380, 330, 170])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)
        self.statusBar().showMessage("Ready.")

    # ================================================================================== logging
    def log(self, message: str) -> None:
        """Add a line to the log panel (GUI thread only; other threads emit ``session.message``)."""
        message = one_line(message)
        if message.startswith("Warning: "):
            self._problems.append(message)
        self.log_panel.add(message)

    def report_error(self, message: str) -> None:
        """Show an error in the log and, as one sentence, in the status bar."""
        message = one_line(message)
        self.last_error = message
        self.log(f"Error: {message}")
        self._problems.append(f"Error: {message}")
        self.statusBar().showMessage(message)

    def _show_problems(self, what: str) -> None:
        """Point the status bar at the warnings and errors in the log (the first one, and how many)."""
        count = len(self._problems)
        more = f" (and {count - 1} more)" if count > 1 else ""
        self.statusBar().showMessage(f"{what}, see the log: {self._problems[0]}{more}")

    # ===================================================================================== jobs
    @property
    def job(self) -> Worker | None:
        """The foreground job running."""
        return self.session.job

    @property
    def busy(self) -> bool:
        """Whether a foreground job (load, generation, download…) is running."""
        return self.session.busy

    @property
    def closing(self) -> bool:
        return self.session.closing

    def run_job(self, name: str, call: Callable[[WorkerHooks], Any],
                on_finished: Callable[[Any], None] | None = None, *, stream: bool = False,
                on_cancelled: Callable[[Any], None] | None = None, keep_problems: bool = False) -> Worker | None:
        """Start ``call`` on a worker thread as the single foreground job.

        ``stream`` plays the audio chunks it reports as they come; ``on_cancelled`` gets what a
        cancelled call had made (``Cancelled.partial``). Returns ``None`` (and logs why) when another
        job is still running.
        """
        if self.job is not None:
            self.log(f"Please wait: {self.job.name.lower()} is still running (Esc cancels it).")
            return None
        if self.closing:
            return None
        worker = Worker(call, name)
        self.session.job = worker
        self.chunks_received = 0
        if not keep_problems:
            self._problems = []
        if stream:
            self.reference.start_stream()
            worker.signals.chunk.connect(self._on_chunk)
        worker.signals.progress.connect(self._on_progress)
        worker.signals.failed.connect(self._on_job_failed)
        if on_finished is not None:
            worker.signals.finished.connect(on_finished)
        worker.signals.cancelled.connect(lambda partial: self._on_job_cancelled(partial, on_cancelled))
        worker.signals.done.connect(self._on_job_done)
        self.progress_bar.setRange(0, 0)  # busy indicator until the first progress report
        self.progress_bar.setFormat(name)
        self.statusBar().showMessage(f"{name}…")
        self.update_actions()
        self.pool.start(worker)
        return worker

    def _on_chunk(self, chunk: np.ndarray) -> None:
        self.chunks_received += 1
        self.reference.push_chunk(chunk)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(int(round(fraction * 100)))
        self.progress_bar.setFormat(f"{message}  %p%" if message else "%p%")

    def _on_job_failed(self, message: str) -> None:
        self.reference.end_stream(finish=False)
        self.report_error(message)

    def _on_job_cancelled(self, partial: Any, on_cancelled: Callable[[Any], None] | None) -> None:
        self.reference.end_stream(finish=False)  # Cancel means silence now; the output is kept for Replay
        name = self.job.name if self.job is not None else "The job"
        self.log(f"{name}: cancelled.")
        if on_cancelled is not None and partial:
            on_cancelled(partial)
        kept = ""
        if isinstance(partial, GeneratedOutput):
            kept = f": kept the {partial.duration:.1f} s made so far as '{short_name(partial.name, partial.speaker)}'"
        elif isinstance(partial, list) and partial:
            kept = f": kept the {len(partial)} file(s) loaded so far"
        self.statusBar().showMessage(f"Cancelled{kept}.")

    def _on_job_done(self) -> None:
        self.reference.end_stream(finish=True)  # what was streamed plays out
        self.session.job = None
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        if self.statusBar().currentMessage().endswith("…"):
            if self._problems:
                self._show_problems("Done with warnings" if not any(p.startswith("Error") for p in self._problems)
                                    else "Ready, but there were errors")
            else:
                self.statusBar().showMessage("Ready.")
        self.update_actions()

    def cancel(self) -> None:
        """Stop what is running (Esc): the foreground job at its next progress report (what it made is
        kept), the projection (its result is dropped), a recording (the take is discarded)."""
        stopped = []
        if self.job is not None and not self.job.cancel_requested:
            self.job.cancel()
            stopped.append(self.job.name.lower())
            self.progress_bar.setFormat(f"{self.job.name}: cancelling…")
        if self.plots.cancel_projection():
            stopped.append("the projection")
        if self.reference.discard_recording():
            stopped.append("the recording (discarded)")
        if stopped:
            waiting = self.job is not None  # the job reports back; the rest stopped already
            self.log(f"Cancelling {' and '.join(stopped)}.")
            self.statusBar().showMessage(f"Cancelling {' and '.join(stopped)}…" if waiting
                                         else f"Cancelled {' and '.join(stopped)}.")
        self.update_actions()

    def update_actions(self) -> None:
        """Enable in every panel what can be done now; disabled buttons say why in their tooltip."""
        idle = self.job is None and not self.reference.recording
        has_reference = bool(self.history.selected_names())
        self.reference.update_actions(idle, self.job is not None, has_reference)
        self.generation.update_actions(idle, has_reference)
        self.models.update_actions(idle)
        self.cancel_button.setEnabled(self.job is not None or self.reference.recording or self.plots.projecting)

    # ============================================================================ window events
    def showEvent(self, event) -> None:  # noqa: N802, ANN001 (Qt's name, QShowEvent)
        super().showEvent(event)
        if not self._sized:
            # Splitters start from their children's size hints; share the width on purpose instead,
            # giving the history (long dataset names) a little more.
            self._sized = True
            width = self._top_splitter.width() or self.width()
            self._top_splitter.setSizes([width * 33 // 100, width * 32 // 100, width * 35 // 100])

    def _build_shortcuts(self) -> None:
        """Keyboard shortcuts (also named in the buttons' tooltips)."""
        def shortcut(keys: str, slot: Callable[[], Any]) -> QShortcut:
            item = QShortcut(QKeySequence(keys), self, activated=slot)
            item.setContext(Qt.WindowShortcut)
            return item

        generation, reference = self.generation, self.reference
        self.shortcuts = {
            "Esc": shortcut("Esc", self.cancel),
            "Ctrl+Return": shortcut("Ctrl+Return", self._shortcut(generation.synthesize_vocode_button)),
            "Ctrl+Enter": shortcut("Ctrl+Enter", self._shortcut(generation.synthesize_vocode_button)),
            "Ctrl+Shift+Return": shortcut("Ctrl+Shift+Return", self._shortcut(generation.synthesize_button)),
            "Ctrl+O": shortcut("Ctrl+O", self._shortcut(reference.browse_button)),
            "Ctrl+R": shortcut("Ctrl+R", self._shortcut(reference.record_button)),
            "Ctrl+E": shortcut("Ctrl+E", self._shortcut(generation.export_button)),
            # The history list handles these itself (its own key handling comes before a shortcut).
            "Delete": self.history.remove_selected,
            "F2": self.history.rename_dialog,
        }
        for button, keys in ((generation.synthesize_vocode_button, "Ctrl+Enter"),
                             (generation.synthesize_button, "Ctrl+Shift+Enter"),
                             (reference.browse_button, "Ctrl+O"), (generation.export_button, "Ctrl+E")):
            button.setToolTip(f"{button.toolTip()} ({keys})")
        generation.default_tooltips = {button: button.toolTip() for button in generation.default_tooltips}

    @staticmethod
    def _shortcut(button: QPushButton) -> Callable[[], None]:
        """Click ``button`` if it is enabled (a shortcut must not bypass why a button is disabled)."""
        return lambda: button.click() if button.isEnabled() else None

    @staticmethod
    def _dropped_audio(mime) -> list[Path]:  # noqa: ANN001 (QMimeData)
        if not mime.hasUrls():
            return []
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        return [path for path in paths if path.suffix.lower() in AUDIO_SUFFIXES]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt's name)
        if self._dropped_audio(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt's name)
        paths = self._dropped_audio(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        if self.reference.load_files(paths) is None and self.job is not None:
            self.report_error("Wait for the running job to end (or press Esc) before dropping files.")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        """Cancel every job, wait briefly for them, and close: the window never hangs on a job."""
        self.session.closing = True
        self.cancel()
        self.reference.stop_playback()
        ended = self.pool.wait(CLOSE_WAIT_MS)
        if not ended:
            # A step that cannot be interrupted (a UMAP fit, one Tacotron batch on a slow CPU) is still
            # running: nobody is left to hear from it, so its signals are silenced (their C++ side
            # may be deleted with the window) and demo_toolbox ends the process without waiting.
            for worker in list(self.pool._running):
                worker.signals.blockSignals(True)
        super().closeEvent(event)

    @property
    def jobs_running(self) -> bool:
        """Whether a worker thread is still busy (after close: whether the process must not wait)."""
        return self.pool.pool.activeThreadCount() > 0
