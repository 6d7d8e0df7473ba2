"""Render the toolbox window offscreen, in use, and save it as a PNG (for the README).

    python tools/screenshot.py --datasets_root ../shared/datasets --out docs/toolbox.png
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported
REPO_ROOT = Path(__file__).resolve().parents[1]

TEXT = "Hello, this is a cloned voice speaking from the toolbox."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets_root", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--models_dir", type=Path, default=REPO_ROOT / "saved_models")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "toolbox.png")
    parser.add_argument("--utterances", type=int, default=6, help="LibriSpeech speakers to load")
    parser.add_argument("--size", default="1500x1000", help="window size, WIDTHxHEIGHT")
    return parser.parse_args(argv)


def wait_until(app, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}.")
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from PyQt5.QtWidgets import QApplication

    from toolbox.controller import ToolboxController
    from toolbox.ui.main_window import ToolboxWindow
    from utils.audio_devices import AudioDevices

    app = QApplication(sys.argv[:1])
    controller = ToolboxController(args.models_dir, device="cpu", seed=3)
    window = ToolboxWindow(controller, args.datasets_root, AudioDevices())
    width, height = (int(value) for value in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    wait_until(app, lambda: not window.busy, 120, "the models to load")

    browser = window.reference.browser
    if browser.select_dataset("LibriSpeech/train-clean-100"):
        speakers = random.Random(1).sample(range(browser.speaker_box.count()), args.utterances)
        for index in speakers:
            browser.speaker_box.setCurrentIndex(index)
            browser.load_button.click()
            wait_until(app, lambda: not window.busy, 120, "an utterance to load")
    else:
        print(f"warning: no LibriSpeech under '{args.datasets_root}': the picture has no references")

    window.generation.text_edit.setPlainText(TEXT)
    if window.generation.synthesize_vocode_button.isEnabled():
        window.generation.synthesize_vocode_button.click()
        wait_until(app, lambda: not window.busy, 300, "the generation")
    wait_until(app, lambda: not window.plots.projecting, 300, "the UMAP projection")
    for _ in range(20):  # let the canvases finish their deferred draws
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.out)):
        raise SystemExit(f"error: could not write {args.out}")
    print(f"Saved {args.out} ({window.width()}×{window.height()}).")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
