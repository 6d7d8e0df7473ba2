"""Matplotlib canvases of the toolbox: embeddings, mel spectrograms, attention and the UMAP
projection (docs/toolbox.md)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

# Imported before matplotlib's Qt backend so that it binds to PyQt5 rather than another Qt binding.
from PyQt5 import QtCore  # noqa: F401

# isort: split
import matplotlib
import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from utils.signal_contract import SIGNAL

HEATMAP_RANGE = (0.0, 0.30)  # GE2E embedding entries are non-negative and rarely above 0.3
HOP_SECONDS = SIGNAL.hop_seconds  # one mel frame (12.5 ms)
BACKGROUND = "#F0F0F0"
MIN_PROJECTION_POINTS = 4
MAX_LEGEND_SPEAKERS = 24  # beyond this the legend column is too long: hovering names them instead
LEGEND_NAME_CHARS = 14  # longer speaker names are elided in the middle (the end tells speakers apart)
# The projection's axes and the legend column beside them: fixed, so refits never move the layout.
PROJECTION_AXES = (0.02, 0.03, 0.60, 0.86)
Colour = tuple[float, float, float, float]


def elide_middle(text: str, length: int = LEGEND_NAME_CHARS) -> str:
    """Cut ``text`` in the middle to ``length`` characters (ids usually differ at the end).

    >>> elide_middle("LibriSpeech_train-clean-100_19", 14)
    'LibriSp…100_19'
    >>> elide_middle("bob")
    'bob'
    """
    if len(text) <= length:
        return text
    tail = (length - 1) // 2
    return text[: length - 1 - tail] + "…" + text[len(text) - tail:]


def speaker_palette(count: int) -> list[Colour]:
    """``count`` distinct colours, neighbours far apart: tab20's ten strong colours, then its ten
    light ones (tab20 pairs a light shade with each strong one, which made speakers 1 and 2 look
    alike), then evenly spread hues of alternating lightness (no fixed-size palette).

    >>> len(speaker_palette(30)), len(set(speaker_palette(30)))
    (30, 30)
    """
    tab20 = matplotlib.colormaps["tab20"].colors
    base = [to_rgba(tab20[index]) for index in list(range(0, 20, 2)) + list(range(1, 20, 2))]
    if count <= len(base):
        return base[:count]
    extra = count - len(base)
    colours = list(base)
    for index in range(extra):
        # Alternate lightness so neighbouring hues stay apart even with hundreds of speakers.
        hue = (index * 0.618033988749895) % 1.0
        lightness = 0.35 if index % 2 else 0.55
        colours.append((*colorsys.hls_to_rgb(hue, lightness, 0.75), 1.0))
    return colours


def short_speaker_names(speakers: Sequence[str]) -> tuple[list[str], str]:
    """Strip the prefix every speaker shares (``LibriSpeech_train-clean-100_``) for a compact legend.

    Returns
    -------
    tuple of (list of str, str)
        The shortened names and the removed prefix (without its trailing separator).

    >>> short_speaker_names(["LibriSpeech_dev_19", "LibriSpeech_dev_26"])
    (['19', '26'], 'LibriSpeech_dev')
    >>> short_speaker_names(["alice"])
    (['alice'], '')
    """
    if len(speakers) < 2:
        return list(speakers), ""
    prefix = speakers[0]
    for name in speakers[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    cut = prefix.rfind("_") + 1  # only cut at a separator, so "19" and "190" stay whole
    if cut <= 0:
        return list(speakers), ""
    return [name[cut:] or name for name in speakers], prefix[: cut - 1]


class PlotCanvas(FigureCanvasQTAgg):
    """A figure canvas with the toolbox's background and a minimum size that keeps labels readable."""

    def __init__(self, width: float, height: float, parent=None) -> None:
        self.figure = Figure(figsize=(width, height), facecolor=BACKGROUND)
        super().__init__(self.figure)
        self.setParent(parent)

    def has_image(self) -> bool:
        """Whether any axes shows an image (used by tests and for status checks)."""
        return any(ax.images for ax in self.figure.axes)


