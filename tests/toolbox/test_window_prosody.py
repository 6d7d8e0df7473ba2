"""The pitch and energy controls beside the speaking rate, with the real window offscreen and the shipped
offline models (whose synthesizer has pitch control): both reach the synthesis."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt5.QtCore import Qt

from tests.conftest import REPO_ROOT, librispeech_utterances
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


def median_f0(mel) -> float:  # noqa: ANN001
    """Median F0 of the mel voiced by the shipped vocoder."""
    from synthesizer.duration.pitch import estimate_f0
    from vocoder.istft.inference import ISTFTVocoder

    wav = ISTFTVocoder.from_checkpoint(SHIPPED / "vocoder.pt").vocode(mel)
    contour = estimate_f0(wav, 16000, 200, mel.shape[1])
    return float(np.median(contour[contour > 0]))


def synthesize(qtbot, window: ToolboxWindow) -> None:
    qtbot.mouseClick(window.generation.synthesize_button, Qt.LeftButton)
    wait_idle(qtbot, window)


def test_energy_and_pitch_controls_reach_the_synthesizer(qtbot, window, librispeech_dir):
    # A real voice (a held-out speaker): the clone of a robotic espeak-ng voice is too rarely periodic to
    # measure its F0.
    load(qtbot, window, dict(librispeech_utterances(librispeech_dir))["60"])
    panel = window.generation
    panel.text_edit.setPlainText("Louder, please.")
    levels = []
    for energy in (0.5, 2.0):
        panel.energy_spin.setValue(energy)
        synthesize(qtbot, window)
        levels.append(float(window.controller.current_synthesis.mels[0].mean()))
    assert levels[0] < levels[1] and not errors_in_log(window)
    assert (panel.pitch_spin.minimum(), panel.pitch_spin.maximum()) == (-12, 12)
    panel.energy_spin.setValue(1.0)
    f0 = []
    for semitones in (0, 6):
        panel.pitch_spin.setValue(semitones)
        synthesize(qtbot, window)
        f0.append(median_f0(window.controller.current_synthesis.mels[0]))
    assert f0[1] > 1.2 * f0[0] and not errors_in_log(window)  # 6 semitones: 1.41× asked
