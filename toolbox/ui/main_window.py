"""The toolbox's main window: browse, record and select reference voices, generate speech, inspect it.

The window holds no model and computes nothing: every action is forwarded to a
:class:`~toolbox.controller.ToolboxController` on a worker thread (see :mod:`toolbox.ui.workers`),
and the results are displayed when the worker reports back. One foreground job runs at a time (the
action buttons are disabled meanwhile, the window stays responsive); the UMAP projection is
recomputed in the background beside it. Cancel (or Esc) stops any of them at its next progress report
and keeps what was made; closing the window cancels them too.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PyQt5.QtCore import QEvent, Qt, QTimer
from PyQt5.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QInputDialog,
    QMenu,
    QMessageBox,
    QShortcut,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QScrollArea,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from synthesizer.inference import MAX_SPEAKING_RATE, MIN_SPEAKING_RATE
from toolbox.controller import (
    GRIFFIN_LIM,
    MIN_UMAP_POINTS,
    MODEL_KINDS,
    SAMPLE_RATE,
    GeneratedOutput,
    ToolboxController,
    Utterance,
)
from toolbox.datasets import DatasetUtterance
from utils.audio_devices import AudioDevices, AudioUnavailable, Recorder, StreamingPlayer
from toolbox.ui.dataset_browser import DatasetBrowser
from toolbox.ui.plots import AlignmentPlot, ProjectionPlot, UtterancePlot
from toolbox.ui.widgets import LevelMeter, LogPanel, SimilarityMeter, ThreadBridge
from toolbox.ui.workers import Worker, WorkerHooks, WorkerPool, describe_error, one_line
from utils.default_models import missing_default_models

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
AUDIO_FILTER = f"Audio files ({' '.join('*' + suffix for suffix in AUDIO_SUFFIXES)});;All files (*)"
# Closing waits this long for cancelled jobs to stop; a job stuck in a step that cannot be interrupted
# (a UMAP fit) is left to the process exit (see demo_toolbox.py).
CLOSE_WAIT_MS = 1500
MINIMUM_SIZE = (1024, 640)
EXPORT_FILTER = "WAV audio (*.wav);;FLAC audio (*.flac)"
WELCOME_TEXT = (
    "Welcome to the voice cloning toolbox. Load, browse or record a voice first.\n"
    "Each line of this box is spoken separately, and long lines are cut into sentences.\n"
    "Outputs of five to twelve seconds usually sound best."
)
SENTENCE_GAP_FRAMES = 12  # 0.15 s of silence between sentences in the output's mel display
WARNING_STYLE = "color: #c06000;"


def scrollable(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: below its natural size the panel scrolls instead of
    forcing the whole window to stay large."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setMinimumWidth(200)
    return area


def short_name(name: str, speaker: str) -> str:
    """What lists show of an utterance's name: the file name, or the part of a generated name after
    its speaker (the speaker is shown beside it anyway).

    Examples
    --------
    >>> short_name("LibriSpeech/train-clean-100/19/198/19-198-0000.flac", "LibriSpeech_train-clean-100_19")
    '19-198-0000.flac'
    >>> short_name("alice_gen_00003", "alice")
    'gen_00003'
    """
    if name.startswith(f"{speaker}_gen_"):
        return name[len(speaker) + 1:]
    return Path(name).name or name


class ToolboxWindow(QMainWindow):
    """The SV2TTS toolbox window.

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
        self.rng = random.Random(controller.seed)
        self.pool = WorkerPool(2)
        self.job: Worker | None = None
        self.last_error = ""
        self.chunks_received = 0  # audio chunks streamed by the last generation job
        self._recorder: Recorder | None = None
        self._player: StreamingPlayer | None = None
        self._projection_job: Worker | None = None
        self._projection_pending = False
        self._projection_epoch = 0  # bumped by Clear: results of older jobs are dropped
        self._projection_announced = False
        self._closing = False
        # Warnings and errors since the current job started (or since start-up): the status bar
        # points at them when the job ends, so they are not lost in the log.
        self._problems: list[str] = []
        self._selection_at_start: list[str] = []  # selection when a load started

        self.bridge = ThreadBridge()
        self.bridge.log.connect(self.log)
        self.bridge.level.connect(self._on_level)
        controller.add_log_listener(self.bridge.log.emit)  # called on worker threads

        audio_ok, reason = self.devices.available()
        self.can_play = audio_ok and bool(self.devices.outputs(None))
        self.can_record = audio_ok and bool(self.devices.inputs(None))
        self.audio_reason = reason

        self.setWindowTitle("SV2TTS toolbox")
        self.setAcceptDrops(True)
        self._build()
        self.setMinimumSize(*MINIMUM_SIZE)
        self._build_shortcuts()
        self._populate_devices()
        self._populate_models()
        self.browser.set_root(datasets_root)
        self._refresh_history()
        self._refresh_outputs()
        self._update_projection()
        self._update_actions()
        if self.audio_reason:
            self.log(f"Audio: {self.audio_reason}")
        if load_models:
            self.run_job("Loading the models", lambda hooks: controller.load_models(hooks.progress),
                         keep_problems=True)
        elif self._problems:
            self._show_problems("Ready")

    # ============================================================================== construction
    def _build(self) -> None:
        top = QSplitter(Qt.Horizontal)
        top.addWidget(scrollable(self._build_reference_box()))
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        middle_layout.addWidget(self._build_history_box(), 1)
        middle_layout.addWidget(self._build_models_box())
        top.addWidget(scrollable(middle))
        top.addWidget(scrollable(self._build_generation_box()))
        self._top_splitter = top
        self._sized = False
        top.setChildrenCollapsible(False)

        plots = self._build_plots()
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
        self.log_panel = LogPanel()
        # About eight lines: start-up messages and a job's warnings stay visible.
        self.log_panel.setMinimumHeight(self.log_panel.fontMetrics().lineSpacing() * 5 + 10)
        bottom_layout.addLayout(progress_row)
        bottom_layout.addWidget(self.log_panel, 1)

        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(plots)
        splitter.addWidget(bottom)
        splitter.setSizes([380, 330, 170])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)
        self.statusBar().showMessage("Ready.")

    def _build_reference_box(self) -> QGroupBox:
        box = QGroupBox("Reference audio")
        grid = QGridLayout(box)
        grid.setVerticalSpacing(4)
        self.browser = DatasetBrowser(self.rng)
        self.browser.load_requested.connect(self.load_dataset_utterance)
        self.browser.message.connect(self.log)
        self.browser.error.connect(self.report_error)
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
        return box

    def _build_history_box(self) -> QGroupBox:
        box = QGroupBox("Utterance history")
        layout = QVBoxLayout(box)
        self.history_list = QListWidget()
        self.history_list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        # Long dataset names are cut in the middle so that the duration at the end stays visible.
        self.history_list.setTextElideMode(Qt.ElideMiddle)
        self.history_list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        font = self.history_list.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)  # long dataset names: fit a little more
        self.history_list.setFont(font)
        self.history_list.setToolTip("Ctrl- or Shift-click to select several utterances: their embeddings "
                                     "are averaged into one voice.")
        self.voice_label = QLabel()
        self.voice_label.setWordWrap(True)
        self.voice_warning_label = QLabel()
        self.voice_warning_label.setWordWrap(True)
        self.voice_warning_label.setStyleSheet(WARNING_STYLE)
        layout.addWidget(self.history_list, 1)
        layout.addWidget(self.voice_label)
        layout.addWidget(self.voice_warning_label)
        self.history_list.itemSelectionChanged.connect(self._on_history_selection)
        self.history_list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.history_list.customContextMenuRequested.connect(self._history_menu)
        return box

    def _history_menu(self, position) -> None:  # noqa: ANN001 (QPoint)
        names = self.selected_names()
        if not names:
            return
        menu = QMenu(self)
        rename = menu.addAction("Rename…  (F2)")
        rename.setEnabled(len(names) == 1)
        remove = menu.addAction(f"Remove {len(names)} from the history  (Delete)" if len(names) > 1
                                else "Remove from the history  (Delete)")
        chosen = menu.exec_(self.history_list.viewport().mapToGlobal(position))
        if chosen is rename:
            self.rename_dialog()
        elif chosen is remove:
            self.remove_selected()

    def _build_models_box(self) -> QGroupBox:
        box = QGroupBox("Models")
        grid = QGridLayout(box)
        grid.setVerticalSpacing(3)
        self.model_boxes: dict[str, QComboBox] = {}
        for column, kind in enumerate(MODEL_KINDS):
            grid.addWidget(QLabel(kind.capitalize()), 0, column)
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
            combo.currentIndexChanged.connect(lambda _index, kind=kind: self._on_model_changed(kind))
            grid.addWidget(combo, 1, column)
            self.model_boxes[kind] = combo
        self.download_button = QPushButton("Download defaults")
        self.download_button.setToolTip("Fetch RTVC's pretrained synthesizer (370 MB) and vocoder (54 MB) "
                                        "into the models folder.")
        self.download_button.clicked.connect(self.download_default_models)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip("Look for checkpoints in the models folder again (files copied there by hand).")
        self.rescan_button.clicked.connect(self.rescan_models)
        grid.addWidget(self.download_button, 2, 0, 1, 2)
        grid.addWidget(self.rescan_button, 2, 2)
        return box

    def _build_generation_box(self) -> QGroupBox:
        box = QGroupBox("Text and generation")
        layout = QVBoxLayout(box)
        self.text_edit = QPlainTextEdit(WELCOME_TEXT)
        self.text_edit.setToolTip("One utterance per line; long lines are split into sentences.")
        layout.addWidget(self.text_edit, 1)
        self.synthesizer_help_label = QLabel()
        self.synthesizer_help_label.setWordWrap(True)
        self.synthesizer_help_label.setStyleSheet(WARNING_STYLE)
        layout.addWidget(self.synthesizer_help_label)

        buttons = QGridLayout()  # the main action on a row of its own, the two stages below it
        self.synthesize_vocode_button = QPushButton("Synthesize and vocode")
        self.synthesize_button = QPushButton("Synthesize")
        self.vocode_button = QPushButton("Vocode")
        self.synthesize_vocode_button.setToolTip("Speak the text in the selected voice; each sentence plays "
                                                 "as soon as it is ready.")
        self.synthesize_button.setToolTip("Make the mel spectrogram only (fast), to check it before vocoding.")
        self.vocode_button.setToolTip("Turn the last synthesized spectrogram into audio with the selected vocoder.")
        buttons.addWidget(self.synthesize_vocode_button, 0, 0, 1, 2)
        buttons.addWidget(self.synthesize_button, 1, 0)
        buttons.addWidget(self.vocode_button, 1, 1)
        layout.addLayout(buttons)

        options = QHBoxLayout()
        self.seed_check = QCheckBox("Random seed:")
        self.seed_check.setToolTip("Fix the random seed: synthesis and vocoding then give the same output "
                                   "every time. Unchecked, a new seed is drawn and written to the log.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setMaximumWidth(100)
        if self.controller.seed is not None:
            self.seed_check.setChecked(True)
            self.seed_spin.setValue(int(self.controller.seed))
        self.seed_spin.setEnabled(self.seed_check.isChecked())
        self.seed_check.toggled.connect(self.seed_spin.setEnabled)
        self.rate_label = QLabel("Speaking rate:")
        self.rate_spin = QDoubleSpinBox()
        self.rate_spin.setRange(MIN_SPEAKING_RATE, MAX_SPEAKING_RATE)
        self.rate_spin.setSingleStep(0.05)
        self.rate_spin.setDecimals(2)
        self.rate_spin.setValue(1.0)
        self.rate_spin.setSuffix("×")
        self.rate_spin.setToolTip("Pace of the speech: 1.25× is 25 % faster, 0.8× slower. The duration "
                                  "synthesizer changes its phoneme durations; a Tacotron's mel is resampled.")
        self.rate_label.setBuddy(self.rate_spin)
        self.enhance_check = QCheckBox("Enhance output")
        self.enhance_check.setToolTip("Trim long silences from the output and normalise its loudness.")
        options.addWidget(self.seed_check)
        options.addWidget(self.seed_spin)
        options.addStretch(1)
        layout.addLayout(options)
        rate_row = QHBoxLayout()  # a row of its own: the window stays usable at 1024 pixels wide
        rate_row.addWidget(self.rate_label)
        rate_row.addWidget(self.rate_spin)
        rate_row.addStretch(1)
        layout.addLayout(rate_row)

        outputs = QHBoxLayout()
        outputs.addWidget(QLabel("Output:"))
        self.outputs_box = QComboBox()
        self.outputs_box.setToolTip("Generated outputs, newest first.")
        self.outputs_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.outputs_box.setMinimumContentsLength(10)
        self.replay_button = QPushButton("Replay")
        self.replay_button.setToolTip("Play the selected output again.")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the selected output as a WAV or FLAC file (16 kHz).")
        outputs.addWidget(self.outputs_box, 1)
        layout.addLayout(outputs)
        judge = QHBoxLayout()
        judge.addWidget(self.replay_button)
        judge.addWidget(self.export_button)
        judge.addStretch(1)
        judge.addWidget(self.enhance_check)
        layout.addLayout(judge)
        self.similarity_meter = SimilarityMeter()
        layout.addWidget(self.similarity_meter)

        self._default_tooltips = {button: button.toolTip() for button in
                                  (self.synthesize_vocode_button, self.synthesize_button, self.vocode_button)}
        self.synthesize_vocode_button.clicked.connect(self.synthesize_and_vocode)
        self.synthesize_button.clicked.connect(self.synthesize)
        self.vocode_button.clicked.connect(self.vocode)
        self.outputs_box.currentIndexChanged.connect(self._on_output_selected)
        self.replay_button.clicked.connect(self.replay)
        self.export_button.clicked.connect(self.export_dialog)
        return box

    def _build_plots(self) -> QWidget:
        panel = QWidget()
        layout = QHBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        projection = QWidget()
        projection_layout = QVBoxLayout(projection)
        projection_layout.setContentsMargins(0, 0, 0, 0)
        projection_layout.setSpacing(2)
        self.projection_plot = ProjectionPlot()
        self.projection_plot.setMinimumSize(240, 190)
        self.clear_projection_button = QPushButton("Clear")
        self.clear_projection_button.setToolTip("Remove every point from the projection "
                                                "(the utterance history keeps them).")
        self.clear_projection_button.clicked.connect(self.clear_projection)
        projection_layout.addWidget(self.projection_plot, 1)
        projection_layout.addWidget(self.clear_projection_button)
        layout.addWidget(projection, 3)

        rows = QWidget()
        rows_layout = QVBoxLayout(rows)
        rows_layout.setContentsMargins(0, 0, 0, 0)
        rows_layout.setSpacing(2)
        self.reference_plot = UtterancePlot("reference")
        self.output_plot = UtterancePlot("output")
        for canvas in (self.reference_plot, self.output_plot):
            canvas.setMinimumHeight(95)
            rows_layout.addWidget(canvas, 1)
        layout.addWidget(rows, 7)
        self.alignment_plot = AlignmentPlot()
        self.alignment_plot.setMinimumWidth(200)
        layout.addWidget(self.alignment_plot, 3)
        return panel

    # ================================================================================== logging
    def log(self, message: str) -> None:
        """Add a line to the log panel (GUI thread only; other threads go through ``bridge.log``)."""
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
    def busy(self) -> bool:
        """Whether a foreground job (load, generation, download…) is running."""
        return self.job is not None

    @property
    def projecting(self) -> bool:
        """Whether a UMAP projection is being computed or waits to be."""
        return self._projection_job is not None or self._projection_pending

    def run_job(self, name: str, call: Callable[[WorkerHooks], Any],
                on_finished: Callable[[Any], None] | None = None, *, stream: bool = False,
                on_cancelled: Callable[[Any], None] | None = None, keep_problems: bool = False) -> Worker | None:
        """Start ``call`` on a worker thread as the single foreground job.

        ``on_cancelled`` gets what a cancelled call had made (``Cancelled.partial``). Returns ``None``
        (and logs why) when another job is still running.
        """
        if self.job is not None:
            self.log(f"Please wait: {self.job.name.lower()} is still running (Esc cancels it).")
            return None
        if self._closing:
            return None
        worker = Worker(call, name)
        self.job = worker
        self.chunks_received = 0
        if not keep_problems:
            self._problems = []
        if stream:
            self._start_streaming()
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
        self._update_actions()
        self.pool.start(worker)
        return worker

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(int(round(fraction * 100)))
        self.progress_bar.setFormat(f"{message}  %p%" if message else "%p%")

    def _on_job_failed(self, message: str) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        self.report_error(message)

    def _on_job_cancelled(self, partial: Any, on_cancelled: Callable[[Any], None] | None) -> None:
        if self._player is not None:
            self._player.stop()  # Cancel means silence now; the output is kept for Replay
            self._player = None
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
        if self._player is not None:
            self._player.finish()  # what was streamed plays out
            self._player = None
        self.job = None
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        if self.statusBar().currentMessage().endswith("…"):
            if self._problems:
                self._show_problems("Done with warnings" if not any(p.startswith("Error") for p in self._problems)
                                    else "Ready, but there were errors")
            else:
                self.statusBar().showMessage("Ready.")
        self._update_actions()

    # ================================================================================== cancel
    def cancel(self) -> None:
        """Stop what is running (Esc): the foreground job at its next progress report (what it made is
        kept), the projection (its result is dropped), a recording (the take is discarded)."""
        stopped = []
        if self.job is not None and not self.job.cancel_requested:
            self.job.cancel()
            stopped.append(self.job.name.lower())
            self.progress_bar.setFormat(f"{self.job.name}: cancelling…")
        if self._projection_job is not None or self._projection_pending:
            # A UMAP fit cannot stop half-way; its result is dropped and the plot keeps its last state.
            self._projection_epoch += 1
            self._projection_pending = False
            stopped.append("the projection")
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            self._record_timer.stop()
            try:
                recorder.stop()
            except Exception as error:  # noqa: BLE001 -- a vanished device must not block Cancel
                self.log(f"The recording stopped with an error: {describe_error(error)}")
            self.record_button.setText("Record")
            self.level_meter.setValue(0)
            stopped.append("the recording (discarded)")
        if stopped:
            waiting = self.job is not None  # the job reports back; the rest stopped already
            self.log(f"Cancelling {' and '.join(stopped)}.")
            self.statusBar().showMessage(f"Cancelling {' and '.join(stopped)}…" if waiting
                                         else f"Cancelled {' and '.join(stopped)}.")
        self._update_actions()

    # ============================================================================ files, record
    def _already_loaded(self, path: str | Path) -> bool:
        """Select the history's utterance of ``path`` instead of loading it again (no duplicates)."""
        existing = self.controller.find_source(path)
        if existing is None:
            return False
        self.log(f"'{existing.name}' is already in the history: selected it.")
        self._selection_at_start = self.selected_names()
        self._on_utterance_added(existing)
        return True

    def load_dataset_utterance(self, utterance: DatasetUtterance) -> Worker | None:
        """Load an utterance picked in the dataset browser."""
        if self._already_loaded(utterance.path):
            return None
        self._selection_at_start = self.selected_names()
        return self.run_job(f"Loading '{utterance.name}'",
                            lambda hooks: self.controller.load_dataset_utterance(utterance),
                            self._on_utterance_added)

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a reference recording", "", AUDIO_FILTER)
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> Worker | None:
        """Load any audio file as a reference (what Browse… does once a file is chosen)."""
        path = Path(path)
        if self._already_loaded(path):
            return None
        self._selection_at_start = self.selected_names()
        return self.run_job(f"Loading '{path.name}'", lambda hooks: self.controller.load_file(path),
                            self._on_utterance_added)

    def load_files(self, paths: Sequence[str | Path]) -> Worker | None:
        """Load several files in one job (a drop on the window); Cancel keeps those already loaded."""
        paths = [Path(path) for path in paths]
        if len(paths) == 1:
            return self.load_file(paths[0])
        self._selection_at_start = self.selected_names()
        return self.run_job(f"Loading {len(paths)} files",
                            lambda hooks: self.controller.load_files(paths, hooks.progress),
                            self._on_utterances_added, on_cancelled=self._on_utterances_added)

    def _on_utterances_added(self, utterances: list[Utterance]) -> None:
        if utterances:
            self._on_utterance_added(utterances[-1])

    # ========================================================================== drag and drop
    @staticmethod
    def _dropped_audio(mime) -> list[Path]:  # noqa: ANN001 (QMimeData)
        if not mime.hasUrls():
            return []
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        return [path for path in paths if path.suffix.lower() in AUDIO_SUFFIXES]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_audio(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_audio(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        if self.load_files(paths) is None and self.job is not None:
            self.report_error("Wait for the running job to end (or press Esc) before dropping files.")

    def toggle_recording(self) -> None:
        if self._recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> None:
        """Record from the selected input until Stop; any length."""
        try:
            self._recorder = self.devices.recorder()
            self._recorder.start(SAMPLE_RATE, self.bridge.level.emit)  # level arrives on the audio thread
        except (AudioUnavailable, RuntimeError) as error:
            # Back to a usable Record button (RTVC left it disabled, reading "Recording...").
            self._recorder = None
            self.report_error(f"Could not record: {describe_error(error)}")
            self._update_actions()
            return
        self.record_button.setText("Stop recording")
        self.record_time_label.setText("0.0 s")
        self._record_timer.start()
        self.log("Recording… click 'Stop recording' when done.")
        self._update_actions()

    def stop_recording(self) -> Worker | None:
        """End the take, play it back and register it as a reference."""
        recorder, self._recorder = self._recorder, None
        self._record_timer.stop()
        self.record_button.setText("Record")
        self.level_meter.setValue(0)
        self._update_actions()
        if recorder is None:
            return None
        wav = recorder.stop()
        self.record_time_label.setText(f"{len(wav) / SAMPLE_RATE:.1f} s")
        if wav.size == 0:
            self.report_error("Nothing was recorded: check the input device and its level.")
            return None
        self.play_audio(wav, SAMPLE_RATE)
        return self.run_job("Adding the recording",
                            lambda hooks: self.controller.add_recording(wav, SAMPLE_RATE),
                            self._on_utterance_added)

    def _on_record_tick(self) -> None:
        if self._recorder is not None:
            self.record_time_label.setText(f"{self._recorder.elapsed_seconds:.1f} s")

    def _on_level(self, level: float) -> None:
        if self._recorder is not None:
            self.level_meter.set_level_dbfs(level)

    def _on_utterance_added(self, utterance: Utterance) -> None:
        """Select the new utterance. It replaces the selection only when the user left a single
        reference (or none) untouched while it loaded; a selection of several references, or one
        changed meanwhile, is a voice being built, so the new utterance is added to it."""
        current = self.selected_names()
        untouched = current == self._selection_at_start and len(current) <= 1
        if untouched or utterance.name in current:
            select = [utterance.name] if untouched else current
        else:
            select = current + [utterance.name]
            self.log(f"Added '{short_name(utterance.name, utterance.speaker)}' to the {len(current)} selected "
                     "reference(s); click it alone to use only it.")
        self._refresh_history(select=select)
        self._update_projection()

    # =================================================================================== audio
    def _populate_devices(self) -> None:
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
            self.report_error(str(error))

    def _on_output_changed(self, _index: int) -> None:
        try:
            self.devices.set_output(self.output_box.currentData())
        except AudioUnavailable as error:
            self.report_error(str(error))

    def play_audio(self, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bool:
        """Play ``wav``; problems go to the log (playback is never worth a crash)."""
        if not self.can_play:
            return False
        try:
            self.devices.play(wav, sample_rate)
        except Exception as error:  # noqa: BLE001 -- AudioUnavailable or a PortAudio error mid-stream
            self.report_error(f"Could not play the audio: {describe_error(error)}")
            return False
        return True

    def play_selected_utterance(self) -> None:
        utterance = self.current_utterance
        if utterance is not None:
            self.play_audio(utterance.wav)

    def stop_playback(self) -> None:
        try:
            if self._player is not None:
                self._player.stop()
                self._player = None
            self.devices.stop()
        except Exception as error:  # noqa: BLE001
            self.report_error(f"Could not stop playback: {describe_error(error)}")

    def _start_streaming(self) -> None:
        self._player = None
        if not self.can_play:
            return
        try:
            player = self.devices.streaming_player()
            player.start(SAMPLE_RATE)
        except Exception as error:  # noqa: BLE001
            self.report_error(f"Could not play the audio: {describe_error(error)}")
            return
        self._player = player

    def _on_chunk(self, chunk: np.ndarray) -> None:
        self.chunks_received += 1
        if self._player is None:
            return
        try:
            self._player.push(chunk)
        except Exception as error:  # noqa: BLE001
            self.report_error(f"Playback stopped: {describe_error(error)}")
            self._player.stop()
            self._player = None

    # ================================================================================= history
    def _refresh_history(self, select: list[str] | None = None) -> None:
        """Rebuild the list from the controller (newest first), keeping or replacing the selection."""
        keep = set(select if select is not None else self.selected_names())
        self.history_list.blockSignals(True)
        self.history_list.clear()
        for utterance in self.controller.history:
            kind = "generated, " if utterance.generated else ""
            item = QListWidgetItem(f"{short_name(utterance.name, utterance.speaker)} — {utterance.speaker} "
                                   f"({kind}{utterance.duration:.1f} s)")
            item.setData(Qt.UserRole, utterance.name)
            item.setToolTip(utterance.name)
            if utterance.generated:
                font = item.font()
                font.setItalic(True)
                item.setFont(font)
            self.history_list.addItem(item)
            item.setSelected(utterance.name in keep)
        self.history_list.blockSignals(False)
        self._on_history_selection()

    def selected_names(self) -> list[str]:
        """Names of the selected history utterances, newest first."""
        return [self.history_list.item(row).data(Qt.UserRole) for row in range(self.history_list.count())
                if self.history_list.item(row).isSelected()]

    def select_history(self, names: list[str]) -> None:
        """Select exactly these utterances (the voice is their average)."""
        wanted = set(names)
        self.history_list.blockSignals(True)
        for row in range(self.history_list.count()):
            item = self.history_list.item(row)
            item.setSelected(item.data(Qt.UserRole) in wanted)
        self.history_list.blockSignals(False)
        self._on_history_selection()

    @property
    def current_utterance(self) -> Utterance | None:
        names = self.selected_names()
        if not names:
            return None
        try:
            return self.controller.find(names[0])
        except KeyError:
            return None

    def _on_history_selection(self) -> None:
        names = self.selected_names()
        self.voice_warning_label.clear()
        if not names:
            self.voice_label.setText("Select one or more utterances (Ctrl-click) to make the voice."
                                     if self.history_list.count()
                                     else "Load, browse or record an utterance to make a voice.")
            self.reference_plot.clear()
            self._update_actions()
            return
        try:
            voice = self.controller.voice(names, remember=False)
        except (ValueError, KeyError) as error:
            self.report_error(describe_error(error))
            self._update_actions()
            return
        count = len(voice.names)
        self.voice_label.setText(f"Voice from {count} utterance{'s' if count > 1 else ''}, "
                                 f"{voice.speech_seconds:.1f} s of speech")
        self.voice_warning_label.setText("\n".join(voice.warnings))
        first = self.controller.find(names[0])
        if count == 1:
            self.reference_plot.plot(Path(first.name).name, first.embedding, first.mel)
        else:
            self.reference_plot.plot(f"average of {count} utterances (mel: {Path(first.name).name})",
                                     voice.embedding, first.mel)
        self._update_actions()

    # ============================================================================== generation
    def _seed(self) -> int:
        if self.seed_check.isChecked():
            return int(self.seed_spin.value())
        return self.controller.random_seed()  # still recorded, so a good output can be reproduced

    def synthesize(self) -> Worker | None:
        """Text → spectrograms in the selected voice (no audio yet)."""
        text, names, seed = self.text_edit.toPlainText(), self.selected_names(), self._seed()
        rate = self.rate_spin.value()
        return self.run_job("Synthesizing", lambda hooks: self.controller.synthesize(
            text, names, seed=seed, progress=hooks.progress, speaking_rate=rate), self._on_synthesized)

    def vocode(self) -> Worker | None:
        """The last spectrogram → audio with the selected vocoder, streamed to the output device."""
        seed, enhance = self._seed(), self.enhance_check.isChecked()
        return self.run_job("Vocoding", lambda hooks: self.controller.vocode(
            seed=seed, enhance=enhance, progress=hooks.progress, on_chunk=hooks.chunk),
            self._on_generated, stream=True, on_cancelled=self._on_generated)

    def synthesize_and_vocode(self) -> Worker | None:
        """Both stages, sentence by sentence: sentence 1 plays while the next ones are made."""
        text, names = self.text_edit.toPlainText(), self.selected_names()
        seed, enhance, rate = self._seed(), self.enhance_check.isChecked(), self.rate_spin.value()
        return self.run_job("Synthesizing and vocoding", lambda hooks: self.controller.synthesize_and_vocode(
            text, names, seed=seed, enhance=enhance, progress=hooks.progress, on_chunk=hooks.chunk,
            speaking_rate=rate), self._on_generated, stream=True, on_cancelled=self._on_generated)

    def _on_synthesized(self, synthesis) -> None:
        self.output_plot.plot("synthesized, not vocoded yet", None, synthesis.joined_mel(SENTENCE_GAP_FRAMES))
        self.alignment_plot.plot(synthesis.alignments)
        self.similarity_meter.set_similarity(None)

    def _on_generated(self, output: GeneratedOutput) -> None:
        partial = "" if output.complete else " (cancelled: what was made)"
        self.log(f"Output '{output.name}': {output.duration:.1f} s, vocoder {output.vocoder}, "
                 f"seed {output.seed}{partial}.")
        self._refresh_history()
        self._refresh_outputs()  # selects the newest output, which shows it
        self._update_projection()

    def _refresh_outputs(self) -> None:
        self.outputs_box.blockSignals(True)
        self.outputs_box.clear()
        for output in self.controller.outputs:
            vocoder = GRIFFIN_LIM if output.vocoder == "griffinlim" else output.vocoder
            partial = ", cancelled" if not output.complete else ""
            self.outputs_box.addItem(f"{short_name(output.name, output.speaker)} ({output.duration:.1f} s, "
                                     f"{vocoder}{partial})", output.name)
            self.outputs_box.setItemData(self.outputs_box.count() - 1, output.name, Qt.ToolTipRole)
        self.outputs_box.blockSignals(False)
        if self.controller.outputs:
            self.outputs_box.setCurrentIndex(0)
            self._on_output_selected(0)
        self._update_actions()

    @property
    def selected_output(self) -> GeneratedOutput | None:
        name = self.outputs_box.currentData()
        return next((output for output in self.controller.outputs if output.name == name), None)

    def _on_output_selected(self, _index: int) -> None:
        output = self.selected_output
        if output is None:
            return
        embedding = output.utterance.embedding if output.utterance is not None else None
        self.output_plot.plot(short_name(output.name, output.speaker), embedding, output.synthesis.joined_mel(SENTENCE_GAP_FRAMES))
        self.alignment_plot.plot(output.synthesis.alignments)
        self.similarity_meter.set_similarity(output.similarity)
        self._update_actions()

    def replay(self) -> None:
        output = self.selected_output
        if output is not None:
            self.play_audio(output.wav)

    def export_dialog(self) -> None:
        output = self.selected_output
        if output is None:
            return
        path, chosen_filter = QFileDialog.getSaveFileName(self, "Export the output", f"{output.name}.wav",
                                                          EXPORT_FILTER)
        if path:
            if not Path(path).suffix and "flac" in chosen_filter.lower():
                path += ".flac"
            self.export_output(path)

    def export_output(self, path: str | Path) -> Path | None:
        """Write the selected output to ``path`` (.wav or .flac; .wav added when there is no suffix)."""
        output = self.selected_output
        if output is None:
            self.report_error("Nothing to export yet: generate an output first.")
            return None
        try:
            return self.controller.export(output, path)
        except Exception as error:  # noqa: BLE001 -- a full disk or a bad name must not close the window
            self.report_error(f"Could not export: {describe_error(error)}")
            return None

    # ================================================================================== models
    def _populate_models(self) -> None:
        for kind, combo in self.model_boxes.items():
            combo.blockSignals(True)
            combo.clear()
            choices = self.controller.model_choices.get(kind, [])
            for choice in choices:
                combo.addItem(choice.label, choice.label)
                if choice.path is not None:
                    combo.setItemData(combo.count() - 1, str(choice.path), Qt.ToolTipRole)
            selected = self.controller.selected.get(kind)
            if selected is not None:
                combo.setCurrentIndex(max(0, combo.findData(selected.label)))
            if not choices:
                combo.addItem("none found")
            combo.setEnabled(bool(choices))
            combo.blockSignals(False)
        missing = missing_default_models(self.controller.models_dir, ("synthesizer", "vocoder"))
        self._missing_defaults = [entry.name for entry in missing]
        self.download_button.setVisible(bool(self._missing_defaults))
        if self._missing_defaults:
            self.download_button.setText("Download defaults")
            self.download_button.setToolTip(f"Fetch RTVC's pretrained {' and '.join(self._missing_defaults)} into "
                                            f"'{self.controller.models_dir / 'default'}'.")
        if not self.controller.has_synthesizer():
            self.synthesizer_help = (
                f"No synthesizer in '{self.controller.models_dir}': click 'Download defaults' (Models) for RTVC's "
                f"{' and '.join(self._missing_defaults) or 'models'}, copy a checkpoint there and click "
                "'Rescan', or train one (see the README), "
                "to generate speech. Loading, recording and the voice plots work without it.")
        else:
            self.synthesizer_help = ""
        self.synthesizer_help_label.setText(self.synthesizer_help)
        self.synthesizer_help_label.setVisible(bool(self.synthesizer_help))

    def _on_model_changed(self, kind: str) -> None:
        label = self.model_boxes[kind].currentData()
        if not label:
            return
        try:
            self.controller.select_model(kind, label)
        except ValueError as error:
            self.report_error(str(error))
            return
        if label != GRIFFIN_LIM:
            self.log(f"Selected the {kind} '{label}'; it is loaded when first needed.")
        self._update_actions()

    def download_default_models(self) -> Worker | None:
        """Fetch RTVC's synthesizer and vocoder; asks first when that would replace existing files."""
        names = list(self._missing_defaults) or ["synthesizer", "vocoder"]
        existing = self.controller.existing_default_files(names)
        if existing and not self.confirm_overwrite(existing):
            self.log("Download skipped: the existing model files are kept.")
            return None
        return self.run_job(f"Downloading the default {' and '.join(names)}",
                            lambda hooks: self.controller.download_default_models(names, hooks.progress),
                            lambda _result: self._populate_models(),
                            on_cancelled=lambda _partial: self._populate_models())

    def confirm_overwrite(self, paths: Sequence[Path]) -> bool:
        """Ask before a download replaces files (a model of one's own can sit in ``default/``)."""
        listing = "\n".join(str(path) for path in paths)
        answer = QMessageBox.question(
            self, "Replace model files?",
            f"The download replaces these files, which are not RTVC's published models:\n{listing}\n\n"
            "Replace them?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def rescan_models(self) -> Worker | None:
        """List the checkpoints of the models folder again (files copied there by hand)."""
        return self.run_job("Looking for models", lambda hooks: self.controller.scan_models(),
                            lambda _result: self._on_rescanned())

    def _on_rescanned(self) -> None:
        self._populate_models()
        found = {kind: len(self.controller.model_choices.get(kind, [])) for kind in MODEL_KINDS}
        found["vocoder"] -= 1  # Griffin-Lim is always there
        self.log("Models found: " + ", ".join(f"{count} {kind}{'s' if count != 1 else ''}"
                                               for kind, count in found.items()) + ".")
        self._update_actions()

    # ==================================================================================== UMAP
    def _update_projection(self) -> None:
        """Redraw the projection after a change: a waiting text below 4 points, else UMAP in the background."""
        known = {utterance.name for utterance in self.controller.history}
        count = sum(1 for name in self.controller.projection_names if name in known)
        if count < MIN_UMAP_POINTS:
            self.projection_plot.show_waiting(MIN_UMAP_POINTS - count)
            return
        if self._projection_job is not None:
            self._projection_pending = True  # one more run when the current one ends
            return
        if not self._projection_announced:
            self._projection_announced = True
            self.log("Computing the projection; the first time takes a few seconds.")
        epoch = self._projection_epoch
        worker = Worker(lambda hooks: self.controller.projection(), "Computing the projection")
        worker.signals.finished.connect(lambda projection: self._on_projection(projection, epoch))
        worker.signals.failed.connect(lambda message: None if self._closing
                                      else self.report_error(f"Projection failed: {message}"))
        worker.signals.done.connect(self._on_projection_done)
        self._projection_job = worker
        self._projection_pending = False
        self.pool.start(worker)
        self._update_actions()

    def _on_projection(self, projection, epoch: int) -> None:
        if epoch != self._projection_epoch or self._closing:
            return
        if projection is None:
            self._update_projection()
            return
        self.projection_plot.plot(projection.points, projection.names, projection.speakers, projection.generated)

    def _on_projection_done(self) -> None:
        self._projection_job = None
        self._update_actions()
        if self._projection_pending and not self._closing:
            self._projection_pending = False
            self._update_projection()

    def clear_projection(self) -> None:
        """Empty the projection (the history and its voice selection are kept)."""
        self._projection_epoch += 1
        self._projection_pending = False
        self.controller.clear_projection()
        self.projection_plot.show_waiting(MIN_UMAP_POINTS)

    # ================================================================================= actions
    def _update_actions(self) -> None:
        """Enable what can be done now; disabled buttons say why in their tooltip."""
        idle = self.job is None and self._recorder is None
        has_reference = bool(self.selected_names())
        has_synthesizer = self.controller.has_synthesizer()
        self.browser.set_loading_enabled(idle)
        self.browse_button.setEnabled(idle)
        recording = self._recorder is not None
        self.record_button.setEnabled(self.can_record and (recording or self.job is None))
        self.play_button.setEnabled(self.can_play and has_reference)
        self.stop_button.setEnabled(self.can_play)
        self.replay_button.setEnabled(self.can_play and self.selected_output is not None)
        self.export_button.setEnabled(self.selected_output is not None)
        if not self.can_record:
            self.record_button.setToolTip(f"Recording is disabled: {self.audio_reason}")
        else:
            self.record_button.setToolTip("Record a reference from the input device; click again to stop.")
        if not self.can_play:
            for button in (self.play_button, self.stop_button, self.replay_button):
                button.setToolTip(f"Playback is disabled: {self.audio_reason}")

        generate = idle and has_reference and has_synthesizer
        self.synthesize_vocode_button.setEnabled(generate)
        self.synthesize_button.setEnabled(generate)
        self.vocode_button.setEnabled(idle and has_synthesizer and self.controller.current_synthesis is not None)
        for button in (self.synthesize_vocode_button, self.synthesize_button, self.vocode_button):
            button.setToolTip(self.synthesizer_help or self._default_tooltips[button])
        for kind, combo in self.model_boxes.items():
            combo.setEnabled(idle and bool(self.controller.model_choices.get(kind)))
        self.download_button.setEnabled(idle)
        self.rescan_button.setEnabled(idle)
        self.cancel_button.setEnabled(self.job is not None or recording or self._projection_job is not None
                                      or self._projection_pending)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sized:
            # Splitters start from their children's size hints; share the width on purpose instead,
            # giving the history (long dataset names) a little more.
            self._sized = True
            width = self._top_splitter.width() or self.width()
            self._top_splitter.setSizes([width * 33 // 100, width * 32 // 100, width * 35 // 100])

    # =============================================================================== shortcuts
    def _build_shortcuts(self) -> None:
        """Keyboard shortcuts (also named in the buttons' tooltips)."""
        def shortcut(keys: str, slot: Callable[[], Any], widget: QWidget | None = None) -> QShortcut:
            item = QShortcut(QKeySequence(keys), widget or self, activated=slot)
            item.setContext(Qt.WidgetShortcut if widget is not None else Qt.WindowShortcut)
            return item

        self.shortcuts = {
            "Esc": shortcut("Esc", self.cancel),
            "Ctrl+Return": shortcut("Ctrl+Return", self._shortcut(self.synthesize_vocode_button)),
            "Ctrl+Enter": shortcut("Ctrl+Enter", self._shortcut(self.synthesize_vocode_button)),
            "Ctrl+Shift+Return": shortcut("Ctrl+Shift+Return", self._shortcut(self.synthesize_button)),
            "Ctrl+O": shortcut("Ctrl+O", self._shortcut(self.browse_button)),
            "Ctrl+R": shortcut("Ctrl+R", self._shortcut(self.record_button)),
            "Ctrl+E": shortcut("Ctrl+E", self._shortcut(self.export_button)),
        }
        # The list's own key handling comes before a widget shortcut, so its keys go through a filter.
        self._history_keys = {Qt.Key_Delete: self.remove_selected, Qt.Key_F2: self.rename_dialog}
        self.shortcuts.update({"Delete": self.remove_selected, "F2": self.rename_dialog})
        self.history_list.installEventFilter(self)
        for button, keys in ((self.synthesize_vocode_button, "Ctrl+Enter"), (self.synthesize_button, "Ctrl+Shift+Enter"),
                             (self.browse_button, "Ctrl+O"), (self.export_button, "Ctrl+E")):
            button.setToolTip(f"{button.toolTip()} ({keys})")
        self._default_tooltips = {button: button.toolTip() for button in self._default_tooltips}

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.history_list and event.type() == QEvent.KeyPress and event.key() in self._history_keys:
            self._history_keys[event.key()]()
            return True
        return super().eventFilter(watched, event)

    @staticmethod
    def _shortcut(button: QPushButton) -> Callable[[], None]:
        """Click ``button`` if it is enabled (a shortcut must not bypass why a button is disabled)."""
        return lambda: button.click() if button.isEnabled() else None

    # ============================================================================ history edits
    def remove_selected(self) -> None:
        """Forget the selected utterances (history and projection)."""
        names = self.selected_names()
        if not names or self.job is not None:
            return
        self.controller.remove(names)
        self._refresh_history(select=[])
        self._update_projection()

    def rename_dialog(self) -> None:
        names = self.selected_names()
        if len(names) != 1 or self.job is not None:
            return
        new_name, ok = QInputDialog.getText(self, "Rename", "New name:", text=names[0])
        if ok:
            self.rename_utterance(names[0], new_name)

    def rename_utterance(self, name: str, new_name: str) -> bool:
        """Rename an utterance (what the Rename dialog does); problems go to the log."""
        try:
            utterance = self.controller.rename(name, new_name)
        except (ValueError, KeyError) as error:
            self.report_error(describe_error(error))
            return False
        self._refresh_history(select=[utterance.name])
        self._refresh_outputs()
        self._update_projection()
        return True

    # =================================================================================== close
    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel every job, wait briefly for them, and close: the window never hangs on a job."""
        self._closing = True
        self.cancel()
        self.stop_playback()
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
