"""Dataset / speaker / utterance boxes with Random buttons, as in RTVC's toolbox.

The browser only lists files (see :mod:`toolbox.datasets`); loading is the window's job, asked for
with :attr:`DatasetBrowser.load_requested`.
"""

from __future__ import annotations

import random
from pathlib import Path

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QPushButton, QSizePolicy, QWidget

from toolbox.datasets import Dataset, DatasetUtterance, discover_datasets
from utils.corpora import CorpusError

FORMATS_HELP = "LibriSpeech, LibriTTS, VCTK, VoxCeleb, LJSpeech or folders of speaker folders"


class DatasetBrowser(QWidget):
    """Pick an utterance of a speaker of a dataset found under a datasets root; ``load_requested``
    carries the :class:`DatasetUtterance` to load, ``message`` and ``error`` one line for the log."""

    load_requested = pyqtSignal(object)
    message = pyqtSignal(str)
    error = pyqtSignal(str)

    def __init__(self, rng: random.Random | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rng = rng or random.Random()
        self.datasets: list[Dataset] = []
        self._utterances: list[DatasetUtterance] = []
        self._can_load = True

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(4)
        bold = QFont()
        bold.setBold(True)
        for column, text in enumerate(("Dataset", "Speaker", "Utterance")):
            label = QLabel(text)
            label.setFont(bold)
            grid.addWidget(label, 0, column)
        self.dataset_box, self.speaker_box, self.utterance_box = QComboBox(), QComboBox(), QComboBox()
        self.random_dataset_button = QPushButton("Random")
        self.random_speaker_button = QPushButton("Random")
        self.random_utterance_button = QPushButton("Random")
        for column, (combo, button) in enumerate(((self.dataset_box, self.random_dataset_button),
                                                  (self.speaker_box, self.random_speaker_button),
                                                  (self.utterance_box, self.random_utterance_button))):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
            combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            grid.addWidget(combo, 1, column)
            grid.addWidget(button, 2, column)
        grid.setColumnStretch(0, 5)  # dataset names are long, speaker ids short
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(2, 4)
        self.load_button = QPushButton("Load")
        self.load_button.setToolTip("Load the selected utterance as a reference voice.")
        self.auto_next_check = QCheckBox("Auto select next")
        self.auto_next_check.setChecked(True)
        self.auto_next_check.setToolTip("After Load, select the speaker's next utterance.")
        grid.addWidget(self.load_button, 3, 0)
        grid.addWidget(self.auto_next_check, 3, 1, 1, 2)

        self.dataset_box.currentIndexChanged.connect(self._on_dataset_changed)
        self.speaker_box.currentIndexChanged.connect(self._on_speaker_changed)
        self.random_dataset_button.clicked.connect(self.random_dataset)
        self.random_speaker_button.clicked.connect(self.random_speaker)
        self.random_utterance_button.clicked.connect(self.random_utterance)
        self.load_button.clicked.connect(self.request_load)

    # ------------------------------------------------------------------------------------ content
    def set_root(self, root: str | Path | None) -> None:
        """Look for datasets under ``root``; problems become :attr:`error` and disable the browser."""
        self.datasets = []
        if root is None:
            self.message.emit("No datasets root given (--datasets_root): the dataset browser is disabled; "
                              "use Browse… or Record.")
        else:
            try:
                self.datasets = discover_datasets(root)
            except CorpusError as error:
                self.error.emit(f"{error} The dataset browser is disabled; use Browse… or Record.")
            else:
                if self.datasets:
                    self.message.emit(f"Found {len(self.datasets)} dataset(s) under '{root}'.")
                else:
                    self.message.emit(f"No dataset found under '{root}' ({FORMATS_HELP}): "
                                      f"the dataset browser is disabled.")
        self.dataset_box.blockSignals(True)
        self.dataset_box.clear()
        for dataset in self.datasets:
            self.dataset_box.addItem(f"{dataset.name} ({len(dataset.speakers)})", dataset.name)
        self.dataset_box.blockSignals(False)
        self._on_dataset_changed(0)
        for widget in (self.dataset_box, self.speaker_box, self.utterance_box, self.random_dataset_button,
                       self.random_speaker_button, self.random_utterance_button, self.auto_next_check):
            widget.setEnabled(bool(self.datasets))
        self._update_load_button()

    def select_dataset(self, name: str) -> bool:
        """Select the dataset called ``name`` (e.g. ``"LibriSpeech/train-clean-100"``)."""
        index = self.dataset_box.findData(name)
        if index >= 0:
            self.dataset_box.setCurrentIndex(index)
        return index >= 0

    @property
    def current_dataset(self) -> Dataset | None:
        index = self.dataset_box.currentIndex()
        return self.datasets[index] if 0 <= index < len(self.datasets) else None

    @property
    def selected_utterance(self) -> DatasetUtterance | None:
        index = self.utterance_box.currentIndex()
        return self._utterances[index] if 0 <= index < len(self._utterances) else None

    def _on_dataset_changed(self, _index: int) -> None:
        # As in RTVC: a new dataset gets a random speaker, a new speaker a random utterance.
        dataset = self.current_dataset
        self.speaker_box.blockSignals(True)
        self.speaker_box.clear()
        if dataset is not None and dataset.speakers:
            self.speaker_box.addItems(dataset.speakers)
            self.speaker_box.setCurrentIndex(self.rng.randrange(len(dataset.speakers)))
        self.speaker_box.blockSignals(False)
        self._on_speaker_changed(self.speaker_box.currentIndex())

    def _on_speaker_changed(self, _index: int) -> None:
        dataset, speaker = self.current_dataset, self.speaker_box.currentText()
        self._utterances = []
        if dataset is not None and speaker:
            try:
                self._utterances = dataset.utterances(speaker)
            except CorpusError as error:
                self.error.emit(str(error))
        self.utterance_box.clear()
        for utterance in self._utterances:
            self.utterance_box.addItem(_display_name(dataset, utterance))
            self.utterance_box.setItemData(self.utterance_box.count() - 1, utterance.name, Qt.ToolTipRole)
        if self._utterances:
            self.utterance_box.setCurrentIndex(self.rng.randrange(len(self._utterances)))
        self._update_load_button()

    # ------------------------------------------------------------------------------------ actions
    def random_dataset(self) -> None:
        if self.datasets:
            self.dataset_box.setCurrentIndex(self.rng.randrange(len(self.datasets)))

    def random_speaker(self) -> None:
        if self.speaker_box.count():
            self.speaker_box.setCurrentIndex(self.rng.randrange(self.speaker_box.count()))

    def random_utterance(self) -> None:
        if self.utterance_box.count():
            self.utterance_box.setCurrentIndex(self.rng.randrange(self.utterance_box.count()))

    def request_load(self) -> None:
        """Emit :attr:`load_requested` for the selection, then move to the next utterance if asked."""
        utterance = self.selected_utterance
        if utterance is None:
            self.error.emit("Choose a dataset, a speaker and an utterance first.")
            return
        self.load_requested.emit(utterance)
        count = self.utterance_box.count()
        if self.auto_next_check.isChecked() and count > 1:
            self.utterance_box.setCurrentIndex((self.utterance_box.currentIndex() + 1) % count)

    def set_loading_enabled(self, enabled: bool) -> None:
        """Allow Load (the window disables it while another job runs)."""
        self._can_load = enabled
        self._update_load_button()

    def _update_load_button(self) -> None:
        self.load_button.setEnabled(self._can_load and self.selected_utterance is not None)


def _display_name(dataset: Dataset, utterance: DatasetUtterance) -> str:
    """The file's path below its speaker folder: enough to tell utterances apart, and short."""
    relative = Path(utterance.path).relative_to(dataset.root)
    parts = relative.parts if dataset.kind in ("fsdd", "ljspeech") else relative.parts[1:]
    return "/".join(parts) or relative.name
