"""The plots row of the toolbox window: the voices' UMAP projection, the reference's and the output's
embedding and mel, and the output's attention; the projection is recomputed in the background."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PyQt5.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from toolbox.controller import MIN_UMAP_POINTS, GeneratedOutput, SelectedVoice
from toolbox.ui.plots import AlignmentPlot, ProjectionPlot, UtterancePlot
from toolbox.ui.session import ToolboxSession
from toolbox.ui.widgets import short_name
from toolbox.ui.workers import Worker

if TYPE_CHECKING:
    from pipeline import SentenceMels

SENTENCE_GAP_FRAMES = 12  # 0.15 s of silence between sentences in the output's mel display


class PlotsPanel(QWidget):
    """The canvases, and the UMAP projection's background job (one at a time, rerun once if the
    history changed meanwhile; results of a cleared or cancelled projection are dropped)."""

    def __init__(self, session: ToolboxSession) -> None:
        super().__init__()
        self.session = session
        self._projection_job: Worker | None = None
        self._projection_pending = False
        self._projection_epoch = 0  # bumped by Clear and Cancel: results of older jobs are dropped
        self._projection_announced = False

        layout = QHBoxLayout(self)
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

        session.projection_outdated.connect(self.update_projection)
        session.voice_selected.connect(self.show_voice)
        session.synthesized.connect(self.show_synthesis)
        session.output_selected.connect(self.show_output)
        session.source_converted.connect(self.show_source)

    # ================================================================================= canvases
    def show_voice(self, voice: SelectedVoice | None) -> None:
        """The voice's embedding and its first utterance's mel (cleared without a voice)."""
        if voice is None:
            self.reference_plot.clear()
            return
        first = self.session.controller.find(voice.names[0])
        if len(voice.names) == 1:
            self.reference_plot.plot(Path(first.name).name, first.embedding, first.mel)
        else:
            self.reference_plot.plot(f"average of {len(voice.names)} utterances (mel: {Path(first.name).name})",
                                     voice.embedding, first.mel)

    def show_source(self, name: str, mel: np.ndarray) -> None:
        self.reference_plot.plot(f"source: {name}", None, mel)

    def show_synthesis(self, synthesis: SentenceMels) -> None:
        self.output_plot.plot("synthesized, not vocoded yet", None, synthesis.joined_mel(SENTENCE_GAP_FRAMES))
        self.alignment_plot.plot(synthesis.alignments, synthesis.architecture)

    def show_output(self, output: GeneratedOutput) -> None:
        embedding = output.utterance.embedding if output.utterance is not None else None
        self.output_plot.plot(short_name(output.name, output.speaker), embedding,
                              output.synthesis.joined_mel(SENTENCE_GAP_FRAMES))
        self.alignment_plot.plot(output.synthesis.alignments, output.synthesis.architecture)

    # =============================================================================== projection

    @property
    def projecting(self) -> bool:
        """Whether a UMAP projection is being computed or waits to be."""
        return self._projection_job is not None or self._projection_pending

    def update_projection(self) -> None:
        """Redraw the projection after a change: a waiting text below 4 points, else UMAP in the background."""
        session, controller = self.session, self.session.controller
        known = {utterance.name for utterance in controller.history}
        count = sum(1 for name in controller.projection_names if name in known)
        if count < MIN_UMAP_POINTS:
            self.projection_plot.show_waiting(MIN_UMAP_POINTS - count)
            return
        if self._projection_job is not None:
            self._projection_pending = True  # one more run when the current one ends
            return
        if not self._projection_announced:
            self._projection_announced = True
            session.log("Computing the projection; the first time takes a few seconds.")
        epoch = self._projection_epoch
        worker = Worker(lambda hooks: controller.projection(), "Computing the projection")
        worker.signals.finished.connect(lambda projection: self._on_projection(projection, epoch))
        worker.signals.failed.connect(lambda message: None if session.closing
                                      else session.report_error(f"Projection failed: {message}"))
        worker.signals.done.connect(self._on_projection_done)
        self._projection_job = worker
        self._projection_pending = False
        session.pool.start(worker)
        session.update_actions()

    def _on_projection(self, projection, epoch: int) -> None:  # noqa: ANN001 (controller.Projection | None)
        if epoch != self._projection_epoch or self.session.closing:
            return
        if projection is None:
            self.update_projection()
            return
        self.projection_plot.plot(projection.points, projection.names, projection.speakers, projection.generated)

    def _on_projection_done(self) -> None:
        self._projection_job = None
        self.session.update_actions()
        if self._projection_pending and not self.session.closing:
            self._projection_pending = False
            self.update_projection()

    def cancel_projection(self) -> bool:
        """Drop the result of the projection running or waiting (a UMAP fit cannot stop half-way; the
        plot keeps its last state). Returns whether there was one."""
        if not self.projecting:
            return False
        self._projection_epoch += 1
        self._projection_pending = False
        return True

    def clear_projection(self) -> None:
        """Empty the projection (the history and its voice selection are kept)."""
        self._projection_epoch += 1
        self._projection_pending = False
        self.session.controller.clear_projection()
        self.projection_plot.show_waiting(MIN_UMAP_POINTS)
