"""The toolbox window, offscreen, with a real controller and real model files.

Every test builds a real :class:`ToolboxWindow` and drives it through its widgets (combo boxes,
buttons) or through the methods its dialogs call (``load_file``, ``export_output``). Audio devices
are replaced by two small stand-ins: none at all (this machine and CI) and a fake sound card that
records what would have been played, which lets the streaming and recording paths run without
hardware. Exceptions raised in Qt slots fail the test (pytest-qt's exception capture).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt, QTimer

from demo_toolbox import NO_DISPLAY
from tests.conftest import LIBRISPEECH_DIR, REPO_ROOT
from toolbox.controller import ToolboxController
from utils.audio_devices import AudioDevice, AudioDevices, AudioUnavailable
from toolbox.ui.main_window import ToolboxWindow

pytestmark = pytest.mark.usefixtures("torch_single_thread")

DATASETS_ROOT = LIBRISPEECH_DIR.parents[1]
JOB_TIMEOUT_MS = 120_000
NO_AUDIO_REASON = "No audio device was found: recording and playback are disabled."


# ------------------------------------------------------------------------------------ audio fakes
class NoAudio(AudioDevices):
    """A machine without any sound device (whatever the machine running the tests has)."""

    def _sounddevice(self):
        raise AudioUnavailable(NO_AUDIO_REASON)


class FakePlayer:
    def __init__(self, events: list) -> None:
        self.events = events

    def start(self, sample_rate: int) -> None:
        self.events.append(("start", sample_rate, time.perf_counter()))

    def push(self, chunk: np.ndarray) -> None:
        self.events.append(("push", len(chunk), time.perf_counter()))

    def finish(self) -> None:
        self.events.append(("finish", 0, time.perf_counter()))

    def stop(self) -> None:
        self.events.append(("stop", 0, time.perf_counter()))


class FakeRecorder:
    def __init__(self, take: np.ndarray) -> None:
        self.take = take
        self.elapsed_seconds = 0.0

    def start(self, sample_rate: int, level_callback) -> None:
        level_callback(-12.0)  # a real recorder calls this from the audio thread, ~20 times a second
        self.elapsed_seconds = len(self.take) / sample_rate

    def stop(self) -> np.ndarray:
        return self.take


class FakeAudio(AudioDevices):
    """One fake microphone and one fake speaker; records what the window asks of them."""

    def __init__(self, take: np.ndarray | None = None, broken_input: bool = False) -> None:
        super().__init__()
        self.events: list = []
        self.take = take if take is not None else np.zeros(0, np.float32)
        self.broken_input = broken_input
        self.mic = AudioDevice(0, "fake microphone", 1, 0, 16000.0)
        self.speaker = AudioDevice(1, "fake speaker", 0, 2, 16000.0)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def inputs(self, sample_rate=16000) -> list[AudioDevice]:
        return [self.mic]

    def outputs(self, sample_rate=16000) -> list[AudioDevice]:
        return [self.speaker]

    @property
    def input_device(self) -> AudioDevice:
        return self.mic

    @property
    def output_device(self) -> AudioDevice:
        return self.speaker

    def set_input(self, index) -> None:
        pass

    def set_output(self, index) -> None:
        pass

    def streaming_player(self) -> FakePlayer:
        return FakePlayer(self.events)

    def play(self, wav: np.ndarray, sample_rate: int, blocking: bool = False) -> None:
        self.events.append(("play", len(wav), time.perf_counter()))

    def stop(self) -> None:
        self.events.append(("stop", 0, time.perf_counter()))

    def recorder(self) -> FakeRecorder:
        if self.broken_input:
            raise AudioUnavailable("Could not record from 'fake microphone' (unplugged): choose another input device.")
        return FakeRecorder(self.take)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models_dir(rtvc_models_dir) -> Path:
    """Real encoder, full-size random synthesizer and WaveRNN in RTVC's format."""
    return rtvc_models_dir


