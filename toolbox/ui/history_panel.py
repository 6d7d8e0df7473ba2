"""The utterance history of the toolbox window: every loaded, recorded and generated utterance, newest
first; the selected ones make the voice (their embeddings averaged). Delete and F2 remove and rename."""

from __future__ import annotations

from PyQt5.QtCore import QEvent, Qt
from PyQt5.QtWidgets import (QAbstractItemView, QGroupBox, QInputDialog, QLabel, QListWidget, QListWidgetItem, QMenu,
                             QVBoxLayout)

from toolbox.controller import HistoryUtterance
from toolbox.ui.session import ToolboxSession
from toolbox.ui.widgets import WARNING_STYLE, short_name
from toolbox.ui.workers import describe_error


class HistoryPanel(QGroupBox):
    """The history list, the voice it makes, and the history's edits."""

    def __init__(self, session: ToolboxSession) -> None:
        super().__init__("Utterance history")
        self.session = session
        self._selection_at_start: list[str] = []  # selection when a load started
        layout = QVBoxLayout(self)
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
        self.history_list.itemSelectionChanged.connect(self._on_selection)
        self.history_list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.history_list.customContextMenuRequested.connect(self._menu)
        # The list's own key handling comes before a widget shortcut, so its keys go through a filter.
        self.keys = {Qt.Key_Delete: self.remove_selected, Qt.Key_F2: self.rename_dialog}
        self.history_list.installEventFilter(self)
        session.loading_started.connect(self.note_selection)
        session.utterance_added.connect(self.show_added)
        session.history_changed.connect(self.refresh)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.history_list and event.type() == QEvent.KeyPress and event.key() in self.keys:
            self.keys[event.key()]()
            return True
        return super().eventFilter(watched, event)

    def _menu(self, position) -> None:  # noqa: ANN001 (QPoint)
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

    # ================================================================================ selection
    def refresh(self, select: list[str] | None = None) -> None:
        """Rebuild the list from the controller (newest first), keeping or replacing the selection."""
        keep = set(select if select is not None else self.selected_names())
        self.history_list.blockSignals(True)
        self.history_list.clear()
        for utterance in self.session.controller.history:
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
        self._on_selection()

    def selected_names(self) -> list[str]:
        """Names of the selected history utterances, newest first."""
        return [self.history_list.item(row).data(Qt.UserRole) for row in range(self.history_list.count())
                if self.history_list.item(row).isSelected()]

    def select(self, names: list[str]) -> None:
        """Select exactly these utterances (the voice is their average)."""
        wanted = set(names)
        self.history_list.blockSignals(True)
        for row in range(self.history_list.count()):
            item = self.history_list.item(row)
            item.setSelected(item.data(Qt.UserRole) in wanted)
        self.history_list.blockSignals(False)
        self._on_selection()

    def _on_selection(self) -> None:
        session, names = self.session, self.selected_names()
        session.selected_names = names
        self.voice_warning_label.clear()
        if not names:
            self.voice_label.setText("Select one or more utterances (Ctrl-click) to make the voice."
                                     if self.history_list.count()
                                     else "Load, browse or record an utterance to make a voice.")
            session.voice_selected.emit(None)
            session.update_actions()
            return
        try:
            voice = session.controller.voice(names, remember=False)
        except (ValueError, KeyError) as error:
            session.report_error(describe_error(error))
            session.update_actions()
            return
        count = len(voice.names)
        self.voice_label.setText(f"Voice from {count} utterance{'s' if count > 1 else ''}, "
                                 f"{voice.speech_seconds:.1f} s of speech")
        self.voice_warning_label.setText("\n".join(voice.warnings))
        session.voice_selected.emit(voice)
        session.update_actions()

    def note_selection(self) -> None:
        """Remember the selection as a load starts, for :meth:`show_added`."""
        self._selection_at_start = self.selected_names()

    def show_added(self, utterance: HistoryUtterance) -> None:
        """Select a new utterance. It replaces the selection only when the user left a single
        reference (or none) untouched while it loaded; a selection of several references, or one
        changed meanwhile, is a voice being built, so the new utterance is added to it."""
        current = self.selected_names()
        untouched = current == self._selection_at_start and len(current) <= 1
        if untouched or utterance.name in current:
            select = [utterance.name] if untouched else current
        else:
            select = current + [utterance.name]
            self.session.log(f"Added '{short_name(utterance.name, utterance.speaker)}' to the {len(current)} "
                             "selected reference(s); click it alone to use only it.")
        self.refresh(select=select)
        self.session.projection_outdated.emit()

    # ==================================================================================== edits
    def remove_selected(self) -> None:
        """Forget the selected utterances (history and projection)."""
        names = self.selected_names()
        if not names or self.session.busy:
            return
        self.session.controller.remove(names)
        self.refresh(select=[])
        self.session.projection_outdated.emit()

    def rename_dialog(self) -> None:
        names = self.selected_names()
        if len(names) != 1 or self.session.busy:
            return
        new_name, ok = QInputDialog.getText(self, "Rename", "New name:", text=names[0])
        if ok:
            self.rename_utterance(names[0], new_name)

    def rename_utterance(self, name: str, new_name: str) -> bool:
        """Rename an utterance (what the Rename dialog does); problems go to the log."""
        try:
            utterance = self.session.controller.rename(name, new_name)
        except (ValueError, KeyError) as error:
            self.session.report_error(describe_error(error))
            return False
        self.refresh(select=[utterance.name])
        self.session.outputs_changed.emit()
        self.session.projection_outdated.emit()
        return True
