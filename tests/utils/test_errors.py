"""utils.errors: every user-facing error class shares one base, and one function puts errors on one line."""

from __future__ import annotations

import errno
import importlib

import pytest

from utils.errors import UserError, describe_error, one_line, os_reason

USER_ERRORS = [
    ("utils.audio_io", "AudioError", ValueError),
    ("utils.audio_devices", "AudioUnavailable", RuntimeError),
    ("utils.asr", "AsrUnavailableError", RuntimeError),
    ("utils.checkpoints", "CheckpointError", RuntimeError),
    ("utils.checkpoints", "NonFiniteOutputError", RuntimeError),
    ("utils.corpora", "CorpusError", ValueError),
    ("utils.hparams", "HParamsError", ValueError),
    ("synthesizer.text", "TextError", ValueError),
    ("synthesizer.metadata", "MetadataError", ValueError),
    ("synthesizer.duration.phonemes", "PhonemizerError", RuntimeError),
    ("utils.download", "ModelDownloadError", RuntimeError),
    ("pipeline", "MissingModelError", FileNotFoundError),
]


@pytest.mark.parametrize("module, name, builtin", USER_ERRORS)
def test_user_errors_share_the_base_and_keep_their_builtin_class(module, name, builtin):
    error_class = getattr(importlib.import_module(module), name)
    assert issubclass(error_class, UserError) and issubclass(error_class, builtin)
    assert describe_error(error_class("Choose another file.")) == "Choose another file."


@pytest.mark.parametrize(
    "error, expected",
    [
        (ValueError("The file 'a.wav' is silent.\nmore"), "The file 'a.wav' is silent. more"),
        (FileNotFoundError(2, "No such file or directory"), "[Errno 2] No such file or directory"),
        (RuntimeError(""), "RuntimeError"),
        (KeyError("x"), "KeyError: x"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
    ],
)
def test_describe_error(error, expected):
    assert describe_error(error) == expected


def test_one_line_keeps_the_first_sentence_of_a_long_message_else_cuts_it():
    assert one_line("Weights only load failed. " + "advice " * 40, limit=100) == "Weights only load failed"
    cut = one_line("x" * 500, limit=100)
    assert len(cut) == 100 and cut.endswith("...")
    assert one_line("  two\n\tlines  ") == "two lines"


def test_os_reason_finds_the_os_error_behind_a_wrapper():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as cause:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from cause
    except RuntimeError as wrapped:
        assert os_reason(wrapped) == "No space left on device"
    assert os_reason(RuntimeError("wrapped\nsecond line")) == "wrapped second line"