class UtterancePlot(PlotCanvas):
    """One utterance: its 16×16 embedding heatmap (fixed colour range) and its mel spectrogram."""

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(7.0, 1.9, parent)
        self.title = title
        # The embedding's colour bar sits at the heatmap's left, ticks outside: beside the mel it read
        # as the mel's scale.
        grid = self.figure.add_gridspec(1, 3, width_ratios=[0.06, 1, 4.2], wspace=0.12,
                                        left=0.045, right=0.985, bottom=0.2, top=0.86)
        self.colorbar_ax = self.figure.add_subplot(grid[0, 0])
        self.embed_ax = self.figure.add_subplot(grid[0, 1])
        self.mel_ax = self.figure.add_subplot(grid[0, 2])
        self.heatmap = None
        self.clear()

    def clear(self) -> None:
        """Empty both halves, keeping the row's title."""
        for ax in (self.embed_ax, self.mel_ax):
            ax.clear()
            ax.set_xticks([])
            ax.set_yticks([])
        self.colorbar_ax.clear()
        self.colorbar_ax.set_axis_off()
        self.heatmap = None
        self.embed_ax.set_xlabel("embedding", fontsize=7, labelpad=2)
        self.mel_ax.text(0.5, 0.5, "nothing yet", ha="center", va="center", color="grey",
                         transform=self.mel_ax.transAxes)
        self._set_title(self.title)
        self.draw_idle()

    def _set_title(self, text: str) -> None:
        self.figure.suptitle(text, fontsize=8, x=0.03, y=0.985, ha="left", va="top")

    def plot(self, name: str, embedding: np.ndarray | None, mel: np.ndarray | None) -> None:
        """Draw ``embedding`` (256 values) and ``mel`` ``(80, T)``; ``None`` leaves that half empty."""
        self.clear()
        self._set_title(f"{self.title}: {name}")
        if embedding is not None:
            self.draw_embedding(embedding)
        if mel is not None:
            self.draw_mel(mel)
        self.draw_idle()

    def draw_embedding(self, embedding: np.ndarray) -> None:
        values = np.asarray(embedding, dtype=np.float32).reshape(-1)
        side = int(round(np.sqrt(values.size)))
        ax = self.embed_ax
        ax.clear()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("embedding", fontsize=7, labelpad=2)
        # vmin/vmax on the image itself: the colour scale is the same for every utterance.
        self.heatmap = ax.imshow(values[: side * side].reshape(side, side), cmap="inferno",
                                 vmin=HEATMAP_RANGE[0], vmax=HEATMAP_RANGE[1], interpolation="nearest")
        self.colorbar_ax.clear()
        self.colorbar_ax.set_axis_on()
        colorbar = self.figure.colorbar(self.heatmap, cax=self.colorbar_ax,
                                        ticks=[HEATMAP_RANGE[0], HEATMAP_RANGE[1]])
        colorbar.ax.yaxis.set_ticks_position("left")
        colorbar.ax.tick_params(labelsize=6, length=2, pad=1)

    def draw_mel(self, mel: np.ndarray) -> None:
        ax = self.mel_ax
        ax.clear()
        frames = mel.shape[1]
        ax.imshow(mel, origin="lower", aspect="auto", interpolation="none", cmap="viridis",
                  extent=(0.0, frames * HOP_SECONDS, 0, mel.shape[0]))
        ax.set_xlabel("time (s)", fontsize=7, labelpad=1)
        ax.set_ylabel("mel", fontsize=7, labelpad=1)
        ax.set_yticks([])
        ax.tick_params(labelsize=7, length=2, pad=1)


#: Axis labels (x, y) and title of the alignment plot for each synthesizer architecture.
ALIGNMENT_LABELS = {"tacotron": ("decoder step", "character", "attention"),
                    "duration": ("frame", "phoneme", "alignment")}


