"""The pitch and energy controls beside the speaking rate, with the real window offscreen and the shipped
offline models: energy reaches the synthesis, and a synthesizer without pitch control says so in the window."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pytestqt")
from PyQt5.QtCore import Qt

from tests.conftest import REPO_ROOT
from tests.toolbox.test_window import NoAudio, errors_in_log, load, wait_idle
from toolbox.controller import ToolboxController
from toolbox.ui.main_window import ToolboxWindow

pytestmark = pytest.mark.usefixtures("torch_single_thread")
SHIPPED = REPO_ROOT / "saved_models" / "shipped"


@pytest.fixture
def window(qtbot, tmp_path, encoder_checkpoint):
    if not (SHIPPED / "synthesizer.pt").is_file():
        pytest.skip("the shipped synthesizer is absent")
    (tmp_path / "default").mkdir()
    shutil.copy(encoder_checkpoint, tmp_path / "default" / "encoder.pt")
    window = ToolboxWindow(ToolboxController(tmp_path, device="cpu", shipped_dir=SHIPPED), None, NoAudio())
    qtbot.addWidget(window)
    window.show()
    wait_idle(qtbot, window)
    return window


def synthesize(qtbot, window: ToolboxWindow) -> None:
    qtbot.mouseClick(window.generation.synthesize_button, Qt.LeftButton)
    wait_idle(qtbot, window)


def test_energy_and_pitch_controls_reach_the_synthesizer(qtbot, window, espeak, tmp_path):
    load(qtbot, window, espeak(tmp_path / "voice.wav", "A voice to clone, said slowly and clearly.", pitch=40))
    panel = window.generation
    panel.text_edit.setPlainText("Louder, please.")
    levels = []
    for energy in (0.5, 2.0):
        panel.energy_spin.setValue(energy)
        synthesize(qtbot, window)
        levels.append(float(window.controller.current_synthesis.mels[0].mean()))
    assert levels[0] < levels[1] and not errors_in_log(window)
    assert (panel.pitch_spin.minimum(), panel.pitch_spin.maximum()) == (-12, 12)
    panel.pitch_spin.setValue(3)
    synthesize(qtbot, window)  # the shipped regression model has no pitch input: a message, no crash
    assert "no pitch control" in window.last_error
    panel.pitch_spin.setValue(0)
    synthesize(qtbot, window)
    assert len(errors_in_log(window)) == 1
