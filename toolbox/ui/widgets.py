"""Small display pieces shared by the toolbox panels: similarity meter, level meter, log panel, names."""

from __future__ import annotations

import time
from pathlib import Path

from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QScrollArea, QWidget

# Cosine similarity of GE2E embeddings: two different real speakers average about 0.55 on
# LibriSpeech, the same speaker usually scores above 0.75.
DIFFERENT_SPEAKER_LEVEL = 0.55
SAME_SPEAKER_LEVEL = 0.75
RED, ORANGE, GREEN = "#d9534f", "#e69500", "#3c9a3c"
LOG_LINES = 200
# Level meter: -60 dBFS (quiet room) at the left end, full scale at the right.
METER_FLOOR_DBFS = -60.0
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


def similarity_colour(value: float) -> str:
    """Red below the different-speaker level, green above the same-speaker level, orange between.

    Examples
    --------
    >>> similarity_colour(0.4), similarity_colour(0.6), similarity_colour(0.9)
    ('#d9534f', '#e69500', '#3c9a3c')
    """
    if value < DIFFERENT_SPEAKER_LEVEL:
        return RED
    if value > SAME_SPEAKER_LEVEL:
        return GREEN
    return ORANGE


class SimilarityMeter(QWidget):
    """"Similarity to the voice: 0.83" and a 0–100 bar coloured by how convincing the clone is."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(14)
        self.bar.setMinimumWidth(50)
        self.value: float | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar, 1)
        self.setToolTip(
            "Cosine similarity between the speaker embedding of the output and that of the voice. "
            f"Two different people score about {DIFFERENT_SPEAKER_LEVEL:.2f} (red below); "
            f"above {SAME_SPEAKER_LEVEL:.2f} (green) the encoder hears the same speaker."
        )
        self.set_similarity(None)

    def set_similarity(self, value: float | None) -> None:
        self.value = value
        if value is None:
            self.label.setText("Similarity to the voice: –")
            self.bar.setValue(0)
            self.bar.setStyleSheet("")
            return
        self.label.setText(f"Similarity to the voice: {value:.2f}")
        # Cosine can be slightly negative; QProgressBar.setValue needs an int in range (RTVC bug 33).
        self.bar.setValue(int(round(min(max(value, 0.0), 1.0) * 100)))
        self.bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {similarity_colour(value)}; }}")


class LevelMeter(QProgressBar):
    """Live input level during a recording, fed with dBFS values."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(0, 100)
        self.setTextVisible(False)
        self.setMaximumHeight(12)
        self.setToolTip("Input level: keep the loudest parts in the upper half without reaching the end.")

    def set_level_dbfs(self, level: float) -> None:
        fraction = (max(level, METER_FLOOR_DBFS) - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS
        self.setValue(int(round(min(fraction, 1.0) * 100)))


class LogPanel(QPlainTextEdit):
    """Read-only log keeping the last :data:`LOG_LINES` lines, newest at the bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(LOG_LINES)
        font = QFont("Monospace")
        font.setStyleHint(QFont.TypeWriter)
        font.setPointSize(8)
        self.setFont(font)

    def add(self, message: str) -> None:
        self.appendPlainText(f"{time.strftime('%H:%M:%S')}  {message}")
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def lines(self) -> list[str]:
        return self.toPlainText().splitlines()

