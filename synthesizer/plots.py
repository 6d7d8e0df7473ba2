"""Training figures of the synthesizer: attention alignment and target-vs-predicted mels.

Plain matplotlib figures (no pyplot, no GUI), so training works headless; low frequencies at the bottom
(RTVC quirk 32, docs/rtvc-quirks.md).

>>> import numpy as np
>>> figure = attention_figure(np.eye(5), title="step 10")
>>> [axis.get_xlabel() for axis in figure.axes][:1]
['Decoder step']
>>> figure = mel_comparison_figure(np.zeros((80, 12)), np.ones((80, 12)))
>>> len(figure.axes)  # two spectrograms and their colour bars
4
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def attention_figure(attention: np.ndarray, title: str | None = None) -> Figure:
    """Heat map of one ``(decoder steps, characters)`` alignment."""
    attention = np.asarray(attention, dtype=np.float32)
    figure = Figure(figsize=(8, 5), dpi=100)
    axis = figure.add_subplot()
    # Characters on the y axis, time on the x axis: a good alignment is a rising diagonal.
    image = axis.imshow(attention.T, aspect="auto", origin="lower", interpolation="none", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis)
    axis.set_xlabel("Decoder step")
    axis.set_ylabel("Encoder step (character)")
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def mel_comparison_figure(
    target: np.ndarray,
    predicted: np.ndarray,
    title: str | None = None,
    value_range: tuple[float, float] = (-4.0, 4.0),
) -> Figure:
    """Target mel above the predicted one on the same colour scale (``value_range``)."""
    figure = Figure(figsize=(10, 7), dpi=100)
    for row, (name, mel) in enumerate((("Target mel", target), ("Predicted mel", predicted))):
        axis = figure.add_subplot(2, 1, row + 1)
        image = axis.imshow(np.asarray(mel, dtype=np.float32), aspect="auto", origin="lower",
                            interpolation="none", vmin=value_range[0], vmax=value_range[1])
        figure.colorbar(image, ax=axis)
        axis.set_title(f"{title}\n{name}" if title and row == 0 else name, fontsize=9)
        axis.set_ylabel("Mel band")
    axis.set_xlabel("Frame")
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