@pytest.fixture(scope="module")
def encoder_only_dir(tmp_path_factory, encoder_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("encoder_only")
    (root / "default").mkdir()
    shutil.copyfile(encoder_checkpoint, root / "default" / "encoder.pt")
    return root


@pytest.fixture(scope="module")
def voices(tmp_path_factory, espeak) -> dict[str, Path]:
    """Synthetic references in speaker folders, as a user's own recordings would be."""
    root = tmp_path_factory.mktemp("voices")
    lines = {
        "alice": ("en-us+f3", 70, "The quick brown fox jumps over the lazy dog near the river bank today."),
        "bob": ("en-us+m3", 35, "Please call Stella and ask her to bring these things with her from the store."),
    }
    paths = {}
    for speaker, (voice, pitch, text) in lines.items():
        (root / speaker).mkdir()
        paths[speaker] = espeak(root / speaker / f"{speaker}.wav", text, voice=voice, pitch=pitch)
    return paths


@pytest.fixture
def open_window(qtbot):
    """``open_window(models_dir, devices=..., datasets_root=...)`` → a shown window, idle."""

    def open_(models: Path, devices: AudioDevices | None = None, datasets_root: Path | None = None) -> ToolboxWindow:
        controller = ToolboxController(models, device="cpu", shipped_dir=None)
        window = ToolboxWindow(controller, datasets_root, devices or NoAudio())
        qtbot.addWidget(window)
        window.resize(1400, 900)
        window.show()
        wait_idle(qtbot, window)
        return window

    return open_


def wait_idle(qtbot, window: ToolboxWindow, timeout: int = JOB_TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not window.busy, timeout=timeout)


def load(qtbot, window: ToolboxWindow, path: Path) -> None:
    """What Browse… does once a file is chosen."""
    assert window.reference.load_file(path) is not None
    wait_idle(qtbot, window)


def errors_in_log(window: ToolboxWindow) -> list[str]:
    return [line for line in window.log_panel.lines() if "Error" in line]


def choose_vocoder(window: ToolboxWindow, label: str) -> None:
    box = window.models.model_boxes["vocoder"]
    index = box.findData(label)
    assert index >= 0, [box.itemText(i) for i in range(box.count())]
    box.setCurrentIndex(index)
    assert window.controller.selected["vocoder"].label == label


# ------------------------------------------------------------------------------------------- tests
def test_opens_without_a_synthesizer(qtbot, open_window, encoder_only_dir, voices):
    window = open_window(encoder_only_dir)
    assert not window.controller.has_synthesizer()
    generation = window.generation
    for button in (generation.synthesize_vocode_button, generation.synthesize_button, generation.vocode_button):
        assert not button.isEnabled()
        assert "Download" in button.toolTip() and "train" in button.toolTip()
    assert window.generation.synthesizer_help_label.isVisible()
    assert window.models.download_button.isVisible() and window.models.download_button.isEnabled()
    assert window.models.model_boxes["synthesizer"].currentText() == "none found"

    # Everything that needs only the encoder still works.
    load(qtbot, window, voices["alice"])
    assert window.history.history_list.count() == 1
    assert window.plots.reference_plot.has_image()
    assert not window.generation.synthesize_button.isEnabled()  # a reference alone does not make a synthesizer
    assert errors_in_log(window) == []


def test_bad_datasets_root_is_a_log_message(qtbot, open_window, encoder_only_dir, tmp_path):
    window = open_window(encoder_only_dir, datasets_root=tmp_path / "missing")
    assert "does not exist" in window.last_error
    assert any("does not exist" in line for line in window.log_panel.lines())
    assert window.reference.browser.dataset_box.count() == 0
    assert not window.reference.browser.load_button.isEnabled()
    assert window.reference.browse_button.isEnabled()


def test_librispeech_speakers_and_projection(qtbot, open_window, models_dir, librispeech_dir):
    window = open_window(models_dir, datasets_root=DATASETS_ROOT)
    browser = window.reference.browser
    datasets = [browser.dataset_box.itemData(i) for i in range(browser.dataset_box.count())]
    assert "LibriSpeech/train-clean-100" in datasets
    assert browser.select_dataset("LibriSpeech/train-clean-100")
    assert browser.speaker_box.count() >= 16

    speakers = []
    for index in range(16):
        browser.speaker_box.setCurrentIndex(index)
        speakers.append(browser.speaker_box.currentText())
        qtbot.mouseClick(browser.load_button, Qt.LeftButton)
        wait_idle(qtbot, window)
        assert window.history.history_list.count() == index + 1, errors_in_log(window)
        # The newest utterance is selected and drawn: embedding heatmap with the fixed scale, mel.
        newest = window.controller.history[0]
        assert window.history.selected_names() == [newest.name]
        assert newest.speaker == f"LibriSpeech_train-clean-100_{speakers[-1]}"
        assert window.plots.reference_plot.has_image()
        assert window.plots.reference_plot.heatmap.get_clim() == (0.0, 0.30)
        assert window.plots.reference_plot.mel_ax.images[0].origin == "lower"
        if index == 1:
            assert "Add 2 more utterances" in window.plots.projection_plot.waiting_text()

    # More speakers than RTVC's 14-colour palette: all drawn, each in its own colour.
    qtbot.waitUntil(lambda: len(window.plots.projection_plot.speaker_colours) == 16 and not window.plots.projecting,
                    timeout=JOB_TIMEOUT_MS)
    colours = window.plots.projection_plot.speaker_colours
    assert len(set(colours.values())) == 16
    assert {f"LibriSpeech_train-clean-100_{s}" for s in speakers} == set(colours)
    assert window.plots.projection_plot.waiting_text() == ""
    assert errors_in_log(window) == []

    # Hovering a point names it.
    collection, labels = window.plots.projection_plot._collections[0]
    x, y = window.plots.projection_plot.ax.transData.transform(collection.get_offsets()[0])
    from matplotlib.backend_bases import MouseEvent

    event = MouseEvent("motion_notify_event", window.plots.projection_plot, x, y)
    window.plots.projection_plot._on_motion(event)
    first = window.controller.history[-1]
    assert window.plots.projection_plot.hover_text() == labels[0] == f"{first.name}\n{first.speaker}"

    # Clear empties the projection but not the history.
    qtbot.mouseClick(window.plots.clear_projection_button, Qt.LeftButton)
    assert "Add 4 more utterances" in window.plots.projection_plot.waiting_text()
    assert window.history.history_list.count() == 16


def test_browse_files_and_average_two_references(qtbot, open_window, encoder_only_dir, voices):
    window = open_window(encoder_only_dir)
    load(qtbot, window, voices["alice"])
    load(qtbot, window, voices["bob"])
    history = window.controller.history
    assert [u.speaker for u in history] == ["bob", "alice"]  # speaker = the file's folder, as in RTVC
    assert window.history.history_list.item(0).text().startswith("bob.wav — bob (")

    window.history.select([u.name for u in history])
    total = sum(u.speech_seconds for u in history)
    assert window.history.voice_label.text() == f"Voice from 2 utterances, {total:.1f} s of speech"
    assert window.plots.reference_plot.has_image()

    window.history.select([history[0].name])
    assert window.history.voice_label.text() == f"Voice from 1 utterance, {history[0].speech_seconds:.1f} s of speech"


def test_generate_with_griffin_lim_and_export(qtbot, open_window, models_dir, voices, tmp_path):
    window = open_window(models_dir)
    load(qtbot, window, voices["alice"])
    choose_vocoder(window, "Griffin-Lim")
    window.generation.seed_check.setChecked(True)
    window.generation.seed_spin.setValue(7)

    # Synthesize only, then vocode the spectrogram.
    window.generation.text_edit.setPlainText("Hello there.")
    assert not window.generation.vocode_button.isEnabled()
    qtbot.mouseClick(window.generation.synthesize_button, Qt.LeftButton)
    wait_idle(qtbot, window)
    assert window.plots.output_plot.mel_ax.images and window.plots.alignment_plot.has_image()
    assert window.generation.vocode_button.isEnabled()
    qtbot.mouseClick(window.generation.vocode_button, Qt.LeftButton)
    wait_idle(qtbot, window)
    assert window.generation.outputs_box.count() == 1

    # Both at once, two lines: streamed sentence by sentence.
    window.generation.text_edit.setPlainText("Hello there.\nThis is a second line.")
    qtbot.mouseClick(window.generation.synthesize_vocode_button, Qt.LeftButton)
    assert window.busy and not window.generation.synthesize_vocode_button.isEnabled()  # one job at a time
    wait_idle(qtbot, window)
    assert errors_in_log(window) == []
    assert window.chunks_received == 2
    assert window.generation.outputs_box.count() == 2
    output = window.generation.selected_output
    assert output is window.controller.outputs[0] and output.vocoder == "griffinlim" and output.seed == 7
    assert re.fullmatch(r"Similarity to the voice: -?\d\.\d\d", window.generation.similarity_meter.label.text())
    assert window.generation.similarity_meter.bar.value() == int(round(min(max(output.similarity, 0), 1) * 100))
    assert len(output.synthesis.alignments) == 2 and window.plots.alignment_plot.has_image()
    assert window.plots.output_plot.has_image()
    # Generated outputs join the history (RTVC bug 34), unselected: the voice stays the reference.
    names = [window.history.history_list.item(i).data(Qt.UserRole) for i in range(window.history.history_list.count())]
    assert output.name in names
    assert window.history.selected_names() == [window.controller.history[-1].name]

    flac = window.generation.export_output(tmp_path / "x.flac")
    data, rate = soundfile.read(flac)
    assert rate == 16000 and len(data) == len(output.wav)
    wav = window.generation.export_output(tmp_path / "no_suffix")
    assert wav.suffix == ".wav" and soundfile.info(wav).samplerate == 16000
    assert window.generation.export_output(tmp_path / "missing" / "x.wav") is None  # logged, not raised
    assert window.last_error


def test_wavernn_streams_while_the_window_stays_responsive(qtbot, open_window, models_dir, voices):
    audio = FakeAudio()
    window = open_window(models_dir, devices=audio)
    load(qtbot, window, voices["bob"])
    choose_vocoder(window, "default")
    window.generation.text_edit.setPlainText("First sentence here. And a second one.")

    ticks = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()) if window.busy else None)
    timer.start()
    audio.events.clear()
    started = time.perf_counter()
    qtbot.mouseClick(window.generation.synthesize_vocode_button, Qt.LeftButton)
    wait_idle(qtbot, window)
    finished = time.perf_counter()
    timer.stop()

    assert errors_in_log(window) == []
    assert window.generation.selected_output.vocoder == "wavernn"
    assert len(ticks) >= 5, f"{len(ticks)} timer ticks in {finished - started:.1f} s of vocoding"
    kinds = [event[0] for event in audio.events]
    pushes = audio.events[1:-1]
    assert kinds[0] == "start" and kinds[-1] == "finish" and set(kinds[1:-1]) == {"push"}, kinds
    assert len(pushes) > 2  # each sentence in pieces as fast WaveRNN makes them, then its pause
    assert audio.events[0][1] == 16000
    # The first audio reached the player while the rest was still being made.
    assert pushes[-1][2] - pushes[0][2] > 0.05
    assert sum(event[1] for event in pushes) == len(window.generation.selected_output.wav)


