"""The reference audio box of the toolbox window: where voices come from (dataset browser, audio
files, the microphone) and where sound goes (input and output devices, playback)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QTimer, pyqtSignal
from PyQt5.QtWidgets import QComboBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton

from toolbox.controller import SAMPLE_RATE, HistoryUtterance
from toolbox.datasets import DatasetUtterance
from toolbox.ui.dataset_browser import DatasetBrowser
from toolbox.ui.session import ToolboxSession
from toolbox.ui.widgets import WARNING_STYLE, LevelMeter
from toolbox.ui.workers import Worker, describe_error
from utils.audio_devices import AudioUnavailable, Recorder, StreamingPlayer

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
AUDIO_FILTER = f"Audio files ({' '.join('*' + suffix for suffix in AUDIO_SUFFIXES)});;All files (*)"


class ReferencePanel(QGroupBox):
    """Load, browse and record references; choose the sound devices; play references and outputs.

    Without a sound device (a server, CI) recording and playback are disabled, with the reason
    (``audio_reason``) shown; everything else works.
    """

    level = pyqtSignal(float)  # input level of the recording (dBFS), emitted on the audio thread

    def __init__(self, session: ToolboxSession, rng: random.Random) -> None:
        super().__init__("Reference audio")
        self.session = session
        self.devices = session.devices
        self._recorder: Recorder | None = None
        self._player: StreamingPlayer | None = None
        self.can_play, self.can_record = session.can_play, session.can_record
        self.audio_reason = session.audio_reason

        grid = QGridLayout(self)
        grid.setVerticalSpacing(4)
        self.browser = DatasetBrowser(rng)
        self.browser.load_requested.connect(self.load_dataset_utterance)
        self.browser.message.connect(session.log)
        self.browser.error.connect(session.report_error)
        grid.addWidget(self.browser, 0, 0, 1, 3)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Load any audio file (WAV, FLAC, MP3, M4A, OGG) as a reference.")
        grid.addWidget(self.browse_button, 1, 0)

        self.record_button = QPushButton("Record")
        self.record_time_label = QLabel("0.0 s")
        self.level_meter = LevelMeter()
        record_row = QHBoxLayout()
        record_row.addWidget(self.record_time_label)
        record_row.addWidget(self.level_meter, 1)
        grid.addWidget(self.record_button, 1, 1)
        grid.addLayout(record_row, 1, 2)
        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Play the selected reference utterance.")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop playback.")
        grid.addWidget(self.play_button, 2, 0)
        grid.addWidget(self.stop_button, 2, 1)

        self.input_box, self.output_box = QComboBox(), QComboBox()
        for combo in (self.input_box, self.output_box):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(5)
        devices_row = QGridLayout()  # one device per row: long device names, narrow windows
        devices_row.addWidget(QLabel("Input:"), 0, 0)
        devices_row.addWidget(self.input_box, 0, 1)
        devices_row.addWidget(QLabel("Output:"), 1, 0)
        devices_row.addWidget(self.output_box, 1, 1)
        devices_row.setColumnStretch(1, 1)
        grid.addLayout(devices_row, 3, 0, 1, 3)
        self.audio_label = QLabel()
        self.audio_label.setWordWrap(True)
        self.audio_label.setStyleSheet(WARNING_STYLE)
        grid.addWidget(self.audio_label, 4, 0, 1, 3)
        grid.setRowStretch(5, 1)

        self.browse_button.clicked.connect(self.browse)
        self.record_button.clicked.connect(self.toggle_recording)
        self.play_button.clicked.connect(self.play_selected_utterance)
        self.stop_button.clicked.connect(self.stop_playback)
        self.input_box.currentIndexChanged.connect(self._on_input_changed)
        self.output_box.currentIndexChanged.connect(self._on_output_changed)
        self._record_timer = QTimer(self)
        self._record_timer.setInterval(100)
        self._record_timer.timeout.connect(self._on_record_tick)
        self.level.connect(self.on_level)
        session.play_requested.connect(self.play_audio)

    def set_datasets_root(self, root: str | Path | None) -> None:
        """Look for datasets under ``root`` for the browser (``None``: browser disabled)."""
        self.browser.set_root(root)

    # =================================================================================== files
    def _already_loaded(self, path: str | Path) -> bool:
        """Select the history's utterance of ``path`` instead of loading it again (no duplicates)."""
        existing = self.session.controller.find_source(path)
        if existing is None:
            return False
        self.session.log(f"'{existing.name}' is already in the history: selected it.")
        self.session.loading_started.emit()
        self.session.utterance_added.emit(existing)
        return True

    def load_dataset_utterance(self, utterance: DatasetUtterance) -> Worker | None:
        """Load an utterance picked in the dataset browser."""
        if self._already_loaded(utterance.path):
            return None
        self.session.loading_started.emit()
        return self.session.run_job(f"Loading '{utterance.name}'",
                                    lambda hooks: self.session.controller.load_dataset_utterance(utterance),
                                    self.session.utterance_added.emit)

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a reference recording", "", AUDIO_FILTER)
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> Worker | None:
        """Load any audio file as a reference (what Browse… does once a file is chosen)."""
        path = Path(path)
        if self._already_loaded(path):
            return None
        self.session.loading_started.emit()
        return self.session.run_job(f"Loading '{path.name}'", lambda hooks: self.session.controller.load_file(path),
                                    self.session.utterance_added.emit)

    def load_files(self, paths: Sequence[str | Path]) -> Worker | None:
        """Load several files in one job (a drop on the window); Cancel keeps those already loaded."""
        paths = [Path(path) for path in paths]
        if len(paths) == 1:
            return self.load_file(paths[0])
        self.session.loading_started.emit()
        return self.session.run_job(f"Loading {len(paths)} files",
                                    lambda hooks: self.session.controller.load_files(paths, hooks.progress),
                                    self._on_utterances_added, on_cancelled=self._on_utterances_added)

    def _on_utterances_added(self, utterances: list[HistoryUtterance]) -> None:
        if utterances:
            self.session.utterance_added.emit(utterances[-1])

    # =============================================================================== recording
    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def toggle_recording(self) -> None:
        if self._recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> None:
        """Record from the selected input until Stop; any length."""
        try:
            self._recorder = self.devices.recorder()
            self._recorder.start(SAMPLE_RATE, self.level.emit)  # level arrives on the audio thread
        except (AudioUnavailable, RuntimeError) as error:
            # Back to a usable Record button (RTVC left it disabled, reading "Recording...").
            self._recorder = None
            self.session.report_error(f"Could not record: {describe_error(error)}")
            self.session.update_actions()
            return
        self.record_button.setText("Stop recording")
        self.record_time_label.setText("0.0 s")
        self._record_timer.start()
        self.session.log("Recording… click 'Stop recording' when done.")
        self.session.update_actions()

    def stop_recording(self) -> Worker | None:
        """End the take, play it back and register it as a reference."""
        recorder, self._recorder = self._recorder, None
        self._record_timer.stop()
        self.record_button.setText("Record")
        self.level_meter.setValue(0)
        self.session.update_actions()
        if recorder is None:
            return None
        wav = recorder.stop()
        self.record_time_label.setText(f"{len(wav) / SAMPLE_RATE:.1f} s")
        if wav.size == 0:
            self.session.report_error("Nothing was recorded: check the input device and its level.")
            return None
        self.play_audio(wav, SAMPLE_RATE)
        return self.session.run_job("Adding the recording",
                                    lambda hooks: self.session.controller.add_recording(wav, SAMPLE_RATE),
                                    self.session.utterance_added.emit)

    def discard_recording(self) -> bool:
        """Stop a recording without keeping the take (Cancel). Returns whether one was running."""
        if self._recorder is None:
            return False
        recorder, self._recorder = self._recorder, None
        self._record_timer.stop()
        try:
            recorder.stop()
        except Exception as error:  # noqa: BLE001 -- a vanished device must not block Cancel
            self.session.log(f"The recording stopped with an error: {describe_error(error)}")
        self.record_button.setText("Record")
        self.level_meter.setValue(0)
        return True

    def _on_record_tick(self) -> None:
        if self._recorder is not None:
            self.record_time_label.setText(f"{self._recorder.elapsed_seconds:.1f} s")

    def on_level(self, level: float) -> None:
        """Show the input level (dBFS) of the recording in progress."""
        if self._recorder is not None:
            self.level_meter.set_level_dbfs(level)

    # ================================================================================= devices
    def populate_devices(self) -> None:
        """List the input and output devices, the defaults selected (or why there are none)."""
        for combo, devices, default in ((self.input_box, self.devices.inputs(None) if self.can_record else [],
                                         self.devices.input_device if self.can_record else None),
                                        (self.output_box, self.devices.outputs(None) if self.can_play else [],
                                         self.devices.output_device if self.can_play else None)):
            combo.blockSignals(True)
            combo.clear()
            for device in devices:
                combo.addItem(device.name, device.index)
                if default is not None and device.index == default.index:
                    combo.setCurrentIndex(combo.count() - 1)
            if not devices:
                combo.addItem("None")
            combo.setEnabled(bool(devices))
            combo.blockSignals(False)
        if self.audio_reason:
            self.audio_label.setText(self.audio_reason)
        self.audio_label.setVisible(bool(self.audio_reason))

    def _on_input_changed(self, _index: int) -> None:
        try:
            self.devices.set_input(self.input_box.currentData())
        except AudioUnavailable as error:
            self.session.report_error(str(error))

    def _on_output_changed(self, _index: int) -> None:
        try:
            self.devices.set_output(self.output_box.currentData())
        except AudioUnavailable as error:
            self.session.report_error(str(error))

    # ================================================================================ playback
    def play_audio(self, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bool:
        """Play ``wav``; problems go to the log (playback is never worth a crash)."""
        if not self.can_play:
            return False
        try:
            self.devices.play(wav, sample_rate)
        except Exception as error:  # noqa: BLE001 -- AudioUnavailable or a PortAudio error mid-stream
            self.session.report_error(f"Could not play the audio: {describe_error(error)}")
            return False
        return True

    def play_selected_utterance(self) -> None:
        utterance = self.session.current_utterance
        if utterance is not None:
            self.play_audio(utterance.wav)

    def stop_playback(self) -> None:
        try:
            self.end_stream(finish=False)
            self.devices.stop()
        except Exception as error:  # noqa: BLE001
            self.session.report_error(f"Could not stop playback: {describe_error(error)}")

    def start_stream(self) -> None:
        """Open the output for a job's audio, played piece by piece as it is made."""
        self._player = None
        if not self.can_play:
            return
        try:
            player = self.devices.streaming_player()
            player.start(SAMPLE_RATE)
        except Exception as error:  # noqa: BLE001
            self.session.report_error(f"Could not play the audio: {describe_error(error)}")
            return
        self._player = player

    def push_chunk(self, chunk: np.ndarray) -> None:
        """Play the next piece of the stream (dropped when the stream is not open)."""
        if self._player is None:
            return
        try:
            self._player.push(chunk)
        except Exception as error:  # noqa: BLE001
            self.session.report_error(f"Playback stopped: {describe_error(error)}")
            self._player.stop()
            self._player = None

    def end_stream(self, finish: bool) -> None:
        """Close the stream: ``finish`` lets what was pushed play out, else it goes silent now."""
        player, self._player = self._player, None
        if player is not None and finish:
            player.finish()
        elif player is not None:
            player.stop()

    def update_actions(self, idle: bool, job_running: bool, has_reference: bool) -> None:
        """Enable what can be done now; disabled buttons say why in their tooltip."""
        self.browser.set_loading_enabled(idle)
        self.browse_button.setEnabled(idle)
        self.record_button.setEnabled(self.can_record and (self.recording or not job_running))
        self.play_button.setEnabled(self.can_play and has_reference)
        self.stop_button.setEnabled(self.can_play)
        if not self.can_record:
            self.record_button.setToolTip(f"Recording is disabled: {self.audio_reason}")
        else:
            self.record_button.setToolTip("Record a reference from the input device; click again to stop.")
        if not self.can_play:
            for button in (self.play_button, self.stop_button):
                button.setToolTip(f"Playback is disabled: {self.audio_reason}")