class AlignmentPlot(PlotCanvas):
    """Alignment of the last synthesis: a Tacotron's attention (decoder steps against characters) or
    a duration synthesizer's path (frames against phonemes).

    Several sentences are drawn side by side, separated by white lines, so a failed sentence (a
    blurred or broken diagonal) stands out among good ones.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(3.0, 1.9, parent)
        self.ax = self.figure.add_axes((0.17, 0.24, 0.8, 0.6))
        self.clear()

    def clear(self) -> None:
        self.ax.clear()
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_title("attention", fontsize=8)
        self.ax.text(0.5, 0.5, "synthesize\nto see it", ha="center", va="center", color="grey",
                     fontsize=8, transform=self.ax.transAxes)
        self.draw_idle()

    def plot(self, alignments: Sequence[np.ndarray], architecture: str = "tacotron") -> None:
        """Draw each ``(decoder steps, characters)`` (or ``(frames, phonemes)``) alignment."""
        if not alignments:
            self.clear()
            return
        characters = max(a.shape[1] for a in alignments)
        padded = [np.pad(a, ((0, 0), (0, characters - a.shape[1]))) for a in alignments]
        joined = np.concatenate(padded, axis=0)
        self.ax.clear()
        self.ax.imshow(joined.T, origin="lower", aspect="auto", interpolation="none", cmap="viridis")
        boundary = 0
        for alignment in alignments[:-1]:
            boundary += alignment.shape[0]
            self.ax.axvline(boundary - 0.5, color="white", linewidth=0.8)
        count = len(alignments)
        x_label, y_label, title = ALIGNMENT_LABELS.get(architecture, ALIGNMENT_LABELS["tacotron"])
        self.ax.set_title(f"{title} ({count} sentence{'s' if count > 1 else ''})", fontsize=8)
        self.ax.set_xlabel(x_label, fontsize=7, labelpad=1)
        self.ax.set_ylabel(y_label, fontsize=7, labelpad=1)
        self.ax.tick_params(labelsize=6, length=2, pad=1)
        self.draw_idle()


class ProjectionPlot(PlotCanvas):
    """UMAP scatter: one colour per speaker, "o" for real and "x" for generated utterances.

    The legend is a column beside the axes (it never hides a point), with long speaker names elided
    in the middle; hovering a point or a legend entry shows the full name, in a label that stays inside
    the canvas and disappears when the mouse leaves. :attr:`speaker_colours` maps each drawn speaker
    to its colour.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(3.4, 3.4, parent)
        self.ax = self.figure.add_axes(PROJECTION_AXES)
        self.speaker_colours: dict[str, Colour] = {}
        self._collections: list[tuple[object, list[str]]] = []  # scatter, names of its points
        self._legend_names: list[tuple[object, str]] = []  # legend text, full speaker name
        self._tooltip = None
        self._hover = ""  # the full text of the hover label (shown cut into lines)
        self.legend = None
        self.mpl_connect("motion_notify_event", self._on_motion)
        self.mpl_connect("axes_leave_event", lambda _event: self.hide_hover())
        self.mpl_connect("figure_leave_event", lambda _event: self.hide_hover())
        self.show_waiting(MIN_PROJECTION_POINTS)

    def _reset_axes(self) -> None:
        self.ax.clear()
        self.ax.set_position(PROJECTION_AXES)
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_title("UMAP projection of the embeddings", fontsize=8, loc="left")
        self.speaker_colours = {}
        self._collections = []
        self._legend_names = []
        self.legend = None
        for text in list(self.figure.texts):
            text.remove()
        self._tooltip = None

    def show_waiting(self, missing: int) -> None:
        """Explain that ``missing`` more utterances are needed before a projection makes sense."""
        self._reset_axes()
        self.ax.text(0.5, 0.5, f"Add {missing} more utterance{'s' if missing != 1 else ''}\n"
                     f"to see the projection", ha="center", va="center", color="grey", fontsize=9,
                     transform=self.ax.transAxes)
        self.draw_idle()

    def waiting_text(self) -> str:
        """The placeholder text currently shown ("" when a projection is drawn)."""
        return " ".join(t.get_text() for t in self.ax.texts).replace("\n", " ")

    def plot(self, points: np.ndarray, names: Sequence[str], speakers: Sequence[str],
             generated: Sequence[bool]) -> None:
        """Scatter ``points`` ``(N, 2)``; ``speakers`` and ``generated`` give colour and marker."""
        self._reset_axes()
        order = list(dict.fromkeys(speakers))  # first appearance: colours stay put as points arrive
        colours = dict(zip(order, speaker_palette(len(order))))
        points = np.asarray(points)
        generated = np.asarray(generated, dtype=bool)
        speakers_array = np.asarray(speakers, dtype=object)
        names_array = np.asarray(names, dtype=object)
        for speaker in order:
            for is_generated, marker in ((False, "o"), (True, "x")):
                mask = (speakers_array == speaker) & (generated == is_generated)
                if not mask.any():
                    continue
                collection = self.ax.scatter(points[mask, 0], points[mask, 1], marker=marker, s=22,
                                             color=[colours[speaker]], linewidths=1.2 if is_generated else 0.4,
                                             edgecolors=None if is_generated else "white")
                labels = [f"{name}\n{speaker}" for name in names_array[mask]]
                self._collections.append((collection, labels))
        self.speaker_colours = colours
        self._draw_legend(order, colours, bool(generated.any()))
        self.ax.set_aspect("equal", adjustable="datalim")
        # Figure-level: the label may reach over the legend column, but never off the canvas.
        self._tooltip = self.ax.annotate(
            "", xy=(0, 0), xytext=(6, 6), textcoords="offset points", fontsize=7, annotation_clip=False,
            bbox={"boxstyle": "round", "fc": "white", "alpha": 0.95}, visible=False, zorder=10)
        self.draw_idle()

    def _draw_legend(self, order: list[str], colours: dict[str, Colour], any_generated: bool) -> None:
        left, bottom, width, height = PROJECTION_AXES
        if len(order) > MAX_LEGEND_SPEAKERS:
            note = f"{len(order)} speakers:\npoint at a dot\nfor its name"
            if any_generated:
                note += "\n\no real\nx generated"
            self.figure.text(left + width + 0.02, bottom + height, note, ha="left", va="top", fontsize=6)
            return
        labels, prefix = short_speaker_names(order)
        shown = [elide_middle(label) for label in labels]
        handles = [Line2D([], [], linestyle="", marker="o", markersize=4, color=colours[s]) for s in order]
        if any_generated:
            handles.append(Line2D([], [], linestyle="", marker="x", markersize=4, color="black"))
            shown = shown + ["generated"]
        font = 6 if len(handles) <= 14 else 5
        title = elide_middle(prefix, LEGEND_NAME_CHARS + 2) if prefix else None
        # Anchored outside the axes, at their top right: the legend can never cover a point.
        self.legend = self.ax.legend(handles, shown, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                                     borderaxespad=0.0, fontsize=font, title=title, title_fontsize=font,
                                     frameon=False, handletextpad=0.1, borderpad=0.2, labelspacing=0.25)
        self._legend_names = [(text, f"{prefix}_{label}" if prefix else label)
                              for text, label in zip(self.legend.get_texts(), labels)]
        if prefix:
            self._legend_names.append((self.legend.get_title(), prefix))

    def _show_label(self, text: str, xy, coords: str) -> None:  # noqa: ANN001 (a point)
        """Show ``text`` at ``xy``, on the side of the point that keeps it inside the canvas."""
        tooltip = self._tooltip
        tooltip.xycoords = coords
        tooltip.xy = xy
        x, y = (self.ax.transData.transform(xy) if coords == "data" else xy)
        right = x > self.figure.bbox.width * 0.45
        top = y > self.figure.bbox.height * 0.5
        # Long names (dataset paths have no spaces) are cut into lines that fit the room on that side.
        room = (x if right else self.figure.bbox.width - x) - 16
        characters = max(12, int(room / (tooltip.get_fontsize() * self.figure.dpi / 72 * 0.62)))
        tooltip.set_text("\n".join(line[start:start + characters] for line in text.split("\n")
                                   for start in range(0, max(len(line), 1), characters)))
        self._hover = text
        tooltip.set_position((-6 if right else 6, -6 if top else 6))
        tooltip.set_horizontalalignment("right" if right else "left")
        tooltip.set_verticalalignment("top" if top else "bottom")
        tooltip.set_visible(True)
        self.draw_idle()

    def _on_motion(self, event) -> None:
        if self._tooltip is None:
            return
        if event.inaxes is self.ax:
            for collection, names in self._collections:
                hit, details = collection.contains(event)
                if hit:
                    index = int(details["ind"][0])
                    self._show_label(names[index], tuple(collection.get_offsets()[index]), "data")
                    return
        for text, full_name in self._legend_names:
            hit, _details = text.contains(event)
            if hit:
                self._show_label(full_name, (event.x, event.y), "figure pixels")
                return
        self.hide_hover()

    def hide_hover(self) -> None:
        """Remove the hover label (the mouse left the point, the axes or the canvas)."""
        if self._tooltip is not None and self._tooltip.get_visible():
            self._tooltip.set_visible(False)
            self.draw_idle()

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.hide_hover()
        super().leaveEvent(event)

    def hover_text(self) -> str:
        """The tooltip's text when visible, else "" (for tests)."""
        return self._hover if self._tooltip is not None and self._tooltip.get_visible() else ""
