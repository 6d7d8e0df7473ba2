"""What the panels of the toolbox window share: the controller, the state one panel sets and others
read, and the signals through which they talk (the controller stays free of Qt, so they live here)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PyQt5.QtCore import QObject, pyqtSignal

from toolbox.controller import HistoryUtterance, ToolboxController
from toolbox.ui.workers import Worker, WorkerPool
from utils.audio_devices import AudioDevices


# The window's run_job(name, call, on_finished=None, *, stream, on_cancelled, keep_problems) -> Worker | None.
JobRunner = Callable[..., "Worker | None"]


class ToolboxSession(QObject):
    """The controller with the window's shared state and signals (GUI thread, except :attr:`message`)."""

    message = pyqtSignal(str)  # a log line; the controller emits it from worker threads too
    error = pyqtSignal(str)  # a problem, one sentence
    actions_changed = pyqtSignal()  # what can be done may have changed: the window re-enables buttons
    loading_started = pyqtSignal()  # a reference is about to be loaded or recorded
    utterance_added = pyqtSignal(object)  # HistoryUtterance loaded, recorded or found already loaded
    history_changed = pyqtSignal(object)  # the history's entries changed; the names to select, None: keep
    projection_outdated = pyqtSignal()  # the utterances to project changed
    outputs_changed = pyqtSignal()  # an output was renamed
    voice_selected = pyqtSignal(object)  # SelectedVoice of the selection, None when nothing is selected
    synthesized = pyqtSignal(object)  # SentenceMels not vocoded yet
    output_selected = pyqtSignal(object)  # GeneratedOutput shown
    source_converted = pyqtSignal(str, object)  # a conversion's source: its name and (80, T) mel
    play_requested = pyqtSignal(object)  # (samples,) float32 at 16 kHz

    def __init__(self, controller: ToolboxController, devices: AudioDevices, run_job: JobRunner) -> None:
        super().__init__()
        self.controller = controller
        self.devices = devices
        self.run_job = run_job
        self.pool = WorkerPool(2)
        self.job: Worker | None = None  # the foreground job, set by the window
        self.closing = False
        audio_ok, reason = devices.available()
        self.can_play = audio_ok and bool(devices.outputs(None))
        self.can_record = audio_ok and bool(devices.inputs(None))
        self.audio_reason = reason  # why recording or playback is disabled ("" when both work)
        self.selected_names: list[str] = []  # the history's selection, newest first: the voice
        self.synthesizer_help = ""  # how to get a synthesizer when there is none ("" otherwise)
        controller.add_log_listener(self.message.emit)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def log(self, message: str) -> None:
        self.message.emit(message)

    def report_error(self, message: str) -> None:
        self.error.emit(message)

    def update_actions(self) -> None:
        self.actions_changed.emit()

    def play(self, wav: np.ndarray) -> None:
        self.play_requested.emit(wav)

    @property
    def current_utterance(self) -> HistoryUtterance | None:
        """The first selected utterance (what Play plays)."""
        if not self.selected_names:
            return None
        try:
            return self.controller.find(self.selected_names[0])
        except KeyError:
            return None
