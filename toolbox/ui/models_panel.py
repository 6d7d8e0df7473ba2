"""The models box of the toolbox window: which encoder, synthesizer and vocoder the controller uses,
the download of RTVC's defaults, and a rescan of the models folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QMessageBox, QPushButton

from toolbox.controller import GRIFFIN_LIM, MODEL_KINDS
from toolbox.ui.session import ToolboxSession
from toolbox.ui.workers import Worker
from utils.default_models import missing_default_models


class ModelsPanel(QGroupBox):
    """One combo box per model kind, Download defaults and Rescan.

    It sets the session's ``synthesizer_help``: how to get a synthesizer when the models folder has
    none (empty otherwise), which the generation panel shows.
    """

    def __init__(self, session: ToolboxSession) -> None:
        super().__init__("Models")
        self.session = session
        self._missing_defaults: list[str] = []
        grid = QGridLayout(self)
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
        self.download_button.clicked.connect(self.download_defaults)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip("Look for checkpoints in the models folder again (files copied there by hand).")
        self.rescan_button.clicked.connect(self.rescan)
        grid.addWidget(self.download_button, 2, 0, 1, 2)
        grid.addWidget(self.rescan_button, 2, 2)

    def populate(self) -> None:
        """Fill the combo boxes with the controller's choices and say what is missing."""
        controller = self.session.controller
        for kind, combo in self.model_boxes.items():
            combo.blockSignals(True)
            combo.clear()
            choices = controller.model_choices.get(kind, [])
            for choice in choices:
                combo.addItem(choice.label, choice.label)
                if choice.path is not None:
                    combo.setItemData(combo.count() - 1, str(choice.path), Qt.ToolTipRole)
            selected = controller.selected.get(kind)
            if selected is not None:
                combo.setCurrentIndex(max(0, combo.findData(selected.label)))
            if not choices:
                combo.addItem("none found")
            combo.setEnabled(bool(choices))
            combo.blockSignals(False)
        missing = missing_default_models(controller.models_dir, ("synthesizer", "vocoder"))
        self._missing_defaults = [entry.name for entry in missing]
        self.download_button.setVisible(bool(self._missing_defaults))
        if self._missing_defaults:
            self.download_button.setText("Download defaults")
            self.download_button.setToolTip(f"Fetch RTVC's pretrained {' and '.join(self._missing_defaults)} into "
                                            f"'{controller.models_dir / 'default'}'.")
        if not controller.has_synthesizer():
            self.session.synthesizer_help = (
                f"No synthesizer in '{controller.models_dir}': click 'Download defaults' (Models) for RTVC's "
                f"{' and '.join(self._missing_defaults) or 'models'}, copy a checkpoint there and click "
                "'Rescan', or train one (see the README), "
                "to generate speech. Loading, recording and the voice plots work without it.")
        else:
            self.session.synthesizer_help = ""

    def _on_model_changed(self, kind: str) -> None:
        label = self.model_boxes[kind].currentData()
        if not label:
            return
        try:
            self.session.controller.select_model(kind, label)
        except ValueError as error:
            self.session.report_error(str(error))
            return
        if label != GRIFFIN_LIM:
            self.session.log(f"Selected the {kind} '{label}'; it is loaded when first needed.")
        self.session.update_actions()

    def download_defaults(self) -> Worker | None:
        """Fetch RTVC's synthesizer and vocoder; asks first when that would replace existing files."""
        controller = self.session.controller
        names = list(self._missing_defaults) or ["synthesizer", "vocoder"]
        existing = controller.existing_default_files(names)
        if existing and not self.confirm_overwrite(existing):
            self.session.log("Download skipped: the existing model files are kept.")
            return None
        return self.session.run_job(f"Downloading the default {' and '.join(names)}",
                                    lambda hooks: controller.download_default_models(names, hooks.progress),
                                    lambda _result: self.populate(),
                                    on_cancelled=lambda _partial: self.populate())

    def confirm_overwrite(self, paths: Sequence[Path]) -> bool:
        """Ask before a download replaces files (a model of one's own can sit in ``default/``)."""
        listing = "\n".join(str(path) for path in paths)
        answer = QMessageBox.question(
            self, "Replace model files?",
            f"The download replaces these files, which are not RTVC's published models:\n{listing}\n\n"
            "Replace them?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def rescan(self) -> Worker | None:
        """List the checkpoints of the models folder again (files copied there by hand)."""
        return self.session.run_job("Looking for models", lambda hooks: self.session.controller.scan_models(),
                                    lambda _result: self._on_rescanned())

    def _on_rescanned(self) -> None:
        self.populate()
        found = {kind: len(self.session.controller.model_choices.get(kind, [])) for kind in MODEL_KINDS}
        found["vocoder"] -= 1  # Griffin-Lim is always there
        self.session.log("Models found: " + ", ".join(f"{count} {kind}{'s' if count != 1 else ''}"
                                                      for kind, count in found.items()) + ".")
        self.session.update_actions()

    def update_actions(self, idle: bool) -> None:
        """Enable what can be done now."""
        for kind, combo in self.model_boxes.items():
            combo.setEnabled(idle and bool(self.session.controller.model_choices.get(kind)))
        self.download_button.setEnabled(idle)
        self.rescan_button.setEnabled(idle)
