"""The one progress-callback type that every long-running stage accepts (synthesis, vocoding, downloads)."""

from typing import Callable

ProgressCallback = Callable[..., None]
"""Called as ``callback(done, total, *details)`` after each unit of work (texts, samples, bytes).

A stage may add details after the two counts (WaveRNN adds its batch size and generation rate in
kHz), so a callback that only wants the counts takes ``*_details``. Raising from it stops the work.
"""
