"""Open the voice-cloning toolbox window.

Examples
--------
    python demo_toolbox.py -d ~/datasets
    python demo_toolbox.py -d ~/datasets -m saved_models --seed 42 --cpu

Without a display (a server, a container) the toolbox says so in one line and exits with status 1;
``QT_QPA_PLATFORM=offscreen`` runs it headless, for checks and screenshots.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

NO_DISPLAY = ("error: no display found: run the toolbox on a desktop, "
              "or set QT_QPA_PLATFORM=offscreen for a headless check")
# Qt platforms that draw without an X11 or Wayland server.
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "minimalegl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Voice-cloning toolbox: load or record a voice, type text, hear it in that voice.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-d", "--datasets_root", type=Path, default=None,
                        help="folder holding speech corpora (LibriSpeech/, LibriTTS/, VCTK-Corpus/, LJSpeech-1.1/, "
                             "or folders of speaker folders) for the dataset browser")
    parser.add_argument("-m", "--models_dir", type=Path, default=Path("saved_models"),
                        help="folder scanned for encoder, synthesizer and vocoder checkpoints (the default encoder "
                             "is installed into its default/ from the resemblyzer package when missing)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is available")
    parser.add_argument("--exact_vocoder", action="store_true",
                        help="RTVC's exact WaveRNN generation (same samples as RTVC for a seed; ~4x slower on CPU)")
    parser.add_argument("--seed", type=int, default=None,
                        help="pre-set and tick the 'Random seed' box so outputs are repeatable")
    # The download error's advice names these two (and their environment variables), so the toolbox
    # must accept them as the downloader's own command line does.
    parser.add_argument("--models_url", default=None,
                        help="mirror base URL for 'Download default models' (default: $SV2TTS_MODELS_URL, "
                             "then the Hugging Face repository)")
    parser.add_argument("--models_source", type=Path, default=None,
                        help="folder that already holds the default model files, copied instead of downloaded "
                             "(default: $SV2TTS_MODELS_SOURCE)")
    return parser


def display_available(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt can open a window; on Linux without a display Qt would abort the process instead.

    >>> display_available({}, "linux")
    False
    >>> display_available({"QT_QPA_PLATFORM": "offscreen"}, "linux"), display_available({"DISPLAY": ":0"}, "linux")
    (True, True)
    >>> display_available({}, "darwin")
    True
    """
    if not platform.startswith("linux"):
        return True  # macOS and Windows always have their native platform plugin
    requested = environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if requested in HEADLESS_PLATFORMS:
        return True
    if requested.startswith("wayland"):
        return bool(environ.get("WAYLAND_DISPLAY"))
    if requested == "xcb":
        return bool(environ.get("DISPLAY"))
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not display_available():
        print(NO_DISPLAY, file=sys.stderr)
        return 1

    from PyQt5.QtWidgets import QApplication

    from toolbox.controller import ToolboxController
    from utils.audio_devices import AudioDevices
    from toolbox.ui.main_window import ToolboxWindow

    app = QApplication(sys.argv[:1])
    controller = ToolboxController(args.models_dir, device="cpu" if args.cpu else None, seed=args.seed,
                                   exact_vocoder=args.exact_vocoder, models_url=args.models_url,
                                   models_source=args.models_source)
    window = ToolboxWindow(controller, args.datasets_root, AudioDevices())
    screen = app.primaryScreen()
    if screen is not None:
        available = screen.availableGeometry()
        window.resize(max(int(available.width() * 0.8), min(1400, available.width())),
                      max(int(available.height() * 0.8), min(900, available.height())))
    window.show()
    return run_until_closed(app, window)


def run_until_closed(app, window) -> int:  # noqa: ANN001 (QApplication, ToolboxWindow)
    """Run the event loop; once the window is closed, exit at once even if a job is still running.

    Closing cancels the jobs and waits briefly (:meth:`ToolboxWindow.closeEvent`); a step that cannot
    be interrupted (a UMAP fit) would otherwise keep the process alive, windowless, until it ends,
    because Python waits for the thread pool on exit.
    """
    code = app.exec_()
    if window.jobs_running:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
