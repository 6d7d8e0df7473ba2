"""The toolbox's "Convert a recording" action, in the real window offscreen: the shipped duration
synthesizer (trained weights), the real encoder, Griffin-Lim (no vocoder file), espeak-ng voices."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt

from tests.toolbox.test_window import NoAudio, errors_in_log, wait_idle
from toolbox.controller import ToolboxController
from toolbox.ui.main_window import ToolboxWindow

pytestmark = pytest.mark.usefixtures("torch_single_thread")
SHIPPED = Path(__file__).resolve().parents[2] / "saved_models" / "shipped" / "synthesizer.pt"
BOB_SAYS = "Please call Stella and ask her to bring these things with her from the store."


@pytest.fixture(scope="module")
def models(tmp_path_factory, encoder_checkpoint) -> Path:
    if not SHIPPED.is_file():
        pytest.skip(f"the shipped synthesizer is not at {SHIPPED}")
    root = tmp_path_factory.mktemp("conversion_models")
    (root / "default").mkdir()
    shutil.copyfile(encoder_checkpoint, root / "default" / "encoder.pt")
    (root / "default" / "synthesizer.pt").symlink_to(SHIPPED)
    return root


@pytest.fixture(scope="module")
def voices(tmp_path_factory, espeak) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("conversion_voices")
    return {"alice": espeak(root / "alice" / "alice.wav", "The quick brown fox jumps over the lazy dog near the "
                            "river bank today.", voice="en-us+f3", pitch=70),
            "bob": espeak(root / "bob" / "bob.wav", BOB_SAYS, voice="en-us+m3", pitch=35)}


@pytest.fixture
def window(qtbot, models, voices) -> ToolboxWindow:
    window = ToolboxWindow(ToolboxController(models, device="cpu", shipped_dir=None), None, NoAudio())
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    wait_idle(qtbot, window)
    for path in (voices["bob"], voices["alice"]):
        assert window.reference.load_file(path) is not None
        wait_idle(qtbot, window)
    alice = next(u.name for u in window.controller.history if u.speaker == "alice")
    window.history.select([alice])  # the voice: alice
    bob = next(u.name for u in window.controller.history if u.speaker == "bob")
    panel = window.generation
    panel.source_box.setCurrentIndex(panel.source_box.findData(bob))  # the source: bob's recording
    return window


def test_convert_a_recording_in_the_selected_voice(qtbot, window, voices):
    panel = window.generation
    assert panel.convert_button.isEnabled() and panel.source_box.count() == 2
    panel.source_text_edit.setText(BOB_SAYS)
    qtbot.mouseClick(panel.convert_button, Qt.LeftButton)
    assert window.busy and window.cancel_button.isEnabled()
    wait_idle(qtbot, window)
    assert errors_in_log(window) == []
    output = panel.selected_output
    assert output is not None and output.speaker == "alice" and output.complete
    assert output.duration == pytest.approx(soundfile.info(str(voices["bob"])).duration, rel=0.03)
    assert output.utterance in window.controller.history  # joins the history like any generated utterance
    assert output.similarity is not None
    # both mels are plotted: the source where the reference is, the output in its place
    reference_plot = window.plots.reference_plot
    assert reference_plot.figure.get_suptitle().startswith("reference: source: ")
    shown = [image.get_array().shape for axes in reference_plot.figure.axes for image in axes.get_images()]
    assert (80, window.controller.last_source_mel.shape[1]) in shown
    assert window.controller.last_source_mel.shape[1] == sum(m.shape[1] for m in output.synthesis.mels)
    assert not any("no pitch input" in line for line in window.log_panel.lines())  # the shipped one has it
    assert panel.source_box.count() == 2  # generated utterances are not offered as sources


def test_cancel_and_a_word_not_said(qtbot, window):
    panel = window.generation
    panel.source_text_edit.setText(BOB_SAYS)
    qtbot.mouseClick(panel.convert_button, Qt.LeftButton)
    qtbot.keyClick(window, Qt.Key_Escape)
    wait_idle(qtbot, window)
    assert window.controller.outputs == [] and errors_in_log(window) == []
    assert window.statusBar().currentMessage().startswith("Cancelled")
    # words the recording does not say: one line in the window, naming them
    panel.source_text_edit.setText(BOB_SAYS.replace("these things", "these wonderful things"))
    qtbot.mouseClick(panel.convert_button, Qt.LeftButton)
    wait_idle(qtbot, window)
    assert "'wonderful'" in window.last_error and window.controller.outputs == []
    assert panel.convert_button.isEnabled()
