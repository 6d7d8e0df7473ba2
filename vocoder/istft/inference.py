"""Vocode synthesizer mels with a trained iSTFT vocoder: :class:`ISTFTVocoder`.

It implements :class:`vocoder.base.MelVocoder`: an ``(80, T)`` mel in [-4, 4] gives float32 audio of
exactly ``(T − 1)·hop`` samples at the synthesizer's rate. The network is deterministic (no sampling),
so ``generator`` is accepted and ignored. :meth:`ISTFTVocoder.vocode_stream` yields the same audio in
pieces, each available after only its own frames (plus the network's receptive field) are processed.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from vocoder.istft.model import build_istft_vocoder
>>> path = Path(tempfile.mkdtemp()) / "vocoder.pt"
>>> ISTFTVocoder(build_istft_vocoder(ISTFTHParams(channels=32, num_blocks=2))).save(path)
>>> vocoder = ISTFTVocoder.from_checkpoint(path)
>>> mel = np.full((80, 11), -4.0, dtype=np.float32)  # silence in the synthesizer's range
>>> wav = vocoder.vocode(mel)
>>> wav.shape, wav.dtype, vocoder.sample_rate, vocoder.step
((2000,), dtype('float32'), 16000, 0)
>>> pieces = list(vocoder.vocode_stream(mel, chunk_frames=4))
>>> bool(np.abs(np.concatenate(pieces) - wav).max() < 1e-4)
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from utils.checkpoints import (
    CheckpointError,
    load_checkpoint_file,
    load_model,
    make_payload,
    require_finite,
    save_checkpoint,
)
from utils.progress import ProgressCallback
from vocoder.base import validate_mel
from vocoder.istft.hparams import ISTFTHParams
from vocoder.istft.model import ISTFTVocoderNet, build_istft_vocoder
from vocoder.istft.spectral import deemphasis

#: The checkpoint's ``architecture`` entry for this vocoder (WaveRNN files have no such entry).
ARCHITECTURE = "istft"

#: Spectral contrast (:meth:`ISTFTVocoderNet.spectrum`) for the synthesizer's smoothed mels, which the
#: application layer (:class:`pipeline.ClonePipeline`) applies; the vocoder itself defaults to 1.
#: Chosen on 40 clones of held-out speakers (synthesizer step 6,500, vocoder step 9,600, benchmark
#: seed 1): 1.1 and 1.2 raised GE2E similarity by 0.0075 and 0.0093 over 1.0 (paired, 28 and 29 of
#: 40 clones better); checked on the benchmark's usual 40 (seed 0): 1.15 gave +0.0096 (29 of 40),
#: 1.3 only +0.001. On recorded speech's own mels it costs similarity (copy-synthesis 0.918 against
#: 0.93 at 1), so it is not the vocoder's default.
SYNTHESIZED_MEL_CONTRAST = 1.15


def checkpoint_architecture(checkpoint: Any) -> str:
    """``"istft"`` or ``"wavernn"`` (no ``architecture`` entry: RTVC's and our WaveRNN files).

    Examples
    --------
    >>> checkpoint_architecture({"architecture": "istft"}), checkpoint_architecture({"model_state": {}})
    ('istft', 'wavernn')
    """
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("architecture"), str):
        return checkpoint["architecture"]
    return "wavernn"


class ISTFTVocoder:
    """A loaded iSTFT vocoder.

    Parameters
    ----------
    model
        The network; ``model.hparams`` describe it.
    path
        Where it was loaded from, if anywhere (named in error messages).
    contrast
        Per-frame spectral contrast of the output (see :meth:`ISTFTVocoderNet.spectrum`): 1 leaves
        the network's amplitude as it is; :data:`SYNTHESIZED_MEL_CONTRAST` suits synthesized mels.
    """

    kind = ARCHITECTURE
    title = "iSTFT"
    exact = False  # one algorithm only
    time_share = 0.2
    streams = True

    def __init__(self, model: ISTFTVocoderNet, path: str | Path | None = None, contrast: float = 1.0) -> None:
        self.model = model
        self.path = Path(path) if path is not None else None
        self.contrast = contrast

    @property
    def contrast(self) -> float:
        """Per-frame spectral contrast applied to every mel this vocoder turns into audio."""
        return self._contrast

    @contrast.setter
    def contrast(self, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"contrast must be a positive number, not {value!r}.")
        self._contrast = float(value)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", contrast: float = 1.0,
                        checkpoint: dict | None = None) -> ISTFTVocoder:
        """Load one of our ``architecture="istft"`` vocoder checkpoints (full or exported float16), read once;
        ``checkpoint`` is the file's contents when already read.

        Raises
        ------
        utils.checkpoints.CheckpointError
            The file is missing, unreadable, of another model, or a WaveRNN vocoder.
        """
        checkpoint = checkpoint if checkpoint is not None else load_checkpoint_file(path, "vocoder")
        architecture = checkpoint_architecture(checkpoint)
        if architecture != cls.kind:
            raise CheckpointError(f"The vocoder checkpoint '{path}' holds a {architecture} vocoder, "
                                  f"not an iSTFT vocoder.")
        model, _, _ = load_model(path, "vocoder", ISTFTHParams, build_istft_vocoder, device, checkpoint)
        model.float()  # exported files hold float16 weights
        return cls(model, path, contrast)

    def use_synthesized_mels(self) -> None:
        """The contrast post-filter :data:`SYNTHESIZED_MEL_CONTRAST` for a synthesizer's smoothed mels."""
        self.contrast = SYNTHESIZED_MEL_CONTRAST

    def save(self, path: str | Path) -> None:
        """Write the weights, hyperparameters and step as an atomic vocoder checkpoint."""
        payload = make_payload(self.model, "vocoder", self.hparams, None, step=self.step,
                               architecture=ARCHITECTURE)
        save_checkpoint(path, payload)

    @property
    def hparams(self) -> ISTFTHParams:
        """The hyperparameters the network was built with."""
        return self.model.hparams

    @property
    def step(self) -> int:
        """Training steps the weights have seen."""
        return int(self.model.step.item())

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (the synthesizer's)."""
        return self.hparams.signal.sample_rate

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return next(self.model.parameters()).device

    def _check_finite(self, wav: np.ndarray) -> np.ndarray:
        require_finite(wav, "vocoder", "audio", self.path)
        return wav

    def vocode(
        self,
        mel: np.ndarray,
        *,
        progress_callback: ProgressCallback | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Waveform of one mel spectrogram, in one pass.

        Parameters
        ----------
        mel
            ``(num_mels, T)`` synthesizer output in [-4, 4], ``T >= 1``.
        progress_callback
            Called as ``(0, 1, 1, 0.0)`` before and ``(1, 1, 1, kHz generated per second)`` after.
        generator
            Ignored (the vocoder is deterministic); accepted for the :class:`~vocoder.inference.Vocoder` protocol.

        Returns
        -------
        float32 waveform of ``(T − 1)·hop`` samples.

        Raises
        ------
        ValueError
            ``mel`` is not a finite ``(num_mels, T)`` array, or the weights produce non-finite audio.
        """
        signal = self.hparams.signal
        array = validate_mel(mel, signal.num_mels)
        if progress_callback is not None:
            progress_callback(0, 1, 1, 0.0)
        start = time.perf_counter()
        length = (array.shape[1] - 1) * signal.hop_size
        if length == 0:
            wav = np.zeros(0, dtype=np.float32)
        else:
            with torch.inference_mode():
                emphasised = self.model.waveform(torch.from_numpy(array)[None].to(self.device),
                                                 self.contrast)[0]  # (length,)
            wav = deemphasis(emphasised.cpu().numpy(), signal.preemphasis)[0] if signal.preemphasize \
                else emphasised.cpu().numpy()
            wav = self._check_finite(wav.astype(np.float32))
        if progress_callback is not None:
            elapsed = max(time.perf_counter() - start, 1e-9)
            progress_callback(1, 1, 1, length / elapsed / 1000.0)
        return wav

    def amplitude(self, mel: np.ndarray) -> np.ndarray:
        """The predicted linear amplitude ``(n_fft // 2 + 1, T)`` float32 of the pre-emphasised STFT
        (with the vocoder's contrast).

        For phase reconstruction by other means (e.g. Griffin-Lim on the learned amplitude).
        """
        array = validate_mel(mel, self.hparams.signal.num_mels)
        with torch.inference_mode():
            spectrum = self.model.spectrum(torch.from_numpy(array)[None].to(self.device), self.contrast)
        return spectrum[0].abs().cpu().numpy()

    def vocode_batch(self, mels: Sequence[np.ndarray], *, progress_callback: ProgressCallback | None = None,
                     seed: int | None = None) -> list[np.ndarray]:
        """One mel at a time (``seed`` is ignored: the vocoder is deterministic)."""
        return [self.vocode(mel, progress_callback=progress_callback) for mel in mels]

    def vocode_stream(self, mel: np.ndarray, chunk_frames: int = 40, *,
                      progress_callback: ProgressCallback | None = None,
                      generator: torch.Generator | None = None) -> Iterator[np.ndarray]:
        """Yield the waveform of ``mel`` in pieces of ``chunk_frames·hop`` samples (the last may be shorter).

        ``progress_callback`` and ``generator`` are ignored (pieces come fast; nothing is sampled). The
        pieces concatenate to :meth:`vocode`'s output (to float rounding): each piece runs the network over
        its frames plus ``hparams.receptive_frames`` of context on each side, overlap-adds every frame whose
        window reaches it, and continues the de-emphasis filter's state. Raises ``ValueError`` for a bad
        ``mel`` or ``chunk_frames``, or non-finite audio.
        """
        if not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise ValueError(f"chunk_frames must be a positive integer, not {chunk_frames!r}.")
        signal = self.hparams.signal
        array = validate_mel(mel, signal.num_mels)
        total_frames = array.shape[1]
        length = (total_frames - 1) * signal.hop_size
        hop = signal.hop_size
        window_margin = math.ceil(signal.n_fft / 2 / hop)  # frames whose windows reach a sample from afar
        context = self.hparams.receptive_frames
        mel_tensor = torch.from_numpy(array).to(self.device)  # (M, T)
        state = None
        for start in range(0, length, chunk_frames * hop):
            end = min(length, start + chunk_frames * hop)
            first = max(0, start // hop - window_margin)  # spectrum frames overlapping [start, end)
            last = min(total_frames, -(-end // hop) + window_margin + 1)
            lo, hi = max(0, first - context), min(total_frames, last + context)  # plus the receptive field
            with torch.inference_mode():
                spectrum = self.model.spectrum(mel_tensor[None, :, lo:hi], self.contrast)  # (1, F, hi − lo)
                spectrum = spectrum[0, :, first - lo: last - lo]  # (F, n)
                piece = self.model.front.overlap_add(spectrum, first, start, end).cpu().numpy()
            if signal.preemphasize:
                piece, state = deemphasis(piece, signal.preemphasis, state)
            yield self._check_finite(piece.astype(np.float32))