def test_errors_are_reported_not_raised(qtbot, open_window, models_dir, voices, monkeypatch):
    escaped = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: escaped.append(info))
    window = open_window(models_dir)

    # Without an audio device: recording and playback are disabled, with the reason.
    for button in (window.reference.record_button, window.reference.play_button, window.generation.replay_button):
        assert not button.isEnabled()
        assert NO_AUDIO_REASON in button.toolTip()
    assert window.reference.audio_label.text() == NO_AUDIO_REASON

    # Generating without a reference: the controller's message, nothing raised.
    assert window.generation.synthesize() is not None
    wait_idle(qtbot, window)
    assert "Select at least one reference" in window.last_error

    load(qtbot, window, voices["alice"])
    window.generation.text_edit.setPlainText("   \n ")
    qtbot.mouseClick(window.generation.synthesize_button, Qt.LeftButton)
    wait_idle(qtbot, window)
    assert window.last_error == "The text is empty: type at least one word."
    assert window.statusBar().currentMessage() == window.last_error
    assert any(line.endswith("Error: The text is empty: type at least one word.") for line in window.log_panel.lines())

    load(qtbot, window, Path(voices["alice"]).with_name("missing.wav"))
    assert "missing.wav" in window.last_error
    assert window.generation.synthesize_button.isEnabled()  # the window is usable after each error
    assert escaped == []


