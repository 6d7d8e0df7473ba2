"""The text and generation box of the toolbox window: the text, Synthesize / Vocode, seed, speaking
rate, pitch and energy, and enhancement, and the generated outputs (replay, export, similarity to the voice)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                             QLabel, QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from synthesizer.base import MAX_ENERGY, MAX_PITCH_SHIFT, MAX_SPEAKING_RATE, MIN_ENERGY, MIN_SPEAKING_RATE
from toolbox.controller import GRIFFIN_LIM, GeneratedOutput
from toolbox.ui.session import ToolboxSession
from toolbox.ui.widgets import WARNING_STYLE, SimilarityMeter, short_name
from toolbox.ui.workers import Worker, describe_error
from vocoder import registry as vocoders


def _number_box(label: str, limits: tuple[float, float], value: float, step: float, decimals: int, suffix: str,
                tip: str) -> tuple[QLabel, QDoubleSpinBox]:
    """A labelled spin box for one of the prosody controls."""
    box = QDoubleSpinBox()
    box.setRange(*limits)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    name = QLabel(label)
    name.setBuddy(box)
    return name, box


W = TypeVar("W", bound=QWidget)


def _tip(widget: W, tip: str) -> W:
    widget.setToolTip(tip)
    return widget


def _row(*items: QWidget | tuple[QWidget, int] | int | None) -> QHBoxLayout:
    """A row of widgets: ``(widget, stretch)`` stretches that one, an int is a spacing, ``None`` a stretch."""
    row = QHBoxLayout()
    for item in items:
        if item is None:
            row.addStretch(1)
        elif isinstance(item, int):
            row.addSpacing(item)
        elif isinstance(item, tuple):
            row.addWidget(*item)
        else:
            row.addWidget(item)
    return row


EXPORT_FILTER = "WAV audio (*.wav);;FLAC audio (*.flac)"
WELCOME_TEXT = (
    "Welcome to the voice cloning toolbox. Load, browse or record a voice first.\n"
    "Each line of this box is spoken separately, and long lines are cut into sentences.\n"
    "Outputs of five to twelve seconds usually sound best."
)


class GenerationPanel(QGroupBox):
    """Text → speech in the selected voice, and the outputs made so far (newest first)."""

    def __init__(self, session: ToolboxSession) -> None:
        super().__init__("Text and generation")
        self.session = session
        layout = QVBoxLayout(self)
        self.text_edit = QPlainTextEdit(WELCOME_TEXT)
        self.text_edit.setToolTip("One utterance per line; long lines are split into sentences.")
        layout.addWidget(self.text_edit, 1)
        self.synthesizer_help_label = QLabel()
        self.synthesizer_help_label.setWordWrap(True)
        self.synthesizer_help_label.setStyleSheet(WARNING_STYLE)
        layout.addWidget(self.synthesizer_help_label)

        buttons = QGridLayout()  # the main action on a row of its own, the two stages below it
        self.synthesize_vocode_button = _tip(QPushButton("Synthesize and vocode"), "Speak the text in the selected "
                                             "voice; each sentence plays as soon as it is ready.")
        self.synthesize_button = _tip(QPushButton("Synthesize"),
                                      "Make the mel spectrogram only (fast), to check it before vocoding.")
        self.vocode_button = _tip(QPushButton("Vocode"),
                                  "Turn the last synthesized spectrogram into audio with the selected vocoder.")
        buttons.addWidget(self.synthesize_vocode_button, 0, 0, 1, 2)
        buttons.addWidget(self.synthesize_button, 1, 0)
        buttons.addWidget(self.vocode_button, 1, 1)
        layout.addLayout(buttons)

        # Voice conversion: a recording's words and timing in the selected voice.
        self.convert_button = _tip(QPushButton("Convert a recording"), "Say the words of the source recording, with "
                                   "its timing, in the selected voice (load or record the source first; it joins "
                                   "the source list).")
        self.source_box = _tip(QComboBox(), "The recording to convert: loaded files and recordings, newest first.")
        self.source_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.source_box.setMinimumContentsLength(8)
        self.source_text_edit = _tip(QLineEdit(), "The words the source says; leave empty to recognise them with "
                                     "Whisper.")
        self.source_text_edit.setPlaceholderText("its words (empty: recognised)")
        layout.addLayout(_row(self.convert_button, QLabel("Source:"), (self.source_box, 1),
                              (self.source_text_edit, 1)))

        self.seed_check = QCheckBox("Random seed:")
        self.seed_check.setToolTip("Fix the random seed: synthesis and vocoding then give the same output "
                                   "every time. Unchecked, a new seed is drawn and written to the log.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setMaximumWidth(100)
        if session.controller.seed is not None:
            self.seed_check.setChecked(True)
            self.seed_spin.setValue(int(session.controller.seed))
        self.seed_spin.setEnabled(self.seed_check.isChecked())
        self.seed_check.toggled.connect(self.seed_spin.setEnabled)
        self.rate_label, self.rate_spin = _number_box(
            "Speaking rate:", (MIN_SPEAKING_RATE, MAX_SPEAKING_RATE), 1.0, 0.05, 2, "×",
            "Pace of the speech: 1.25× is 25 % faster, 0.8× slower. The duration synthesizer changes its "
            "phoneme durations; a Tacotron's mel is resampled.")
        self.pitch_label, self.pitch_spin = _number_box(
            "Pitch:", (-MAX_PITCH_SHIFT, MAX_PITCH_SHIFT), 0.0, 0.5, 1, " st",
            "Move the voice up or down by this many semitones (needs a synthesizer with pitch control: the "
            "duration synthesizer trained with the variance adaptor).")
        self.energy_label, self.energy_spin = _number_box(
            "Energy:", (MIN_ENERGY, MAX_ENERGY), 1.0, 0.05, 2, "×",
            "Loudness of the speech: 2× is twice the amplitude, 0.5× half.")
        self.enhance_check = _tip(QCheckBox("Enhance output"),
                                  "Trim long silences from the output and normalise its loudness.")
        layout.addLayout(_row(self.seed_check, self.seed_spin, None))
        # The prosody controls get a row of their own: the window stays usable at 1024 pixels wide.
        layout.addLayout(_row(self.rate_label, self.rate_spin, 12, self.pitch_label, self.pitch_spin, 12,
                              self.energy_label, self.energy_spin, None))

        self.outputs_box = _tip(QComboBox(), "Generated outputs, newest first.")
        self.outputs_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.outputs_box.setMinimumContentsLength(10)
        layout.addLayout(_row(QLabel("Output:"), (self.outputs_box, 1)))
        self.replay_button = _tip(QPushButton("Replay"), "Play the selected output again.")
        self.export_button = _tip(QPushButton("Export…"), "Save the selected output as a WAV or FLAC file (16 kHz).")
        layout.addLayout(_row(self.replay_button, self.export_button, None, self.enhance_check))
        self.similarity_meter = SimilarityMeter()
        layout.addWidget(self.similarity_meter)

        # What the generation buttons say when they are usable (the window adds their shortcut keys).
        self.default_tooltips = {button: button.toolTip() for button in
                                 (self.synthesize_vocode_button, self.synthesize_button, self.vocode_button)}
        self.synthesize_vocode_button.clicked.connect(self.synthesize_and_vocode)
        self.convert_button.clicked.connect(self.convert)
        self.synthesize_button.clicked.connect(self.synthesize)
        self.vocode_button.clicked.connect(self.vocode)
        self.outputs_box.currentIndexChanged.connect(self._on_output_selected)
        self.replay_button.clicked.connect(self.replay)
        self.export_button.clicked.connect(self.export_dialog)
        session.outputs_changed.connect(self.refresh_outputs)

    # ============================================================================== generation
    def _seed(self) -> int:
        if self.seed_check.isChecked():
            return int(self.seed_spin.value())
        return self.session.controller.random_seed()  # still recorded, so a good output can be reproduced

    def prosody(self) -> dict[str, float]:
        """The speaking rate, pitch shift and energy set in the panel, as the controller takes them."""
        return {"speaking_rate": self.rate_spin.value(), "pitch_shift": self.pitch_spin.value(),
                "energy": self.energy_spin.value()}

    def synthesize(self) -> Worker | None:
        """Text → spectrograms in the selected voice (no audio yet)."""
        controller = self.session.controller
        text, names, seed = self.text_edit.toPlainText(), list(self.session.selected_names), self._seed()
        prosody = self.prosody()
        return self.session.run_job("Synthesizing", lambda hooks: controller.synthesize(
            text, names, seed=seed, progress=hooks.progress, **prosody), self._on_synthesized)

    def vocode(self) -> Worker | None:
        """The last spectrogram → audio with the selected vocoder, streamed to the output device."""
        controller = self.session.controller
        seed, enhance = self._seed(), self.enhance_check.isChecked()
        return self.session.run_job("Vocoding", lambda hooks: controller.vocode(
            seed=seed, enhance=enhance, progress=hooks.progress, on_chunk=hooks.chunk),
            self._on_generated, stream=True, on_cancelled=self._on_generated)

    def synthesize_and_vocode(self) -> Worker | None:
        """Both stages, sentence by sentence: sentence 1 plays while the next ones are made."""
        controller = self.session.controller
        text, names = self.text_edit.toPlainText(), list(self.session.selected_names)
        seed, enhance, prosody = self._seed(), self.enhance_check.isChecked(), self.prosody()
        return self.session.run_job("Synthesizing and vocoding", lambda hooks: controller.synthesize_and_vocode(
            text, names, seed=seed, enhance=enhance, progress=hooks.progress, on_chunk=hooks.chunk,
            **prosody), self._on_generated, stream=True, on_cancelled=self._on_generated)

    def convert(self) -> Worker | None:
        """The selected source recording's words and timing in the selected voice."""
        controller = self.session.controller
        source = self.source_box.currentData()
        if source is None:
            self.session.report_error("Load or record the recording to convert first: it appears as the source.")
            return None
        names, seed, enhance = list(self.session.selected_names), self._seed(), self.enhance_check.isChecked()
        words = self.source_text_edit.text().strip() or None
        prosody = self.prosody()
        return self.session.run_job("Converting", lambda hooks: controller.convert(
            source, names, source_text=words, seed=seed, enhance=enhance, progress=hooks.progress, **prosody),
            self._on_converted)

    def _on_converted(self, output: GeneratedOutput) -> None:
        self._on_generated(output)
        source_mel = self.session.controller.last_source_mel
        if source_mel is not None:
            self.session.source_converted.emit(self.source_box.currentText(), source_mel)
        self.session.play(output.wav)

    def refresh_sources(self) -> None:
        """List the loaded and recorded utterances (not the generated ones) as conversion sources."""
        names = [u.name for u in self.session.controller.history if not u.generated]
        if names == [self.source_box.itemData(i) for i in range(self.source_box.count())]:
            return
        current = self.source_box.currentData()
        self.source_box.blockSignals(True)
        self.source_box.clear()
        for name in names:
            self.source_box.addItem(name, name)
        if current in names:
            self.source_box.setCurrentIndex(names.index(current))
        self.source_box.blockSignals(False)

    def _on_synthesized(self, synthesis) -> None:  # noqa: ANN001 (the controller's synthesis result)
        self.session.synthesized.emit(synthesis)
        self.similarity_meter.set_similarity(None)

    def _on_generated(self, output: GeneratedOutput) -> None:
        partial = "" if output.complete else " (cancelled: what was made)"
        self.session.log(f"Output '{output.name}': {output.duration:.1f} s, vocoder {output.vocoder}, "
                         f"seed {output.seed}{partial}.")
        self.session.history_changed.emit(None)  # the output joined the history
        self.refresh_outputs()  # selects the newest output, which shows it
        self.session.projection_outdated.emit()

    # ================================================================================= outputs
    def refresh_outputs(self) -> None:
        """List the controller's outputs (newest first) and show the newest."""
        outputs = self.session.controller.outputs
        self.outputs_box.blockSignals(True)
        self.outputs_box.clear()
        for output in outputs:
            vocoder = output.vocoder if vocoders.needs_file(output.vocoder) else GRIFFIN_LIM
            partial = ", cancelled" if not output.complete else ""
            self.outputs_box.addItem(f"{short_name(output.name, output.speaker)} ({output.duration:.1f} s, "
                                     f"{vocoder}{partial})", output.name)
            self.outputs_box.setItemData(self.outputs_box.count() - 1, output.name, Qt.ToolTipRole)
        self.outputs_box.blockSignals(False)
        if outputs:
            self.outputs_box.setCurrentIndex(0)
            self._on_output_selected(0)
        self.session.update_actions()

    @property
    def selected_output(self) -> GeneratedOutput | None:
        name = self.outputs_box.currentData()
        return next((output for output in self.session.controller.outputs if output.name == name), None)

    def _on_output_selected(self, _index: int) -> None:
        output = self.selected_output
        if output is None:
            return
        self.session.output_selected.emit(output)
        self.similarity_meter.set_similarity(output.similarity)
        self.session.update_actions()

    def replay(self) -> None:
        output = self.selected_output
        if output is not None:
            self.session.play(output.wav)

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
            self.session.report_error("Nothing to export yet: generate an output first.")
            return None
        try:
            return self.session.controller.export(output, path)
        except Exception as error:  # noqa: BLE001 -- a full disk or a bad name must not close the window
            self.session.report_error(f"Could not export: {describe_error(error)}")
            return None

    def update_actions(self, idle: bool, has_reference: bool) -> None:
        """Enable what can be done now; disabled buttons say why in their tooltip."""
        controller, session = self.session.controller, self.session
        has_synthesizer = controller.has_synthesizer()
        generate = idle and has_reference and has_synthesizer
        self.synthesize_vocode_button.setEnabled(generate)
        self.synthesize_button.setEnabled(generate)
        self.vocode_button.setEnabled(idle and has_synthesizer and controller.current_synthesis is not None)
        self.refresh_sources()
        self.convert_button.setEnabled(generate and self.source_box.count() > 0)
        help_text = session.synthesizer_help
        for button, tooltip in self.default_tooltips.items():
            button.setToolTip(help_text or tooltip)
        self.synthesizer_help_label.setText(help_text)
        self.synthesizer_help_label.setVisible(bool(help_text))
        self.replay_button.setEnabled(session.can_play and self.selected_output is not None)
        self.export_button.setEnabled(self.selected_output is not None)
        if not session.can_play:
            self.replay_button.setToolTip(f"Playback is disabled: {session.audio_reason}")