def test_record_plays_back_and_registers(qtbot, open_window, encoder_only_dir, voices):
    take, rate = soundfile.read(voices["bob"], dtype="float32")
    assert rate == 16000
    audio = FakeAudio(take=take)
    window = open_window(encoder_only_dir, devices=audio)
    assert window.reference.record_button.isEnabled() and window.reference.input_box.currentText() == "fake microphone"

    qtbot.mouseClick(window.reference.record_button, Qt.LeftButton)
    assert window.reference.record_button.text() == "Stop recording"
    qtbot.waitUntil(lambda: window.reference.level_meter.value() > 0)
    qtbot.mouseClick(window.reference.record_button, Qt.LeftButton)
    assert window.reference.record_button.text() == "Record"
    wait_idle(qtbot, window)
    assert ("play", len(take)) in [event[:2] for event in audio.events]  # played back after recording
    assert window.controller.history[0].name.startswith("user01_rec_")
    assert window.history.history_list.count() == 1 and window.reference.play_button.isEnabled()

    # A device that fails to open: one message, and the Record button is usable again (RTVC bug 33).
    audio.broken_input = True
    qtbot.mouseClick(window.reference.record_button, Qt.LeftButton)
    assert "unplugged" in window.last_error
    assert window.reference.record_button.text() == "Record" and window.reference.record_button.isEnabled()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux can lack a display")
def test_demo_toolbox_without_a_display_says_so(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "demo_toolbox.py", "-m", str(tmp_path / "models")], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == NO_DISPLAY
    assert not (tmp_path / "models").exists()  # nothing is installed before the check


def test_worker_turns_exceptions_into_one_line(qtbot, capfd):
    from toolbox.ui.workers import Worker, WorkerPool

    def crash(hooks):
        hooks.progress(0.5, "half way")
        raise ZeroDivisionError("division by zero\nsecond line")

    pool = WorkerPool()
    worker = Worker(crash, "Crashing")
    with qtbot.waitSignal(worker.signals.failed, timeout=10_000) as failed:
        pool.start(worker)
    assert failed.args == ["Unexpected error: ZeroDivisionError: division by zero second line"]
    assert pool.wait(10_000)
    assert "Traceback" in capfd.readouterr().err  # the details go to stderr only

    expected = Worker(lambda hooks: (_ for _ in ()).throw(ValueError("Select a reference first.")))
    with qtbot.waitSignal(expected.signals.failed, timeout=10_000) as failed:
        pool.start(expected)
    assert failed.args == ["Select a reference first."]
    assert pool.wait(10_000)


def test_alignment_plot_names_the_axes_of_each_synthesizer(qtbot):
    from toolbox.ui.plots import AlignmentPlot

    plot = AlignmentPlot()
    qtbot.addWidget(plot)
    path = np.eye(6, 3, dtype=np.float32)
    plot.plot([path], "duration")
    assert (plot.ax.get_xlabel(), plot.ax.get_ylabel()) == ("frame", "phoneme")
    assert plot.ax.get_title().startswith("alignment")
    plot.plot([path])
    assert (plot.ax.get_xlabel(), plot.ax.get_ylabel()) == ("decoder step", "character")
